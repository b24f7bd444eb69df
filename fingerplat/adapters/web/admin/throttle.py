"""Login throttling: after repeated failures, make the next attempt wait.

Failures are counted per remote address and per admin name, so one address
cannot try many names and many addresses cannot hammer one name. The first
``FREE_FAILURES`` failures cost nothing (people mistype); after that each
failure doubles the wait, up to ``MAX_DELAY``. A success clears the counters
of that name and address. Counters forget failures older than ``WINDOW``.

While a key is locked the form is refused before the password is checked,
so a locked-out attacker does not even get to spend our argon2 time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
BASE_DELAY = 2.0
MAX_DELAY = 15 * 60.0
WINDOW = 60 * 60.0
MAX_KEYS = 50_000


@dataclass(slots=True)
class _Record:
    failures: int
    last_failure: float
    locked_until: float


class LoginThrottle:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        free_failures: int = FREE_FAILURES,
        base_delay: float = BASE_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self._records: dict[str, _Record] = {}
        self._clock = clock
        self._free = free_failures
        self._base = base_delay
        self._max_delay = max_delay

    @staticmethod
    def keys(remote: str | None, name: str) -> list[str]:
        return [f"addr:{remote or '?'}", f"name:{(name or '').strip().lower()[:64]}"]

    def wait_seconds(self, keys: list[str]) -> float:
        """How long the caller must still wait before trying again (0: go ahead)."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            rec = self._records.get(key)
            if rec is None:
                continue
            if now - rec.last_failure > WINDOW:
                del self._records[key]
                continue
            wait = max(wait, rec.locked_until - now)
        return max(0.0, wait)

    def failed(self, keys: list[str]) -> float:
        """Record a failure; returns the wait it imposes from now on."""
        now = self._clock()
        if len(self._records) > MAX_KEYS:
            self._forget_old(now)
        wait = 0.0
        for key in keys:
            rec = self._records.get(key)
            if rec is None or now - rec.last_failure > WINDOW:
                rec = _Record(0, now, now)
                self._records[key] = rec
            rec.failures += 1
            rec.last_failure = now
            over = rec.failures - self._free
            if over >= 0:
                delay = min(self._max_delay, self._base * (2 ** min(over, 30)))
                rec.locked_until = max(rec.locked_until, now + delay)
            wait = max(wait, rec.locked_until - now)
        return wait

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._records.pop(key, None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, r in self._records.items()
                    if now - r.last_failure > WINDOW and r.locked_until <= now]:
            del self._records[key]
        if len(self._records) > MAX_KEYS:
            # Still full of fresh records: keep the most recent half.
            keep = sorted(self._records.items(), key=lambda kv: kv[1].last_failure)
            self._records = dict(keep[len(keep) // 2:])
