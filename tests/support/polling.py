"""Waiting for a condition with a deadline: the one way tests synchronise.

A fixed ``sleep`` before an assertion is either too short on a loaded machine
(a flaky failure) or too long everywhere else (a slow suite); polling returns
as soon as the condition holds and fails with a message naming what never
happened.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

Condition = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def until(condition: Condition, what: str, timeout: float = 10.0,
                interval: float = 0.02) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        await asyncio.sleep(interval)
