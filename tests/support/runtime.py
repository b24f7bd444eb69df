"""``serve``'s runtime in the test's process: the listeners a configuration names.

What a real ``fingerplat serve`` does between reading its configuration and
its signals (database check, change events, listeners, background tasks) is
:class:`~fingerplat.server.runtime.Runtime`; a test that needs no process of
its own (no signal, exit code, worker or output of the command) starts it here,
every listener on a free port of 127.0.0.1 unless the settings say otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from fingerplat.config import Config
from fingerplat.server.runtime import Runtime
from fingerplat.service import FingerplatService

PORT_ZERO = {"listen": ["127.0.0.1:0"]}


@dataclass
class Node:
    """A started runtime and the lines it announced (``finger listening on ...``)."""

    runtime: Runtime
    lines: list[str] = field(default_factory=list)

    @property
    def service(self) -> FingerplatService:
        assert self.runtime.service is not None
        return self.runtime.service

    def address(self, kind: str) -> tuple[str, int]:
        """Where the ``kind`` listener (finger, setter, web) accepts connections."""
        listener = next(lst for lst in self.runtime.listeners if lst.name == kind)
        address = listener.addresses[0].split(" ")[0].split("://")[-1]
        host, port = address.rsplit(":", 1)
        return host.strip("[]"), int(port)

    def url(self) -> str:
        return "http://{}:{}".format(*self.address("web"))


StartNode = Callable[..., Awaitable[Node]]


async def start_node(database_url: str, **sections: Any) -> Node:
    """A runtime on ``database_url``.

    ``sections`` add to the ``[finger]``, ``[web]``... tables; a list (``source``,
    ``irc``) is the array of tables.
    """
    settings: dict[str, Any] = {kind: dict(PORT_ZERO) for kind in ("finger", "setter", "web")}
    for name, values in sections.items():
        settings[name] = {**settings.get(name, {}), **values} if isinstance(values, dict) \
            else values
    lines: list[str] = []
    node = Node(Runtime(Config.model_validate(settings), database_url, announce=lines.append),
                lines)
    await node.runtime.start()
    return node


@pytest.fixture
async def runtime_nodes() -> AsyncIterator[StartNode]:
    """``await runtime_nodes(database_url, finger={...})``: stopped at the end of the test."""
    started: list[Node] = []

    async def start(database_url: str, **sections: Any) -> Node:
        node = await start_node(database_url, **sections)
        started.append(node)
        return node

    yield start
    for node in started:
        await node.runtime.stop()
