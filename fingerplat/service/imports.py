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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fingerplat.domain import rules
from fingerplat.domain.errors import Conflict, InvalidInput
from fingerplat.domain.imports import ImportRecord, ImportReport, Rejection
from fingerplat.domain.model import ChangeEvent, Channel, Context, Tenant, User
from fingerplat.domain.text import printable
from fingerplat.repository.sql import Repository
from fingerplat.service import permissions
from fingerplat.service.base import ServiceBase, user_target

BATCH_SIZE = 1000
# Up to this many changes in a batch are published as one event per user (IRC
# announcements, cache entries); above it one tenant-wide event says "reload".
PER_USER_EVENTS_MAX = 50
EXPORT_PAGE = 1000
_CONFLICT_RETRIES = 3

_PROFILE = ("full_name", "office", "phone", "project", "hidden")

ProgressFn = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class _Valid:
    """A record after the domain rules: normalised, or None where the source is silent."""

    line: int
    username: str
    status: str | None  # "" clears
    profile: dict[str, Any]
    plan: str | None
    create: bool = True


def _validate(record: ImportRecord) -> _Valid:
    username = rules.username(record.username)
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


class ImportUseCases(ServiceBase):
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
        async with self.uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
        if not permissions.can_manage_users(ctx.principal, tenant.id):
            await self._deny(ctx, "import.run", f"tenant:{tenant.slug}", tenant=tenant.slug,
                             message=f"not an admin of tenant {tenant.slug!r}")
        report = ImportReport(tenant=tenant.slug)
        valid: list[_Valid] = []
        seen: dict[str, int] = {}
        for record in records:
            if record.error is not None:
                report.rejected.append(Rejection(record.line, record.error,
                                                 _shown_name(record.username) or None))
                continue
            try:
                item = _validate(record)
            except InvalidInput as error:
                report.rejected.append(Rejection(record.line, str(error),
                                                 _shown_name(record.username) or None))
                continue
            first = seen.get(item.username)
            if first is not None:
                report.rejected.append(Rejection(
                    record.line, f"duplicate: user {item.username} is already on line {first}",
                    item.username))
                continue
            seen[item.username] = record.line
            valid.append(item)
        # Sorted, so each batch reads one contiguous, disjoint range of the index.
        valid.sort(key=lambda item: item.username)
        done = len(records) - len(valid)
        if progress is not None:
            progress(done)
        for start in range(0, len(valid), max(1, batch_size)):
            chunk = valid[start:start + batch_size]
            result = await self._import_batch(ctx, tenant, chunk, create_missing)
            report.created += result.created
            report.updated += result.updated
            report.unchanged += result.unchanged
            report.rejected.extend(result.rejected or ())
            for event in result.events or ():
                await self._publish(event)
            done += len(chunk)
            if progress is not None:
                progress(done)
        report.rejected.sort(key=lambda r: r.line)
        if report.created or report.updated:
            async with self.uow() as repo:
                counts = {"total": report.total, "created": report.created,
                          "updated": report.updated, "unchanged": report.unchanged,
                          "rejected": len(report.rejected)}
                await self._audit(repo, ctx, "import.run", f"tenant:{tenant.slug}",
                                  tenant=tenant.slug, after=counts, detail=report.summary())
        return report

    async def _import_batch(
        self, ctx: Context, tenant: Tenant, chunk: list[_Valid], create_missing: bool
    ) -> _BatchResult:
        for attempt in range(_CONFLICT_RETRIES):
            try:
                async with self.uow() as repo:
                    return await self._write_batch(repo, ctx, tenant, chunk, create_missing)
            except Conflict:
                # Someone created one of these users between our read and our
                # insert: read again and update instead.
                if attempt == _CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _write_batch(
        self, repo: Repository, ctx: Context, tenant: Tenant, chunk: list[_Valid],
        create_missing: bool,
    ) -> _BatchResult:
        now = self.clock()
        actor = ctx.principal.name[:200]
        # Locked: a profile change made meanwhile through another channel is not
        # overwritten with the values read here.
        existing = await repo.users_in_range(tenant.id, chunk[0].username, chunk[-1].username,
                                             for_update=True)
        result = _BatchResult(rejected=[], events=[])
        assert result.rejected is not None and result.events is not None
        new_rows: list[dict[str, Any]] = []
        new_items: list[_Valid] = []
        profile_rows: list[dict[str, Any]] = []
        statuses: list[tuple[int, str | None]] = []
        plan_updates: list[tuple[int, str]] = []
        plan_inserts: list[tuple[int, str]] = []
        audits: list[dict[str, Any]] = []
        events: list[ChangeEvent] = []

        def event(*args: Any, **kwargs: Any) -> None:
            # Past the per-user limit only the count matters (one tenant-wide event).
            if len(events) <= PER_USER_EVENTS_MAX:
                events.append(ChangeEvent(*args, **kwargs))

        def audit(action: str, username: str, before: dict[str, Any] | None,
                  after: dict[str, Any]) -> None:
            audits.append({
                "at": now, "tenant": tenant.slug, "actor": actor, "channel": ctx.channel.value,
                "action": action, "target": user_target(username, tenant)[:300],
                "username": username, "outcome": "ok", "before": before, "after": after,
                "remote_addr": ctx.remote_addr[:100] if ctx.remote_addr else None,
                "detail": "",
            })

        for item in chunk:
            found = existing.get(item.username)
            if found is None:
                if not item.create:  # an update-only record: nothing to update
                    result.unchanged += 1
                    continue
                if not create_missing:
                    result.rejected.append(Rejection(
                        item.line, f"no such user {item.username!r} in tenant {tenant.slug!r} "
                                   "(this source does not create users)", item.username))
                    continue
                row = {"username": item.username, "full_name": "", "office": "", "phone": "",
                       "project": "", "hidden": False, "status": item.status or None,
                       "status_set_at": now if item.status else None}
                row.update(item.profile)
                new_rows.append(row)
                new_items.append(item)
                continue
            user, has_plan = found
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            profile = {name: getattr(user, name) for name in _PROFILE}
            for name, value in item.profile.items():
                if profile[name] != value:
                    before[name], after[name] = profile[name], value
                    profile[name] = value
            if before:
                profile_rows.append({"id": user.id, **profile})
                event("user", tenant.id, tenant.slug, user.username)
            if item.status is not None and (item.status or None) != user.status:
                text = item.status or None
                statuses.append((user.id, text))
                before["status"], after["status"] = user.status, text
                event("status", tenant.id, tenant.slug, user.username,
                      status=text, data={"hidden": profile["hidden"]})
            if item.plan is not None and item.plan != user.plan:
                (plan_updates if has_plan else plan_inserts).append((user.id, item.plan))
                before["plan_bytes"] = len(user.plan.encode())
                after["plan_bytes"] = len(item.plan.encode())
                event("plan", tenant.id, tenant.slug, user.username)
            if after:
                result.updated += 1
                audit("import.update", user.username, before, after)
            else:
                result.unchanged += 1

        ids = await repo.insert_users(tenant.id, now, new_rows)
        history: list[tuple[int, str | None]] = []
        for row, item in zip(new_rows, new_items, strict=True):
            user_id = ids[row["username"]]
            created: dict[str, Any] = {k: row[k] for k in _PROFILE}
            if item.status:
                history.append((user_id, item.status))  # already set by the insert
                created["status"] = item.status
            if item.plan:
                plan_inserts.append((user_id, item.plan))
                created["plan_bytes"] = len(item.plan.encode())
            audit("import.create", item.username, None, created)
            event("user", tenant.id, tenant.slug, item.username)
            if item.status:
                event("status", tenant.id, tenant.slug, item.username,
                      status=item.status, data={"hidden": row["hidden"]})
        result.created = len(new_rows)

        await repo.update_user_profiles(profile_rows)
        await repo.set_statuses(statuses, now, actor, ctx.channel.value)
        await repo.add_status_history(history, now, actor, ctx.channel.value)
        await repo.set_plans(plan_updates, plan_inserts, now)
        await repo.add_audits(audits)
        changed = result.created + result.updated
        if len(events) <= PER_USER_EVENTS_MAX:
            result.events = events
        elif changed:
            result.events = [ChangeEvent("tenant", tenant.id, tenant.slug,
                                         data={"import": changed})]
        return result

    async def export_users(
        self, ctx: Context, tenant_name: str | None
    ) -> tuple[Tenant, list[User]]:
        """Every user of a tenant (hidden ones too) with plans, read in one transaction."""
        async with self.uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
        if not permissions.can_see_hidden(ctx.principal, tenant.id):
            await self._deny(ctx, "export", f"tenant:{tenant.slug}", tenant=tenant.slug,
                             message=f"not an admin of tenant {tenant.slug!r}")
        found: list[User] = []
        async with self.uow() as repo:
            after: str | None = None
            while True:
                page = await repo.users_with_plans(tenant.id, after=after, limit=EXPORT_PAGE)
                found.extend(page)
                if len(page) < EXPORT_PAGE:
                    break
                after = page[-1].username
        return tenant, found
