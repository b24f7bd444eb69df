"""The background task that writes the authentication throttle's summary rows.

Past the first few failures of a window, an address's failures are only
counted; every ``SWEEP_INTERVAL`` seconds this writes the ``auth.failures``
rows that are due (at most one a minute per address, the last one shortly
after the client stops) and forgets ended windows
(fingerplat/service/throttle.py). Every node may run it: the rows are locked
while summarised, so no failure is reported twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fingerplat.domain.errors import FingerplatError
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.server")

SWEEP_INTERVAL = 10.0


class AuthSweeper:
    """A ``RunningListener`` without sockets: one periodic task."""

    name = "auth-sweeper"

    def __init__(self, service: FingerplatService, interval: float = SWEEP_INTERVAL) -> None:
        self.service = service
        self.interval = interval
        self._task = asyncio.create_task(self._run(), name="auth-sweeper")

    @property
    def addresses(self) -> list[str]:
        return []

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                written = await self.service.flush_auth_failures()
            except FingerplatError as error:  # the database is away: next round
                log.warning("auth throttle sweep skipped: %s", error)
                continue
            except Exception:
                log.exception("auth throttle sweep failed")
                continue
            if written:
                log.info("auth throttle: %d auth.failures summary rows written", written)

    async def close(self) -> None:
        self._task.cancel()

    async def drain(self, timeout: float) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def start_auth_sweeper(service: FingerplatService) -> AuthSweeper:
    return AuthSweeper(service)
