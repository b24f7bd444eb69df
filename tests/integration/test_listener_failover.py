"""The LISTEN connection finds a primary by itself, however long none is there.

asyncpg raises ``TargetServerAttributeNotMatched`` (not an OSError or a
PostgresError) when every listed host answers but none accepts writes: the
moment between a primary's end and its standby's promotion. The listener must
treat it as one more failed attempt, not die with it.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from fingerplat.repository.notify import Listener
from tests.support.replicated_postgres import ReplicatedPostgres


async def test_listener_waits_for_a_standby_to_be_promoted_then_subscribes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg = ReplicatedPostgres()
    listener: Listener | None = None
    try:
        await asyncio.to_thread(pg.start)
        await asyncio.to_thread(pg.stop_primary)
        received: list[str] = []
        subscribed: list[bool] = []

        async def on_payload(payload: str) -> None:
            received.append(payload)

        async def on_subscribed(resumed: bool) -> None:
            subscribed.append(resumed)

        caplog.set_level(logging.WARNING, logger="fingerplat.repository.notify")
        # A host that answers but is not a primary (yet): what every host looks like
        # when the old primary came back as a standby, or before any promotion.
        dsn = (f"postgresql://postgres@127.0.0.1:{pg.standby_port}/postgres"
               "?target_session_attrs=read-write")
        listener = Listener(dsn, "failover_test", on_payload, on_subscribed, max_backoff=0.5)
        listener.start()
        for _ in range(200):  # it keeps trying (polled, bounded)
            if sum("cannot connect" in r.getMessage() for r in caplog.records) >= 2:
                break
            await asyncio.sleep(0.05)
        assert sum("cannot connect" in r.getMessage() for r in caplog.records) >= 2
        assert not listener.subscribed

        await asyncio.to_thread(pg.promote_standby)
        await listener.wait_subscribed(20)
        assert subscribed == [False]
        conn = await asyncpg.connect(host="127.0.0.1", port=pg.standby_port,
                                     user="postgres", database="postgres")
        try:
            await conn.execute("SELECT pg_notify('failover_test', 'on the new primary')")
        finally:
            await conn.close()
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.05)
        assert received == ["on the new primary"]
    finally:
        if listener is not None:
            await listener.stop()
        await asyncio.to_thread(pg.destroy)
