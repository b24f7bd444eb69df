"""The TCP setter over real sockets, on SQLite and PostgreSQL (SPEC section 3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from fingerplat.adapters.setter.server import SetterServer, start_setter_server
from fingerplat.config import Config, SetterConfig
from fingerplat.domain.model import AuditQuery, Context, TokenScope
from fingerplat.metrics import Metrics
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.support.engines import dispose
from tests.support.polling import until
from tests.support.scrape import sample

TIMEOUT = 5.0


class Client:
    """A setter client: one line out, one reply line in, each wait bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: SetterServer) -> Client:
        host, port = server.addresses[0].rsplit(":", 1)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)),
                                                TIMEOUT)
        return cls(reader, writer)

    def send(self, *lines: str | bytes, end: bytes = b"\r\n") -> None:
        for line in lines:
            self.writer.write((line.encode() if isinstance(line, str) else line) + end)

    async def reply(self) -> str:
        line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        assert line.endswith(b"\r\n"), line
        return line[:-2].decode()

    async def ask(self, line: str | bytes) -> str:
        self.send(line)
        return await self.reply()

    async def at_eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), TIMEOUT) == b""

    def close(self) -> None:
        self.writer.close()


StartFn = Callable[..., Awaitable[SetterServer]]


@pytest.fixture
async def start(service: FingerplatService) -> AsyncIterator[StartFn]:
    started: list[SetterServer] = []

    async def _start(*, svc: FingerplatService | None = None, metrics: Metrics | None = None,
                     **settings: object) -> SetterServer:
        server = await start_setter_server(svc or service, "127.0.0.1", 0,
                                           settings=SetterConfig(**settings),
                                           metrics=metrics or Metrics())
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.close()
        await server.drain(1)


@pytest.fixture
async def people(service: FingerplatService, operator: Context) -> None:
    for name in ("alice", "bob"):
        await service.users.add_user(operator, None, name)
    await service.tenants.create_tenant(operator, "acme", name="Acme")
    await service.users.add_user(operator, "acme", "wile")


async def user_token(service: FingerplatService, operator: Context, name: str,
                     tenant: str | None = None) -> str:
    issued = await service.credentials.create_token(operator, TokenScope.USER, tenant_name=tenant,
                                        username=name)
    return issued.secret


async def status_of(service: FingerplatService, name: str, tenant: str | None = None) -> str | None:
    user = await service.public.public_user(await service.public.resolve_tenant(tenant), name)
    assert user is not None
    return user.status


