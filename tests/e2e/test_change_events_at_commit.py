"""Change events travel inside the writing transaction (SPEC 12, issue 13 item 2).

The worst moment for a node to die is right after its commit: before the
fix, its NOTIFY was sent only after the commit, so the other nodes' caches
kept the old value for good (they are invalidated by events, never by a TTL).

Node A here is a real ``fingerplat serve`` whose process is SIGKILLed by
itself the instant a status change has committed, before anything else runs:
a ``sitecustomize`` module on its PYTHONPATH (test-only, nothing in the
product) wraps the unit of work to do so. Node B, a normal node that has the
old status in its read cache, must still answer with the new one.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from fingerplat.domain.model import Context, TokenScope
from fingerplat.service import FingerplatService
from tests.e2e.conftest import finger
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    SetterClient,
    node_env,
    nodes_fixture,
)
from tests.support.databases import DatabaseFactory

KILL_HOOK = '''
"""Test hook: SIGKILL this process right after a status change commits."""
import os
import signal

from fingerplat.repository import sql, uow

_set_status = sql.Repository.set_status
_enter = uow.UnitOfWork.__aenter__
_exit = uow.UnitOfWork.__aexit__


async def set_status(self, *args, **kwargs):
    self._fp_test_kill_after_commit = True
    return await _set_status(self, *args, **kwargs)


async def enter(self):
    self._fp_test_repo = await _enter(self)
    return self._fp_test_repo


async def exit_(self, exc_type, exc, tb):
    result = await _exit(self, exc_type, exc, tb)
    repo = getattr(self, "_fp_test_repo", None)
    if exc_type is None and getattr(repo, "_fp_test_kill_after_commit", False):
        os.kill(os.getpid(), signal.SIGKILL)  # committed; nothing after this runs
    return result


sql.Repository.set_status = set_status
uow.UnitOfWork.__aenter__ = enter
uow.UnitOfWork.__aexit__ = exit_
'''


async def test_a_node_killed_right_after_its_commit_still_reaches_the_other_nodes(
    db_factory: DatabaseFactory, operator: Context, tmp_path: Path, nodes
) -> None:
    url = await db_factory.postgresql()  # nodes share changes through PostgreSQL
    from fingerplat.repository.engine import create_engine

    service = FingerplatService(create_engine(url))
    try:
        await service.users.add_user(operator, None, "alice")
        await service.users.set_status(operator, None, "alice", "before the crash")
        token = (await service.credentials.create_token(operator, TokenScope.USER,
                                            username="alice")).secret
    finally:
        await service.engine.dispose()

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    env = node_env(tmp_path, url)
    node_b = await nodes(env, *PORTS_ZERO)
    node_a = await nodes({**env, "PYTHONPATH": str(hook)}, *PORTS_ZERO)
    for _ in range(3):  # B now answers alice from its read cache
        assert "Status: before the crash" in await finger(*node_b.address("finger"), "alice")

    setter = await SetterClient.connect(node_a.address("setter"))
    assert (await setter.ask(f"AUTH {token}")).startswith("+OK")
    setter.writer.write(b"SET alice after the crash\r\n")
    await setter.writer.drain()
    assert await node_a.wait(20) == -signal.SIGKILL  # died right after its commit
    setter.close()

    deadline = time.monotonic() + 10
    while True:
        answer = await finger(*node_b.address("finger"), "alice")
        if "Status: after the crash" in answer:
            break
        assert time.monotonic() < deadline, (
            f"node B still answers from a stale cache after A's commit: {answer!r}")
        await asyncio.sleep(0.05)
    assert await node_b.stop() == 0
