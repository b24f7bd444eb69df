"""The one token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

Used per client address by the finger listener's rate limit (finger/limits.py,
SPEC: a burst of twice the rate) and as a single bucket by the IRC bot's
output throttle (irc/throttle.py). A refused take does not earn tokens: the
bucket's time moves on with it, so hammering never adds up to a free query.

Buckets that have refilled completely carry no information, so they are
pruned once the table grows past :data:`PRUNE_AT`; a flood from many
addresses therefore costs bounded memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

PRUNE_AT = 10_000


class TokenBuckets:
    """One bucket per key, all with the same ``rate`` and ``burst``."""

    def __init__(self, rate: float, burst: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        # key -> (tokens left, time of the last update)
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._prune_at = PRUNE_AT

    def allow(self, key: Hashable) -> bool:
        """Take one token for ``key``; False when its bucket is empty.

        The finger listener asks this for every connection: kept inline, no
        call beyond it.
        """
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

    def take(self, key: Hashable) -> float:
        """Take one token from ``key``'s bucket and return 0.0, or the seconds until one."""
        if self.allow(key):
            return 0.0
        tokens, _last = self._buckets[key]
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if now - last < full_after
        }
        # Many keys still active: wait for the table to double before the
        # next sweep, so a flood costs amortised O(1) per take, not O(n).
        self._prune_at = max(PRUNE_AT, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)
