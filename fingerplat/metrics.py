"""Prometheus metrics shared by every adapter (served at ``/metrics``).

One :class:`Metrics` per running server, each with its own registry, so tests
that run several servers in one process do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        self.latency = Histogram(
            "fingerplat_request_seconds", "Time to answer a request, per adapter", ["adapter"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.connections = Gauge(
            "fingerplat_open_connections", "Open connections, per adapter", ["adapter"],
            registry=self.registry,
        )
        self.refused = Counter(
            "fingerplat_refused_connections",
            "Connections refused by a limit (max connections, rate limit), per adapter",
            ["adapter", "reason"], registry=self.registry,
        )

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
