"""Tracking in-flight connection handlers so shutdown can drain them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class ConnectionTracker:
    """Counts live handlers; ``drain`` waits for them (bounded) at shutdown."""

    def __init__(self) -> None:
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until no handler is active; False when the timeout ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
