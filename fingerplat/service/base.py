"""What every use case shares: transactions, the clock, auditing and refusal.

Every permission check of the service is one call of :meth:`ServiceBase._require`
with a rule of :mod:`fingerplat.service.permissions`: a refused attempt is
always audited (anonymous ones through the address counter of
service/throttle.py, which writes the first few of a window one row each and
the rest as an ``auth.failures`` summary row), and always raises.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain import rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import NotFound, PermissionDenied, UserNotFound
from fingerplat.domain.model import ChangeEvent, Context, Principal, Tenant, User
from fingerplat.repository.uow import SqlStorage
from fingerplat.service.events import EventBus
from fingerplat.service.ports import Repository, Storage

log = logging.getLogger("fingerplat.service")

T = TypeVar("T")

#: A permission rule: a pure predicate of the acting principal (service/permissions.py).
Rule = Callable[[Principal], bool]

# How many service units of work the current task is inside (0: none).
_unit_depth: ContextVar[int] = ContextVar("fingerplat_unit_depth", default=0)


class Refusal(Exception):
    """A refused attempt raised inside a unit of work.

    The unit rolls back whatever the use case did so far, then records the
    refusal in a transaction of its own and raises ``error(message)``: the
    refusal is audited even though the change is not made.
    """

    def __init__(
        self,
        ctx: Context,
        action: AuditAction,
        target: str,
        *,
        tenant: str | Tenant | None,
        username: str | None,
        message: str,
        error: type[Exception],
    ) -> None:
        super().__init__(message)
        self.ctx = ctx
        self.action = action
        self.target = target
        self.tenant = tenant
        self.username = username
        self.message = message
        self.error = error


def utcnow() -> datetime:
    return datetime.now(UTC)


class HotReads(Protocol):
    async def user(self, tenant_id: int, username: str) -> User | None: ...


class ServiceBase:
    def __init__(
        self,
        engine: AsyncEngine | None = None,
        *,
        events: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
        read_engine: AsyncEngine | None = None,
        storage: Storage | None = None,
    ) -> None:
        """On SQL give ``engine`` (and ``read_engine`` for public reads); the
        tests' in-memory storage comes as ``storage`` alone."""
        if storage is None:
            if engine is None:
                raise TypeError("the service needs an engine or a storage")
            storage = SqlStorage(engine, read_engine)
        self._storage = storage
        #: For what only SQL has (health and schema checks, the importer's
        #: batching, the finger log); None on the tests' in-memory storage.
        self.engine = engine
        self.read_engine = read_engine
        #: The user read of a cache miss on a driver-level prepared statement
        #: (fingerplat/repository/hot_reads.py), when the composition root gives one.
        self.hot_reads: HotReads | None = None
        self.events = events or EventBus()
        self.clock = clock

    async def _read(self, fetch: Callable[[Repository], Awaitable[T]]) -> T:
        """Run a public read (no permission check, nothing written).

        With a read engine (``serve`` on PostgreSQL) it runs on an autocommit
        connection of its own pool, one round trip per statement; otherwise
        in a read-only unit of work, as every other read.
        """
        return await self._storage.read(fetch)

    @asynccontextmanager
    async def _uow(self, *, readonly: bool = False) -> AsyncIterator[Repository]:
        """One transaction for a whole use case: lookups, permission check, change, audit.

        A :meth:`_deny` inside the body rolls everything back, then audits the
        refusal in its own transaction (only the outermost unit does that, so a
        nested unit never waits on the lock its parent holds).
        """
        depth = _unit_depth.get()
        marker = _unit_depth.set(depth + 1)
        try:
            async with self._storage.unit(readonly=readonly) as repo:
                yield repo
        except Refusal as refusal:
            if depth:
                raise
            _unit_depth.reset(marker)
            marker = None
            await self._record_refusal(refusal)
            raise refusal.error(refusal.message) from None
        finally:
            if marker is not None:
                _unit_depth.reset(marker)
        # Committed: now the in-process subscribers (caches, IRC, the bridge).
        for event, notified in repo.after_commit:
            await self.events.publish(event, notified=notified)

    # -- auditing --------------------------------------------------------------

    async def _audit(
        self,
        repo: Repository,
        ctx: Context,
        action: AuditAction,
        target: str,
        *,
        tenant: str | Tenant | None,
        username: str | None = None,
        outcome: str = "ok",
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        detail: str = "",
        tenant_id: int | None = None,
    ) -> None:
        """Append an event to the tenant's audit chain in the caller's transaction.

        Events belong to the tenant's immutable id, not to its slug (a slug can
        be taken again by a new tenant after a removal). Pass the
        :class:`Tenant` (or ``tenant_id``) where the use case has it; a bare slug
        is resolved to the tenant that has it now.
        """
        slug: str | None
        if isinstance(tenant, Tenant):
            slug, tenant_id = tenant.slug, tenant.id
        else:
            slug = tenant
            if tenant_id is None and slug:
                found = await repo.tenant_by_slug(slug)
                tenant_id = found.id if found is not None else None
        await repo.add_audit(
            at=self.clock(),
            tenant=slug,
            tenant_id=tenant_id,
            actor=ctx.principal.name[:200],
            channel=ctx.channel.value,
            action=AuditAction(action).value,
            target=target[:300],
            username=username,
            outcome=outcome,
            before=before,
            after=after,
            remote_addr=(ctx.remote_addr or None) and ctx.remote_addr[:100],
            detail=detail[:500],
        )

    async def _require(
        self,
        ctx: Context,
        rule: Rule,
        action: AuditAction,
        target: str,
        *,
        tenant: str | Tenant | None,
        username: str | None = None,
        message: str,
    ) -> None:
        """The one permission gate: return if ``rule`` allows ``ctx``'s principal, else refuse.

        The rule is judged on the acting principal here, never on one the
        caller picked. A refusal is audited (``action`` on ``target``,
        outcome ``denied``, ``message`` as the detail) and raises
        :class:`PermissionDenied`; inside :meth:`_uow` whatever the use case did
        so far is rolled back first (see :meth:`_deny`).
        """
        if rule(ctx.principal):
            return
        await self._deny(ctx, action, target, tenant=tenant, username=username, message=message)

    async def _deny(
        self,
        ctx: Context,
        action: AuditAction,
        target: str,
        *,
        tenant: str | Tenant | None,
        username: str | None = None,
        message: str,
        error: type[Exception] = PermissionDenied,
    ) -> NoReturn:
        """Refuse, recording the refused attempt in a transaction of its own.

        Permission checks come here through :meth:`_require`; only refusals
        of authentication (``auth.*``, raising :class:`AuthenticationFailed`)
        call it directly.

        Inside :meth:`_uow` this raises :class:`Refusal`, so the unit first rolls
        back and then audits; outside one it audits at once.
        """
        refusal = Refusal(ctx, action, target, tenant=tenant, username=username,
                          message=message, error=error)
        if _unit_depth.get():
            raise refusal
        await self._record_refusal(refusal)
        raise error(message)

    async def _record_refusal(self, refusal: Refusal) -> None:
        async with self._storage.unit() as repo:
            await self._audit(
                repo, refusal.ctx, refusal.action, refusal.target, tenant=refusal.tenant,
                username=refusal.username, outcome="denied", detail=refusal.message,
            )
        log.info("denied %s on %s for %s: %s", refusal.action, refusal.target,
                 refusal.ctx.principal.name, refusal.message)

    async def _publish(self, event: ChangeEvent) -> None:
        """Publish after the commit (the event bridge then sends its NOTIFY).

        Prefer :meth:`_emit` inside the unit of work: a NOTIFY sent after the
        commit is lost if the process dies in between.
        """
        await self.events.publish(event)

    async def _emit(self, repo: Repository, event: ChangeEvent) -> None:
        """Announce a change from inside its unit of work (SPEC 12).

        With a transactional sender on the bus (PostgreSQL with other nodes
        to tell), the NOTIFY goes out in this very transaction: delivered
        exactly if and when it commits. The in-process subscribers get the
        event after the commit, from :meth:`_uow`; nothing if it rolls back.
        """
        sender = self.events.transactional
        notified = False
        if sender is not None and repo.notifies_at_commit:
            await repo.notify(sender.channel, sender.payload(event))
            notified = True
        repo.after_commit.append((event, notified))

    # -- lookups shared by the use cases ---------------------------------------

    async def _tenant(self, repo: Repository, name: str | None) -> Tenant:
        """A tenant by slug or domain; ``None`` means the default tenant."""
        if name is None or name == "":
            tenant = await repo.default_tenant()
            if tenant is None:
                raise NotFound("no default tenant: run `fingerplat db upgrade`")
            return tenant
        key = name.strip().lower()
        tenant = await repo.tenant_by_slug(key)
        if tenant is None and "." in key:
            tenant = await repo.tenant_by_domain(key.rstrip("."))
        if tenant is None:
            raise NotFound(f"no such tenant: {name[:63]!r}")
        return tenant

    async def _user(
        self, repo: Repository, tenant: Tenant, name: str, *, for_update: bool = False
    ) -> User:
        username = rules.username(name)
        user = await repo.user(tenant.id, username, for_update=for_update)
        if user is None:
            raise UserNotFound(username, tenant.slug)
        return user


def user_target(username: str, tenant: Tenant) -> str:
    return f"{username}@{tenant.slug}"
