"""Running the ``[[source]]`` entries inside ``serve``, each on its own interval.

Each source is one background task that syncs, then sleeps ``interval``
seconds, until the server stops. A failing source (a missing file, a database
outage, a status server that is down) is logged and tried again at the next
interval; it never raises into the server and never stops the other sources.
Writes go through the service's import use case as the principal
``source:<kind>`` on the ``import`` channel, so they are audited and kept in
the status history like every other change.

* ``users-file``: re-read only when the file's inode, size or modification
  time changed since the last successful import;
* ``passwd``: the local accounts (see ``passwd.py`` for the rule), every
  interval; unchanged accounts write nothing;
* ``web``: a status for every existing user of the tenant from the URL
  template (see ``web_source.py``); it never creates users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from fingerplat.adapters.periodic import every
from fingerplat.adapters.sources.passwd import read_passwd
from fingerplat.adapters.sources.users_file import file_signature, read_users_file
from fingerplat.adapters.sources.web_source import WebStatusFetcher
from fingerplat.config import SourceConfig
from fingerplat.domain.imports import ImportRecord, ImportReport
from fingerplat.domain.model import Channel, Context, Principal, Role
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.sources")

ADAPTER = "source"
LIST_PAGE = 1000


def source_context(kind: str) -> Context:
    """Sources are configured by the operator and act with the operator's authority."""
    return Context(Principal(Role.PLATFORM_ADMIN, f"source:{kind}"), Channel.IMPORT)


def describe(source: SourceConfig) -> str:
    what = {"users-file": f"users-file {source.path}", "web": f"web {source.url}",
            "passwd": "passwd"}[source.kind]
    return f"{what} -> {source.tenant} every {source.interval:g}s"


class _Sync:
    """One source: ``await sync()`` brings its tenant in line once."""

    def __init__(self, service: FingerplatService, config: SourceConfig) -> None:
        self.service = service
        self.config = config
        self.ctx = source_context(config.kind)
        self._signature: tuple[int, int, int] | None = None
        self._reported: frozenset[tuple[int, str]] = frozenset()
        self.fetcher: WebStatusFetcher | None = None
        if config.kind == "web":
            assert config.url is not None
            ttl = config.cache_ttl if config.cache_ttl is not None else config.interval
            self.fetcher = WebStatusFetcher(config.url, timeout=float(config.timeout),
                                            cache_ttl=float(ttl))

    async def sync(self) -> ImportReport | None:
        kind = self.config.kind
        if kind == "users-file":
            return await self._users_file()
        if kind == "passwd":
            return await self._import(await asyncio.to_thread(read_passwd))
        return await self._web()

    async def _import(self, records: Sequence[ImportRecord], *,
                      create_missing: bool = True) -> ImportReport:
        report = await self.service.imports.import_records(
            self.ctx, self.config.tenant, records, create_missing=create_missing)
        if report.created or report.updated:
            log.info("source %s: %s", describe(self.config), report.summary())
        rejected = frozenset((r.line, r.reason) for r in report.rejected)
        if rejected != self._reported:  # log each set of problems once, not every interval
            for rejection in report.rejected:
                log.warning("source %s: line %d rejected: %s", describe(self.config),
                            rejection.line, rejection.reason)
            self._reported = rejected
        return report

    async def _users_file(self) -> ImportReport | None:
        assert self.config.path is not None
        signature = file_signature(self.config.path)
        if signature is not None and signature == self._signature:
            return None
        records = await asyncio.to_thread(read_users_file, self.config.path)
        report = await self._import(records)
        self._signature = signature  # only after a successful import: else retry
        return report

    async def _web(self) -> ImportReport | None:
        assert self.fetcher is not None
        tenant = await self.service.public.resolve_tenant(self.config.tenant)
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = await self.service.users.directory(tenant, ctx=self.ctx, limit=LIST_PAGE,
                                                cursor=cursor)
            names.extend(u.username for u in page.users)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        fetched, failed = await self.fetcher.fetch_all(names)
        if failed:
            sample = ", ".join(f"{n}: {e}" for n, e in list(failed.items())[:3])
            log.warning("source %s: %d of %d fetches failed (statuses kept): %s",
                        describe(self.config), len(failed), len(names), sample)
        records = [ImportRecord(i, name, status=status)
                   for i, (name, status) in enumerate(sorted(fetched.items()), start=1)]
        return await self._import(records, create_missing=False)

    async def close(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.close()


class SourceRunner:
    """The running sources, shaped like a listener so ``serve`` can stop and drain it."""

    name = "sources"

    def __init__(self, service: FingerplatService, sources: Sequence[SourceConfig], *,
                 metrics: Metrics) -> None:
        self.metrics = metrics
        self.syncs = [_Sync(service, config) for config in sources]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def addresses(self) -> list[str]:
        return [describe(s.config) for s in self.syncs]

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(s), name=f"source {describe(s.config)}")
                       for s in self.syncs]

    async def sync_once(self) -> list[ImportReport | None]:
        """Run every source once now (for tests and for a manual refresh)."""
        return [await s.sync() for s in self.syncs]

    async def _loop(self, sync: _Sync) -> None:
        async def step() -> None:
            with self.metrics.observe(ADAPTER):
                await sync.sync()

        await every(float(sync.config.interval), step, what=f"source {describe(sync.config)}",
                    log=log, stop=self._stop)

    async def close(self) -> None:
        """Start no new sync; a sync already running finishes in drain()."""
        self._stop.set()

    async def drain(self, timeout: float) -> None:
        self._stop.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        self._tasks = []
        for sync in self.syncs:
            with contextlib.suppress(Exception):
                await sync.close()


async def start_sources(service: FingerplatService, sources: Sequence[SourceConfig], *,
                        metrics: Metrics) -> SourceRunner:
    """Start every configured source in the background (the first sync runs at once)."""
    runner = SourceRunner(service, sources, metrics=metrics)
    runner.start()
    return runner
