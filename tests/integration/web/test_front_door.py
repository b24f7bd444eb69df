"""The web front door over real sockets: kept pages answered before aiohttp, the rest handed on.

Each test compares what a client receives from the front door with what
aiohttp itself answers to the same request. aiohttp's answer is obtained by
sending the request in two pieces: a request split across packets is never
answered by the front door (fingerplat/adapters/web/front_door.py), so it
reaches the application. ``server.door.answered`` tells which of the two
answered.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from fingerplat.adapters.web import server as server_module
from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.integration.web.conftest import RunningWeb, WebFactory


@dataclass
class Answer:
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def without_date(self) -> tuple[str, list[tuple[str, str]], bytes]:
        return self.status_line, sorted(h for h in self.headers if h[0] != "Date"), self.body


@pytest.fixture
async def running(service: FingerplatService, web_server_factory: WebFactory,
                  operator: Context) -> AsyncIterator[RunningWeb]:
    """A web server whose service keeps pages (as ``serve`` wires it), with alice and bob."""
    service.enable_read_cache()
    for name, status in (("alice", "reading <b>Kafka</b>"), ("bob", "out")):
        await service.users.add_user(operator, None, name)
        await service.users.set_status(operator, None, name, status)
    yield await web_server_factory()
    service.disable_read_cache()


async def connect(url: str, context: ssl.SSLContext | None = None,
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return await asyncio.open_connection(host, int(port), ssl=context)


async def read_answer(reader: asyncio.StreamReader, *, head: bool = False) -> Answer:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = raw.decode("latin-1").split("\r\n")[:-2]
    headers = [(key, value) for key, value in (line.split(": ", 1) for line in lines[1:])]
    answer = Answer(lines[0], headers, b"")
    if not head:
        answer.body = await asyncio.wait_for(
            reader.readexactly(int(answer.header("Content-Length") or 0)), 10)
    return answer


async def ask(url: str, request: bytes, *, split: bool = False,
              context: ssl.SSLContext | None = None) -> tuple[Answer, bool]:
    """One request on a new connection: the answer, and whether the server then closed."""
    reader, writer = await connect(url, context)
    is_head = request.startswith(b"HEAD")
    try:
        if split:  # two packets: never the front door's
            writer.write(request[:12])
            await writer.drain()
            await asyncio.sleep(0.05)
            request = request[12:]
        writer.write(request)
        await writer.drain()
        answer = await read_answer(reader, head=is_head)
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.3) == b""
        except TimeoutError:
            closed = False
        return answer, closed
    finally:
        writer.close()


REQUESTS = {
    "HTTP/1.1 keep-alive": (b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n", False),
    "HTTP/1.1 close": (b"GET /~alice HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", True),
    "HTTP/1.0": (b"GET /~alice HTTP/1.0\r\n\r\n", True),
    "HTTP/1.0 keep-alive": (b"GET /~alice HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
    "query string": (b"GET /~alice?from=irc HTTP/1.1\r\nHost: h\r\n\r\n", False),
    "absolute form": (b"GET http://h/~alice HTTP/1.1\r\nHost: h\r\n\r\n", False),
}


@pytest.mark.parametrize("kind", list(REQUESTS))
async def test_the_front_door_answers_a_kept_page_as_aiohttp_does(
    running: RunningWeb, kind: str
) -> None:
    request, closes = REQUESTS[kind]
    door = running.server.door
    by_aiohttp, aiohttp_closed = await ask(running.url, request, split=True)
    assert door.answered == 0
    assert by_aiohttp.status_line.endswith("200 OK")
    assert b"reading &lt;b&gt;Kafka&lt;/b&gt;" in by_aiohttp.body

    by_door, door_closed = await ask(running.url, request)
    assert door.answered == 1
    assert by_door.without_date() == by_aiohttp.without_date()
    door_date = email.utils.parsedate_to_datetime(by_door.header("Date") or "")
    assert abs((door_date - datetime.now(UTC)).total_seconds()) < 5
    assert (by_door.header("Date") or "").endswith(" GMT")
    assert (door_closed, aiohttp_closed) == (closes, closes)


async def test_head_gets_the_headers_of_get_and_no_body(running: RunningWeb) -> None:
    await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")  # keeps the page
    reader, writer = await connect(running.url)
    writer.write(b"HEAD /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    head = await read_answer(reader, head=True)
    assert running.server.door.answered == 1
    # The next answer on the connection starts right after the head: no body was sent.
    writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    get = await read_answer(reader)
    writer.close()
    assert running.server.door.answered == 2
    assert head.status_line == "HTTP/1.1 200 OK"
    assert head.header("Content-Length") == str(len(get.body))
    assert head.without_date()[1] == get.without_date()[1]


async def test_many_requests_on_one_connection_all_come_from_the_door(
    running: RunningWeb
) -> None:
    for name in ("alice", "bob"):  # aiohttp renders each page once and keeps it
        await ask(running.url, f"GET /~{name} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    reader, writer = await connect(running.url)
    for name, status in (("alice", b"Kafka"), ("bob", b"out")) * 10:
        writer.write(f"GET /~{name} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        answer = await read_answer(reader)
        assert answer.status_line == "HTTP/1.1 200 OK"
        assert status in answer.body
    writer.close()
    assert running.server.door.answered == 20


async def test_a_change_shows_on_the_very_next_page(
    running: RunningWeb, operator: Context
) -> None:
    request = b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n"
    door = running.server.door
    await ask(running.url, request)
    first, _ = await ask(running.url, request)
    assert door.answered == 1 and b"Kafka" in first.body

    await running.service.users.set_status(operator, None, "alice", "writing letters")
    after, _ = await ask(running.url, request)
    assert b"writing letters" in after.body
    assert door.answered == 1  # the change dropped the door's page: aiohttp rendered it
    again, _ = await ask(running.url, request)
    assert door.answered == 2 and again.body == after.body

    await running.service.users.edit_user(operator, None, "alice", hidden=True)
    hidden, _ = await ask(running.url, request)
    assert hidden.status_line == "HTTP/1.1 404 Not Found"
    assert door.answered == 2


async def test_a_page_kept_for_one_host_is_not_served_for_another(
    running: RunningWeb, operator: Context
) -> None:
    service = running.service
    await service.tenants.create_tenant(operator, "acme", name="Acme", domains=["acme.example"])
    await service.users.add_user(operator, "acme", "alice", full_name="Acme Alice")
    await service.users.set_status(operator, "acme", "alice", "at the acme office")
    for _ in range(2):
        home, _ = await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
        acme, _ = await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: acme.example\r\n\r\n")
        assert b"Kafka" in home.body and b"acme office" not in home.body
        assert b"acme office" in acme.body and b"Kafka" not in acme.body
    assert running.server.door.answered == 2


async def test_what_the_door_does_not_answer_reaches_aiohttp(running: RunningWeb) -> None:
    """Pipelining, bodies, other methods, other addresses, garbage: aiohttp's answers."""
    door = running.server.door
    await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")

    reader, writer = await connect(running.url)
    writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\nGET /~bob HTTP/1.1\r\nHost: h\r\n\r\n")
    first, second = await read_answer(reader), await read_answer(reader)
    assert b"Kafka" in first.body and b"out" in second.body and b"Kafka" not in second.body
    # Once handed over, the connection stays aiohttp's.
    writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    assert b"Kafka" in (await read_answer(reader)).body
    writer.close()

    posted, _ = await ask(running.url, b"POST /~alice HTTP/1.1\r\nHost: h\r\n"
                                       b"Content-Length: 5\r\n\r\nhello")
    assert posted.status_line == "HTTP/1.1 405 Method Not Allowed"
    with_body, _ = await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n"
                                          b"Content-Length: 2\r\n\r\nhi")
    assert with_body.status_line == "HTTP/1.1 200 OK"
    reader, writer = await connect(running.url)
    writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == (
        b"HTTP/1.1 100 Continue\r\n\r\n")
    assert b"Kafka" in (await read_answer(reader)).body
    writer.close()
    # Another spelling of the address is served, but never kept for the door.
    for _ in range(2):
        encoded, _ = await ask(running.url, b"GET /~%61lice HTTP/1.1\r\nHost: h\r\n\r\n")
        assert b"Kafka" in encoded.body
    garbage, closed = await ask(running.url, b"\x16\x03\x01\x00\xff\xfe junk\r\n\r\n")
    assert " 400 Bad Request" in garbage.status_line and closed
    oversize, _ = await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\nX-Big: "
                                         + b"x" * 9000 + b"\r\n\r\n")
    assert " 400 Bad Request" in oversize.status_line
    assert door.answered == 0
    # And the door still answers the next plain request.
    await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    assert door.answered == 1


