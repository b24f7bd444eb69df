"""The background task that clears statuses whose time has come.

Reads never wait for it: every read compares a status's expiry with the
clock (fingerplat/domain/expiry.py), and cached answers carry their deadline.
The sweeper writes what must be kept: the "cleared" history entry and one
``status.expire`` audit event, and the change event that makes IRC bots
announce it and other nodes drop what they kept. Every node (and worker)
runs one; the compare-and-set in the service lets exactly one of them clear
each status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fingerplat.adapters.periodic import every
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.expiry")

#: Seconds between two sweeps: a status is cleared within this of its time.
SWEEP_INTERVAL = 1.0


class ExpirySweeper:
    """A RunningListener with no address: a task sweeping every ``interval`` seconds."""

    name = "expiry"

    def __init__(self, service: FingerplatService, interval: float = SWEEP_INTERVAL) -> None:
        self.service = service
        self.interval = interval
        self.cleared = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def addresses(self) -> list[str]:
        return []

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="expiry-sweeper")

    async def _run(self) -> None:
        await every(self.interval, self._sweep, what="expiry sweep", log=log)

    async def _sweep(self) -> None:
        """Clear every status that is due, a batch at a time."""
        while (done := await self.service.users.expire_due()) > 0:
            self.cleared += done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def drain(self, timeout: float) -> None:
        await self.close()


def start_expiry_sweeper(service: FingerplatService,
                         interval: float = SWEEP_INTERVAL) -> ExpirySweeper:
    sweeper = ExpirySweeper(service, interval)
    sweeper.start()
    return sweeper
