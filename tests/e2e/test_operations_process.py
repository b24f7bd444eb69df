"""``serve`` as a daemon: SIGTERM drains, SIGHUP reloads, JSON logs, privilege drop.

Every test runs the real ``fingerplat serve`` process on SQLite and on
PostgreSQL. The privilege-drop test needs root (the CI runs as root) and
creates its own unprivileged user and group.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fingerplat.domain.model import Context, TokenScope
from fingerplat.repository import migrations
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.e2e.conftest import base_env, finger, run_serve_to_exit
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    SetterClient,
    node_env,
    nodes_fixture,
    write_config,
)
from tests.support.databases import DatabaseFactory

REMOTE_DELAY = 1.5


@contextlib.asynccontextmanager
async def slow_remote_finger() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A remote finger host (outside our system) that takes its time to answer."""
    asked = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readline(), 5)
            asked.set()
            await asyncio.sleep(REMOTE_DELAY)
            writer.write(b"Login: alice\r\nPlan: answered slowly from far away\r\n")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.2", 0)
    try:
        yield server.sockets[0].getsockname()[1], asked
    finally:
        server.close()


async def _connect_until_refused(address: tuple[str, int], within: float = 3.0) -> None:
    """Raises ConnectionRefusedError once the listener is closed (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        _, writer = await asyncio.open_connection(*address)
        writer.close()
        await asyncio.sleep(0.05)


async def test_sigterm_finishes_in_flight_answers_closes_idle_ones_and_exits_0(
    service: FingerplatService, operator: Context, database_url: str, tmp_path: Path, nodes
):
    await service.users.add_user(operator, None, "alice")
    await service.tenants.update_tenant(operator, "default", forwarding=True)
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    async with slow_remote_finger() as (remote_port, asked):
        config = write_config(tmp_path / "fingerplat.toml", f"""
