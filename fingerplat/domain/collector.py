"""Pausing Python's cyclic garbage collector around bulk work.

An import of 100,000 lines allocates millions of small objects, most of them
kept until the import ends (one record per line, rows per batch). Each 700
allocations trigger a young collection that walks the survivors, and as the
heap grows the collector also walks every live object again and again: about
0.5 s of a 100,000-line import's 2-3 s of client CPU went there (measured:
bench/README.md, issue 18). The work creates no reference cycles of its own,
so nothing is left for the collector to find meanwhile.

:func:`paused` turns the collector off for the duration and back on at the
end, if it was on when the first of possibly several overlapping pauses began
(two imports at once, or one in a worker thread while the event loop runs
another). Other code running meanwhile keeps working; only its cycles wait
for the next collection, which comes with the next allocations after the end.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No cyclic collections inside the block (nested and concurrent blocks allowed)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def paused_during(function: _F) -> _F:
    """Decorate a coroutine function: the collector is :func:`paused` while it runs."""

    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with paused():
            return await function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
