"""The setter under a hostile client: one address cannot take the listener (SPEC section 11).

The attack of issue 12 item 4, against a real listener: one address opens
many silent connections; it gets its share of ``max_connections`` and then
one refusal line per connection (never a reset), while another address is
still served. Anonymous sessions get a short deadline to AUTH, and blank
lines do not keep a session open. On SIGTERM (drain) a command already
partly received is still answered.
"""

from __future__ import annotations

import asyncio

import pytest

from fingerplat.adapters.setter.server import SetterServer
from fingerplat.domain.model import Context, TokenScope
from fingerplat.service import FingerplatService
from tests.integration import test_setter_server as base
from tests.integration.test_setter_server import TIMEOUT, Client, StartFn, status_of
from tests.support.scrape import sample

# The fixtures of the setter's own tests (a real listener, two users).
start = base.start
people = base.people

REFUSED_FROM_ADDRESS = b"-ERR too many connections from your address, please try again later\r\n"


async def connect_from(server: SetterServer, source: str) -> Client:
    host, port = server.addresses[0].rsplit(":", 1)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), local_addr=(source, 0)), TIMEOUT)
    return Client(reader, writer)


async def until(condition, what: str) -> None:
    """Poll ``condition`` until it holds (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_one_address_cannot_take_the_setter(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    server = await start()  # the defaults: max_connections 200, a quarter per address
    flood = []
    for _ in range(200):
        flood.append(await connect_from(server, "127.0.0.1"))
    await until(lambda: sample(server.metrics, "fingerplat_refused_connections_total",
                               adapter="setter", reason="max_connections_per_address") == 150,
                "150 refusals")
    assert len(server.open) == 50
    held = {w.get_extra_info("peername")[1] for w in server.open}
    refused = [c for c in flood if c.writer.get_extra_info("sockname")[1] not in held]
    # Every refused connection got its line and an orderly end, no reset.
    answers = await asyncio.wait_for(asyncio.gather(
        *(c.reader.read() for c in refused), return_exceptions=True), TIMEOUT)
    assert len(answers) == 150
    assert all(answer == REFUSED_FROM_ADDRESS for answer in answers), answers[:3]
    # The flooding address, talking at once, still reads its refusal (no reset).
    eager = await connect_from(server, "127.0.0.1")
    eager.send("AUTH fp_1_xxxxxxxx", "SET alice flooded")
    assert await asyncio.wait_for(eager.reader.read(), TIMEOUT) == REFUSED_FROM_ADDRESS
    eager.close()
    # Another address is served.
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    real = await connect_from(server, "127.0.0.2")
    assert (await real.ask(f"AUTH {token}")).startswith("+OK authenticated")
    assert await real.ask("SET alice still here") == "+OK status of alice set"
    assert await status_of(service, "alice") == "still here"
    real.close()
    for client in flood:
        client.close()


async def test_the_share_per_address_is_configurable(start: StartFn, people: None) -> None:
    server = await start(max_connections=50, max_connections_per_address=2)
    first = await connect_from(server, "127.0.0.3")
    second = await connect_from(server, "127.0.0.3")
    await until(lambda: len(server.open) == 2, "two sessions")
    third = await connect_from(server, "127.0.0.3")
    assert await asyncio.wait_for(third.reader.read(), TIMEOUT) == REFUSED_FROM_ADDRESS
    other = await connect_from(server, "127.0.0.4")
    assert await other.ask("QUIT") == "+OK bye"
    first.close()
    await until(lambda: len(server.open) == 1, "the first to go")
    again = await connect_from(server, "127.0.0.3")
    assert await again.ask("QUIT") == "+OK bye"
    for client in (second, third, other, again):
        client.close()


async def test_anonymous_session_must_auth_in_time_and_blank_lines_do_not_help(
    start: StartFn, people: None
) -> None:
    server = await start(auth_timeout=0.5, idle_timeout=60)
    client = await Client.connect(server)

    async def keep_sending_blank_lines() -> None:
        while True:
            client.send("")
            await asyncio.sleep(0.05)

    chatter = asyncio.create_task(keep_sending_blank_lines())
    try:
        assert await client.reply() == "-ERR authentication timeout: AUTH within 0.5 s, closing"
        assert await client.at_eof()
    finally:
        chatter.cancel()
        client.close()
    assert sample(server.metrics, "fingerplat_refused_connections_total", adapter="setter",
                  reason="auth_timeout") == 1


async def test_blank_lines_are_no_activity_for_the_idle_timeout(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    server = await start(idle_timeout=0.5, auth_timeout=60)
    client = await Client.connect(server)
    assert (await client.ask(f"AUTH {token}")).startswith("+OK")

    async def keep_sending_blank_lines() -> None:
        while True:
            client.send("", "   ")
            await asyncio.sleep(0.05)

    chatter = asyncio.create_task(keep_sending_blank_lines())
    try:
        assert await client.reply() == "-ERR idle timeout, closing"
    finally:
        chatter.cancel()
        client.close()


async def test_an_authenticated_session_outlives_the_auth_deadline(
    start: StartFn, service: FingerplatService, operator: Context, people: None
) -> None:
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    server = await start(auth_timeout=0.3, idle_timeout=60)
    client = await Client.connect(server)
    assert (await client.ask(f"AUTH {token}")).startswith("+OK")
    # A session connected after it, never authenticated, is closed by the deadline:
    # the deadline has passed for the first one too.
    late = await Client.connect(server)
    assert await late.reply() == "-ERR authentication timeout: AUTH within 0.3 s, closing"
    late.close()
    assert await client.ask("SET alice later") == "+OK status of alice set"
    client.close()


@pytest.mark.parametrize("partial", [b"SET alice half", b"PLAN alice\r\nline one\r\n"])
async def test_drain_answers_a_command_already_started(
    start: StartFn, service: FingerplatService, operator: Context, people: None,
    partial: bytes,
) -> None:
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    server = await start()
    busy = await Client.connect(server)
    assert (await busy.ask(f"AUTH {token}")).startswith("+OK")
    idle = await Client.connect(server)
    busy.send(partial, end=b"")
    await until(lambda: any((c.lines is not None and c.lines.partial)
                            or (c.session is not None and c.session.reading_plan)
                            for c in server.open.values()), "the partial command")
    await server.close()
    drain = asyncio.create_task(server.drain(5))
    assert await idle.at_eof()  # an idle session is closed at once
    if partial.startswith(b"SET"):
        busy.send(b" done")
        assert await busy.reply() == "+OK status of alice set"
        assert await status_of(service, "alice") == "half done"
    else:
        busy.send(b".")
        assert (await busy.reply()).startswith("+OK plan of alice set")
    assert await busy.at_eof()
    await asyncio.wait_for(drain, TIMEOUT)
    busy.close()
    idle.close()
