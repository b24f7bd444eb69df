"""Output throttling: a token bucket in front of a bounded queue.

IRC servers disconnect ("Excess Flood") or delay clients that send too fast,
and a busy tenant (or someone hammering the bot) must not turn the bot into
a flood source. Lines wait in a bounded queue and leave at ``rate`` lines per
second after an initial ``burst``; when the queue is full new lines are
dropped with a log entry rather than piling up in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fingerplat.adapters.token_bucket import TokenBuckets

log = logging.getLogger("fingerplat.irc")


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; :meth:`take` waits for one.

    A single bucket of the shared :class:`~fingerplat.adapters.token_bucket.TokenBuckets`.
    """

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._bucket = TokenBuckets(rate, burst, clock=clock)

    def try_take(self) -> float:
        """Take a token and return 0, or return the seconds until one is available."""
        return self._bucket.take(None)

    async def take(self) -> None:
        """Wait until a token is free and take it."""
        # A timed wait for the refill, not polling for an event (hence the noqa).
        while (wait := self.try_take()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)


@dataclass(frozen=True, slots=True)
class OutLine:
    target: str
    text: str


class OutputQueue:
    """Bounded FIFO of lines waiting for the bucket; :meth:`offer` never blocks."""

    def __init__(self, maxsize: int, on_drop: Callable[[OutLine], None] | None = None) -> None:
        self._queue: asyncio.Queue[OutLine] = asyncio.Queue(maxsize=maxsize)
        self._on_drop = on_drop
        self.dropped = 0

    def offer(self, line: OutLine) -> bool:
        try:
            self._queue.put_nowait(line)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("irc output queue full (%d lines): dropped a line to %s",
                        self._queue.maxsize, line.target)
            if self._on_drop is not None:
                self._on_drop(line)
            return False
        return True

    @property
    def full(self) -> bool:
        return self._queue.full()

    def empty(self) -> bool:
        return self._queue.empty()

    def __len__(self) -> int:
        return self._queue.qsize()

    async def get(self) -> OutLine:
        return await self._queue.get()

    def task_done(self) -> None:
        self._queue.task_done()

    def clear(self) -> int:
        """Forget queued lines (after a disconnect they would be stale); returns how many."""
        count = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            count += 1
        return count

    async def join(self) -> None:
        await self._queue.join()