[forwarding]
port = {remote_port}
allow = ["127.0.0.0/8"]
""")
        node: Node = await nodes(node_env(tmp_path, database_url), "--config", config,
                                 *PORTS_ZERO)
        finger_address = node.address("finger")
        # Idle: a finger client that has not sent its query, a setter session
        # with nothing to do; and one in the middle of a plan that never ends
        # (a started command: cut at the drain deadline, unanswered).
        idle_reader, idle_writer = await asyncio.open_connection(*finger_address)
        idle_setter = await SetterClient.connect(node.address("setter"))
        assert (await idle_setter.ask(f"AUTH {token}")).startswith("+OK")
        planning = await SetterClient.connect(node.address("setter"))
        assert (await planning.ask(f"AUTH {token}")).startswith("+OK")
        planning.send("PLAN alice")  # no reply until the plan's closing "."
        planning.send("half of a plan that is never finished")

        in_flight = asyncio.create_task(finger(*finger_address, "alice@127.0.0.2", timeout=15))
        await asyncio.wait_for(asked.wait(), 10)  # the query is in flight now
        node.process.send_signal(signal.SIGTERM)
        await node.wait_line(lambda line: line.startswith("stopping"), stream="out")
        # No new connections once draining has begun.
        with pytest.raises(ConnectionRefusedError):
            await _connect_until_refused(finger_address)

        answer = await in_flight
        assert "[127.0.0.2] Plan: answered slowly from far away" in answer
        assert await node.wait(20) == 0
    assert "stopping: draining in-flight requests" in node.out
    assert node.out[-1] == "stopped"
    # The idle connections were closed, not left hanging.
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""
    assert await asyncio.wait_for(idle_setter.reader.read(), 5) == b""
    assert b"+OK" not in await asyncio.wait_for(planning.reader.read(), 5)
    idle_writer.close()
    idle_setter.close()
    planning.close()
    user = await service.public.public_user(await service.public.resolve_tenant(None), "alice")
    assert user is not None and not user.plan  # nothing half-written
    assert not [line for line in node.err if "Traceback" in line]


async def test_json_logs_access_log_switch_and_sighup_reload(
    service: FingerplatService, operator: Context, database_url: str, tmp_path: Path, nodes
):
    await service.users.add_user(operator, None, "alice")
    await service.users.set_status(operator, None, "alice", "logged")
    config_path = tmp_path / "fingerplat.toml"
    config = write_config(config_path, "[finger]\naccess_log = true\n[log]\nformat = \"text\"\n")
    # Readiness goes to the socket systemd names (Type=notify).
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    env = {**node_env(tmp_path, database_url), "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    # --log-format wins over the file, now and after every reload.
    node: Node = await nodes(env, "--config", config, "--log-format", "json", *PORTS_ZERO)
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(loop.sock_recv(notify, 256), 5) == b"READY=1"
    assert "alice" in await finger(*node.address("finger"), "alice")
    line = await node.wait_line(lambda line: "fingerplat.finger.access" in line)
    entry = json.loads(line)
    assert entry["logger"] == "fingerplat.finger.access"
    assert entry["level"] == "info"
    assert entry["client"] == "127.0.0.1"
    assert entry["query"] == "alice"
    assert entry["lines"] >= 2
    assert "time" in entry and "message" in entry

    # SIGHUP: the access log goes off live; a listener address needs a restart.
    config_path.write_text("[finger]\naccess_log = false\n[log]\nformat = \"text\"\n"
                           "[web]\nmax_body_bytes = 2048\n")
    mark = len(node.out)
    node.process.send_signal(signal.SIGHUP)
    await node.wait_line(lambda line: line == "reload: applied finger.access_log",
                         stream="out", start=mark)
    await node.wait_line(lambda line: line == "reload: needs a restart to change "
                         "web.max_body_bytes", stream="out", start=mark)
    err_mark = len(node.err)
    assert "Status: logged" in await finger(*node.address("finger"), "alice")
    # A broken file changes nothing and says so; the server keeps running.
    config_path.write_text("[finger]\naccess_log = maybe\n")
    mark = len(node.out)
    node.process.send_signal(signal.SIGHUP)
    refused = await node.wait_line(lambda line: line.startswith("reload refused"),
                                   stream="out", start=mark)
    assert "access_log" in refused and "configuration unchanged" in refused
    assert "alice" in await finger(*node.address("finger"), "alice")

    assert await node.stop() == 0
    assert await asyncio.wait_for(loop.sock_recv(notify, 256), 5) == b"STOPPING=1"
    notify.close()
    later = node.err[err_mark:]
    assert not [line for line in later if "fingerplat.finger.access" in line], later
    for raw in node.err:  # every log line, before and after the reloads, is JSON
        assert isinstance(json.loads(raw), dict), raw


# -- privilege drop ------------------------------------------------------------------

TEST_USER = "fingerplat-ops"
TEST_GROUP = "fingerplat-opsg"


@pytest.fixture(scope="module")
def unprivileged() -> Iterator[tuple[int, int]]:
    """A real unprivileged user and group (created if missing); needs root."""
    assert os.geteuid() == 0, "the privilege-drop tests run as root (as in CI)"
    try:
        grp.getgrnam(TEST_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", TEST_GROUP], check=True)
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", TEST_USER], check=True)
    yield pwd.getpwnam(TEST_USER).pw_uid, grp.getgrnam(TEST_GROUP).gr_gid


def _free_privileged_port() -> int:
    for port in range(700, 1000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 1024")


def _ids(pid: int) -> dict[str, list[int]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
    return fields


async def _prepare(url: str, operator: Context) -> str:
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        service = FingerplatService(engine)
        await service.users.add_user(operator, None, "alice")
        return (await service.credentials.create_token(
            operator, TokenScope.USER, username="alice")).secret
    finally:
        await engine.dispose()


async def test_privileges_are_dropped_after_binding_a_privileged_port(
    backend: str, db_factory: DatabaseFactory, operator: Context, tmp_path: Path,
    unprivileged: tuple[int, int], nodes
):
    uid, gid = unprivileged
    # SQLite: a root-owned directory of the database's own (as /var/lib/fingerplat);
    # serve hands it to the user before dropping, so the user keeps writing it.
    sqlite_dir = Path(tempfile.mkdtemp(prefix="fingerplat-privdrop-"))
    try:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{sqlite_dir / 'fingerplat.db'}"
        else:
            url = await db_factory.make("postgresql")
        token = await _prepare(url, operator)
        port = _free_privileged_port()
        node: Node = await nodes(
            node_env(tmp_path, url), "--user", TEST_USER, "--group", TEST_GROUP,
            "--finger", f"127.0.0.1:{port}", "--setter", "127.0.0.1:0", "--web", "",
        )
        assert node.address("finger") == ("127.0.0.1", port)
        assert f"privileges dropped: uid {uid}, gid {gid}" in node.out
        ids = _ids(node.pid)
        assert ids["Uid"] == [uid] * 4  # real, effective, saved, filesystem
        assert ids["Gid"] == [gid] * 4
        assert ids["Groups"] == [gid]  # root's supplementary groups are gone

        setter = await SetterClient.connect(node.address("setter"))
        assert (await setter.ask(f"AUTH {token}")).startswith("+OK")
        assert await setter.ask("SET alice dropped") == "+OK status of alice set"
        setter.close()
        assert "Status: dropped" in await finger("127.0.0.1", port, "alice")
        assert await node.stop() == 0
        if backend == "sqlite":
            assert (sqlite_dir / "fingerplat.db").stat().st_uid == uid
            assert sqlite_dir.stat().st_uid == uid
    finally:
        subprocess.run(["rm", "-rf", str(sqlite_dir)], check=False)


async def test_privilege_drop_refuses_a_sqlite_file_in_a_shared_directory(
    unprivileged: tuple[int, int], tmp_path: Path
):
    """A directory holding other files is not given away: one clear error, exit != 0."""
    shared = Path(tempfile.mkdtemp(prefix="fingerplat-shared-"))
    try:
        shared.chmod(0o755)
        (shared / "someone-elses-file").write_text("keep me root's")
        url = f"sqlite+aiosqlite:///{shared / 'fingerplat.db'}"
        env = {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": url}
        code, _, err = await run_serve_to_exit(
            env, "--user", TEST_USER, "--finger", "127.0.0.1:0", "--setter", "", "--web", "")
        assert code == 2, err
        message = [line for line in err.splitlines() if line.startswith("fingerplat: ")]
        assert len(message) == 1, err
        assert f"--user {TEST_USER} cannot write the SQLite database's directory" in message[0]
        assert shared.stat().st_uid == 0 and stat.S_IMODE(shared.stat().st_mode) == 0o755
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)
