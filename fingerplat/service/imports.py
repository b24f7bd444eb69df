"""Bulk imports (users file, password database, web source) and export.

Importers keep a tenant in sync with an outside source, so they must be safe
to run again and again: a record that matches the database changes nothing
(re-importing the same file reports everything unchanged and writes nothing),
missing users are created, and users the source does not mention are left
alone (an import never removes anyone: a truncated file must not wipe a
tenant).

Each record is checked with the same domain rules as every other channel; a
bad record is rejected with its line number and the rest goes on. Valid
records are written in batches of :data:`BATCH_SIZE`, one transaction per
batch, with one multi-row statement per kind of change, so 100,000 lines take
seconds. Every changed user gets one audit event (``import.create`` or
``import.update`` with the changed fields before and after) and every status
change its status-history row, written in the same transaction as the change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from fingerplat.domain import collector, rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.audit_chain import BatchFields, BatchRow
from fingerplat.domain.errors import Conflict, InvalidInput
from fingerplat.domain.imports import ImportRecord, ImportReport, Rejection
from fingerplat.domain.model import ChangeEvent, Channel, Context, Tenant, User
from fingerplat.domain.text import printable
from fingerplat.service import permissions
from fingerplat.service.base import UseCase, user_target
from fingerplat.service.ports import Repository

# Users per transaction. Each batch costs a commit, a tenant-wide change event
# (a NOTIFY, and every node drops its cached reads of the tenant) and a pipeline
# step; 5,000 rows keep that to 20 per 100,000 lines while a batch still
# commits within a fraction of a second (measured: bench/README.md, "Imports").
BATCH_SIZE = 5000
# Batches written at once on PostgreSQL (see ImportUseCases._write_batches).
PG_BATCHES_IN_FLIGHT = 2
# Up to this many changes in a batch are published as one event per user (IRC
# announcements, cache entries); above it one tenant-wide event says "reload".
PER_USER_EVENTS_MAX = 50
EXPORT_PAGE = 1000
_CONFLICT_RETRIES = 3

_PROFILE = ("full_name", "office", "phone", "project", "hidden")

ProgressFn = Callable[[int], None]
# A batch: user names (normalised, sorted) with their records in line order.
_Chunk = list[tuple[str, list[ImportRecord]]]


@dataclass(slots=True)
class _Valid:
    """A record after the domain rules: normalised, or None where the source is silent."""

    line: int
    username: str
    status: str | None  # "" clears
    profile: dict[str, Any]
    plan: str | None
    create: bool = True


def _validate(record: ImportRecord, username: str) -> _Valid:
    """Check ``record`` (its ``username`` already normalised) with the domain rules."""
    status = None
    if record.status is not None:
        status = rules.status(record.status) if record.status.strip() else ""
    profile: dict[str, Any] = {}
    for name in ("full_name", "office", "phone", "project"):
        value = getattr(record, name)
        if value is not None:
            profile[name] = rules.one_line(name.replace("_", " "), value)
    if record.hidden is not None:
        profile["hidden"] = bool(record.hidden)
    plan = rules.plan(record.plan) if record.plan is not None else None
    return _Valid(record.line, username, status, profile, plan, record.create)


def _validate_group(username: str, group: list[ImportRecord], rejected: list[Rejection]
                    ) -> _Valid | None:
    """The first valid record of a user's lines (in line order); the others rejected.

    A bad line is rejected with its own reason and does not count as the
    user's line, so a later good line for the same user is taken; a good line
    after the taken one is a duplicate.
    """
    taken: _Valid | None = None
    for record in group:
        try:
            item = _validate(record, username)
        except InvalidInput as error:
            rejected.append(Rejection(record.line, str(error),
                                      _shown_name(record.username) or None))
            continue
        if taken is not None:
            rejected.append(Rejection(
                record.line, f"duplicate: user {username} is already on line {taken.line}",
                username))
            continue
        taken = item
    return taken


def _shown_name(value: str) -> str:
    text = printable(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(slots=True)
class _BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] | None = None
    events: list[ChangeEvent] | None = None


class _BatchWrites:
    """Everything one import batch writes, gathered record by record.

    Each kind of change is collected into its own list so that
    :meth:`write` sends one multi-row statement per kind; every changed user
    gets its audit row and change events here, in record order.
    """

    def __init__(self, ctx: Context, tenant: Tenant, now: datetime) -> None:
        self.tenant = tenant
        self.now = now
        self.actor = ctx.principal.name[:200]
        self.channel = ctx.channel.value
        self.remote_addr = ctx.remote_addr[:100] if ctx.remote_addr else None
        self.result = _BatchResult(rejected=[], events=[])
        self.new_rows: list[dict[str, Any]] = []
        self.new_items: list[_Valid] = []
        self.profile_rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.statuses: list[tuple[int, str | None, str | None]] = []
        self.history: list[tuple[int, str | None]] = []
        self.plan_updates: list[tuple[int, str, str]] = []
        self.plan_inserts: list[tuple[int, str]] = []
        self.audits: list[BatchRow] = []
        self.events: list[ChangeEvent] = []

    def event(self, *args: Any, **kwargs: Any) -> None:
        # Past the per-user limit only the count matters (one tenant-wide event).
        if len(self.events) <= PER_USER_EVENTS_MAX:
            self.events.append(ChangeEvent(*args, **kwargs))

    def audit(self, action: AuditAction, username: str, before: dict[str, Any] | None,
              after: dict[str, Any]) -> None:
        # The batch's shared fields go once to add_audits (see write).
        self.audits.append((action.value, user_target(username, self.tenant)[:300], username,
                            before, after))

    def add_new(self, item: _Valid, create_missing: bool,
                reserved: frozenset[str] = frozenset()) -> None:
        """A record for a user the tenant does not have yet: a row to insert, if allowed.

        ``reserved``: the tenant's pseudo-user names (issue 16), never a user's.
        """
        assert self.result.rejected is not None
        if not item.create:  # an update-only record: nothing to update
            self.result.unchanged += 1
            return
        if not create_missing:
            self.result.rejected.append(Rejection(
                item.line, f"no such user {item.username!r} in tenant {self.tenant.slug!r} "
                           "(this source does not create users)", item.username))
            return
        if item.username in reserved:
            self.result.rejected.append(Rejection(
                item.line, f"{item.username!r} is the name of a pseudo-user of tenant "
                           f"{self.tenant.slug!r}", item.username))
            return
        row = {"username": item.username, "full_name": "", "office": "", "phone": "",
               "project": "", "hidden": False, "status": item.status or None,
               "status_set_at": self.now if item.status else None}
        if item.profile:
            row.update(item.profile)
        self.new_rows.append(row)
        self.new_items.append(item)

    def compare(self, item: _Valid, user: User) -> None:
        """A record for an existing user: collect what differs (nothing: unchanged)."""
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        hidden = self._profile(item, user, before, after)
        self._status(item, user, hidden, before, after)
        self._plan(item, user, before, after)
        if after:
            self.result.updated += 1
            self.audit(AuditAction.IMPORT_UPDATE, user.username, before, after)
        else:
            self.result.unchanged += 1

    def _profile(self, item: _Valid, user: User, before: dict[str, Any],
                 after: dict[str, Any]) -> bool:
        """Profile fields that differ; returns whether the user is hidden afterwards."""
        if not item.profile:  # most sources (a users file) only carry statuses
            return user.hidden
        old = {name: getattr(user, name) for name in _PROFILE}
        profile = dict(old)
        for name, value in item.profile.items():
            if profile[name] != value:
                before[name], after[name] = profile[name], value
                profile[name] = value
        if before:
            self.profile_rows.append(({"id": user.id, **profile}, old))
            self.event("user", self.tenant.id, self.tenant.slug, user.username)
        return bool(profile["hidden"])

    def _status(self, item: _Valid, user: User, hidden: bool, before: dict[str, Any],
                after: dict[str, Any]) -> None:
        if item.status is None or (item.status or None) == user.status:
            return
        text = item.status or None
        self.statuses.append((user.id, text, user.status))
        self.history.append((user.id, text))
        before["status"], after["status"] = user.status, text
        self.event("status", self.tenant.id, self.tenant.slug, user.username,
                   status=text, data={"hidden": hidden})

    def _plan(self, item: _Valid, user: User, before: dict[str, Any],
              after: dict[str, Any]) -> None:
        if item.plan is None or item.plan == (user.plan or ""):
            return
        if user.plan is not None:
            self.plan_updates.append((user.id, item.plan, user.plan))
        else:
            self.plan_inserts.append((user.id, item.plan))
        before["plan_bytes"] = len((user.plan or "").encode())
        after["plan_bytes"] = len(item.plan.encode())
        self.event("plan", self.tenant.id, self.tenant.slug, user.username)

    def created(self, ids: dict[str, int]) -> None:
        """The new users were inserted (``ids`` by username): their history, plans, audits."""
        tenant = self.tenant
        create = AuditAction.IMPORT_CREATE.value
        audit, history = self.audits.append, self.history.append
        for row, item in zip(self.new_rows, self.new_items, strict=True):
            username, status = item.username, item.status
            user_id = ids[username]
            created: dict[str, Any] = {  # the order of _PROFILE
                "full_name": row["full_name"], "office": row["office"], "phone": row["phone"],
                "project": row["project"], "hidden": row["hidden"]}
            if status:
                history((user_id, status))  # already set by the insert
                created["status"] = status
            if item.plan:
                self.plan_inserts.append((user_id, item.plan))
                created["plan_bytes"] = len(item.plan.encode())
            audit((create, user_target(username, tenant)[:300], username, None, created))
            if len(self.events) <= PER_USER_EVENTS_MAX:  # past it only the count matters
                self.event("user", tenant.id, tenant.slug, username)
                if status:
                    self.event("status", tenant.id, tenant.slug, username,
                               status=status, data={"hidden": row["hidden"]})
        self.result.created = len(self.new_rows)

    async def write(self, repo: Repository) -> None:
        """One multi-row statement per kind of change (the users are already inserted)."""
        await repo.update_user_profiles(self.profile_rows)
        await repo.update_statuses(self.statuses, self.now)
        await repo.add_status_history(self.history, self.now, self.actor, self.channel)
        await repo.set_plans(self.plan_updates, self.plan_inserts, self.now)
        await repo.add_audits(BatchFields(
            at=self.now, tenant_id=self.tenant.id, tenant=self.tenant.slug, actor=self.actor,
            channel=self.channel, outcome="ok", remote_addr=self.remote_addr, detail=""),
            self.audits)

    def finish(self) -> _BatchResult:
        """The batch's counts, and its events: one per change, or one tenant-wide event."""
        result = self.result
        changed = result.created + result.updated
        if len(self.events) <= PER_USER_EVENTS_MAX:
            result.events = self.events
        elif changed:
            result.events = [ChangeEvent("tenant", self.tenant.id, self.tenant.slug,
                                         data={"import": changed})]
        return result


