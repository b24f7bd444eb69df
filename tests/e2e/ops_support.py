"""Helpers for the operations tests: ``serve`` nodes whose logs are read as they come.

A :class:`Node` is a real ``fingerplat serve`` process. Unlike the plain
``Server`` of conftest, both its stdout and its stderr are read continuously
(a server that logs every finger query would otherwise block on a full pipe),
so a test can wait for a log line while the node runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import base_env, start_serve

TIMEOUT = 10.0
PORTS_ZERO = ("--finger", "127.0.0.1:0", "--setter", "127.0.0.1:0", "--web", "127.0.0.1:0")


@dataclass
class Node:
    """A running ``fingerplat serve``: its output lines, its addresses, its pid."""

    process: asyncio.subprocess.Process
    addresses: dict[str, list[tuple[str, int]]]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    def address(self, kind: str) -> tuple[str, int]:
        return self.addresses[kind][0]

    def _follow(self, stream: asyncio.StreamReader | None, into: list[str]) -> None:
        async def read() -> None:
            assert stream is not None
            while raw := await stream.readline():
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._new.set()
        self._tasks.append(asyncio.create_task(read()))

    async def wait_line(self, predicate: Callable[[str], bool], *, stream: str = "err",
                        timeout: float = TIMEOUT, start: int = 0) -> str:
        """The first line (index ``start`` on) of stderr or stdout that matches."""
        lines = self.err if stream == "err" else self.out
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = start
        while True:
            while index < len(lines):
                if predicate(lines[index]):
                    return lines[index]
                index += 1
            remaining = deadline - loop.time()
            if remaining <= 0 or self.process.returncode is not None:
                raise AssertionError(f"no matching {stream} line within {timeout} s; "
                                     f"stdout {self.out[-20:]}, stderr {self.err[-20:]}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), min(remaining, 0.5))

    async def wait(self, timeout: float = 20.0) -> int:
        """The exit code, after the output was read to the end."""
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 5)
        return code

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        with contextlib.suppress(Exception):
            await self.wait(10)


async def start_node(env: dict[str, str], *args: str) -> Node:
    server = await start_serve(env, *args)
    node = Node(server.process, server.addresses, out=list(server.lines))
    node._follow(server.process.stdout, node.out)
    node._follow(server.process.stderr, node.err)
    return node


@pytest.fixture(name="nodes")
async def nodes_fixture() -> AsyncIterator[Callable[..., object]]:
    """``nodes(env, *args)`` starts a node; every node is killed at the end of the test.

    Import ``nodes_fixture`` into a test module to use it.
    """
    started: list[Node] = []

    async def factory(env: dict[str, str], *args: str) -> Node:
        node = await start_node(env, *args)
        started.append(node)
        return node

    yield factory
    for node in started:
        await node.kill()


def node_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": database_url}


def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


class SetterClient:
    """A setter connection: one line out, one reply line in, each wait bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> SetterClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), TIMEOUT)
        return cls(reader, writer)

    def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")

    async def reply(self, timeout: float = TIMEOUT) -> str:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        return line.decode().rstrip("\r\n")

    async def ask(self, line: str, timeout: float = TIMEOUT) -> str:
        self.send(line)
        return await self.reply(timeout)

    def close(self) -> None:
        self.writer.close()
