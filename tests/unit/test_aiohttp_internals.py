"""aiohttp's private request parser, as the web front door uses it, still works.

``fingerplat/adapters/web/front_door.py`` parses requests with
``aiohttp.http_parser.HttpRequestParser`` and compares bodies with
``aiohttp.http_parser.EMPTY_PAYLOAD``: not aiohttp's documented API, so
pyproject.toml pins aiohttp to the minor range this was tested with. When an
aiohttp upgrade moves or changes them, these tests fail first, saying which
import broke, instead of every web test failing at once with a traceback
from deep inside the front door.
"""

from __future__ import annotations

import asyncio
import importlib
from importlib.metadata import version
from typing import Any

import pytest

PRIVATE_IMPORT = "from aiohttp.http_parser import EMPTY_PAYLOAD, HttpRequestParser"
PIN = "aiohttp>=3.14,<3.15 in pyproject.toml"


def private_parser() -> tuple[Any, Any]:
    """(HttpRequestParser, EMPTY_PAYLOAD), or a failure naming the import and the pin."""
    try:
        module = importlib.import_module("aiohttp.http_parser")
        return module.HttpRequestParser, module.EMPTY_PAYLOAD
    except (ImportError, AttributeError) as exc:
        pytest.fail(
            f"the web front door's private aiohttp import `{PRIVATE_IMPORT}` broke with "
            f"aiohttp {version('aiohttp')} ({exc}); it was tested with {PIN}: adapt "
            "fingerplat/adapters/web/front_door.py before widening the pin"
        )


def parse(data: bytes) -> list[tuple[Any, Any]]:
    """``data`` through the parser built exactly as the front door builds it."""
    from fingerplat.adapters.web import front_door

    parser_class, _ = private_parser()
    loop = asyncio.new_event_loop()
    try:
        parser = parser_class(
            front_door._UNREAD_PAYLOAD, loop, front_door.READ_BUFSIZE,
            max_line_size=front_door.MAX_LINE_SIZE, max_field_size=front_door.MAX_FIELD_SIZE,
            max_headers=front_door.MAX_HEADERS,
        )
        messages, upgraded, _tail = parser.feed_data(data)
        assert not upgraded
        return list(messages)
    finally:
        loop.close()


def test_the_private_parser_import_exists() -> None:
    parser_class, empty = private_parser()
    assert callable(parser_class) and empty is not None


def test_a_kept_page_request_parses_into_the_fields_the_front_door_reads() -> None:
    _, empty = private_parser()
    [(message, payload)] = parse(
        b"GET /~alice HTTP/1.1\r\nHost: acme.example\r\nConnection: close\r\n\r\n")
    assert payload is empty, f"a body-less GET no longer parses to EMPTY_PAYLOAD ({PIN})"
    assert message.method == "GET"
    assert message.url.raw_path == "/~alice"
    assert message.headers.get("Host") == "acme.example"
    assert message.should_close is True
    assert not message.upgrade
    assert tuple(message.version) == (1, 1)


def test_a_request_with_a_body_is_told_apart_by_its_payload() -> None:
    _, empty = private_parser()
    [(message, payload)] = parse(
        b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
    assert message.method == "POST"
    assert payload is not empty
    assert message.should_close is False


def test_a_malformed_request_raises_aiohttp_public_error() -> None:
    from aiohttp.http import HttpProcessingError

    with pytest.raises(HttpProcessingError):
        parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
