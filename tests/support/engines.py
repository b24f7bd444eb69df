"""Disposing of an engine in a test without leaving aiosqlite threads behind."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy.ext.asyncio import AsyncEngine


async def dispose(engine: AsyncEngine) -> None:
    """Dispose, then let aiosqlite's worker threads finish while the loop still runs.

    After a failed connect aiosqlite queues its thread's stop with a future on
    the running loop; if the test's loop closed first, that thread would fail
    later ("Event loop is closed") and the warning would land on some other test.
    """
    await engine.dispose()
    for _ in range(100):
        if not any("_connection_worker_thread" in t.name for t in threading.enumerate()):
            return
        await asyncio.sleep(0.05)
