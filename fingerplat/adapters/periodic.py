"""The one polling loop: run a step every ``interval`` seconds until stopped.

The ``[[source]]`` runner (users files, passwd, web statuses) and ``serve``'s
sweepers (status expiry, the auth throttle's summary rows) all poll; each had
its own loop with its own idea of failure. Here a failing step (the database
is away, a file is missing) is logged once when it starts failing and once
when it works again, never every interval, and never ends the loop; an
unexpected exception is logged with its traceback, also once.

The wait between steps ends early when ``stop`` is set, and a step that is
running when it is set finishes (``serve`` drains, then cancels).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from fingerplat.domain.errors import FingerplatError


async def every(interval: float, step: Callable[[], Awaitable[object]], *,
                what: str, log: logging.Logger, stop: asyncio.Event | None = None,
                first_wait: bool = False) -> None:
    """Run ``step()`` every ``interval`` seconds until ``stop`` is set (or cancelled).

    ``what`` names the step in log lines; with ``first_wait`` the first run
    comes an interval after the start instead of at once.
    """
    stop = stop or asyncio.Event()
    failing = False
    if first_wait:
        await _pause(stop, interval)
    while not stop.is_set():
        try:
            await step()
        except FingerplatError as error:
            if not failing:
                log.warning("%s failed (retrying every %gs): %s", what, interval, error)
            failing = True
        except Exception:
            if not failing:
                log.exception("%s failed unexpectedly", what)
            failing = True
        else:
            if failing:
                log.info("%s works again", what)
            failing = False
        await _pause(stop, interval)


async def _pause(stop: asyncio.Event, interval: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=interval)
