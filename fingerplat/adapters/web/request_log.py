"""The logger aiohttp's request handler writes to: client mistakes as one WARNING line.

aiohttp answers a request it cannot parse (a header over 8190 bytes, a
broken request line, too many headers) with a 400 and then logs it through
``logger.exception``: an ERROR with a traceback for every oversized header a
client cares to send, indistinguishable from a real fault in the logs. A
client's bad request is not our error (SPEC section 11), so this logger turns
exactly those into one WARNING line naming the client and the reason, and
passes every other exception (a handler that really failed) on unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from fingerplat.domain.text import printable

REASON_CHARS = 160


class RequestErrorLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Passed as ``logger`` to aiohttp's request handler (``AppRunner(logger=...)``)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(error, HttpProcessingError) and 400 <= (error.code or 400) < 500:
            remote = args[0] if args else "?"
            self.logger.warning("web: refused an unreadable request from %s (%s): %s",
                                remote, error.code or 400, reason(error))
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def reason(error: HttpProcessingError) -> str:
    """What was wrong, in one short line without the client's bytes echoed at length."""
    if isinstance(error, LineTooLong):
        what = "request line or header too long"
    else:
        what = type(error).__name__
    first = (error.message or "").strip().splitlines()[0:1]
    detail = printable(first[0])[:REASON_CHARS] if first else ""
    return f"{what}: {detail}" if detail else what
