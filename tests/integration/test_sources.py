"""Sources run by ``serve``: a users file and a web status server (a local aiohttp app).

Both databases. The runner runs its loops in the background; the tests poll
the database with a bounded wait, as a user watching finger would.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from fingerplat.adapters.sources.runner import SourceRunner, start_sources
from fingerplat.config import SourceConfig
from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import AuditQuery, Context
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService
from tests.support.finger_client import finger_at
from tests.support.polling import until
from tests.support.runtime import StartNode


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def failed_syncs(metrics: Metrics) -> float:
    """Source syncs that failed so far, as /metrics counts them (every kind of error)."""
    metrics.render()
    return sum(sample.value for family in metrics.registry.collect()
               for sample in family.samples
               if sample.name == "fingerplat_errors_total"
               and sample.labels.get("adapter") == "source")


async def status_of(service: FingerplatService, operator: Context, name: str) -> str | None:
    try:
        return (await service.users.get_user(operator, None, name)).status
    except Exception:
        return "<missing>"


@pytest.fixture
async def runners() -> AsyncIterator[list[SourceRunner]]:
    started: list[SourceRunner] = []
    yield started
    for runner in started:
        await runner.close()
        await runner.drain(5)


async def test_users_file_source_follows_the_file(
    service: FingerplatService, operator: Context, tmp_path: Path, runners: list[SourceRunner]
) -> None:
    path = tmp_path / "users"
    path.write_text("alice: first\nbob: here\n")
    config = SourceConfig(kind="users-file", path=str(path), interval=0.1)
    metrics = Metrics()
    runner = await start_sources(service, [config], metrics=metrics)
    runners.append(runner)
    assert runner.addresses == [f"users-file {path} -> default every 0.1s"]

    async def alice_is(text: str) -> bool:
        return await status_of(service, operator, "alice") == text

    await eventually(lambda: alice_is("first"))
    path.write_text("alice: second\nbob: here\nnew guy: x\n")
    os.utime(path, ns=(1, 1))  # force a different mtime even on coarse clocks
    await eventually(lambda: alice_is("second"))
    assert await status_of(service, operator, "bob") == "here"

    # The file disappearing is logged and retried; nothing changes meanwhile.
    failed_before = failed_syncs(metrics)
    path.unlink()
    await until(lambda: failed_syncs(metrics) >= failed_before + 2,
                "two syncs failed on the missing file")
    assert await status_of(service, operator, "alice") == "second"
    path.write_text("alice: third\n")
    await eventually(lambda: alice_is("third"))

    history = await service.users.history(operator, None, "alice")
    assert [(h.text, h.actor, h.channel) for h in history] == [
        ("third", "source:users-file", "import"),
        ("second", "source:users-file", "import"),
        ("first", "source:users-file", "import"),
    ]
    # bob was never re-written: one history row, and the unchanged re-reads audited nothing.
    assert len(await service.users.history(operator, None, "bob")) == 1
    audit = await service.audit.audit_log(operator, AuditQuery(username="bob", limit=10))
    assert [e.action for e in audit] == ["import.create"]


@pytest.fixture
async def status_server() -> AsyncIterator[tuple[str, dict[str, object]]]:
    """A status web site: answers come from a dict the test changes as it goes."""
    answers: dict[str, object] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        value = answers.get(request.match_info["user"])
        if value is None:
            return web.Response(status=404)
        if isinstance(value, int):
            return web.Response(status=value)
        if isinstance(value, dict):
            return web.json_response(value)
        if value == "SLOW":
            await asyncio.sleep(5)  # far past the source's timeout
        return web.Response(text=str(value))

    app = web.Application()
    app.router.add_get("/status/{user}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/status/{{user}}", answers
    finally:
        await runner.cleanup()


async def test_web_source_fetches_statuses_and_keeps_them_on_failure(
    service: FingerplatService, operator: Context,
    status_server: tuple[str, dict[str, object]],
) -> None:
    url, answers = status_server
    for name in ("alice", "bob", "carol", "dave", "erin"):
        await service.users.add_user(operator, None, name)
    await service.users.set_status(operator, None, "dave", "old dave")
    await service.users.set_status(operator, None, "erin", "old erin")
    answers.update({
        "alice": "in a meeting\nsecond line ignored",
        "bob": {"status": "from json"},
        "carol": "x" * 1000,             # cut to the 280-character limit
        "dave": 500,                     # failure: keeps "old dave"
        "erin": "SLOW",                  # timeout: keeps "old erin"
    })
    config = SourceConfig(kind="web", url=url, interval=60, timeout=0.5, cache_ttl=0.01)
    runner = SourceRunner(service, [config], metrics=Metrics())
    try:
        [report] = await asyncio.wait_for(runner.sync_once(), 20)
        assert report is not None
        assert (report.updated, report.unchanged, report.rejected) == (3, 0, [])
        assert await status_of(service, operator, "alice") == "in a meeting"
        assert await status_of(service, operator, "bob") == "from json"
        assert await status_of(service, operator, "carol") == "x" * 280
        assert await status_of(service, operator, "dave") == "old dave"
        assert await status_of(service, operator, "erin") == "old erin"

        # 404 clears; an escape sequence from the web is refused by the status rule.
        del answers["alice"]
        answers["bob"] = "evil \x1b[2J"
        answers["erin"] = "back"
        await asyncio.sleep(0.05)  # past the cache TTL
        [report] = await asyncio.wait_for(runner.sync_once(), 20)
        assert report is not None
        assert await status_of(service, operator, "alice") is None
        assert await status_of(service, operator, "bob") == "from json"
        assert await status_of(service, operator, "erin") == "back"
        assert [r.username for r in report.rejected] == ["bob"]
        assert "control characters" in report.rejected[0].reason
        history = await service.users.history(operator, None, "erin")
        assert (history[0].actor, history[0].channel) == ("source:web", "import")
    finally:
        await runner.drain(5)


async def test_web_source_cache_avoids_refetching(
    service: FingerplatService, operator: Context,
    status_server: tuple[str, dict[str, object]],
) -> None:
    url, answers = status_server
    await service.users.add_user(operator, None, "alice")
    answers["alice"] = "cached"
    config = SourceConfig(kind="web", url=url, interval=60, timeout=2, cache_ttl=3600)
    runner = SourceRunner(service, [config], metrics=Metrics())
    try:
        await asyncio.wait_for(runner.sync_once(), 20)
        answers["alice"] = "changed on the web"
        await asyncio.wait_for(runner.sync_once(), 20)
        assert await status_of(service, operator, "alice") == "cached"
    finally:
        await runner.drain(5)


async def test_a_broken_source_does_not_stop_the_others(
    service: FingerplatService, operator: Context, tmp_path: Path, runners: list[SourceRunner]
) -> None:
    good = tmp_path / "good"
    good.write_text("alice: fine\n")
    broken = SourceConfig(kind="users-file", path=str(tmp_path / "missing"), interval=0.1)
    wrong_tenant = SourceConfig(kind="users-file", path=str(good), tenant="nope", interval=0.1)
    working = SourceConfig(kind="users-file", path=str(good), interval=0.1)
    runner = await start_sources(service, [broken, wrong_tenant, working], metrics=Metrics())
    runners.append(runner)

    async def alice_fine() -> bool:
        return await status_of(service, operator, "alice") == "fine"

    await eventually(alice_fine)
    assert all(not task.done() for task in runner._tasks)  # the failing loops keep going


async def test_web_source_limits_concurrency_and_survives_a_dead_server(
    service: FingerplatService, operator: Context,
) -> None:
    names = [f"user{i:02d}" for i in range(30)]
    await service.imports.import_records(operator, None, [
        ImportRecord(i, name, status="before") for i, name in enumerate(names, start=1)])
    in_flight = 0
    peak = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.Response(text=f"hello {request.match_info['user']}")

    app = web.Application()
    app.router.add_get("/{user}", handle)
    app_runner = web.AppRunner(app, shutdown_timeout=0.5)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = SourceConfig(kind="web", url=f"http://127.0.0.1:{port}/{{user}}", interval=60,
                          timeout=2, cache_ttl=0.01)
    runner = SourceRunner(service, [config], metrics=Metrics())
    try:
        [report] = await asyncio.wait_for(runner.sync_once(), 30)
        assert report is not None and report.updated == 30
        assert 1 < peak <= 8
        assert await status_of(service, operator, "user07") == "hello user07"
        await app_runner.cleanup()  # the status server goes away
        await asyncio.sleep(0.05)
        [report] = await asyncio.wait_for(runner.sync_once(), 30)
        assert report is not None and report.total == 0
        assert await status_of(service, operator, "user07") == "hello user07"
    finally:
        await runner.drain(5)
        await app_runner.cleanup()


async def test_passwd_source_in_the_runner(
    service: FingerplatService, operator: Context, tmp_path: Path
) -> None:
    import pwd
    import subprocess
    import uuid

    name = f"fps{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-c", "Grace Hopper,,,", name],
                   check=True, capture_output=True)
    try:
        entry = pwd.getpwnam(name)
        plan = Path(entry.pw_dir) / ".plan"
        plan.write_text("Find the bug.\n")
        os.chown(plan, entry.pw_uid, entry.pw_gid)
        runner = SourceRunner(service, [SourceConfig(kind="passwd", interval=60)],
                              metrics=Metrics())
        assert runner.addresses == ["passwd -> default every 60s"]
        [report] = await asyncio.wait_for(runner.sync_once(), 30)
        assert report is not None and report.created >= 1
        user = await service.users.get_user(operator, None, name)
        assert (user.full_name, user.plan) == ("Grace Hopper", "Find the bug.")
        # Again: nothing written for this account (other tests may add OS users
        # meanwhile, so the counts are not compared; the audit trail is).
        await asyncio.wait_for(runner.sync_once(), 30)
        audit = await service.audit.audit_log(operator, AuditQuery(username=name, limit=10))
        assert [(e.action, e.actor, e.channel) for e in audit] == [
            ("import.create", "source:passwd", "import")]
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True)


async def test_serve_runs_a_users_file_source(
    database_url: str, tmp_path: Path, runtime_nodes: StartNode
) -> None:
    """[[source]] in the configuration: serve's runtime says so and runs it."""
    users = tmp_path / "users"
    users.write_text("alice: synced by serve\n")
    node = await runtime_nodes(
        database_url, setter={"listen": []}, web={"listen": []},
        source=[{"kind": "users-file", "path": str(users), "interval": 0.2}])
    assert f"sources listening on users-file {users} -> default every 0.2s" in node.lines

    async def answered() -> bool:
        return "synced by serve" in await finger_at(node.address("finger"), "alice")

    await until(answered, "finger answers the synced status", timeout=15)
