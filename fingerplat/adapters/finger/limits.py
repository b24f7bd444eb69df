"""Per-address rate limiting for the finger listener: a token bucket per client.

Each address may make ``rate`` queries per second on average with bursts of
``burst`` (SPEC: twice the rate). The bucket arithmetic and the pruning that
keeps a flood's memory bounded are the shared ones (adapters/token_bucket.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fingerplat.adapters.token_bucket import TokenBuckets


class RateLimiter(TokenBuckets):
    """:class:`TokenBuckets` keyed by client address, with the SPEC's default burst."""

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(rate, burst if burst is not None else 2 * rate, clock=clock)
