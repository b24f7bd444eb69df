"""Reading a figure from /metrics the way a Prometheus scrape does (public API only)."""

from __future__ import annotations

from fingerplat.metrics import Metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of sample ``name`` with ``labels`` after a scrape (0.0 if never set).

    ``render`` runs first, so counts kept in plain integers on the hot paths
    are handed over exactly as they are before a real scrape.
    """
    metrics.render()
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
