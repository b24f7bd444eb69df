"""A stand-in for a remote finger server on the internet (outside our system).

It can answer normally, never answer, or answer too much, and it records the
query lines it received so a test can check what the proxy sent on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class RemoteFinger:
    host: str = "127.0.0.2"
    mode: str = "answer"  # "answer", "silent", "flood"
    answer: bytes = b"Login: alice\r\nStatus: hello from far away\r\n"
    flood_bytes: int = 1024 * 1024
    queries: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            self.queries.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if self.mode == "silent":
                await asyncio.sleep(3600)
            elif self.mode == "flood":
                chunk = b"x" * 99 + b"\n"
                sent = 0
                while sent < self.flood_bytes:
                    writer.write(chunk)
                    sent += len(chunk)
                    await writer.drain()
            else:
                writer.write(self.answer)
                await writer.drain()
        except (OSError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def start(self) -> RemoteFinger:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)


@contextlib.asynccontextmanager
async def remote_finger(**kwargs: object) -> AsyncIterator[RemoteFinger]:
    remote = await RemoteFinger(**kwargs).start()  # type: ignore[arg-type]
    try:
        yield remote
    finally:
        await remote.stop()
