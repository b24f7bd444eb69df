"""Fixtures for the IRC tests: a real ngircd per test, test peers, and a bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fingerplat.adapters.irc import IrcTiming
from tests.integration.irc.ircd import IrcPeer, Ngircd, ensure_env

# Short timings so reconnects and nick regains happen within a test.
FAST = IrcTiming(backoff_initial=0.1, backoff_max=0.5, stable_after=0.5, connect_timeout=5,
                 rate=20, burst=10, regain_interval=1.0, leadership_interval=0.5,
                 rejoin_delay=0.2, quit_timeout=1)


@pytest.fixture
def ngircd(tmp_path: Path) -> Iterator[Ngircd]:
    ensure_env()
    workdir = tmp_path / "ngircd"
    workdir.mkdir()
    workdir.chmod(0o755)
    server = Ngircd(workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def peers() -> AsyncIterator[list[IrcPeer]]:
    """Test peers created by a test are closed at its end."""
    made: list[IrcPeer] = []
    yield made
    for peer in made:
        await peer.close()
