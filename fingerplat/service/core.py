"""The service: every use case of fingerplat, as components of one object.

Adapters receive one :class:`FingerplatService` from the composition root and
call its components with a :class:`~fingerplat.domain.model.Context` naming
who acts: ``service.users.set_status(ctx, ...)``,
``service.tenants.create_tenant(ctx, ...)``, ``service.public.public_user(...)``.

The service is built by composition, not inheritance: one
:class:`~fingerplat.service.base.ServiceCore` (the storage behind the
``Storage`` Protocol, the events, the clock, the engines, and the helpers:
units of work, auditing, the permission gate) is shared by small use-case
objects, each taking the core and, explicitly, the other components it
calls. Which component a method belongs to is the table in
docs/service-layer.md ("Components").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain.errors import SchemaOutOfDate, Unavailable
from fingerplat.repository import migrations
from fingerplat.repository.uow import translate_db_error
from fingerplat.service.activity import ActivityUseCases
from fingerplat.service.audit_log import AuditUseCases
from fingerplat.service.base import HotReads, ServiceCore, utcnow
from fingerplat.service.cache import Guard, ReadCache
from fingerplat.service.cached_reads import CachedPublicReads
from fingerplat.service.credentials import CredentialUseCases
from fingerplat.service.events import EventBus
from fingerplat.service.finger_log import FingerLogUseCases
from fingerplat.service.imports import ImportUseCases
from fingerplat.service.kept_answers import KeptAnswers
from fingerplat.service.ports import Storage
from fingerplat.service.pseudo_users import PseudoUserUseCases
from fingerplat.service.self_service import SelfServiceUseCases
from fingerplat.service.tenants import TenantUseCases
from fingerplat.service.throttle import ThrottleUseCases
from fingerplat.service.users import UserUseCases
from fingerplat.service.web_sessions import WebSessionUseCases


class FingerplatService:
    """The use cases, one attribute per component, on one shared :class:`ServiceCore`."""

    #: The adapters' fast paths' way into the read cache (fingerplat/service/kept_answers.py):
    #: None exactly while no read cache is enabled. A plain attribute, read on every hit.
    kept_answers: KeptAnswers | None

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
        core = self.core = ServiceCore(engine, events=events, clock=clock,
                                       read_engine=read_engine, storage=storage)
        #: The authentication throttle; it also counts every anonymous refusal.
        self.throttle = core.throttle = ThrottleUseCases(core)
        self.tenants = TenantUseCases(core)
        self.users = UserUseCases(core)
        #: The public reads of the hot paths, through the read cache when enabled.
        self.public = CachedPublicReads(core, tenants=self.tenants, users=self.users)
        self.credentials = CredentialUseCases(core, throttle=self.throttle)
        self.audit = AuditUseCases(core)
        self.imports = ImportUseCases(core)
        self.activity = ActivityUseCases(core)
        self.web_sessions = WebSessionUseCases(core)
        self.self_service = SelfServiceUseCases(core, users=self.users, throttle=self.throttle)
        self.pseudo_users = PseudoUserUseCases(core, public=self.public)
        self.finger_log = FingerLogUseCases(core)
        self.kept_answers = None

    # -- what the whole service shares (the core's) ---------------------------------

    @property
    def events(self) -> EventBus:
        return self.core.events

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.core.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self.core.clock = clock

    @property
    def engine(self) -> AsyncEngine | None:
        """For what only SQL has; None on the tests' in-memory storage."""
        return self.core.engine

    @property
    def read_engine(self) -> AsyncEngine | None:
        return self.core.read_engine

    @property
    def hot_reads(self) -> HotReads | None:
        """A cache miss's user read on a prepared statement (fingerplat/repository/hot_reads.py)."""
        return self.core.hot_reads

    @hot_reads.setter
    def hot_reads(self, reads: HotReads | None) -> None:
        self.core.hot_reads = reads

    # -- the read cache (the ``public`` component's) --------------------------------

    @property
    def read_cache(self) -> ReadCache | None:
        return self.public.read_cache

    def enable_read_cache(self, *, max_bytes: int | None = None,
                          max_entries: int | None = None, guard: Guard | None = None,
                          membership: bool = False) -> ReadCache:
        """Start caching the public reads: :meth:`CachedPublicReads.enable_read_cache`."""
        cache = self.public.enable_read_cache(max_bytes=max_bytes, max_entries=max_entries,
                                              guard=guard, membership=membership)
        self.kept_answers = self.public.kept_answers
        return cache

    async def stop_read_cache(self) -> None:
        """Stop the membership's background loads (awaited), then the cache."""
        await self.public.stop_read_cache()
        self.kept_answers = self.public.kept_answers

    def disable_read_cache(self) -> None:
        self.public.disable_read_cache()
        self.kept_answers = self.public.kept_answers

    async def warm_read_cache(self, *, batch: int = 2000) -> int:
        """Fill the cache before anyone asks: :meth:`CachedPublicReads.warm_read_cache`."""
        return await self.public.warm_read_cache(batch=batch)

    # -- health ------------------------------------------------------------------------

    async def check_health(self) -> None:
        """Raise :class:`Unavailable` unless the database answers a query."""
        engine = self.engine
        assert engine is not None, "a health check needs a database"
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as error:
            mapped = translate_db_error(error)
            raise (mapped or Unavailable("database check failed")) from error

    async def check_schema(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the schema is at this release's head."""
        engine = self.engine
        assert engine is not None, "a schema check needs a database"
        try:
            current = await migrations.current_revision(engine)
        except Exception as error:
            mapped = translate_db_error(error)
            if mapped is not None:
                raise mapped from error
            raise
        head = migrations.head_revision()
        if current != head:
            raise SchemaOutOfDate(
                f"database schema is at revision {current or 'none'}, this release needs {head}: "
                "run `fingerplat db upgrade`"
            )
