"""Prometheus metrics shared by every adapter (served at ``/metrics``).

One :class:`Metrics` per running server, each with its own registry, so tests
that run several servers in one process do not collide.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fingerplat_requests", "Requests answered, per adapter", ["adapter"],
            registry=self.registry,
        )
        self.errors = Counter(
            "fingerplat_errors", "Requests that ended in an error, per adapter and kind",
            ["adapter", "kind"], registry=self.registry,
        )
        self.latency = LatencyHistogram(
            "fingerplat_request_seconds", "Time to answer a request, per adapter",
        )
        self.registry.register(self.latency)
        self.connections = Gauge(
            "fingerplat_open_connections", "Open connections, per adapter", ["adapter"],
            registry=self.registry,
        )
        self.refused = Counter(
            "fingerplat_refused_connections",
            "Connections refused by a limit (max connections, rate limit), per adapter",
            ["adapter", "reason"], registry=self.registry,
        )
        self._flushers: list[Callable[[], None]] = []

    def add_flusher(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` before every scrape.

        A hot path that counts in plain integers (a prometheus_client update
        takes a lock: microseconds that matter at tens of thousands of
        queries a second) hands its counts over here.
        """
        self._flushers.append(flush)

    def count_instant(self, adapter: str, count: int) -> None:
        """``count`` requests answered in no measurable time (e.g. from a cache).

        The same as ``count`` times ``observe(0.0)`` on the latency histogram
        plus the request counter, in one step: a zero lands in the first bucket.
        """
        self.requests.labels(adapter).inc(count)
        self.latency.labels(adapter).observe_many(count, 0.0)

    @contextmanager
    def observe(self, adapter: str) -> Iterator[None]:
        """Count a request and its latency; an escaping exception counts as an error."""
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.errors.labels(adapter, type(exc).__name__).inc()
            raise
        finally:
            self.requests.labels(adapter).inc()
            self.latency.labels(adapter).observe(time.perf_counter() - start)

    def tally(self, adapter: str) -> RequestTally:
        """Plain-integer counts for ``adapter``'s hot path, handed over before each scrape."""
        tally = RequestTally()
        requests = self.requests.labels(adapter)
        latency = self.latency.labels(adapter)

        def flush() -> None:
            count, seconds, buckets = tally.take()
            if count:
                requests.inc(count)
                latency.add(seconds, buckets)

        self.add_flusher(flush)
        return tally

    def render(self) -> bytes:
        for flush in list(self._flushers):
            flush()
        return generate_latest(self.registry)


class LatencyChild:
    """One adapter's latency histogram: plain counts per bucket and a sum.

    Updated only from the event loop's thread, so no lock (prometheus_client's
    ``Histogram`` takes one per observation, which shows on the finger hot path).
    """

    __slots__ = ("buckets", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf

    def observe(self, seconds: float) -> None:
        self.seconds += seconds
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def observe_many(self, count: int, seconds: float) -> None:
        """``count`` observations of ``seconds`` each, in one step."""
        self.seconds += count * seconds
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += count

    def add(self, seconds: float, buckets: list[int]) -> None:
        """Take over counts made elsewhere (a :class:`RequestTally`), bucket by bucket."""
        self.seconds += seconds
        self.buckets = [mine + theirs for mine, theirs in zip(self.buckets, buckets, strict=True)]


class LatencyHistogram:
    """A Prometheus histogram labelled by adapter, as a custom collector.

    It exposes exactly what ``Histogram(name, doc, ["adapter"],
    buckets=LATENCY_BUCKETS)`` would (``_bucket``, ``_count``, ``_sum``; no
    ``_created``) through prometheus_client's public collector interface, so
    counts made in plain integers elsewhere can be added without touching the
    library's private fields.
    """

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.children: dict[str, LatencyChild] = {}
        self.bounds = [floatToGoString(bound) for bound in (*LATENCY_BUCKETS, float("inf"))]

    def labels(self, adapter: str) -> LatencyChild:
        child = self.children.get(adapter)
        if child is None:
            child = self.children[adapter] = LatencyChild()
        return child

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=["adapter"])]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["adapter"])
        for adapter, child in self.children.items():
            cumulative, total = [], 0
            for bound, count in zip(self.bounds, child.buckets, strict=True):
                total += count
                cumulative.append((bound, float(total)))
            family.add_metric([adapter], cumulative, child.seconds)
        return [family]


class RequestTally:
    """Requests and their latencies counted in plain Python, like ``Histogram.observe``.

    ``observe`` costs a bisect and three additions instead of two label
    lookups and two locked updates; :meth:`Metrics.tally` hands the counts to
    the Prometheus metrics before every scrape, so ``/metrics`` shows the same
    figures either way.
    """

    __slots__ = ("buckets", "count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def take(self) -> tuple[int, float, list[int]]:
        taken = (self.count, self.seconds, self.buckets)
        self.count, self.seconds, self.buckets = 0, 0.0, [0] * len(self.buckets)
        return taken
