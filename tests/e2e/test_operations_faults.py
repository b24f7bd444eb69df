"""PostgreSQL going away under a running ``serve``, and coming back.

The database is a throwaway cluster of the test's own (never the shared
server): stopped, started again, and frozen with SIGSTOP, while one real
``serve`` process keeps running throughout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp

from fingerplat.domain.model import Context, TokenScope
from fingerplat.repository import migrations
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.e2e.conftest import finger
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    SetterClient,
    node_env,
    nodes_fixture,
    write_config,
)
from tests.support.throwaway_postgres import (  # noqa: F401 - a fixture
    ThrowawayCluster,
    throwaway_postgres_fixture,
)

UNAVAILABLE = "finger: service temporarily unavailable, please try again later\r\n"


async def _prepare(url: str, operator: Context) -> str:
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        service = FingerplatService(engine)
        await service.users.add_user(operator, None, "alice")
        await service.users.set_status(operator, None, "alice", "before the outage")
        return (await service.credentials.create_token(
            operator, TokenScope.USER, username="alice")).secret
    finally:
        await engine.dispose()


async def _timed_finger(node: Node, query: str) -> tuple[str, float]:
    started = time.monotonic()
    answer = await finger(*node.address("finger"), query, timeout=15)
    return answer, time.monotonic() - started


async def _until(node: Node, expected: str, timeout: float) -> float:
    """Seconds until finger answers with ``expected`` in it (fails after ``timeout``)."""
    started = time.monotonic()
    while True:
        answer = await finger(*node.address("finger"), "alice", timeout=15)
        if expected in answer:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"still {answer!r} after {timeout} s"
        await asyncio.sleep(0.2)


def _cluster_pids(cluster: ThrowawayCluster) -> list[int]:
    """The postmaster of this cluster and every backend it forked (read from /proc)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
        if ppid == postmaster:
            pids.append(int(entry.name))
    return pids


async def test_database_outage_answers_unavailable_refuses_writes_and_recovers_by_itself(
    throwaway_postgres: ThrowawayCluster, operator: Context, tmp_path: Path, nodes
):
    cluster = throwaway_postgres
    token = await _prepare(cluster.url, operator)
    config = write_config(tmp_path / "fingerplat.toml", """
[database]
pool_size = 4
max_overflow = 2
pool_timeout = 2
connect_timeout = 2
command_timeout = 2
""")
    node: Node = await nodes(node_env(tmp_path, cluster.url), "--config", config, *PORTS_ZERO)
    web = "http://{}:{}".format(*node.address("web"))
    api_status = f"{web}/api/v1/tenants/default/users/alice/status"
    auth = {"Authorization": f"Bearer {token}"}
    setter = await SetterClient.connect(node.address("setter"))
    assert (await setter.ask(f"AUTH {token}")).startswith("+OK")
    assert "Status: before the outage" in (await _timed_finger(node, "alice"))[0]

    # -- PostgreSQL stops: every session it had is cut ----------------------------
    cluster.stop("fast")
    # A user the node was asked about is answered from what it held (SPEC 12:
    # nodes keep answering from what they hold); anyone else is unavailable.
    answer, took = await _timed_finger(node, "alice")
    assert "Status: before the outage" in answer
    answer, took = await _timed_finger(node, "nobody")
    assert answer == UNAVAILABLE
    print(f"finger answered unavailable {took:.2f} s into the outage")
    assert took < 5, f"the unavailable answer took {took:.1f} s"
    assert await setter.ask("SET alice written during the outage") == (
        "-ERR service temporarily unavailable, nothing changed")
    fresh = await SetterClient.connect(node.address("setter"))
    assert await fresh.ask(f"AUTH {token}") == "-ERR service temporarily unavailable"
    fresh.close()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        async with http.put(api_status, json={"status": "via the API"}, headers=auth) as resp:
            assert resp.status == 503
            assert "error" in await resp.json()
        async with http.get(f"{web}/healthz") as resp:
            assert resp.status == 503

    # -- PostgreSQL is back: no restart of serve -----------------------------------
    cluster.start()
    recovered = await _until(node, "Status: before the outage", timeout=10)
    print(f"finger answered correctly {recovered:.2f} s after PostgreSQL was back")
    # Nothing of the refused writes was kept; the old session works again.
    assert await setter.ask("SET alice after the outage") == "+OK status of alice set"
    assert "Status: after the outage" in (await _timed_finger(node, "alice"))[0]
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
                http.put(api_status, json={"status": "via the API"}, headers=auth) as resp):
        assert resp.status == 200, await resp.text()

    # -- PostgreSQL hangs (frozen, sockets open): bounded by the timeouts ---------
    pids = _cluster_pids(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        answer, took = await _timed_finger(node, "alice")
        assert answer == UNAVAILABLE
        print(f"finger answered unavailable {took:.2f} s into a frozen database")
        assert took < 8, f"a frozen database held finger for {took:.1f} s"
        started = time.monotonic()
        reply = await setter.ask("SET alice while frozen", timeout=15)
        assert reply.startswith("-ERR service temporarily unavailable"), reply
        assert time.monotonic() - started < 8
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    recovered = await _until(node, "Status: via the API", timeout=15)
    print(f"finger answered correctly {recovered:.2f} s after PostgreSQL was thawed")

    setter.close()
    assert node.process.returncode is None  # the same process all along
    assert await node.stop() == 0
    assert not [line for line in node.err if "Traceback" in line]
