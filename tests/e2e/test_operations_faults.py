"""PostgreSQL going away under a running ``serve``, and coming back.

The database is a throwaway cluster of the test's own (never the shared
server): stopped, started again, and frozen with SIGSTOP, while one real
``serve`` process keeps running throughout.
"""

from __future__ import annotations

import os
import signal
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
from tests.support.polling import until
from tests.support.throwaway_postgres import (  # noqa: F401 - a fixture
    ThrowawayCluster,
    throwaway_postgres_fixture,
)

UNAVAILABLE = "finger: service temporarily unavailable, please try again later\r\n"
# A deadline for an answer, generous for a loaded machine: the database's own
# timeouts (2 s here) bound it; how fast it comes is no assertion of a test.
ANSWER_WITHIN = 15.0


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


async def _finger(node: Node, query: str) -> str:
    """The answer; a finger that hangs on the database fails here (not a figure: bench/)."""
    return await finger(*node.address("finger"), query, timeout=ANSWER_WITHIN)


async def _until(node: Node, expected: str, timeout: float) -> None:
    """Until finger answers with ``expected`` in it (fails after ``timeout``)."""
    async def shows() -> bool:
        return expected in await _finger(node, "alice")
    await until(shows, f"finger answers {expected!r}", timeout=timeout, interval=0.2)


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
    assert "Status: before the outage" in await _finger(node, "alice")

    # -- PostgreSQL stops: every session it had is cut ----------------------------
    cluster.stop("fast")
    # A user the node was asked about is answered from what it held (SPEC 12:
    # nodes keep answering from what they hold); anyone else is unavailable.
    assert "Status: before the outage" in await _finger(node, "alice")
    assert await _finger(node, "nobody") == UNAVAILABLE
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
    await _until(node, "Status: before the outage", timeout=10)
    # Nothing of the refused writes was kept; the old session works again.
    assert await setter.ask("SET alice after the outage") == "+OK status of alice set"
    assert "Status: after the outage" in await _finger(node, "alice")
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
                http.put(api_status, json={"status": "via the API"}, headers=auth) as resp):
        assert resp.status == 200, await resp.text()

    # -- PostgreSQL hangs (frozen, sockets open): bounded by the timeouts ---------
    pids = _cluster_pids(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert await _finger(node, "alice") == UNAVAILABLE
        reply = await setter.ask("SET alice while frozen", timeout=ANSWER_WITHIN)
        assert reply.startswith("-ERR service temporarily unavailable"), reply
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    await _until(node, "Status: via the API", timeout=15)

    setter.close()
    assert node.process.returncode is None  # the same process all along
    assert await node.stop() == 0
    assert not [line for line in node.err if "Traceback" in line]