async def test_user_token_sets_only_its_own_status(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    token = await user_token(service, operator, "alice")
    client = await Client.connect(await start())
    reply = await client.ask(f"AUTH {token}")
    assert reply.startswith("+OK authenticated as token:") and "(alice@default)" in reply
    assert await client.ask("SET alice gone fishing") == "+OK status of alice set"
    assert await status_of(service, "alice") == "gone fishing"

    refused = await client.ask("SET bob hacked")
    assert refused.startswith("-ERR ") and "may not change the status of bob" in refused
    assert await status_of(service, "bob") is None
    assert (await client.ask("CLEAR bob")).startswith("-ERR ")
    assert await client.ask("clear ALICE") == "+OK status of alice cleared"
    assert await status_of(service, "alice") is None
    client.close()

    events = await service.audit.audit_log(operator, AuditQuery(limit=10))
    by_action = [(e.action, e.target, e.outcome, e.channel) for e in events]
    assert ("status.set", "alice@default", "ok", "setter") in by_action
    assert ("status.set", "bob@default", "denied", "setter") in by_action
    assert ("status.clear", "bob@default", "denied", "setter") in by_action
    set_event = next(e for e in events if e.action == "status.set" and e.outcome == "ok")
    assert set_event.actor.startswith("token:") and set_event.actor.endswith("(alice@default)")
    assert set_event.remote_addr == "127.0.0.1"
    assert set_event.after == {"status": "gone fishing"}


async def test_tenant_token_sets_anyone_in_its_tenant_only(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    issued = await service.credentials.create_token(operator, TokenScope.TENANT, tenant_name="acme")
    client = await Client.connect(await start())
    assert "(admin@acme)" in await client.ask(f"AUTH {issued.secret}")
    assert await client.ask("SET wile@acme ordering rockets") == "+OK status of wile set"
    assert await status_of(service, "wile", "acme") == "ordering rockets"
    assert (await client.ask("SET alice hi")).startswith("-ERR ")  # default tenant
    assert (await client.ask("SET alice@default hi")).startswith("-ERR ")
    assert await status_of(service, "alice") is None
    assert await client.ask("SET nobody@acme hi") == "-ERR no such user 'nobody' in tenant 'acme'"
    client.close()


async def test_without_auth_every_change_is_refused_and_audited(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    client = await Client.connect(await start())
    for command in ("SET alice hi", "CLEAR alice"):
        reply = await client.ask(command)
        assert reply.startswith("-ERR not authenticated: send AUTH <token> first")
    client.send("PLAN alice", "text", ".")
    assert (await client.reply()).startswith("-ERR not authenticated")
    client.close()
    assert await status_of(service, "alice") is None
    events = await service.audit.audit_log(operator, AuditQuery(limit=10))
    denied = [(e.action, e.actor, e.channel) for e in events if e.outcome == "denied"]
    assert ("status.set", "anonymous", "setter") in denied
    assert ("status.clear", "anonymous", "setter") in denied
    assert ("plan.set", "anonymous", "setter") in denied


async def test_bad_tokens_are_refused_audited_and_limited(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    token = await user_token(service, operator, "alice")
    client = await Client.connect(await start())
    assert await client.ask("AUTH nonsense") == "-ERR invalid token"
    assert await client.ask(f"AUTH {token[:-4]}AAAA") == "-ERR invalid token"
    assert await client.ask("AUTH") == "-ERR usage: AUTH <token>"
    assert (await client.ask("SET alice hi")).startswith("-ERR not authenticated")
    last = await client.ask("AUTH still-wrong")
    assert last == "-ERR invalid token; too many failed attempts, closing"
    assert await client.at_eof()
    client.close()
    events = await service.audit.audit_log(operator, AuditQuery(limit=20), all_tenants=True)
    denied = [e for e in events if e.outcome == "denied"]
    # The first three failures or refusals of an address in a window get a row
    # each (two AUTHs and the SET); the fourth waits for a summary row.
    assert sorted(e.action for e in denied) == ["auth.token", "auth.token", "status.set"]
    assert all(e.channel == "setter" and e.remote_addr == "127.0.0.1" for e in denied)
    assert await service.throttle.flush_auth_failures() == 1
    [summary] = await service.audit.audit_log(
        operator, AuditQuery(action="auth.failures", limit=5), all_tenants=True)
    assert (summary.outcome, summary.remote_addr, summary.after["failures"]) == \
        ("denied", "127.0.0.1", 1)


@pytest.mark.parametrize("token", ["fp_²_abc", "fp_١٢_abc", "fp_𝟙_abc"])
async def test_token_id_in_other_digits_is_an_err_not_a_dropped_connection(
    start: StartFn, service: FingerplatService, operator: Context, people: None, token: str
) -> None:
    """Issue 12 item 10: "²".isdigit() is true, int("²") raised, the connection dropped."""
    client = await Client.connect(await start())
    assert await client.ask(f"AUTH {token}") == "-ERR invalid token"
    assert (await client.ask("SET alice pwned")).startswith("-ERR not authenticated")
    assert (await client.ask("QUIT")).startswith("+OK")
    client.close()


async def test_revoked_token_is_refused(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    issued = await service.credentials.create_token(operator, TokenScope.USER, username="alice")
    await service.credentials.revoke_token(operator, issued.token.id)
    client = await Client.connect(await start())
    assert await client.ask(f"AUTH {issued.secret}") == "-ERR token revoked"
    client.close()


async def test_plan_with_dot_stuffing(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    token = await user_token(service, operator, "alice")
    client = await Client.connect(await start())
    await client.ask(f"AUTH {token}")
    client.send("PLAN alice", "Find the", "", "..", "...and more", "  white rabbit.")
    client.send(b".", end=b"\n")  # bare LF ends a line too
    reply = await client.reply()
    assert reply.startswith("+OK plan of alice set")
    user = await service.public.public_user(await service.public.resolve_tenant(None), "alice")
    assert user is not None
    assert user.plan == "Find the\n\n.\n..and more\n  white rabbit."
    # An empty plan clears it.
    client.send("PLAN alice", ".")
    assert (await client.reply()).startswith("+OK plan of alice set (0 bytes)")
    client.close()


async def test_oversize_plan_is_refused_and_the_connection_stays_usable(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    token = await user_token(service, operator, "alice")
    client = await Client.connect(await start())
    await client.ask(f"AUTH {token}")
    client.send("PLAN alice", "keep me", ".")
    assert (await client.reply()).startswith("+OK")

    # Just over 16 KiB: the service names the exact size.
    client.send("PLAN alice", *(["x" * 99] * 170), ".")
    reply = await client.reply()
    assert reply == "-ERR plan is 16999 bytes long; at most 16384 (16 KiB) allowed"
    # Far over: the adapter stops collecting and still reads up to ".".
    client.send("PLAN alice", *(["y" * 1000] * 100), "z" * 50_000, ".")
    reply = await client.reply()
    assert reply.startswith("-ERR plan is longer than") and "16 KiB" in reply
    assert await client.ask("SET alice still here") == "+OK status of alice set"
    user = await service.public.public_user(await service.public.resolve_tenant(None), "alice")
    assert user is not None and user.plan == "keep me"
    client.close()


async def test_oversize_line_garbage_and_unknown_commands(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    token = await user_token(service, operator, "alice")
    client = await Client.connect(await start())
    assert await client.ask("SET alice " + "x" * 5000) == (
        "-ERR line too long: at most 4096 bytes")
    assert await client.ask("y" * 100_000) == "-ERR line too long: at most 4096 bytes"
    assert await client.ask(b"\xff\xfe SET") == "-ERR line is not valid UTF-8"
    assert await client.ask("HELO there") == (
        "-ERR unknown command 'HELO': use AUTH, SET, CLEAR, EXPIRE, PLAN or QUIT")
    assert await client.ask("alice") == (
        "-ERR unknown command 'alice': use AUTH, SET, CLEAR, EXPIRE, PLAN or QUIT")
    assert await client.ask("SET alice") == "-ERR usage: SET <user>[@<tenant>] <status>"
    assert await client.ask("CLEAR") == "-ERR usage: CLEAR <user>[@<tenant>]"
    assert (await client.ask(f"AUTH {token}")).startswith("+OK")
    too_long = await client.ask("SET alice " + "z" * 300)
    assert too_long == "-ERR status is 300 characters long; at most 280 are allowed"
    assert (await client.ask("SET alice a\x1b[2Jb")).startswith(
        "-ERR status must not contain control characters")
    # A user token learns nothing about other names: the service refuses first.
    assert (await client.ask("SET nobody hi")).endswith("may not change the status of nobody")
    assert (await client.ask("SET alice@nowhere hi")).startswith("-ERR no such tenant")
    assert await client.ask("SET alice@ hi") == "-ERR empty tenant after '@' in 'alice@'"
    assert await status_of(service, "alice") is None
    assert await client.ask("SET alice fine") == "+OK status of alice set"
    client.close()


async def test_quit_closes(start: StartFn) -> None:
    client = await Client.connect(await start())
    client.send("")  # blank lines are ignored
    assert await client.ask("quit") == "+OK bye"
    assert await client.at_eof()
    client.close()


async def test_idle_timeout_and_max_connections(start: StartFn, people: None) -> None:
    metrics = Metrics()
    server = await start(idle_timeout=0.3, max_connections=1, metrics=metrics)
    first = await Client.connect(server)
    await until(lambda: sample(metrics, "fingerplat_open_connections", adapter="setter") == 1,
                "the first connection is accepted")
    second = await Client.connect(server)
    assert await second.reply() == "-ERR too many connections, please try again later"
    assert await second.at_eof()
    first.send(b"SET ali", end=b"")  # never finished
    assert await first.reply() == "-ERR idle timeout, closing"
    assert await first.at_eof()
    refused = "fingerplat_refused_connections_total"
    assert sample(metrics, refused, adapter="setter", reason="max_connections") == 1
    assert sample(metrics, refused, adapter="setter", reason="idle_timeout") == 1
    first.close()
    second.close()
    # Limits can change on SIGHUP.
    server.reconfigure(Config(setter=SetterConfig(idle_timeout=5, max_connections=3)))
    clients = [await Client.connect(server) for _ in range(3)]
    for client in clients:
        assert await client.ask("QUIT") == "+OK bye"
        client.close()


async def test_database_unavailable(start: StartFn, backend: str, tmp_path: object) -> None:
    url = (f"sqlite+aiosqlite:///{tmp_path}" if backend == "sqlite"
           else "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    engine = create_engine(url, connect_timeout=2)
    try:
        client = await Client.connect(await start(svc=FingerplatService(engine)))
        assert await client.ask("AUTH fp_1_abc") in (
            "-ERR service temporarily unavailable", "-ERR invalid token")
        assert await client.ask("SET alice hi") == (
            "-ERR service temporarily unavailable, nothing changed")
        client.close()
    finally:
        await dispose(engine)


async def test_drain_finishes_then_closes_sessions(start: StartFn, people: None) -> None:
    server = await start()
    client = await Client.connect(server)
    assert await client.ask("SET alice x") != ""
    await server.close()
    await server.drain(2)
    assert await client.at_eof()
    client.close()
    assert server.name == "setter"


async def test_fuzz_then_still_serves(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    import random

    server = await start(idle_timeout=0.5)
    rng = random.Random(1179)
    host, port = server.addresses[0].rsplit(":", 1)

    async def garbage() -> bytes:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for _ in range(rng.randint(1, 5)):
                words = [rng.choice(["SET", "PLAN", "AUTH", "CLEAR", ".", "..", "@", ""]),
                         rng.randbytes(rng.choice([0, 3, 50, 5000])).decode("latin-1")]
                line = " ".join(words).encode("utf-8", "surrogateescape")
                writer.write(line + rng.choice([b"\r\n", b"\n", b"\r", b""]))
            if rng.random() < 0.5:
                writer.write_eof()
            return await asyncio.wait_for(reader.read(), TIMEOUT)
        except ConnectionError:
            return b""
        finally:
            writer.close()

    for _ in range(2):
        for data in await asyncio.gather(*(garbage() for _ in range(25))):
            for line in data.split(b"\r\n")[:-1]:
                assert line.startswith((b"+OK", b"-ERR")), line
            assert b"+OK status" not in data  # nothing changed without AUTH
    token = await user_token(service, operator, "alice")
    client = await Client.connect(server)
    assert (await client.ask(f"AUTH {token}")).startswith("+OK")
    assert await client.ask("SET alice survived") == "+OK status of alice set"
    client.close()
