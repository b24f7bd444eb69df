"""The finger listener over real sockets, on SQLite and PostgreSQL (SPEC section 2)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from fingerplat.adapters.finger.server import FingerServer, start_finger_server
from fingerplat.config import FingerConfig
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import Context
from fingerplat.metrics import Metrics
from fingerplat.repository import schema
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.support.engines import dispose
from tests.support.polling import until
from tests.support.scrape import sample

TIMEOUT = 5.0
# Generous limits so that only the tests about limits ever meet one.
FAST = {"rate_limit": 100_000, "max_connections": 1000, "idle_timeout": 5}

StartFn = Callable[..., Awaitable[FingerServer]]


def open_finger(metrics: Metrics) -> float:
    """Open finger connections as a scrape of /metrics shows them."""
    return sample(metrics, "fingerplat_open_connections", adapter="finger")


def refused_finger(metrics: Metrics, reason: str) -> float:
    return sample(metrics, "fingerplat_refused_connections_total", adapter="finger",
                  reason=reason)


def split(address: str) -> tuple[str, int]:
    host, port = address.split(" ")[0].rsplit(":", 1)
    return host, int(port)


async def finger(server: FingerServer, query: bytes, *, eof: bool = False) -> bytes:
    """Send one query like a finger client; return everything until the server closes."""
    host, port = split(server.addresses[0])
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    try:
        writer.write(query)
        if eof:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


@pytest.fixture(params=["no read cache", "read cache"])
async def start(service: FingerplatService, request: pytest.FixtureRequest
                ) -> AsyncIterator[StartFn]:
    """Start finger listeners on 127.0.0.1 port 0; all are closed after the test.

    Every test runs without and with the read cache that ``serve`` enables:
    with it, a repeated query is answered on accept, without a protocol object
    (fingerplat/adapters/finger/server.py), and must read the same.
    """
    started: list[FingerServer] = []
    cached: list[FingerplatService] = []

    async def _start(*, tenant: str | None = None, forward=None, metrics: Metrics | None = None,
                     svc: FingerplatService | None = None, **settings: object) -> FingerServer:
        if request.param == "read cache" and (svc or service).read_cache is None:
            (svc or service).enable_read_cache()
            cached.append(svc or service)
        config = FingerConfig(**{**FAST, **settings})
        server = await start_finger_server(
            svc or service, "127.0.0.1", 0, tenant=tenant, settings=config,
            metrics=metrics or Metrics(), forward=forward,
        )
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.close()
        await server.drain(1)
    for svc in cached:
        svc.disable_read_cache()


@pytest.fixture
async def alice(service: FingerplatService, operator: Context) -> None:
    await service.users.add_user(
        operator, None, "alice", full_name="Alice Liddell", office="Room 4",
                           phone="+44 1865", project="Tea party")
    await service.users.set_status(operator, None, "alice", "asleep")
    await service.users.set_status(operator, None, "alice", "down the rabbit hole")
    await service.users.set_plan(operator, None, "alice", "Find the\nwhite rabbit.")


async def test_short_and_verbose_entries(start: StartFn, alice: None) -> None:
    server = await start()
    short = await finger(server, b"alice\r\n")
    lines = short.decode().split("\r\n")
    assert lines[0] == "Login: alice                            Name: Alice Liddell"
    assert lines[1].startswith("Status: down the rabbit hole (since ")
    assert lines[2:] == ["Plan:", "Find the", "white rabbit.", ""]
    assert "Room 4" not in short.decode()

    verbose = (await finger(server, b"/W alice\r\n")).decode()
    assert "Office: Room 4" in verbose and "Phone: +44 1865" in verbose
    assert "Project: Tea party" in verbose
    assert "Recent statuses:" in verbose and "UTC  asleep\r\n" in verbose
    # /W in any case, space optional, bare LF accepted, user name case-insensitive.
    assert await finger(server, b"/wALICE\n") == verbose.encode()


async def test_every_line_ends_in_crlf(start: StartFn, alice: None) -> None:
    server = await start()
    for query in (b"alice\r\n", b"/W alice\r\n", b"\r\n", b"nobody\r\n", b"x y\r\n"):
        data = await finger(server, query)
        assert data.endswith(b"\r\n")
        assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


async def test_user_list_hides_hidden_users_and_is_capped(
    start: StartFn, service: FingerplatService, operator: Context, alice: None
) -> None:
    for name in ("bob", "carol", "dave"):
        await service.users.add_user(operator, None, name)
    await service.users.add_user(operator, None, "mallory", hidden=True)
    server = await start()
    listing = (await finger(server, b"\r\n")).decode()
    assert listing.splitlines()[0].split() == ["Login", "Name", "Since", "Status"]
    for name in ("alice", "bob", "carol", "dave"):
        assert f"\r\n{name} " in listing or f"\r\n{name}\r\n" in listing
    assert "down the rabbit hole" in listing
    assert "mallory" not in listing

    capped = (await finger(await start(max_listed_users=2), b"\r\n")).decode()
    assert "alice" in capped and "bob" in capped and "carol" not in capped
    assert capped.endswith("...and 2 more users not listed\r\n")


async def test_list_users_off_is_a_one_line_refusal(
    start: StartFn, service: FingerplatService, operator: Context, alice: None
) -> None:
    await service.tenants.update_tenant(operator, None, list_users=False)
    data = await finger(await start(), b"\r\n")
    assert data.count(b"\r\n") == 1
    assert b"does not publish its user list" in data
    assert b"alice" not in data
    assert b"Login: alice" in await finger(await start(), b"alice\r\n")


async def test_hidden_and_unknown_users_get_the_same_bytes(
    start: StartFn, service: FingerplatService, operator: Context
) -> None:
    await service.users.add_user(operator, None, "ghost", full_name="G. Host", hidden=True)
    await service.users.set_status(operator, None, "ghost", "haunting")
    server = await start()
    hidden = await finger(server, b"ghost\r\n")
    assert b"No such user" in hidden
    await service.users.remove_user(operator, None, "ghost")
    unknown = await finger(server, b"ghost\r\n")
    assert hidden == unknown
    assert await finger(server, b"/W ghost\r\n") == unknown


async def test_routing_by_domain_and_slug(
    start: StartFn, service: FingerplatService, operator: Context, alice: None
) -> None:
    await service.tenants.create_tenant(operator, "acme", name="Acme Inc", domains=["acme.example"])
    await service.users.add_user(operator, "acme", "wile", full_name="Wile E.")
    await service.users.set_status(operator, "acme", "wile", "ordering rockets")
    server = await start()
    by_domain = await finger(server, b"wile@acme.example\r\n")
    assert b"Name: Wile E." in by_domain and b"ordering rockets" in by_domain
    assert await finger(server, b"wile@ACME\r\n") == by_domain
    assert b"No such user: wile" in await finger(server, b"wile\r\n")
    assert b"No such user: alice" in await finger(server, b"alice@acme\r\n")
    assert b"wile" in await finger(server, b"@acme.example\r\n")
    # Local hops are resolved from the right: acme answers, then 'default' is local too.
    assert b"Login: alice" in await finger(server, b"alice@default@acme\r\n")


async def test_tenant_bound_listener(
    start: StartFn, service: FingerplatService, operator: Context, alice: None
) -> None:
    await service.tenants.create_tenant(operator, "acme", name="Acme Inc")
    await service.users.add_user(operator, "acme", "wile")
    server = await start(tenant="ACME")
    assert server.name == "finger"
    assert server.addresses[0].startswith("127.0.0.1:")
    assert server.addresses[0].endswith(" (tenant acme)")
    assert b"Login: wile" in await finger(server, b"wile\r\n")
    assert b"No such user: alice" in await finger(server, b"alice\r\n")
    listing = await finger(server, b"\r\n")
    assert b"wile" in listing and b"alice" not in listing


async def test_unknown_bound_tenant_fails_the_start(start: StartFn) -> None:
    from fingerplat.domain.errors import NotFound

    with pytest.raises(NotFound, match="no such tenant"):
        await start(tenant="nope")


async def test_forwarding_denied_unless_the_tenant_enables_it(
    start: StartFn, service: FingerplatService, operator: Context
) -> None:
    calls: list[tuple[str, list[str], bool]] = []

    async def forward(user: str, hosts: list[str], verbose: bool) -> list[str]:
        calls.append((user, hosts, verbose))
        return [f"[{hosts[-1]}]", "Login: bob\x1b[2J", "remote says hi"]

    no_forwarder = await start()
    with_forwarder = await start(forward=forward)
    denied = await finger(no_forwarder, b"bob@example.org\r\n")
    assert denied == b"finger: forwarding denied: this server does not forward finger queries\r\n"
    assert await finger(with_forwarder, b"bob@example.org\r\n") == denied
    assert calls == []

    await service.tenants.update_tenant(operator, None, forwarding=True)
    assert await finger(no_forwarder, b"bob@example.org\r\n") == denied
    answer = await finger(with_forwarder, b"/W bob@h1.example@h2.example\r\n")
    assert calls == [("bob", ["h1.example", "h2.example"], True)]
    assert answer == b"[h2.example]\r\nLogin: bob^[[2J\r\nremote says hi\r\n"


async def test_oversize_query_gets_an_error_line_and_close(start: StartFn) -> None:
    server = await start()
    data = await finger(server, b"a" * 600)  # no line end needed to be refused
    assert data == b"finger: query too long: at most 512 bytes\r\n"
    data = await finger(server, b"a" * 513 + b"\r\n")
    assert data == b"finger: query too long: at most 512 bytes\r\n"
    # 512 bytes exactly is a query (here an invalid user name, answered as such).
    assert b"invalid username" in await finger(server, b"a" * 512 + b"\r\n")


async def test_a_client_streaming_a_huge_query_still_reads_the_refusal(start: StartFn) -> None:
    server = await start()
    host, port = split(server.addresses[0])
    for _ in range(5):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"x" * 300_000)  # far more than the server reads before refusing
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert answer == b"finger: query too long: at most 512 bytes\r\n"
        writer.close()


async def test_garbage_query_names_the_problem(start: StartFn) -> None:
    server = await start()
    assert b"not valid UTF-8" in await finger(server, b"\xff\xfe\r\n")
    assert b"control characters" in await finger(server, b"al\x1bice\r\n")
    assert b"one user name" in await finger(server, b"alice bob\r\n")


async def test_idle_client_is_dropped(start: StartFn) -> None:
    metrics = Metrics()
    server = await start(idle_timeout=0.3, metrics=metrics)
    host, port = split(server.addresses[0])
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"ali")  # never completes the line
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
    assert refused_finger(metrics, "idle_timeout") == 1


async def test_half_closed_client_gets_its_answer(start: StartFn, alice: None) -> None:
    server = await start()
    assert b"Login: alice" in await finger(server, b"alice", eof=True)
    assert b"Login: alice" in await finger(server, b"alice\r\n", eof=True)


async def test_max_connections_refuses_with_one_line(start: StartFn, alice: None) -> None:
    metrics = Metrics()
    server = await start(max_connections=2, metrics=metrics)
    host, port = split(server.addresses[0])
    held = [await asyncio.open_connection(host, port) for _ in range(2)]
    await until(lambda: open_finger(metrics) == 2, "both held connections are counted open")
    refused = await finger(server, b"alice\r\n")
    assert refused == b"finger: too many connections, please try again later\r\n"
    for _, writer in held:
        writer.close()
    await until(lambda: open_finger(metrics) == 0, "the held connections are counted closed")
    assert b"Login: alice" in await finger(server, b"alice\r\n")
    assert refused_finger(metrics, "max_connections") == 1


async def test_rate_limit_per_address(start: StartFn, alice: None) -> None:
    server = await start(rate_limit=1)  # burst of 2
    answers = [await finger(server, b"alice\r\n") for _ in range(3)]
    assert b"Login: alice" in answers[0] and b"Login: alice" in answers[1]
    assert answers[2] == b"finger: too many queries from your address, please slow down\r\n"


async def test_escape_sequences_in_stored_text_are_neutralised(
    start: StartFn, service: FingerplatService, operator: Context
) -> None:
    user = await service.users.add_user(operator, None, "eve")
    evil = "\x1b[31mred\x1b[0m\x1b]0;title\x07 \x9b1m\tok"
    # The first wall: the rules refuse control characters in new text ...
    with pytest.raises(InvalidInput):
        await service.users.set_plan(operator, None, "eve", evil)
    # ... but rows from older releases or other writers may hold them (written here
    # straight into the tables, as such a writer would).
    async with service.engine.begin() as conn:
        await conn.execute(update(schema.users).where(schema.users.c.id == user.id).values(
            full_name="Eve\x1b[2J", status="hi\rthere\x1b[1m", status_set_at=datetime.now(UTC)))
        await conn.execute(insert(schema.plans).values(
            user_id=user.id, text=evil, updated_at=datetime.now(UTC)))
    server = await start()
    for query in (b"eve\r\n", b"/W eve\r\n", b"\r\n"):
        data = await finger(server, query)
        # The second wall: the text reaches the client inert.
        assert b"\x1b" not in data and b"\x07" not in data
        assert "\x9b" not in data.decode()
        assert data.count(b"\r") == data.count(b"\r\n")
        assert b"Eve^[[2J" in data
        assert b"hi^Mthere^[[1m" in data
    assert b"^[[31mred^[[0m^[]0;title^G \\u009b1m\tok\r\n" in await finger(server, b"eve\r\n")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_database_unavailable_is_one_polite_line(
    backend: str, start: StartFn, tmp_path: Path
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path}"  # a directory: SQLite cannot open it
        if backend == "sqlite"
        else "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    )
    engine = create_engine(url, connect_timeout=2)
    try:
        server = await start(svc=FingerplatService(engine))
        for query in (b"alice\r\n", b"\r\n", b"/W alice@acme\r\n"):
            data = await asyncio.wait_for(finger(server, query), TIMEOUT)
            assert data == b"finger: service temporarily unavailable, please try again later\r\n"
    finally:
        await dispose(engine)  # waits for aiosqlite's threads


async def test_fuzz_then_still_answers(start: StartFn, alice: None) -> None:
    server = await start(idle_timeout=0.5)
    rng = random.Random(1288)
    host, port = split(server.addresses[0])

    async def garbage() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            size = rng.choice([0, 1, 10, 100, 511, 513, 2000])
            payload = rng.randbytes(size)
            if rng.random() < 0.5:
                payload += b"\r\n"
            writer.write(payload)
            if rng.random() < 0.3:
                writer.write_eof()
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
        except ConnectionError:
            return b"\r\n"  # the server closed on us while we were still writing: fine
        finally:
            writer.close()
        return data

    for _ in range(4):
        answers = await asyncio.gather(*(garbage() for _ in range(50)))
        for data in answers:
            assert data == b"" or data.endswith(b"\r\n")
    assert b"Login: alice" in await finger(server, b"alice\r\n")


async def test_drain_answers_in_flight_and_drops_idle(
    start: StartFn, service: FingerplatService, operator: Context
) -> None:
    await service.tenants.update_tenant(operator, None, forwarding=True)
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow_remote(user: str, hosts: list[str], verbose: bool) -> list[str]:
        asked.set()
        await release.wait()  # a remote finger server taking its time
        return ["late but complete"]

    server = await start(forward=slow_remote)
    host, port = split(server.addresses[0])
    idle_reader, idle_writer = await asyncio.open_connection(host, port)  # no query
    in_flight = asyncio.create_task(finger(server, b"bob@remote.example\r\n"))
    await asyncio.wait_for(asked.wait(), TIMEOUT)  # the query is in flight
    await server.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)
    drain = asyncio.create_task(server.drain(TIMEOUT))
    # A drain that did not wait would be done at once; this returns as soon as it is.
    done, _ = await asyncio.wait({drain}, timeout=0.1)
    assert not done, "drain returned with an answer still in flight"
    release.set()
    assert await in_flight == b"late but complete\r\n"
    await asyncio.wait_for(drain, TIMEOUT)
    assert await asyncio.wait_for(idle_reader.read(), TIMEOUT) == b""
    idle_writer.close()


async def test_metrics_count_queries(start: StartFn, alice: None) -> None:
    metrics = Metrics()
    server = await start(metrics=metrics)
    await finger(server, b"alice\r\n")
    await finger(server, b"nobody\r\n")
    assert sample(metrics, "fingerplat_requests_total", adapter="finger") == 2


def test_serves_under_uvloop(database_url: str) -> None:
    """`serve` runs on uvloop when installed, whose transports are not asyncio's classes."""
    import uvloop

    from fingerplat.domain.model import Channel, Principal

    async def main() -> tuple[bytes, bytes, bytes]:
        engine = create_engine(database_url)
        service = FingerplatService(engine)
        await service.users.add_user(Context(Principal.operator(
            "test"), Channel.CLI), None, "alice")
        server = await start_finger_server(service, "127.0.0.1", 0, tenant=None,
                                           settings=FingerConfig(**FAST), metrics=Metrics())
        try:
            return (await finger(server, b"alice\r\n"), await finger(server, b"x" * 600),
                    await finger(server, b"alice", eof=True))
        finally:
            await server.close()
            await server.drain(1)
            await engine.dispose()

    entry, oversize, half_closed = uvloop.run(main())
    assert entry.startswith(b"Login: alice")
    assert oversize == b"finger: query too long: at most 512 bytes\r\n"
    assert half_closed == entry


async def test_sighup_reconfigure_applies_new_limits(start: StartFn, alice: None) -> None:
    from fingerplat.config import Config

    server = await start()
    assert b"alice" in await finger(server, b"\r\n")
    server.reconfigure(Config(finger=FingerConfig(rate_limit=1, max_listed_users=1)))
    listing = await finger(server, b"\r\n")
    assert b"alice" in listing
    await finger(server, b"alice\r\n")
    assert b"too many queries" in await finger(server, b"alice\r\n")


async def test_access_log_names_client_and_query(
    start: StartFn, alice: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="fingerplat.finger.access")
    await finger(await start(access_log=True), b"/W alice\x1b\r\n")
    await finger(await start(access_log=False), b"alice\r\n")
    records = [r.getMessage() for r in caplog.records if r.name == "fingerplat.finger.access"]
    assert records == ["127.0.0.1 /W alice^[ -> 1 line"]
