"""The background task that writes the authentication throttle's summary rows.

Past the first few failures of a window, an address's failures are only
counted; every ``SWEEP_INTERVAL`` seconds this writes the ``auth.failures``
rows that are due (at most one a minute per address, the last one shortly
after the client stops) and forgets ended windows
(fingerplat/service/throttle.py). Every node may run it: the rows are locked
while summarised, so no failure is reported twice. Every ``PURGE_EVERY``
rounds it also deletes expired web sessions (one bounded DELETE, harmless
when two nodes do it at once), so they go even while nobody logs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fingerplat.adapters.periodic import every
from fingerplat.domain.errors import FingerplatError
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.server")

SWEEP_INTERVAL = 10.0
PURGE_EVERY = 60  # rounds: expired web sessions are deleted every ten minutes


class AuthSweeper:
    """A ``RunningListener`` without sockets: one periodic task."""

    name = "auth-sweeper"

    def __init__(self, service: FingerplatService, interval: float = SWEEP_INTERVAL,
                 purge_every: int = PURGE_EVERY) -> None:
        self.service = service
        self.interval = interval
        self.purge_every = purge_every
        self._rounds = 0
        self._task = asyncio.create_task(self._run(), name="auth-sweeper")

    @property
    def addresses(self) -> list[str]:
        return []

    async def _run(self) -> None:
        await every(self.interval, self._round, what="auth throttle sweep", log=log,
                    first_wait=True)

    async def _round(self) -> None:
        """Write the summary rows owed; every ``purge_every`` rounds, purge old sessions."""
        written = await self.service.throttle.flush_auth_failures()  # the database away: next round
        if written:
            log.info("auth throttle: %d auth.failures summary rows written", written)
        self._rounds += 1
        if self._rounds % self.purge_every == 0:
            await self._purge_sessions()

    async def _purge_sessions(self) -> None:
        try:
            purged = await self.service.web_sessions.purge_web_sessions()
        except FingerplatError as error:
            log.warning("web session purge skipped: %s", error)
            return
        except Exception:
            log.exception("web session purge failed")
            return
        if purged:
            log.info("web sessions: %d expired sessions deleted", purged)

    async def close(self) -> None:
        self._task.cancel()

    async def drain(self, timeout: float) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def start_auth_sweeper(service: FingerplatService) -> AuthSweeper:
    return AuthSweeper(service)
