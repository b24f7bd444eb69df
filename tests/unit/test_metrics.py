"""The latency histogram and the tally read on /metrics like prometheus_client's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from fingerplat.metrics import LATENCY_BUCKETS, Metrics

SAMPLES = [0.0, 0.0004, 0.0005, 0.003, 0.2, *LATENCY_BUCKETS, 7.5, 99.0]


def latency_lines(exposition: bytes) -> list[bytes]:
    """The request and latency lines, without creation times (they differ per object)."""
    return [
        line for line in exposition.splitlines()
        if (b"fingerplat_request_seconds" in line or b"fingerplat_requests_total" in line)
        and b"_created" not in line
    ]


class Reference:
    """What prometheus_client's own ``Histogram`` and ``Counter`` expose for the same figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("fingerplat_requests", "Requests answered, per adapter",
                                ["adapter"], registry=self.registry)
        self.latency = Histogram("fingerplat_request_seconds",
                                 "Time to answer a request, per adapter", ["adapter"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe(self, adapter: str, seconds: float) -> None:
        self.requests.labels(adapter).inc()
        self.latency.labels(adapter).observe(seconds)

    def lines(self) -> list[bytes]:
        return latency_lines(generate_latest(self.registry))


def test_tally_flushed_on_scrape_reads_like_prometheus_histogram() -> None:
    tallied, reference = Metrics(), Reference()
    tally = tallied.tally("web")
    for seconds in SAMPLES:
        tally.observe(seconds)
        reference.observe("web", seconds)
    assert latency_lines(tallied.render()) == reference.lines()
    # Flushing hands the counts over once: a second scrape adds nothing.
    assert latency_lines(tallied.render()) == reference.lines()
    tally.observe(0.01)
    reference.observe("web", 0.01)
    assert latency_lines(tallied.render()) == reference.lines()
    assert b'fingerplat_requests_total{adapter="web"} 21.0' in tallied.render()


def test_direct_observations_and_instant_answers_read_like_prometheus_histogram() -> None:
    metrics, reference = Metrics(), Reference()
    for seconds in SAMPLES:
        metrics.requests.labels("finger").inc()
        metrics.latency.labels("finger").observe(seconds)
        reference.observe("finger", seconds)
    metrics.count_instant("finger", 3)
    for _ in range(3):
        reference.observe("finger", 0.0)
    assert latency_lines(metrics.render()) == reference.lines()
    first_bucket = {"adapter": "finger", "le": "0.0005"}  # 4 samples and 3 instant answers
    assert metrics.registry.get_sample_value(
        "fingerplat_request_seconds_bucket", first_bucket) == 7.0
    assert metrics.registry.get_sample_value(
        "fingerplat_request_seconds_count", {"adapter": "finger"}) == len(SAMPLES) + 3


def test_observe_counts_an_escaping_exception_as_an_error() -> None:
    metrics = Metrics()
    try:
        with metrics.observe("web"):
            raise ValueError("boom")
    except ValueError:
        pass
    value = metrics.registry.get_sample_value
    assert value("fingerplat_errors_total", {"adapter": "web", "kind": "ValueError"}) == 1.0
    assert value("fingerplat_requests_total", {"adapter": "web"}) == 1.0
    assert value("fingerplat_request_seconds_count", {"adapter": "web"}) == 1.0
