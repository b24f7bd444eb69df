"""serve's periodic sweeper also deletes expired web sessions, every few rounds."""

from __future__ import annotations

import asyncio

from fingerplat.domain.errors import Unavailable
from fingerplat.server.auth_sweeper import AuthSweeper


class FakeService:
    """Just what the sweeper calls (as the service's throttle and web sessions);
    the second purge finds the database away."""

    def __init__(self) -> None:
        self.flushes = 0
        self.purges = 0
        self.throttle = self.web_sessions = self

    async def flush_auth_failures(self) -> int:
        self.flushes += 1
        return 0

    async def purge_web_sessions(self) -> int:
        self.purges += 1
        if self.purges == 2:
            raise Unavailable("database unreachable")
        return 3


async def test_expired_sessions_are_purged_every_few_rounds() -> None:
    service = FakeService()
    sweeper = AuthSweeper(service, interval=0.001, purge_every=3)  # type: ignore[arg-type]
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while service.purges < 3 and loop.time() < deadline:
            await asyncio.sleep(0.005)
    finally:
        await sweeper.drain(1)
    assert service.purges >= 3  # a failed purge did not stop the sweeper
    # Exactly one purge every third round.
    assert 3 * service.purges <= service.flushes <= 3 * service.purges + 2
