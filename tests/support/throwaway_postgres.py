"""A PostgreSQL cluster of the test's own, which the test may stop and start.

Fault tests must never stop the shared server on 5432, so they run a cluster
of their own (tests/support/local_postgres.py), with stop and start.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_postgres import LocalPostgres, free_port


class ThrowawayCluster:
    def __init__(self) -> None:
        self._local = LocalPostgres("fingerplat-faults-")
        self.base = self._local.base
        self.data = self.base / "data"
        self.port = free_port()
        self._local.initdb(self.data)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._local.start(self.data, self.port, "log", "-c fsync=off")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (clients see their connections drop)."""
        self._local.stop(self.data, mode)

    def destroy(self) -> None:
        self._local.remove(self.data)


@pytest.fixture(name="throwaway_postgres")
def throwaway_postgres_fixture() -> Iterator[ThrowawayCluster]:
    """A started cluster; import ``throwaway_postgres_fixture`` to use ``throwaway_postgres``."""
    cluster = ThrowawayCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