async def test_a_client_that_does_not_read_its_answers_gets_them_all_later(
    running: RunningWeb
) -> None:
    await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    reader, writer = await connect(running.url)
    sent = 0
    try:
        for _ in range(400):
            writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
            await asyncio.wait_for(writer.drain(), 1)
            sent += 1
    except TimeoutError:  # the server stopped reading us: fine
        pass
    for _ in range(sent):
        assert b"Kafka" in (await read_answer(reader)).body
    writer.close()
    assert sent >= 1


async def test_access_log_lines_are_the_same_from_the_door(
    running: RunningWeb, caplog: pytest.LogCaptureFixture
) -> None:
    request = b"GET /~alice?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: finger-fan/1.0\r\n\r\n"
    with caplog.at_level(logging.INFO, logger="fingerplat.web"):
        await ask(running.url, request, split=True)
        await ask(running.url, request)
    assert running.server.door.answered == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "fingerplat.web"]
    assert len(lines) == 2
    without_time = [re.sub(r"\[[^]]+\]", "[time]", line) for line in lines]
    assert without_time[0] == without_time[1]
    assert '"GET /~alice?x=1 HTTP/1.1" 200' in lines[1] and '"finger-fan/1.0"' in lines[1]


async def test_door_answers_are_counted_in_the_metrics(running: RunningWeb) -> None:
    for _ in range(3):
        await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    assert running.server.door.answered == 2
    text = running.metrics.render().decode()
    assert 'fingerplat_requests_total{adapter="web"} 3.0' in text
    assert 'fingerplat_request_seconds_count{adapter="web"} 3.0' in text
    # Connections waiting at the front door are open connections too.
    reader, writer = await connect(running.url)
    writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    await read_answer(reader)
    assert 'fingerplat_open_connections{adapter="web"} 1.0' in running.metrics.render().decode()
    writer.close()


