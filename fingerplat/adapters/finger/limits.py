"""Per-address rate limiting for the finger listener (a token bucket per client).

Each address may make ``rate`` queries per second on average with bursts of
``burst`` (SPEC: twice the rate). Buckets that have refilled completely carry
no information, so they are pruned once the table grows; a flood from many
addresses therefore costs bounded memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PRUNE_AT = 10_000


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else 2 * rate)
        self.clock = clock
        # address -> (tokens left, time of the last update)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._prune_at = PRUNE_AT

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self._prune_at:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if now - last < full_after
        }
        # Many addresses still active: wait for the table to double before the
        # next sweep, so a flood costs amortised O(1) per query, not O(n).
        self._prune_at = max(PRUNE_AT, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)
