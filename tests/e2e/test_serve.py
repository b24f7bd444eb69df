"""``fingerplat serve`` as a real process: addresses, answers, SIGTERM, start-up errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from fingerplat.repository.engine import default_sqlite_path
from tests.e2e.conftest import (
    Fingerplat,
    base_env,
    finger,
    run_serve_to_exit,
)
from tests.support.databases import DatabaseFactory

ALL_PORT_ZERO = ("--finger", "127.0.0.1:0", "--setter", "127.0.0.1:0", "--web", "127.0.0.1:0")


async def setter_session(host: str, port: int, commands: list[str],
                         timeout: float = 10.0) -> list[str]:
    """Send setter commands one by one over TCP; the reply line to each."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    replies = []
    try:
        for command in commands:
            writer.write(command.encode() + b"\r\n")
            await writer.drain()
            replies.append((await asyncio.wait_for(reader.readline(), timeout)).decode().strip())
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return replies


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fingerplat: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


async def test_serve_answers_finger_with_the_status_set_by_the_cli(
    cli: Fingerplat, serve_factory, backend: str
):
    cli("user", "add", "alice", "--full-name", "Alice Liddell", ok=True)
    cli("user", "set", "alice", "away", ok=True)

    server = await serve_factory(cli.env, *ALL_PORT_ZERO)
    # Read through a pipe while the server runs: the lines were flushed at once.
    assert set(server.addresses) == {"finger", "setter", "web"}
    assert all(port != 0 for addrs in server.addresses.values() for _, port in addrs)
    if backend == "postgresql":
        url = make_url(cli.env["FINGERPLAT_DATABASE_URL"])
        assert server.lines[0] == (f"database: PostgreSQL {url.username}@{url.host}:{url.port}/"
                                   f"{url.database} (schema current)")
    else:
        assert server.lines[0].startswith("database: SQLite ")

    answer = await finger(*server.address("finger"), "alice")
    assert "alice" in answer and "Alice Liddell" in answer and "away" in answer
    assert answer.endswith("\r\n")

    # The README's tour: the same through the setter with a user token.
    token = cli("token", "create", "--user", "alice", ok=True).stdout.strip()
    replies = await setter_session(*server.address("setter"),
                                   [f"AUTH {token}", "SET alice giving a talk", "QUIT"])
    assert [r[:3] for r in replies] == ["+OK", "+OK", "+OK"], replies
    assert "giving a talk" in await finger(*server.address("finger"), "alice")
    events = json.loads(cli("audit", "--user", "alice", "--action", "status.set", "--json",
                            ok=True).stdout)
    assert [(e["channel"], e["actor"].split(":")[0]) for e in events] == [
        ("setter", "token"), ("cli", "cli")]

    code, rest, err = await server.stop()
    assert code == 0, err
    assert "stopped" in rest.splitlines()
    assert "Traceback" not in err


async def test_serve_creates_the_embedded_default_and_says_where(
    bare_cli: Fingerplat, serve_factory, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_DATA_HOME", bare_cli.env["XDG_DATA_HOME"])
    expected = str(default_sqlite_path())  # where the library says the default lives
    assert expected.startswith(bare_cli.env["XDG_DATA_HOME"])
    assert not Path(expected).exists()
    server = await serve_factory(bare_cli.env, *ALL_PORT_ZERO)
    assert server.lines[0] == f"database: SQLite {expected} (created)"
    assert Path(expected).exists()
    code, _, err = await server.stop()
    assert code == 0, err

    # The CLI uses the same file, silently now that it exists.
    added = bare_cli("user", "add", "alice", ok=True)
    assert added.stderr == ""


async def test_serve_refuses_an_empty_postgresql_schema(db_factory: DatabaseFactory,
                                                        tmp_path: Path):
    url = await db_factory.empty("postgresql")
    env = {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": url}
    code, out, err = await run_serve_to_exit(env, *ALL_PORT_ZERO)
    assert code == 6
    assert "fingerplat db upgrade" in _one_line(err)
    assert "listening" not in out


async def test_serve_start_errors_are_one_line(bare_cli: Fingerplat, tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = await run_serve_to_exit(
            bare_cli.env, "--finger", f"127.0.0.1:{port}", "--setter", "127.0.0.1:0",
            "--web", "127.0.0.1:0")
    assert code == 1  # not "invalid input": the command was right, the port is taken
    assert _one_line(err) == (
        f"fingerplat: finger: cannot listen on 127.0.0.1:{port}: address already in use "
        "(is another server running? choose another address with "
        "`serve --finger HOST:PORT` or [finger] listen in the configuration file)")
    assert "listening" not in out

    config = tmp_path / "serve.toml"
    config.write_text('[finger]\nlisten = [{ address = "127.0.0.1:0", tenant = "nope" }]\n')
    code, out, err = await run_serve_to_exit(
        bare_cli.env, "--config", str(config), "--setter", "127.0.0.1:0", "--web", "127.0.0.1:0")
    assert code == 3
    assert "no such tenant: 'nope'" in _one_line(err)
