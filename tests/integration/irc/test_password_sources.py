"""Issue 12 item 15: the IRC server password no longer has to sit in the TOML file.

``[[irc]] password_file`` and ``password_env`` are read by a real ``fingerplat
serve`` at start and again on SIGHUP; what reaches the IRC server is checked
on a listener that records the lines a client sends (``PASS`` comes first).
A missing file or variable is one clear error naming the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import base_env, run_serve_to_exit, start_serve

DEADLINE = 30.0


class RecordingIrcServer:
    """Accepts IRC clients and records their lines; never completes a registration."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                self.lines.append(line.decode(errors="replace").rstrip("\r\n"))

    def drop_clients(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def wait_for(self, predicate: Callable[[str], bool], start: int = 0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while loop.time() < deadline:
            for line in self.lines[start:]:
                if predicate(line):
                    return line
            await asyncio.sleep(0.05)
        raise AssertionError(f"no such line; got {self.lines}")

    async def close(self) -> None:
        self.drop_clients()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def irc_server() -> AsyncIterator[RecordingIrcServer]:
    server = RecordingIrcServer()
    yield server
    await server.close()


def config_text(port: int, password_line: str) -> str:
    return (
        '[finger]\nlisten = ["127.0.0.1:0"]\n[setter]\nlisten = []\n[web]\nlisten = []\n'
        f'[[irc]]\nserver = "127.0.0.1"\nport = {port}\ntls = false\nnick = "fingerbot"\n'
        f"{password_line}\n"
    )


async def test_password_file_is_read_at_start_and_on_reload(
    database_url: str, tmp_path: Path, irc_server: RecordingIrcServer
) -> None:
    port = await irc_server.start()
    secret = tmp_path / "irc.pass"
    secret.write_text("first-secret\n")
    secret.chmod(0o600)
    config = tmp_path / "fingerplat.toml"
    config.write_text(config_text(port, f'password_file = "{secret}"'))
    env = {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": database_url}
    server = await start_serve(env, "--config", str(config))
    try:
        await irc_server.wait_for(lambda line: line == "PASS first-secret")
        assert "first-secret" not in "\n".join(server.lines)
        # Rotated: SIGHUP reads the file again; the next connection uses it.
        secret.write_text("second-secret\n")
        server.process.send_signal(signal.SIGHUP)
        assert server.process.stdout is not None
        line = await asyncio.wait_for(server.process.stdout.readline(), DEADLINE)
        assert line.decode().startswith("reload:"), line
        mark = len(irc_server.lines)
        irc_server.drop_clients()
        await irc_server.wait_for(lambda line: line == "PASS second-secret", start=mark)
        # Gone: the reload is refused, naming the key; the server keeps running.
        secret.unlink()
        server.process.send_signal(signal.SIGHUP)
        line = await asyncio.wait_for(server.process.stdout.readline(), DEADLINE)
        text = line.decode()
        assert text.startswith("reload refused"), text
        assert "irc.0" in text and "password_file" in text and "does not exist" in text
    finally:
        code, _out, err = await server.stop()
    assert code == 0 and "Traceback" not in err, err


async def test_password_env_is_read_from_the_environment(
    database_url: str, tmp_path: Path, irc_server: RecordingIrcServer
) -> None:
    port = await irc_server.start()
    config = tmp_path / "fingerplat.toml"
    config.write_text(config_text(port, 'password_env = "FINGERPLAT_IRC_PASSWORD"'))
    env = {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": database_url,
           "FINGERPLAT_IRC_PASSWORD": "from-the-env"}
    server = await start_serve(env, "--config", str(config))
    try:
        await irc_server.wait_for(lambda line: line == "PASS from-the-env")
    finally:
        code, _out, err = await server.stop()
    assert code == 0 and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("password_line", "words"),
    [
        ('password_file = "/nonexistent/irc.pass"',
         "password_file /nonexistent/irc.pass does not exist"),
        ('password_env = "FINGERPLAT_TEST_UNSET_PASSWORD"',
         "password_env: the environment variable FINGERPLAT_TEST_UNSET_PASSWORD is not set"),
        ('password = "a"\npassword_env = "FINGERPLAT_IRC_PASSWORD"',
         "give only one of password, password_file and password_env"),
    ],
    ids=["missing-file", "unset-variable", "two-sources"],
)
async def test_a_missing_secret_is_one_error_naming_the_key(
    database_url: str, tmp_path: Path, password_line: str, words: str
) -> None:
    config = tmp_path / "fingerplat.toml"
    config.write_text(config_text(6667, password_line))
    env = {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": database_url,
           "FINGERPLAT_IRC_PASSWORD": "x"}
    env.pop("FINGERPLAT_TEST_UNSET_PASSWORD", None)
    code, _out, err = await run_serve_to_exit(env, "--config", str(config))
    assert code != 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("fingerplat: ")]
    assert len(errors) == 1, err
    assert "'irc.0'" in errors[0] and words in errors[0], errors[0]
