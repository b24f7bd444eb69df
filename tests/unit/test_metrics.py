"""The plain-integer request tally reads on /metrics exactly like direct updates."""

from __future__ import annotations

from fingerplat.metrics import LATENCY_BUCKETS, Metrics


def scrape(metrics: Metrics) -> list[bytes]:
    """The exposition lines, without the creation times (they differ per object)."""
    return [line for line in metrics.render().splitlines() if b"_created" not in line]


SAMPLES = [0.0, 0.0004, 0.0005, 0.003, 0.2, *LATENCY_BUCKETS, 7.5, 99.0]


def test_tally_flushed_on_scrape_equals_direct_prometheus_updates() -> None:
    tallied, direct = Metrics(), Metrics()
    tally = tallied.tally("web")
    for seconds in SAMPLES:
        tally.observe(seconds)
        direct.requests.labels("web").inc()
        direct.latency.labels("web").observe(seconds)
    assert scrape(tallied) == scrape(direct)
    # Flushing hands the counts over once: a second scrape adds nothing.
    assert scrape(tallied) == scrape(direct)
    tally.observe(0.01)
    direct.requests.labels("web").inc()
    direct.latency.labels("web").observe(0.01)
    assert scrape(tallied) == scrape(direct)
    assert b'fingerplat_requests_total{adapter="web"} 21.0' in scrape(tallied)