class ImportUseCases(UseCase):
    @collector.paused_during  # millions of short-lived objects, no cycles
    async def import_records(
        self,
        ctx: Context,
        tenant_name: str | None,
        records: Sequence[ImportRecord],
        *,
        channel: Channel = Channel.IMPORT,
        create_missing: bool = True,
        progress: ProgressFn | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> ImportReport:
        """Bring the tenant in line with ``records``; see the module docstring.

        ``create_missing=False`` is for sources that only refresh existing
        users (the web source): an unknown user is rejected, not created.
        ``progress`` is called with the number of records handled so far.
        """
        ctx = replace(ctx, channel=channel)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
        await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                            AuditAction.IMPORT_RUN, f"tenant:{tenant.slug}", tenant=tenant,
                            message=f"not an admin of tenant {tenant.slug!r}")
        report = ImportReport(tenant=tenant.slug)
        # Only the user names are checked up front: they decide the batches.
        # The rest of each record is checked by its batch (_import_batch),
        # while the database writes the batch before it.
        groups: dict[str, list[ImportRecord]] = {}
        for record in records:
            if record.error is not None:
                report.rejected.append(Rejection(record.line, record.error,
                                                 _shown_name(record.username) or None))
                continue
            try:
                username = rules.username(record.username)
            except InvalidInput as error:
                report.rejected.append(Rejection(record.line, str(error),
                                                 _shown_name(record.username) or None))
                continue
            group = groups.get(username)
            if group is None:
                groups[username] = [record]
            else:
                group.append(record)
        # Sorted, so each batch reads one contiguous, disjoint range of the index.
        names = sorted(groups)
        done = len(report.rejected)
        if progress is not None:
            progress(done)
        size = max(1, batch_size)
        chunks = ([(name, groups[name]) for name in names[start:start + size]]
                  for start in range(0, len(names), size))

        async def committed(chunk: _Chunk, result: _BatchResult) -> None:
            nonlocal done
            report.created += result.created
            report.updated += result.updated
            report.unchanged += result.unchanged
            report.rejected.extend(result.rejected or ())
            # result.events went out with the batch's commit (``_emit``).
            done += sum(len(group) for _, group in chunk)
            if progress is not None:
                progress(done)

        await self._write_batches(ctx, tenant, chunks, create_missing, committed)
        report.rejected.sort(key=lambda r: r.line)
        if report.created or report.updated:
            async with self._uow() as repo:
                counts = {"total": report.total, "created": report.created,
                          "updated": report.updated, "unchanged": report.unchanged,
                          "rejected": len(report.rejected)}
                await self._audit(repo, ctx, AuditAction.IMPORT_RUN, f"tenant:{tenant.slug}",
                                  tenant=tenant, after=counts, detail=report.summary())
        return report

    async def _write_batches(
        self, ctx: Context, tenant: Tenant, chunks: Iterator[_Chunk], create_missing: bool,
        committed: Callable[[_Chunk, _BatchResult], Awaitable[None]],
    ) -> None:
        """Write ``chunks`` as separate transactions, calling ``committed`` after each commit.

        On PostgreSQL :data:`PG_BATCHES_IN_FLIGHT` batches run at once on their
        own connections: while the server inserts one batch and checks its
        foreign keys, this process builds the rows of the next, so the client's
        CPU and the server's overlap instead of adding up. The batches hold
        disjoint username ranges, so they never wait on each other's rows.
        SQLite has one writer at a time: its batches run one after the other.

        After a failure no further batch starts; the ones already running are
        finished (each commits whole or not at all) before the error is raised.
        """
        in_flight = 1 if self.engine.dialect.name == "sqlite" else PG_BATCHES_IN_FLIGHT
        running: dict[asyncio.Task[_BatchResult], _Chunk] = {}
        error: BaseException | None = None
        try:
            while True:
                while error is None and len(running) < in_flight:
                    chunk = next(chunks, None)
                    if chunk is None:
                        break
                    task = asyncio.create_task(
                        self._import_batch(ctx, tenant, chunk, create_missing))
                    running[task] = chunk
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in [t for t in running if t in finished]:  # in the order started
                    chunk = running.pop(task)
                    if task.exception() is not None:
                        error = error or task.exception()
                    else:  # even after another batch failed: this one did commit
                        await committed(chunk, task.result())
        finally:
            # Cancelled (Ctrl-C in --watch): no transaction is left running on its own.
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
        if error is not None:
            raise error

    async def _import_batch(
        self, ctx: Context, tenant: Tenant, chunk: _Chunk, create_missing: bool
    ) -> _BatchResult:
        """Check the records of ``chunk`` and write the valid ones in one transaction."""
        rejected: list[Rejection] = []
        items = [item for username, group in chunk
                 if (item := _validate_group(username, group, rejected)) is not None]
        result = _BatchResult(rejected=[], events=[])
        if items:
            for attempt in range(_CONFLICT_RETRIES):
                try:
                    async with self._uow() as repo:
                        result = await self._write_batch(repo, ctx, tenant, items,
                                                         create_missing, lock=attempt > 0)
                        for event in result.events or ():  # NOTIFY with the batch
                            await self._emit(repo, event)
                    break
                except Conflict:
                    # Someone created one of these users between our read and our
                    # insert, or changed one we update: read again (locked this time).
                    if attempt == _CONFLICT_RETRIES - 1:
                        raise
        assert result.rejected is not None
        result.rejected.extend(rejected)
        return result

    async def _write_batch(
        self, repo: Repository, ctx: Context, tenant: Tenant, chunk: list[_Valid],
        create_missing: bool, *, lock: bool,
    ) -> _BatchResult:
        """One batch in the caller's transaction.

        The users are read without row locks (locking thousands of rows that
        mostly do not change costs the server a WAL record each); every update only
        applies if the row still holds what was read (compare and set), and a
        row changed meanwhile through another channel raises :class:`Conflict`,
        so the batch is rolled back and retried with ``lock=True`` (rows read
        ``FOR UPDATE``). Audit "before" values are thus always what was replaced.
        """
        batch = _BatchWrites(ctx, tenant, self.clock())
        existing = await repo.users_in_range(tenant.id, chunk[0].username, chunk[-1].username,
                                             for_update=lock)
        reserved: frozenset[str] | None = None  # issue 16: pseudo-user names, read when needed
        for item in chunk:
            found = existing.get(item.username)
            if found is None:
                if reserved is None:
                    reserved = frozenset(p.name for p in await repo.pseudo_users(tenant.id))
                batch.add_new(item, create_missing, reserved)
            else:
                batch.compare(item, found)
        batch.created(await repo.insert_users(tenant.id, batch.now, batch.new_rows))
        await batch.write(repo)
        return batch.finish()

    async def export_users(
        self, ctx: Context, tenant_name: str | None
    ) -> tuple[Tenant, list[User]]:
        """Every user of a tenant (hidden ones too) with plans, read in one transaction."""
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
        await self._require(ctx, lambda p: permissions.can_see_hidden(p, tenant.id),
                            AuditAction.EXPORT, f"tenant:{tenant.slug}", tenant=tenant,
                            message=f"not an admin of tenant {tenant.slug!r}")
        found: list[User] = []
        async with self._uow() as repo:
            after: str | None = None
            while True:
                page = await repo.users_with_plans(tenant.id, after=after, limit=EXPORT_PAGE)
                found.extend(page)
                if len(page) < EXPORT_PAGE:
                    break
                after = page[-1].username
        return tenant, found
