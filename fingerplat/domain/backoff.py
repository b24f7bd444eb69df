"""Retry delays: exponential back-off with equal jitter, for every retry loop.

Used by the IRC bots' reconnects, the LISTEN connection's reconnects and the
membership's reloads. Without jitter, every bot (or node) that lost the same
server would come back in lock-step and hit it at the same instant. "Equal jitter" waits
half the exponential ceiling plus a uniformly random part of the other half,
so each delay lies in [ceiling / 2, ceiling]. Not "full jitter" (anywhere in
[0, ceiling]): that could draw a delay near zero after a failure and
reconnect at once, which an IRC server counts against the host; equal jitter
keeps a floor that grows with every failed attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Exponential back-off with equal jitter: the n-th delay lies in [c / 2, c], c = ceiling."""

    initial: float = 1.0
    maximum: float = 300.0
    factor: float = 2.0
    attempt: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def ceiling(self) -> float:
        return min(self.maximum, self.initial * self.factor ** min(self.attempt, 64))

    def next_delay(self) -> float:
        """The delay before the next attempt (at least half the ceiling, so never a busy loop)."""
        top = self.ceiling()
        self.attempt += 1
        return top / 2 + self._random.uniform(0, top / 2)

    def reset(self) -> None:
        self.attempt = 0
