"""Reading request bodies safely: size limit first, then parsing.

The limit (``[web] max_body_bytes``) is enforced before any parsing, from the
Content-Length header when there is one and while reading otherwise, so a huge
or endless body costs the server nothing but a 413.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from fingerplat.adapters.web.keys import SETTINGS
from fingerplat.domain.errors import FingerplatError, InvalidInput


class MalformedRequest(FingerplatError):
    """The request could not be parsed at all (broken JSON, broken XML): HTTP 400."""

    code = "malformed"


class PayloadTooLarge(FingerplatError):
    """The body is over the configured limit: HTTP 413."""

    code = "too_large"


class BodyTimeout(FingerplatError):
    """The client took too long to send its body: HTTP 408."""

    code = "timeout"


# A client has this long to deliver its (small) body; a slow drip holds no handler longer.
BODY_TIMEOUT = 30.0


async def read_body(request: web.Request) -> bytes:
    """The body, or PayloadTooLarge / BodyTimeout before wasting memory or a handler on it."""
    limit = request.config_dict[SETTINGS].max_body_bytes
    too_large = PayloadTooLarge(f"request body too large: at most {limit} bytes are accepted")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except TimeoutError:
        raise BodyTimeout(f"request body not received within {BODY_TIMEOUT:g} seconds") from None


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; broken JSON is 400, another JSON type is 422."""
    body = await read_body(request)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def string_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        raise InvalidInput(f"missing field {name!r}: expected {{\"{name}\": \"...\"}}")
    if not isinstance(value, str):
        raise InvalidInput(f"field {name!r} must be a string")
    return value
