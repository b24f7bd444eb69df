"""Another process's service: its own engine and event bus, wired like the CLI's.

For tests of what a running node sees when someone else (``fingerplat user
set`` in a shell, another node) changes the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from fingerplat.service.event_bridge import send_to_nodes


@pytest.fixture
async def other_process(database_url: str) -> AsyncIterator[FingerplatService]:
    """A service on its own engine and event bus, wired like the CLI's."""
    engine = create_engine(database_url)
    service = FingerplatService(engine)
    send_to_nodes(engine, service.events)
    try:
        yield service
    finally:
        await engine.dispose()
