"""What every use case shares: transactions, the clock, auditing and refusal.

The service is built by composition (fingerplat/service/core.py): one
:class:`ServiceCore` owns the storage (the unit-of-work factory behind the
``Storage`` Protocol of service/ports.py), the event bus, the clock and the
engines, and offers the helpers every use case needs. Each group of use
cases is a :class:`UseCase` holding that core (and, explicitly, the other
components it calls); no use case inherits another.

Every permission check of the service is one call of :meth:`ServiceCore.require`
(``self._require`` in a use case) with a rule of
:mod:`fingerplat.service.permissions`: a refused attempt is always audited
(anonymous ones through the address counter of service/throttle.py, which
writes the first few of a window one row each and the rest as an
``auth.failures`` summary row), and always raises.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain import rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import NotFound, PermissionDenied, UserNotFound
from fingerplat.domain.model import ChangeEvent, Context, Principal, Role, Tenant, User
from fingerplat.repository.uow import SqlStorage
from fingerplat.service.events import EventBus
from fingerplat.service.ports import Repository, Storage

if TYPE_CHECKING:
    from fingerplat.service.throttle import ThrottleUseCases

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


class ServiceCore:
    """What the use cases share: the storage, the events, the clock, the engines.

    One per :class:`~fingerplat.service.core.FingerplatService`, handed to
    each of its components. Its methods are the helpers of every use case
    (a :class:`UseCase` has them as ``self._uow``, ``self._require``, ...).
    """

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
        #: The unit-of-work factory (the ``Storage`` Protocol of service/ports.py).
        self.storage: Storage = storage
        #: For what only SQL has (health and schema checks, the importer's
        #: batching, the finger log); None on the tests' in-memory storage.
        self.engine = engine
        self.read_engine = read_engine
        #: The user read of a cache miss on a driver-level prepared statement
        #: (fingerplat/repository/hot_reads.py), when the composition root gives one.
        self.hot_reads: HotReads | None = None
        self.events = events or EventBus()
        self.clock = clock
        #: Counts anonymous refusals per address (service/throttle.py);
        #: FingerplatService plugs its throttle in. Without one, each refusal
        #: is audited with a row of its own.
        self.throttle: ThrottleUseCases | None = None

    async def read(self, fetch: Callable[[Repository], Awaitable[T]]) -> T:
        """Run a public read (no permission check, nothing written).

        With a read engine (``serve`` on PostgreSQL) it runs on an autocommit
        connection of its own pool, one round trip per statement; otherwise
        in a read-only unit of work, as every other read.
        """
        return await self.storage.read(fetch)

    @asynccontextmanager
    async def unit(self, *, readonly: bool = False) -> AsyncIterator[Repository]:
        """One transaction for a whole use case: lookups, permission check, change, audit.

        A :meth:`deny` inside the body rolls everything back, then audits the
        refusal in its own transaction (only the outermost unit does that, so a
        nested unit never waits on the lock its parent holds).
        """
        depth = _unit_depth.get()
        marker = _unit_depth.set(depth + 1)
        try:
            async with self.storage.unit(readonly=readonly) as repo:
                yield repo
        except Refusal as refusal:
            if depth:
                raise
            _unit_depth.reset(marker)
            marker = None
            await self.record_refusal(refusal)
            raise refusal.error(refusal.message) from None
        finally:
            if marker is not None:
                _unit_depth.reset(marker)
        # Committed: now the in-process subscribers (caches, IRC, the bridge).
        for event, notified in repo.after_commit:
            await self.events.publish(event, notified=notified)

    # -- auditing --------------------------------------------------------------

    async def audit(
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

    async def require(
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
        :class:`PermissionDenied`; inside :meth:`unit` whatever the use case did
        so far is rolled back first (see :meth:`deny`).
        """
        if rule(ctx.principal):
            return
        await self.deny(ctx, action, target, tenant=tenant, username=username, message=message)

    async def deny(
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

        Permission checks come here through :meth:`require`; only refusals
        of authentication (``auth.*``, raising :class:`AuthenticationFailed`)
        call it directly.

        Inside :meth:`unit` this raises :class:`Refusal`, so the unit first rolls
        back and then audits; outside one it audits at once.
        """
        refusal = Refusal(ctx, action, target, tenant=tenant, username=username,
                          message=message, error=error)
        if _unit_depth.get():
            raise refusal
        await self.record_refusal(refusal)
        raise error(message)

    async def record_refusal(self, refusal: Refusal) -> None:
        """Audit a refused attempt in a transaction of its own.

        An anonymous client's go through the throttle's address counter
        (:meth:`ThrottleUseCases.record_anonymous_refusal`: the first few of
        a window get their row, the rest a summary row), so that repeating a
        refused request cannot flood the trail.
        """
        if self.throttle is not None and refusal.ctx.principal.role is Role.ANONYMOUS:
            await self.throttle.record_anonymous_refusal(refusal)
            return
        async with self.storage.unit() as repo:
            await self.audit(
                repo, refusal.ctx, refusal.action, refusal.target, tenant=refusal.tenant,
                username=refusal.username, outcome="denied", detail=refusal.message,
            )
        log.info("denied %s on %s for %s: %s", refusal.action, refusal.target,
                 refusal.ctx.principal.name, refusal.message)

    async def publish(self, event: ChangeEvent) -> None:
        """Publish after the commit (the event bridge then sends its NOTIFY).

        Prefer :meth:`emit` inside the unit of work: a NOTIFY sent after the
        commit is lost if the process dies in between.
        """
        await self.events.publish(event)

    async def emit(self, repo: Repository, event: ChangeEvent) -> None:
        """Announce a change from inside its unit of work (SPEC 12).

        With a transactional sender on the bus (PostgreSQL with other nodes
        to tell), the NOTIFY goes out in this very transaction: delivered
        exactly if and when it commits. The in-process subscribers get the
        event after the commit, from :meth:`unit`; nothing if it rolls back.
        """
        sender = self.events.transactional
        notified = False
        if sender is not None and repo.notifies_at_commit:
            await repo.notify(sender.channel, sender.payload(event))
            notified = True
        repo.after_commit.append((event, notified))

    # -- lookups shared by the use cases ---------------------------------------

    async def tenant(self, repo: Repository, name: str | None) -> Tenant:
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

    async def user(
        self, repo: Repository, tenant: Tenant, name: str, *, for_update: bool = False
    ) -> User:
        username = rules.username(name)
        user = await repo.user(tenant.id, username, for_update=for_update)
        if user is None:
            raise UserNotFound(username, tenant.slug)
        return user


class UseCase:
    """A group of use cases (users, tenants, credentials, ...) on the shared core.

    It holds the :class:`ServiceCore` and takes the other components it calls
    in its constructor; it never inherits another use case
    (tests/unit/test_layers.py checks). The core's helpers are bound here
    under the names the use cases call them by, so ``self._uow()`` costs
    what ``core.unit()`` costs; ``clock``, ``events``, ``engine`` and
    ``hot_reads`` are read from the core on each use (a test or the
    composition root may replace them on the service).
    """

    def __init__(self, core: ServiceCore) -> None:
        self._core = core
        self._read = core.read
        self._uow = core.unit
        self._audit = core.audit
        self._require = core.require
        self._deny = core.deny
        self._publish = core.publish
        self._emit = core.emit
        self._tenant = core.tenant
        self._user = core.user

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._core.clock

    @property
    def events(self) -> EventBus:
        return self._core.events

    @property
    def engine(self) -> AsyncEngine | None:
        return self._core.engine

    @property
    def hot_reads(self) -> HotReads | None:
        return self._core.hot_reads


def user_target(username: str, tenant: Tenant) -> str:
    return f"{username}@{tenant.slug}"
