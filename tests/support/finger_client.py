"""One finger query over a real socket, to an in-process listener or an address."""

from __future__ import annotations

import asyncio

from fingerplat.adapters.finger.server import FingerServer

TIMEOUT = 10.0


def listening_on(server: FingerServer, index: int = 0) -> tuple[str, int]:
    """The host and port of the listener's ``index``-th address (IPv6 without brackets)."""
    host, port = server.addresses[index].split(" ")[0].rsplit(":", 1)
    return host.strip("[]"), int(port)


async def finger_at(address: tuple[str, int], query: str, *, source: str | None = None,
                    timeout: float = TIMEOUT) -> str:
    """The whole answer to ``query`` at ``address``, asked from ``source`` if given."""
    local = (source, 0) if source else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(*address, local_addr=local), timeout)
    try:
        writer.write(query.encode() + b"\r\n")
        return (await asyncio.wait_for(reader.read(), timeout)).decode()
    finally:
        writer.close()


async def finger(server: FingerServer, query: str, *, source: str | None = None,
                 index: int = 0, timeout: float = TIMEOUT) -> str:
    """The whole answer of ``server`` (its ``index``-th address) to ``query``."""
    return await finger_at(listening_on(server, index), query, source=source, timeout=timeout)
