"""The UNIX-socket setter with peer credentials, driven by a real second OS user.

The test suite runs as root (the README's test command does): it creates a
throwaway account with ``useradd``, runs a small client as that account with
``runuser``, and removes the account afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fingerplat.adapters.setter.unix import UnixSetterServer, start_unix_setter
from fingerplat.config import SetterConfig
from fingerplat.domain.errors import InvalidInput, NotFound
from fingerplat.domain.model import AuditQuery, Context
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

TIMEOUT = 10.0

CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall("".join(line + "\\r\\n" for line in sys.argv[2:]).encode())
s.shutdown(socket.SHUT_WR)
out = b""
while chunk := s.recv(65536):
    out += chunk
sys.stdout.write(out.decode())
"""


def _python_for(user: str) -> str:
    """A Python interpreter the other account may execute (ours may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        if candidate and subprocess.run(
            ["runuser", "-u", user, "--", candidate, "-c", "pass"], capture_output=True,
            check=False,
        ).returncode == 0:
            return candidate
    raise RuntimeError(f"no Python interpreter that user {user} may run")


@pytest.fixture(scope="module")
def os_user() -> Iterator[tuple[str, str]]:
    """A real local account (name, python it can run); removed after the module."""
    assert os.geteuid() == 0, "these tests create an OS user and must run as root"
    name = f"fpt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name, _python_for(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A directory the other account can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="fp-setter-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def unix_setter(service: FingerplatService, operator: Context, socket_dir: Path,
                      os_user: tuple[str, str]) -> AsyncIterator[UnixSetterServer]:
    await service.users.add_user(operator, None, os_user[0])
    await service.users.add_user(operator, None, "alice")
    server = await start_unix_setter(service, str(socket_dir / "setter.sock"), tenant="default",
                                     settings=SetterConfig(idle_timeout=5), metrics=Metrics())
    try:
        yield server
    finally:
        await server.close()
        await server.drain(1)


async def as_user(os_user: tuple[str, str], path: str, *lines: str) -> list[str]:
    """Run the client as the other OS user; the reply lines it received."""
    name, python = os_user
    proc = await asyncio.create_subprocess_exec(
        "runuser", "-u", name, "--", python, "-c", CLIENT, path, *lines,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, err.decode()
    assert out.endswith(b"\r\n") or out == b""
    return out.decode().split("\r\n")[:-1]


async def as_root(path: str, *lines: str) -> list[str]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write("".join(line + "\r\n" for line in lines).encode())
    writer.write_eof()
    out = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return out.decode().split("\r\n")[:-1]


async def status_of(service: FingerplatService, name: str) -> str | None:
    user = await service.public.public_user(await service.public.resolve_tenant(None), name)
    assert user is not None
    return user.status


async def test_local_user_sets_own_status_but_not_anothers(
    unix_setter: UnixSetterServer, service: FingerplatService, operator: Context,
    os_user: tuple[str, str],
) -> None:
    name = os_user[0]
    path = unix_setter.path
    # The tutorial's bare form: user name, then status.
    assert await as_user(os_user, path, name, "compiling") == [f"+OK status of {name} set"]
    assert await status_of(service, name) == "compiling"
    # The commands work without AUTH, for oneself only.
    assert await as_user(os_user, path, f"SET {name} testing", f"CLEAR {name}") == [
        f"+OK status of {name} set", f"+OK status of {name} cleared"]
    refused = await as_user(os_user, path, "SET alice hijacked")
    assert refused == [f"-ERR unix:{name} may not change the status of alice"]
    bare_refused = await as_user(os_user, path, "alice", "hijacked")
    assert bare_refused == [f"-ERR unix:{name} may not change the status of alice"]
    assert await status_of(service, "alice") is None

    events = await service.audit.audit_log(operator, AuditQuery(limit=20))
    mine = [(e.action, e.actor, e.channel, e.outcome, e.target) for e in events]
    assert ("status.set", f"unix:{name}", "setter", "ok", f"{name}@default") in mine
    assert ("status.set", f"unix:{name}", "setter", "denied", "alice@default") in mine
    assert all(e.remote_addr and e.remote_addr.startswith("unix:pid=") for e in events
               if e.actor == f"unix:{name}")


async def test_root_may_set_anyone_in_the_tenant(
    unix_setter: UnixSetterServer, service: FingerplatService, os_user: tuple[str, str]
) -> None:
    name = os_user[0]
    assert await as_root(unix_setter.path, "SET alice in a meeting") == [
        "+OK status of alice set"]
    assert await as_root(unix_setter.path, name, "on leave") == [f"+OK status of {name} set"]
    assert await status_of(service, "alice") == "in a meeting"
    assert await status_of(service, name) == "on leave"


async def test_local_user_without_an_account_is_refused_and_audited(
    service: FingerplatService, operator: Context, socket_dir: Path, os_user: tuple[str, str]
) -> None:
    await service.tenants.create_tenant(operator, "acme", name="Acme")
    await service.users.add_user(operator, "acme", "wile")
    server = await start_unix_setter(service, str(socket_dir / "acme.sock"), tenant="acme",
                                     settings=SetterConfig(), metrics=Metrics())
    try:
        replies = await as_user(os_user, server.path, f"SET {os_user[0]} hi", "QUIT")
        assert replies[0] == (f"-ERR local user '{os_user[0]}' has no account in tenant 'acme'; "
                              "ask an admin to add you, or AUTH <token>")
        assert replies[1] == "+OK bye"
    finally:
        await server.close()
    events = await service.audit.audit_log(operator, AuditQuery(tenant="acme", limit=10))
    assert any(e.action == "auth.local" and e.outcome == "denied" and e.channel == "setter"
               and e.actor == f"unix:{os_user[0]}" for e in events)


async def test_socket_file_mode_address_and_cleanup(
    unix_setter: UnixSetterServer, socket_dir: Path
) -> None:
    path = socket_dir / "setter.sock"
    assert unix_setter.name == "setter-unix"
    assert unix_setter.addresses == [f"unix:{path}"]
    mode = os.lstat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o666
    await unix_setter.close()
    assert not path.exists()


async def test_stale_socket_is_replaced_but_live_or_foreign_files_are_not(
    service: FingerplatService, socket_dir: Path
) -> None:
    stale = socket_dir / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(stale))
    leftover.close()  # a file with nobody listening, like after a crash
    server = await start_unix_setter(service, str(stale), tenant="default",
                                     settings=SetterConfig(), metrics=Metrics())
    try:
        with pytest.raises(InvalidInput, match="in use by another running server"):
            await start_unix_setter(service, str(stale), tenant="default",
                                    settings=SetterConfig(), metrics=Metrics())
        assert await as_root(str(stale), "QUIT") == ["+OK bye"]
    finally:
        await server.close()
    regular = socket_dir / "not-a-socket"
    regular.write_text("precious")
    with pytest.raises(InvalidInput, match="exists and is not a socket"):
        await start_unix_setter(service, str(regular), tenant="default",
                                settings=SetterConfig(), metrics=Metrics())
    assert regular.read_text() == "precious"
    with pytest.raises(InvalidInput, match="does the directory exist"):
        await start_unix_setter(service, str(socket_dir / "missing" / "s.sock"),
                                tenant="default", settings=SetterConfig(), metrics=Metrics())
    with pytest.raises(NotFound, match="no such tenant"):
        await start_unix_setter(service, str(socket_dir / "t.sock"), tenant="nope",
                                settings=SetterConfig(), metrics=Metrics())


async def test_an_open_local_session_ends_when_its_tenant_goes(
    service: FingerplatService, operator: Context, socket_dir: Path
) -> None:
    """Credentials are checked on every command: unix:root is an admin of a tenant *id*."""
    await service.tenants.create_tenant(operator, "acme", name="Acme")
    await service.users.add_user(operator, "acme", "wile")
    server = await start_unix_setter(service, str(socket_dir / "acme.sock"), tenant="acme",
                                     settings=SetterConfig(), metrics=Metrics())
    reader, writer = await asyncio.open_unix_connection(server.path)

    async def ask(line: str) -> str:
        writer.write(line.encode() + b"\r\n")
        return (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().rstrip("\r\n")

    try:
        assert await ask("SET wile before") == "+OK status of wile set"
        # The tenant is removed and a new one made under the same slug.
        await service.tenants.remove_tenant(operator, "acme")
        await service.tenants.create_tenant(operator, "acme", name="Other Acme")
        await service.users.add_user(operator, "acme", "wile")
        reply = await ask("SET wile after")
        assert reply.startswith("-ERR tenant removed since this session authenticated"), reply
    finally:
        writer.close()
        await server.close()
    user = await service.public.public_user(await service.public.resolve_tenant("acme"), "wile")
    assert user is not None and user.status is None
