"""Reconnect back-off: equal jitter, so every delay lies in [ceiling / 2, ceiling]."""

from __future__ import annotations

import random

from fingerplat.domain.backoff import Backoff


class Extreme(random.Random):
    """A random source that always draws one end of the range."""

    def __init__(self, high: bool) -> None:
        super().__init__()
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_delays_never_fall_below_half_the_ceiling_nor_exceed_it() -> None:
    low = Backoff(initial=1, maximum=30, _random=Extreme(high=False))
    high = Backoff(initial=1, maximum=30, _random=Extreme(high=True))
    ceilings = [min(30, 2 ** n) for n in range(10)]
    # The lowest draw is half the ceiling (full jitter would go down to 0 here).
    assert [low.next_delay() for _ in ceilings] == [c / 2 for c in ceilings]
    assert [high.next_delay() for _ in ceilings] == ceilings


def test_delays_are_jittered_within_the_bounds_and_reset_starts_over() -> None:
    backoff = Backoff(initial=2, maximum=60, _random=random.Random(3))
    for attempt in range(20):
        ceiling = min(60, 2 * 2 ** attempt)
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
    many = {round(Backoff(initial=2, maximum=60).next_delay(), 9) for _ in range(20)}
    assert len(many) > 1  # not lock-step
    backoff.reset()
    assert 1 <= backoff.next_delay() <= 2
