"""The per-address token bucket behind the finger rate limit (no sockets, a fake clock)."""

from __future__ import annotations

import pytest

from fingerplat.adapters import token_bucket as limits
from fingerplat.adapters.finger.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_of_twice_the_rate_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)  # 2 q/s, burst 4
    assert [limiter.allow("10.0.0.1") for _ in range(5)] == [True] * 4 + [False]
    assert limiter.allow("10.0.0.2")  # other addresses have their own bucket
    clock.now += 0.5  # one token back
    assert limiter.allow("10.0.0.1")
    assert not limiter.allow("10.0.0.1")
    clock.now += 60
    assert [limiter.allow("10.0.0.1") for _ in range(5)] == [True] * 4 + [False]


def test_refused_attempts_do_not_earn_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.allow("a") and limiter.allow("a")
    for _ in range(10):
        clock.now += 0.1
        limiter.allow("a")  # hammering: each refill of 0.1 is below one token ...
    clock.now += 0.05
    assert not limiter.allow("a")  # ... until a whole token has accumulated


def test_full_buckets_are_pruned_so_memory_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "PRUNE_AT", 100)
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)  # burst 20: full again after 2 s
    for i in range(100):
        limiter.allow(f"10.0.0.{i}")
    clock.now += 3  # every bucket is full again: nothing worth keeping
    limiter.allow("192.0.2.1")
    limiter.allow("192.0.2.2")
    assert len(limiter) <= 2


def test_a_flood_of_active_addresses_is_kept_and_swept_rarely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "PRUNE_AT", 100)
    limiter = RateLimiter(10, clock=Clock())
    for i in range(1000):
        assert limiter.allow(f"addr{i}")  # all active: nobody loses their bucket
    assert len(limiter) == 1000
    assert sum(limiter.allow("addr1") for _ in range(25)) == 19  # its bucket was kept
