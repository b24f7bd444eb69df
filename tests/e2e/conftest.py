"""Running the real installed ``fingerplat`` command, as a user would.

Every helper starts a separate process of the console script (not click's
CliRunner), with its own environment: the test's database URL, a private
``XDG_DATA_HOME`` so the embedded default never touches the real home, and no
inherited ``FINGERPLAT_*`` settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fingerplat.service import FingerplatService
from fingerplat.service.event_bridge import send_to_nodes

CLI_TIMEOUT = 60.0
SERVE_START_TIMEOUT = 30.0


def fingerplat_executable() -> str:
    beside = Path(sys.executable).parent / "fingerplat"
    if beside.exists():
        return str(beside)
    found = shutil.which("fingerplat")
    if found is None:
        raise RuntimeError("the fingerplat command is not installed (pip install -e .)")
    return found


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (f"Result(fingerplat {' '.join(self.args)!r} -> {self.returncode}, "
                f"stdout={self.stdout!r}, stderr={self.stderr!r})")


@dataclass
class Fingerplat:
    """Runs ``fingerplat ARGS`` with a fixed environment."""

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, input: str | None = None, ok: bool | None = None,
                 env: dict[str, str] | None = None, traceback: bool = False) -> Result:
        """Run the command; ``ok=True`` asserts exit 0, ``ok=False`` asserts failure."""
        completed = subprocess.run(
            [fingerplat_executable(), *args],
            input=input if input is not None else "",
            capture_output=True, text=True, timeout=CLI_TIMEOUT,
            env={**self.env, **(env or {})}, cwd=self.cwd,
        )
        result = Result(args, completed.returncode, completed.stdout, completed.stderr)
        if not traceback:  # only --debug may show one
            assert "Traceback" not in result.stderr, result
        if ok is True:
            assert result.returncode == 0, result
        elif ok is False:
            assert result.returncode != 0, result
        return result


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGERPLAT_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    env.pop("PYTHONUNBUFFERED", None)  # serve must flush by itself when stdout is a pipe
    # Let Python cache bytecode of our own modules: ~0.2 s less per process started.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@pytest.fixture
def notifying_service(service: FingerplatService) -> Iterator[FingerplatService]:
    """The test's service, telling running ``serve`` processes of its changes as the CLI does.

    (A node caches public reads and learns of a change on PostgreSQL only
    through its NOTIFY; on SQLite it watches the file.)
    """
    stop = send_to_nodes(service.engine, service.events)
    yield service
    if stop is not None:
        stop()


@pytest.fixture
def bare_cli(tmp_path: Path) -> Fingerplat:
    """The command with no database configured: the embedded SQLite default applies."""
    return Fingerplat(base_env(tmp_path), tmp_path)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Fingerplat:
    """The command on this test's fresh, migrated database (SQLite and PostgreSQL)."""
    return Fingerplat({**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": database_url}, tmp_path)


def one_error_line(result: Result) -> str:
    """A user error: non-zero exit, exactly one line on stderr, nothing on stdout."""
    assert result.returncode != 0, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("fingerplat: "), result
    assert "Traceback" not in result.stderr
    return lines[0]


# -- fingerplat serve -----------------------------------------------------------

LISTEN_RE = re.compile(r"^(finger|setter|web) listening on (?:https?://)?(.+):(\d+)$")


@dataclass
class Server:
    """A running ``fingerplat serve`` and what it printed."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    addresses: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def address(self, kind: str) -> tuple[str, int]:
        return self.addresses[kind][0]

    async def stop(self, timeout: float = 20.0) -> tuple[int, str, str]:
        """SIGTERM, then the exit code, the rest of stdout and all of stderr."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        return self.process.returncode or 0, out.decode(), err.decode()


async def start_serve(env: dict[str, str], *args: str) -> Server:
    """Start ``fingerplat serve ARGS`` and read its output up to ``ready``.

    Raises AssertionError (with stderr) if it exits or does not get ready in time.
    """
    process = await asyncio.create_subprocess_exec(
        fingerplat_executable(), "serve", *args, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Server(process)
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVE_START_TIMEOUT
    while True:
        remaining = deadline - loop.time()
        try:
            raw = await asyncio.wait_for(process.stdout.readline(), max(remaining, 0.01))
        except TimeoutError:
            process.kill()
            _, err = await process.communicate()
            raise AssertionError(f"serve not ready in time; output {server.lines}, "
                                 f"stderr {err.decode()!r}") from None
        if not raw:
            _, err = await asyncio.wait_for(process.communicate(), 10)
            raise AssertionError(f"serve exited with {process.returncode}; output "
                                 f"{server.lines}; stderr {err.decode()!r}")
        line = raw.decode().rstrip("\n")
        server.lines.append(line)
        match = LISTEN_RE.match(line)
        if match:
            host = match.group(2).strip("[]")
            server.addresses.setdefault(match.group(1), []).append((host, int(match.group(3))))
        if line == "ready":
            return server


async def run_serve_to_exit(env: dict[str, str], *args: str,
                            timeout: float = 30.0) -> tuple[int, str, str]:
    """Run ``fingerplat serve`` that is expected to fail at start."""
    process = await asyncio.create_subprocess_exec(
        fingerplat_executable(), "serve", *args, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise AssertionError("serve did not exit on a start-up error") from None
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def serve_factory() -> AsyncIterator[Callable[..., object]]:
    """Start servers that are always stopped at the end of the test."""
    started: list[Server] = []

    async def factory(env: dict[str, str], *args: str) -> Server:
        server = await start_serve(env, *args)
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.process.returncode is None:
            server.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.process.communicate(), 10)


async def finger(host: str, port: int, query: str, timeout: float = 10.0) -> str:
    """One finger query over a real socket; the whole answer as text."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(query.encode() + b"\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return data.decode("utf-8", "replace")
