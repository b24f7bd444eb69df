"""Debian's real HAProxy in front of three ``serve`` nodes on one database (SPEC section 12).

HAProxy sends a PROXY v2 header to the finger and setter nodes
(``send-proxy-v2``, health checks included) and ``X-Forwarded-For`` to the
web (``option forwardfor``), as deploy/haproxy.cfg does (the configuration is
tests/support/haproxy.py's, shared with bench/crossnode.py). The nodes trust
the balancer only: audit rows and access logs name the real client (a
127.0.0.x loopback address of the test's choosing), the rate limit slows
down one client and not the others behind the same balancer, a client's
own ``X-Forwarded-For`` cannot choose its address, and a connection that
bypasses the balancer without a header is closed unanswered.

Through the balancer the three nodes act as one server: an admin logged in
on one node is logged in on all (every web answer names the node that served
it), the login throttle is one counter for the three (not three times the
guesses), and a change written through whichever node the balancer picked is
answered by finger on every node. The nodes share the parametrised database:
a PostgreSQL database, or one SQLite file on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from fingerplat.domain.model import AuditEvent, AuditQuery, Context, TokenScope
from fingerplat.service import FingerplatService
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    node_env,
    nodes_fixture,
    write_config,
)
from tests.integration.web.admin_client import AdminClient, Page, text_of
from tests.support.haproxy import (
    NODE_HEADER,
    Frontends,
    finger_through,
    haproxy_config,
    running_haproxy,
    until_every_node_served,
)
from tests.support.polling import until

TIMEOUT = 10.0
NODES = 3
ALL_NODES = {f"node{n}" for n in range(1, NODES + 1)}
ADMIN, PASSWORD = "root", "correct horse battery"
NODE_CONFIG = """
[network]
trusted_proxies = ["127.0.0.1/32"]
[finger]
proxy_protocol = true
rate_limit = {rate_limit}
[setter]
proxy_protocol = true
"""


@contextlib.asynccontextmanager
async def balanced_nodes(
    tmp_path: Path, database_url: str, nodes: Callable[..., object], *, rate_limit: int
) -> AsyncIterator[tuple[Frontends, list[Node]]]:
    """Three nodes behind a running HAProxy whose checks found them all up.

    ``rate_limit``: finger queries a second per client address, on each node.
    """
    config = write_config(tmp_path / "node.toml", NODE_CONFIG.format(rate_limit=rate_limit))
    env = node_env(tmp_path, database_url)
    three: list[Node] = list(await asyncio.gather(  # started side by side: a faster test
        *(nodes(env, "--config", config, *PORTS_ZERO) for _ in range(NODES))))  # type: ignore[misc]
    front = Frontends.free(NODES)
    (tmp_path / "haproxy.cfg").write_text(
        haproxy_config(front, [{kind: node.address(kind) for kind in ("finger", "setter", "web")}
                               for node in three]))
    async with running_haproxy(tmp_path / "haproxy.cfg"):
        await until_every_node_served(front, "alice", "Login:")
        yield front, three
    assert await asyncio.gather(*(node.stop() for node in three)) == [0] * NODES
    for node in three:
        assert not [line for line in node.err if "Traceback" in line]


async def exchange(port: int, data: bytes, *, source: str, host: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0)), TIMEOUT)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionResetError:
        return b"<reset>"
    finally:
        writer.close()


async def latest(service: FingerplatService, operator: Context, action: str) -> AuditEvent:
    events = await service.audit.audit_log(operator, AuditQuery(action=action, limit=10),
                                     all_tenants=True)
    return events[0]


async def browser(front: Frontends, source: str) -> AdminClient:
    """An admin UI client behind the balancer, from ``source``, a new connection per request.

    No connection is reused, so no request rides on another's: each one is
    balanced on its own, and round robin hands consecutive requests of one
    browser to different nodes.
    """
    client = AdminClient(f"http://127.0.0.1:{front.web}")
    await client.session.close()
    client.session = aiohttp.ClientSession(
        cookie_jar=client.jar, timeout=aiohttp.ClientTimeout(total=20),
        connector=aiohttp.TCPConnector(force_close=True, local_addr=(source, 0)))
    return client


def node_of(page: Page) -> str:
    """The node that served a page, as HAProxy named it (HAProxy sends header names lowercase)."""
    return {name.lower(): value for name, value in page.headers.items()}[NODE_HEADER.lower()]


@pytest.mark.slow
async def test_haproxy_in_front_of_three_nodes_shows_the_real_client(
    service: FingerplatService, operator: Context, database_url: str, tmp_path: Path, nodes
) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    async with balanced_nodes(tmp_path, database_url, nodes, rate_limit=2) as (front, three):
        # Setter: the audit row names the client behind the balancer.
        answer = await exchange(front.setter, f"AUTH {token}\r\nSET alice via haproxy\r\n"
                                "QUIT\r\n".encode(), source="127.0.0.5")
        assert b"+OK status of alice set\r\n" in answer, answer
        assert (await latest(service, operator, "status.set")).remote_addr == "127.0.0.5"

        # Finger: every node (round robin) answers, and logs the client.
        for _ in range(2 * NODES):
            answer = await exchange(front.finger, b"alice\r\n", source="127.0.0.6")
            assert b"via haproxy" in answer, answer
        for node in three:
            await node.wait_line(lambda line: "127.0.0.6 alice" in line)

        # One abusive client is slowed down by the nodes' rate limit (2 queries
        # a second, bursts of 4, on each node); another client is not.
        answers = [await exchange(front.finger, b"alice\r\n", source="127.0.0.9")
                   for _ in range(6 * NODES)]
        assert b"finger: too many queries from your address, please slow down\r\n" in answers
        assert b"via haproxy" in await exchange(front.finger, b"alice\r\n",
                                                source="127.0.0.10")

        # Web: X-Forwarded-For from the balancer names the client; the client's
        # own header (on the left of what HAProxy appends) cannot.
        body = json.dumps({"status": "through the web"}).encode()
        request = (f"PUT /api/v1/tenants/default/users/alice/status HTTP/1.1\r\n"
                   f"Host: localhost\r\nAuthorization: Bearer {token}\r\n"
                   f"X-Forwarded-For: 127.0.0.99\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        answer = await exchange(front.web, request, source="127.0.0.7")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert (await latest(service, operator, "status.set")).remote_addr == "127.0.0.7"

        # The health checks speak PROXY too: no node saw a connection without it.
        for node in three:
            assert not [line for line in node.err if "no valid PROXY header" in line]

        # Around the balancer: no header, or not from the balancer, no answer.
        host, finger_port = three[0].address("finger")
        assert await exchange(finger_port, b"alice\r\n", source="127.0.0.1",
                              host=host) in (b"", b"<reset>")
        assert await exchange(finger_port, b"PROXY TCP4 127.0.0.8 127.0.0.1 1 79\r\nalice\r\n",
                              source="127.0.0.2", host=host) in (b"", b"<reset>")


async def seen_on_every_node(front: Frontends, query: str, text: str) -> None:
    """Poll finger on each node, through the balancer, until all of them answer ``text``."""
    for n, port in enumerate(front.finger_each, 1):
        async def shows(port: int = port) -> bool:
            return text in await finger_through(port, query, source="127.0.0.30")
        await until(shows, f"node{n} answers {text!r} to finger {query!r}", timeout=TIMEOUT)


@pytest.mark.slow
async def test_three_nodes_behind_haproxy_act_as_one_server(
    service: FingerplatService, operator: Context, database_url: str, tmp_path: Path, nodes
) -> None:
    await service.credentials.add_admin(operator, ADMIN, PASSWORD)
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    # Polling finger until a change shows must not meet the rate limit.
    async with balanced_nodes(tmp_path, database_url, nodes,
                              rate_limit=100_000) as (front, _three):
        # Every node holds alice's old answer and "no walter" before the changes,
        # so what follows shows invalidations reaching them, not cold reads.
        for port in front.finger_each:
            assert "Login: alice" in await finger_through(port, "alice", source="127.0.0.30")
            assert "Login: walter" not in await finger_through(port, "walter",
                                                               source="127.0.0.30")

        # An admin logs in (form, post and redirect each on the next node) and
        # stays logged in whichever node serves the page.
        admin = await browser(front, "127.0.0.21")
        try:
            page = await admin.login(ADMIN, PASSWORD)
            assert page.status == 200 and "Tenants" in page.text, text_of(page.text)
            login = await latest(service, operator, "auth.login")
            assert (login.outcome, login.remote_addr) == ("ok", "127.0.0.21")
            served = set()
            for _ in range(3 * NODES):
                page = await admin.get("/admin/tenants", follow=False)
                assert page.status == 200 and "admin:root" in page.text, page.status
                served.add(node_of(page))
            assert served == ALL_NODES

            # A form whose CSRF token one node gave is taken by the next one; the
            # user it adds is answered by finger on every node.
            await admin.get("/admin/tenants/default/new-user")
            page = await admin.post("/admin/tenants/default/users", {"username": "walter"})
            assert page.status == 303, text_of(page.text)
            assert (await latest(service, operator, "user.create")).remote_addr == "127.0.0.21"
            await seen_on_every_node(front, "walter", "Login: walter")
        finally:
            await admin.close()

        # A status set through the setter (on whichever node) is seen everywhere.
        answer = await exchange(front.setter, f"AUTH {token}\r\nSET alice set by the setter"
                                "\r\nQUIT\r\n".encode(), source="127.0.0.22")
        assert b"+OK status of alice set\r\n" in answer, answer
        assert (await latest(service, operator, "status.set")).remote_addr == "127.0.0.22"
        await seen_on_every_node(front, "alice", "Status: set by the setter")
        # And one set through the JSON API.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=("127.0.0.22", 0))
        ) as api, api.put(f"http://127.0.0.1:{front.web}/api/v1/tenants/default/users/"
                           "alice/status", json={"status": "set through the API"},
                           headers={"Authorization": f"Bearer {token}"}) as reply:
            assert reply.status == 200, await reply.text()
        await seen_on_every_node(front, "alice", "Status: set through the API")

        # Guesses spread over the three nodes meet one counter: at most five
        # passwords are checked, not five per node.
        async def guess() -> tuple[int, str]:
            client = await browser(front, "127.0.0.23")
            try:
                page = await client.login(ADMIN, "wrong-guess")
                return page.status, node_of(page)
            finally:
                await client.close()

        results = await asyncio.gather(*(guess() for _ in range(8 * NODES)))
        statuses = [status for status, _node in results]
        assert {node for _status, node in results} == ALL_NODES
        assert statuses.count(401) <= 5, statuses
        assert statuses.count(429) >= 8 * NODES - 5, statuses
        # Refused on every node now, even the right password, from that address only.
        for _ in range(NODES):
            blocked = await browser(front, "127.0.0.23")
            try:
                assert (await blocked.login(ADMIN, PASSWORD)).status == 429
            finally:
                await blocked.close()
        other = await browser(front, "127.0.0.24")
        try:
            assert (await other.login(ADMIN, PASSWORD)).status == 200
        finally:
            await other.close()
        # The refusals are audited under the guessing client's address.
        events = await service.audit.audit_log(operator, AuditQuery(action="auth.login", limit=50),
                                         all_tenants=True)
        refused = [e for e in events if e.outcome != "ok"]
        assert refused and {e.remote_addr for e in refused} == {"127.0.0.23"}, refused
