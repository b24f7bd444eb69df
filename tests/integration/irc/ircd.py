"""Test helpers: a real ngircd on a free loopback port, and a raw IRC test peer.

ngircd is Debian's IRC server (``apt-get install ngircd``). It runs in the
foreground with a generated minimal config; started as root it switches to
``nobody`` after binding, so everything it reads is read before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Ngircd:
    """One ngircd process; :meth:`restart` brings it back on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    tls_port: int | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        include = self.workdir / "conf.d"
        include.mkdir(exist_ok=True)
        motd = self.workdir / "motd"
        motd.write_text("fingerplat test server\n")
        ssl_section = ""
        if self.tls_port is not None:
            ssl_section = (
                f"[SSL]\nPorts = {self.tls_port}\nCertFile = {self.cert_file}\n"
                f"KeyFile = {self.key_file}\n"
            )
        config = self.workdir / "ngircd.conf"
        config.write_text(
            "[Global]\n"
            "Name = irc.fingerplat.test\n"
            "Info = fingerplat test server\n"
            "AdminInfo1 = tests\nAdminInfo2 = tests\nAdminEMail = tests@localhost\n"
            "Listen = 127.0.0.1\n"
            f"Ports = {self.port}\n"
            f"MotdFile = {motd}\n"
            "ServerUID = 65534\nServerGID = 65534\n"
            f"PidFile = {self.workdir / 'ngircd.pid'}\n"
            "[Limits]\n"
            "MaxNickLength = 9\n"
            "MaxConnectionsIP = 0\n"
            "MaxPenaltyTime = 0\n"  # no artificial delays per command: fast tests
            "PingTimeout = 120\nPongTimeout = 20\n"
            "[Options]\n"
            "DNS = no\nIdent = no\nPAM = no\n"
            f"IncludeDir = {include}\n"
            + ssl_section
        )
        return config

    def start(self, timeout: float = 10.0) -> None:
        config = self.write_config()
        log = open(self.workdir / "ngircd.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [NGIRCD, "--nodaemon", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        for port in ports:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"ngircd exited: {self.log_tail()}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"ngircd did not listen: {self.log_tail()}") from None
                    time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "ngircd.log").read_text(errors="replace")[-2000:]
        return ""


class IrcPeer:
    """A raw-socket IRC client for tests: it records every line it receives."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.lines: list[str] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._new = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int, *, tls: ssl.SSLContext | None = None,
                      timeout: float = 10.0) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls), timeout)
        self._task = asyncio.create_task(self._read())
        await self.send(f"NICK {self.nick}")
        await self.send(f"USER {self.nick} 0 * :test peer")
        await self.wait_for(lambda line: f" 001 {self.nick} " in line, timeout)

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            raw = await self._reader.readline()
            if not raw:
                break
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.startswith("PING"):
                await self.send("PONG" + line[4:])
            async with self._new:
                self.lines.append(line)
                self._new.notify_all()
        async with self._new:
            self.lines.append("<closed>")
            self._new.notify_all()

    async def send(self, line: str) -> None:
        assert self._writer is not None
        self._writer.write(line.encode() + b"\r\n")
        await self._writer.drain()

    async def join(self, channel: str) -> None:
        await self.send(f"JOIN {channel}")
        await self.wait_for(lambda line: f"JOIN :{channel}" in line
                            and line.startswith(f":{self.nick}!"))

    async def privmsg(self, target: str, text: str) -> None:
        await self.send(f"PRIVMSG {target} :{text}")

    async def wait_for(self, predicate, timeout: float = 20.0, start: int = 0) -> str:
        """The first line from index ``start`` on that matches; fails after ``timeout``."""
        async def scan() -> str:
            index = start
            async with self._new:
                while True:
                    while index < len(self.lines):
                        line = self.lines[index]
                        index += 1
                        if predicate(line):
                            return line
                    await self._new.wait()
        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.nick}: no matching line within {timeout} s; got:\n"
                + "\n".join(self.lines[-30:])
            ) from None

    def privmsgs_from(self, nick_prefix: str, start: int = 0) -> list[str]:
        return [line for line in self.lines[start:]
                if line.startswith(f":{nick_prefix}") and " PRIVMSG " in line]

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self.send("QUIT :bye")
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def text_of(line: str) -> str:
    """The trailing parameter of a raw line (the message text of a PRIVMSG)."""
    return line.split(" :", 1)[1] if " :" in line else ""


def ensure_env() -> None:
    if not os.path.exists(NGIRCD):
        raise RuntimeError("ngircd is not installed: apt-get install -y ngircd")