async def test_idle_connections_at_the_door_are_closed(
    service: FingerplatService, web_server_factory: WebFactory, operator: Context,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT", 0.5)
    service.enable_read_cache()
    try:
        running = await web_server_factory()
        silent_reader, silent = await connect(running.url)
        assert await asyncio.wait_for(silent_reader.read(), 5) == b""
        silent.close()
        await service.users.add_user(operator, None, "alice")
        await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
        reader, writer = await connect(running.url)
        writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
        await read_answer(reader)
        assert running.server.door.answered == 1
        assert await asyncio.wait_for(reader.read(), 5) == b""  # idle after its answer
        writer.close()
    finally:
        service.disable_read_cache()


async def test_drain_closes_connections_waiting_at_the_door(running: RunningWeb) -> None:
    await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    reader, writer = await connect(running.url)
    writer.write(b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    await read_answer(reader)
    await asyncio.wait_for(running.server.drain(5), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_the_door_answers_over_https(
    service: FingerplatService, web_server_factory: WebFactory, operator: Context,
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    service.enable_read_cache()
    try:
        await service.users.add_user(operator, None, "alice")
        await service.users.set_status(operator, None, "alice", "secure")
        running = await web_server_factory(tls_cert=str(cert_file), tls_key=str(key_file))
        request = b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n"
        by_aiohttp, _ = await ask(running.url, request, split=True, context=context)
        by_door, _ = await ask(running.url, request, context=context)
        assert running.server.door.answered == 1
        assert by_door.without_date() == by_aiohttp.without_date()
        assert by_door.header("Strict-Transport-Security") == "max-age=31536000"
    finally:
        service.disable_read_cache()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_the_door_and_its_handover_under_uvloop(
    database_url: str, tmp_path: Path, tls: bool
) -> None:
    """`serve` runs on uvloop when installed: its transports change protocols their own way."""
    import uvloop

    from fingerplat.adapters.web.server import start_web_server
    from fingerplat.config import WebConfig
    from fingerplat.domain.model import Channel, Principal
    from fingerplat.metrics import Metrics
    from fingerplat.repository.engine import create_engine

    settings: dict[str, object] = {"listen": ["127.0.0.1:0"]}
    context = None
    if tls:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        settings |= {"tls_cert": str(tmp_path / "cert.pem"), "tls_key": str(tmp_path / "key.pem")}
        context = ssl.create_default_context()
        ca.configure_trust(context)

    async def main() -> tuple[list[Answer], int]:
        engine = create_engine(database_url)
        service = FingerplatService(engine)
        service.enable_read_cache()
        operator = Context(Principal.operator("test"), Channel.CLI)
        await service.users.add_user(operator, None, "alice")
        await service.users.set_status(operator, None, "alice", "on uvloop")
        server = await start_web_server(service, WebConfig.model_validate(settings),
                                        metrics=Metrics())
        request = b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n"
        try:
            answers = [
                (await ask(server.url, request, split=True, context=context))[0],
                (await ask(server.url, request, context=context))[0],
                (await ask(server.url, b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
                           context=context))[0],
            ]
            return answers, server.door.answered
        finally:
            await server.drain(1)
            service.disable_read_cache()
            await engine.dispose()

    (by_aiohttp, by_door, health), answered = uvloop.run(main())
    assert answered == 1
    assert b"on uvloop" in by_door.body
    assert by_door.without_date() == by_aiohttp.without_date()
    assert health.status_line == "HTTP/1.1 200 OK" and b'"database": "ok"' in health.body


@pytest.mark.parametrize("split", [False, True], ids=["at the door", "handed over"])
async def test_a_target_that_breaks_the_url_parser_gets_a_400(
    running: RunningWeb, caplog: pytest.LogCaptureFixture, split: bool
) -> None:
    """yarl fails with an IndexError on some targets (its issue 1822); never a traceback."""
    await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    bad = b"GET http://[::1]@/~alice HTTP/1.1\r\nHost: h\r\n\r\n"
    with caplog.at_level(logging.INFO, logger="fingerplat.web"):
        if split:  # aiohttp's connection already: a good request first, then the bad one
            reader, writer = await connect(running.url)
            writer.write(b"GET /~alice HTTP/1.1\r\n")
            await asyncio.sleep(0.05)
            writer.write(b"Host: h\r\n\r\n")
            assert b"Kafka" in (await read_answer(reader)).body
            writer.write(bad)
            answer = await read_answer(reader)
            closed = await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        else:
            answer, closed = await ask(running.url, bad)
    assert answer.status_line == "HTTP/1.1 400 Bad Request" and closed
    assert answer.body == b"400 Bad Request: the request cannot be read\n"
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cannot read a request" in r.getMessage() for r in caplog.records)
    good, _ = await ask(running.url, b"GET /~alice HTTP/1.1\r\nHost: h\r\n\r\n")
    assert b"Kafka" in good.body


async def test_with_front_door_off_aiohttp_answers_everything_the_same(
    service: FingerplatService, web_server_factory: WebFactory, operator: Context
) -> None:
    """``[web] front_door = false``: the same answers, none of them from the front door."""
    service.enable_read_cache()
    try:
        await service.users.add_user(operator, None, "alice")
        await service.users.set_status(operator, None, "alice", "reading <b>Kafka</b>")
        answers = {}
        for front_door in (True, False):
            running = await web_server_factory(front_door=front_door)
            door = running.server.door
            for _ in range(3):  # the first renders and keeps the page; the rest may reuse it
                for kind in ("HTTP/1.1 keep-alive", "HTTP/1.1 close", "HTTP/1.0"):
                    request, _closes = REQUESTS[kind]
                    answer, closed = await ask(running.url, request)
                    status, headers, body = answer.without_date()
                    answers.setdefault(kind, {}).setdefault(front_door, set()).add(
                        (status, tuple(headers), body, closed))
            assert (door.answered > 0) is front_door  # the fast path, and only when on
            await running.server.drain(1)
        for by_switch in answers.values():
            assert by_switch[True] == by_switch[False] and len(by_switch[True]) == 1
    finally:
        service.disable_read_cache()
