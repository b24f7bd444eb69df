"""Debian's real HAProxy in front of two ``serve`` nodes on one database (SPEC section 12).

HAProxy sends a PROXY v2 header to the finger and setter nodes
(``send-proxy-v2``, health checks included) and ``X-Forwarded-For`` to the
web (``option forwardfor``), as deploy/haproxy.cfg does. The nodes trust
the balancer only: audit rows and access logs name the real client (a
127.0.0.x loopback address of the test's choosing), the rate limit slows
down one client and not the others behind the same balancer, a client's
own ``X-Forwarded-For`` cannot choose its address, and a connection that
bypasses the balancer without a header is closed unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fingerplat.domain.model import AuditQuery, Context, TokenScope
from fingerplat.service import FingerplatService
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    node_env,
    nodes_fixture,
    write_config,
)

TIMEOUT = 10.0
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def haproxy_config(ports: dict[str, int], nodes: list[Node]) -> str:
    def servers(kind: str, extra: str) -> str:
        return "\n".join(f"    server node{n} {host}:{port} {extra}"
                         for n, node in enumerate(nodes, 1)
                         for host, port in [node.address(kind)])

    return f"""
global
    maxconn 1000
defaults
    timeout connect 3s
    timeout client 30s
    timeout server 30s
frontend finger
    mode tcp
    bind 127.0.0.1:{ports["finger"]}
    default_backend finger_nodes
backend finger_nodes
    mode tcp
    balance roundrobin
{servers("finger", "send-proxy-v2 check check-send-proxy inter 300ms")}
frontend setter
    mode tcp
    bind 127.0.0.1:{ports["setter"]}
    default_backend setter_nodes
backend setter_nodes
    mode tcp
    balance roundrobin
{servers("setter", "send-proxy-v2 check check-send-proxy inter 300ms")}
frontend web
    mode http
    bind 127.0.0.1:{ports["web"]}
    option forwardfor
    default_backend web_nodes
backend web_nodes
    mode http
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost
{servers("web", "check inter 300ms")}
"""


@contextlib.asynccontextmanager
async def haproxy(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    check = await asyncio.create_subprocess_exec(HAPROXY, "-c", "-f", str(config),
                                                 stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
    output, _ = await check.communicate()
    assert check.returncode == 0, output.decode()
    process = await asyncio.create_subprocess_exec(HAPROXY, "-db", "-f", str(config),
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 5)
        if process.returncode is None:
            process.kill()
            await process.wait()


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


async def until_served(port: int) -> None:
    """Poll until HAProxy has found a node up behind ``port`` (its checks passed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        with contextlib.suppress(OSError, TimeoutError):
            if b"Login:" in await exchange(port, b"alice\r\n", source="127.0.0.1"):
                return
        assert loop.time() < deadline, "HAProxy never served finger"
        await asyncio.sleep(0.1)


async def latest(service: FingerplatService, operator: Context, action: str):  # type: ignore[no-untyped-def]
    events = await service.audit_log(operator, AuditQuery(limit=10))
    return next(e for e in events if e.action == action)


@pytest.mark.slow
async def test_haproxy_in_front_of_two_nodes_shows_the_real_client(
    service: FingerplatService, operator: Context, database_url: str, tmp_path: Path, nodes
) -> None:
    await service.add_user(operator, None, "alice", full_name="Alice Liddell")
    token = (await service.create_token(operator, TokenScope.USER, username="alice")).secret
    config = write_config(tmp_path / "node.toml", """
[network]
trusted_proxies = ["127.0.0.1/32"]
[finger]
proxy_protocol = true
rate_limit = 2
[setter]
proxy_protocol = true
""")
    env = node_env(tmp_path, database_url)
    both: list[Node] = [await nodes(env, "--config", config, *PORTS_ZERO) for _ in range(2)]
    ports = {kind: free_port() for kind in ("finger", "setter", "web")}
    (tmp_path / "haproxy.cfg").write_text(haproxy_config(ports, both))
    async with haproxy(tmp_path / "haproxy.cfg"):
        await until_served(ports["finger"])

        # Setter: the audit row names the client behind the balancer.
        answer = await exchange(ports["setter"], f"AUTH {token}\r\nSET alice via haproxy\r\n"
                                "QUIT\r\n".encode(), source="127.0.0.5")
        assert b"+OK status of alice set\r\n" in answer, answer
        assert (await latest(service, operator, "status.set")).remote_addr == "127.0.0.5"

        # Finger: both nodes (round robin) answer, and log the client.
        for _ in range(4):
            answer = await exchange(ports["finger"], b"alice\r\n", source="127.0.0.6")
            assert b"via haproxy" in answer, answer
        for node in both:
            await node.wait_line(lambda line: "127.0.0.6 alice" in line)

        # One abusive client is slowed down by the nodes' rate limit (2 queries
        # a second, bursts of 4, on each node); another client is not.
        answers = [await exchange(ports["finger"], b"alice\r\n", source="127.0.0.9")
                   for _ in range(12)]
        assert b"finger: too many queries from your address, please slow down\r\n" in answers
        assert b"via haproxy" in await exchange(ports["finger"], b"alice\r\n",
                                                source="127.0.0.10")

        # Web: X-Forwarded-For from the balancer names the client; the client's
        # own header (on the left of what HAProxy appends) cannot.
        body = json.dumps({"status": "through the web"}).encode()
        request = (f"PUT /api/v1/tenants/default/users/alice/status HTTP/1.1\r\n"
                   f"Host: localhost\r\nAuthorization: Bearer {token}\r\n"
                   f"X-Forwarded-For: 127.0.0.99\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        answer = await exchange(ports["web"], request, source="127.0.0.7")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert (await latest(service, operator, "status.set")).remote_addr == "127.0.0.7"

        # The health checks speak PROXY too: no node saw a connection without it.
        for node in both:
            assert not [line for line in node.err if "no valid PROXY header" in line]

        # Around the balancer: no header, or not from the balancer, no answer.
        host, finger_port = both[0].address("finger")
        assert await exchange(finger_port, b"alice\r\n", source="127.0.0.1",
                              host=host) in (b"", b"<reset>")
        assert await exchange(finger_port, b"PROXY TCP4 127.0.0.8 127.0.0.1 1 79\r\nalice\r\n",
                              source="127.0.0.2", host=host) in (b"", b"<reset>")
    for node in both:
        assert await node.stop() == 0
        assert not [line for line in node.err if "Traceback" in line]
