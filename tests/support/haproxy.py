"""Debian's real HAProxy in front of ``fingerplat serve`` nodes, for the e2e test and the bench.

One configuration for both (tests/e2e/test_haproxy.py and bench/crossnode.py),
shaped like deploy/haproxy.cfg: finger and setter in TCP mode with a PROXY v2
header (``send-proxy-v2``, health checks included with ``check-send-proxy``),
the web in HTTP mode with ``option forwardfor`` and ``/healthz`` checks.
Round robin, so that consecutive requests land on different nodes.

Two things deploy/haproxy.cfg does not need and a measurement does:

- every web answer names the node that served it (header ``X-Fingerplat-Node``,
  HAProxy's own server name ``node1``..``nodeN``), so a test can show that a
  login made on one node held on the others;
- one extra finger frontend per node (``finger_each``), still through HAProxy
  and its PROXY header, so "seen by finger on every node" can be checked node
  by node instead of hoping round robin visits them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NODE_HEADER = "X-Fingerplat-Node"
KINDS = ("finger", "setter", "web")

Address = tuple[str, int]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Frontends:
    """The balancer's own ports: one per service, and one finger port per node."""

    finger: int
    setter: int
    web: int
    finger_each: tuple[int, ...]

    @classmethod
    def free(cls, nodes: int) -> Frontends:
        return cls(free_port(), free_port(), free_port(),
                   tuple(free_port() for _ in range(nodes)))


def haproxy_config(front: Frontends, nodes: Sequence[Mapping[str, Address]], *,
                   check_every: str = "300ms") -> str:
    """The configuration text; ``nodes[i][kind]`` is node i+1's (host, port) for that kind."""
    proxied = f"send-proxy-v2 check check-send-proxy inter {check_every}"

    def servers(kind: str, extra: str) -> str:
        return "\n".join(f"    server node{n} {node[kind][0]}:{node[kind][1]} {extra}"
                         for n, node in enumerate(nodes, 1))

    each = "".join(f"""
frontend finger_node{n}
    mode tcp
    bind 127.0.0.1:{port}
    default_backend finger_node{n}
backend finger_node{n}
    mode tcp
    server node{n} {nodes[n - 1]["finger"][0]}:{nodes[n - 1]["finger"][1]} {proxied}
""" for n, port in enumerate(front.finger_each, 1))
    return f"""
global
    maxconn 1000
defaults
    timeout connect 3s
    timeout client 30s
    timeout server 30s
    # Without it a check must be answered within "inter": on a loaded machine
    # a node slower than that for three checks in a row would be taken out.
    timeout check 5s
frontend finger
    mode tcp
    bind 127.0.0.1:{front.finger}
    default_backend finger_nodes
backend finger_nodes
    mode tcp
    balance roundrobin
{servers("finger", proxied)}
frontend setter
    mode tcp
    bind 127.0.0.1:{front.setter}
    default_backend setter_nodes
backend setter_nodes
    mode tcp
    balance roundrobin
{servers("setter", proxied)}
frontend web
    mode http
    bind 127.0.0.1:{front.web}
    option forwardfor
    default_backend web_nodes
backend web_nodes
    mode http
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost
    http-response set-header {NODE_HEADER} %[srv_name]
{servers("web", f"check inter {check_every}")}
{each}"""


@contextlib.asynccontextmanager
async def running_haproxy(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``haproxy -c`` (failing with its message), then HAProxy in the foreground until exit."""
    check = await asyncio.create_subprocess_exec(HAPROXY, "-c", "-f", str(config),
                                                 stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
    output, _ = await check.communicate()
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c refused {config}: {output.decode()}")
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


async def finger_through(port: int, query: str, *, source: str = "127.0.0.1",
                         timeout: float = 10.0) -> str:
    """One finger query to a balancer port from ``source``; "" when closed unanswered."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), timeout)
    try:
        writer.write(query.encode() + b"\r\n")
        return (await asyncio.wait_for(reader.read(), timeout)).decode("utf-8", "replace")
    except ConnectionResetError:
        return ""
    finally:
        writer.close()


async def until_every_node_served(front: Frontends, query: str, expect: str,
                                  timeout: float = 20.0) -> None:
    """Poll until HAProxy's checks found every node up: each node's frontend answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for port in (front.finger, *front.finger_each):
        while True:
            with contextlib.suppress(OSError, TimeoutError):
                if expect in await finger_through(port, query):
                    break
            if loop.time() > deadline:
                raise RuntimeError(f"HAProxy never served finger on port {port}")
            await asyncio.sleep(0.05)
