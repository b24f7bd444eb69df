"""Pseudo-user use cases: add, list, remove, and the public answer.

A pseudo-user is a name in a tenant answered by a kind's code
(fingerplat/service/pseudo_kinds.py) instead of a stored entry, like
cfingerd's "fakeusers": ``finger help@host``, ``finger recent@host``. Its
name shares the username namespace of its tenant in both directions: adding
a pseudo-user named like a user, or a user named like a pseudo-user, is a
:class:`Conflict` (checked under the tenant lock, so two concurrent adds
cannot both win; user creation checks in :mod:`fingerplat.service.users`).

Answers are public reads. The names of a tenant's pseudo-users are kept in
the read cache (a pseudo-user change publishes a ``pseudo`` event, which
every cache treats as "drop everything", on every node); answers of kinds
that allow it are kept for the kind's ``cache_seconds`` and tagged so that
any status or user change in the tenant drops them at once (a ``recent``
answer changes the moment a status does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from fingerplat.domain import rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from fingerplat.domain.model import ChangeEvent, Context, PseudoUser, Tenant
from fingerplat.service import permissions, pseudo_kinds
from fingerplat.service.base import ServiceCore, UseCase, user_target
from fingerplat.service.cache import MISS, ReadCache
from fingerplat.service.cached_reads import CachedPublicReads
from fingerplat.service.pseudo_kinds import KindRegistry, Places, PseudoQuery

#: The tag of kept pseudo-user answers: not a valid username, so never a user's.
PSEUDO_TAG = "#pseudo"
_DROPPING_KINDS = frozenset({"status", "user"})


class PseudoUserUseCases(UseCase):
    """Pseudo-users; their answers are kept in the public reads' cache (``public``)."""

    pseudo_kinds: KindRegistry = KindRegistry()
    pseudo_places: Places = Places()
    _pseudo_unsubscribe: Callable[[], None] | None = None

    def __init__(self, core: ServiceCore, *, public: CachedPublicReads) -> None:
        super().__init__(core)
        self._public = public

    @property
    def read_cache(self) -> ReadCache | None:
        """The public reads' cache (None while the composition root enables none)."""
        return self._public.read_cache

    # -- management ----------------------------------------------------------------

    async def add_pseudo_user(self, ctx: Context, tenant_name: str | None, name: str,
                              kind: str) -> PseudoUser:
        username = rules.username(name)
        kind_name = (kind or "").strip().lower()
        if self.pseudo_kinds.get(kind_name) is None:
            raise InvalidInput(f"unknown pseudo-user kind {kind[:64]!r}: choose one of "
                               + ", ".join(self.pseudo_kinds.names()))
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
            target = user_target(username, tenant)
            await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                                AuditAction.PSEUDO_CREATE, target, tenant=tenant.slug,
                                username=username,
                                message=f"not an admin of tenant {tenant.slug!r}")
            # Exclusive: user creation takes the shared lock, so the two checks
            # below and a concurrent user add cannot interleave.
            if not await repo.lock_tenant(tenant.id, exclusive=True):
                raise NotFound(f"no such tenant: {tenant.slug!r}")
            if await repo.user(tenant.id, username, with_plan=False) is not None:
                raise Conflict(f"{username!r} is already a user of tenant {tenant.slug!r}")
            if await repo.pseudo_user(tenant.id, username) is not None:
                raise Conflict(f"pseudo-user {username!r} already exists in tenant "
                               f"{tenant.slug!r}")
            pseudo_id = await repo.add_pseudo_user(tenant.id, username, kind_name, self.clock())
            created = await repo.pseudo_user(tenant.id, username)
            assert created is not None and created.id == pseudo_id
            await self._audit(repo, ctx, AuditAction.PSEUDO_CREATE, target, tenant=tenant,
                              username=username, after={"kind": kind_name})
            await self._emit(repo, ChangeEvent("pseudo", tenant.id, tenant.slug, username))
        return created

    async def list_pseudo_users(self, ctx: Context, tenant_name: str | None) -> list[PseudoUser]:
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
            await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                                AuditAction.PSEUDO_READ, tenant.slug, tenant=tenant.slug,
                                message=f"not an admin of tenant {tenant.slug!r}")
            return await repo.pseudo_users(tenant.id)

    async def remove_pseudo_user(self, ctx: Context, tenant_name: str | None, name: str) -> None:
        username = rules.username(name)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
            target = user_target(username, tenant)
            await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                                AuditAction.PSEUDO_REMOVE, target, tenant=tenant.slug,
                                username=username,
                                message=f"not an admin of tenant {tenant.slug!r}")
            found = await repo.pseudo_user(tenant.id, username)
            if found is None:
                raise NotFound(f"no such pseudo-user {username!r} in tenant {tenant.slug!r}")
            await repo.remove_pseudo_user(found.id)
            await self._audit(repo, ctx, AuditAction.PSEUDO_REMOVE, target, tenant=tenant,
                              username=username, before={"kind": found.kind})
            await self._emit(repo, ChangeEvent("pseudo", tenant.id, tenant.slug, username,
                                               data={"removed": True}))

    # -- the public answer -----------------------------------------------------------

    async def pseudo_kind_of(self, tenant: Tenant, name: str) -> str | None:
        """The kind of the pseudo-user ``name`` of ``tenant``, or None (a public read)."""
        cache = self.read_cache
        if cache is None:
            names = await self._pseudo_names(tenant)
            return names.get(name)
        key: Hashable = ("pseudo-names", tenant.id)
        hit = cache.get(key)
        if hit is MISS:
            epoch = cache.epoch
            try:
                hit = await self._pseudo_names(tenant)
            except Unavailable:
                # The database is away (a failover): what this node held, as every
                # public read does (ReadCache.held); else the outage shows.
                hit = cache.held(key)
                if hit is MISS:
                    raise
                return hit.get(name)  # type: ignore[no-any-return]
            cache.put(key, hit, epoch=epoch)
        return hit.get(name)  # type: ignore[no-any-return]

    async def _pseudo_names(self, tenant: Tenant) -> dict[str, str]:
        found = await self._read(lambda repo: repo.pseudo_users(tenant.id))
        return {p.name: p.kind for p in found}

    async def pseudo_answer(self, tenant: Tenant, name: str, *,
                            verbose: bool = False) -> list[str] | None:
        """The answer lines of pseudo-user ``name``, or None when there is no such one.

        Lines are plain text, not yet neutralised: adapters do that as for
        every answer (finger's encoder, the web's autoescaping).
        """
        if not rules.USERNAME_RE.fullmatch(name):
            return None
        kind_name = await self.pseudo_kind_of(tenant, name)
        if kind_name is None:
            return None
        kind = self.pseudo_kinds.get(kind_name)
        if kind is None:
            return [pseudo_kinds.UNKNOWN_KIND]
        cache = self.read_cache
        key: Hashable = ("pseudo-answer", tenant.id, name, verbose)
        if cache is not None and kind.cache_seconds > 0:
            self._follow_pseudo_events()
            hit = cache.get(key)
            if hit is not MISS and hit[0] > time.monotonic():
                return list(hit[1])
        epoch = cache.epoch if cache is not None else 0
        now = self.clock()
        recent: tuple = ()
        if kind.wants_recent:
            since = pseudo_kinds.cutoff(now)
            recent = tuple(await self._read(
                lambda repo: repo.recent_statuses(tenant.id, since, pseudo_kinds.RECENT_LIMIT)))
        query = PseudoQuery(
            name=name, kind=kind.name, tenant_slug=tenant.slug, tenant_name=tenant.name,
            tenant_domains=tenant.domains, timezone=await self._timezone_of(tenant), now=now,
            verbose=verbose, places=self.pseudo_places, recent=recent,
        )
        lines = await pseudo_kinds.run(kind, query)
        failed = lines in ([pseudo_kinds.FAILED], [pseudo_kinds.TIMED_OUT])
        if cache is not None and kind.cache_seconds > 0 and not failed:
            cache.put(key, (time.monotonic() + kind.cache_seconds, tuple(lines)), epoch=epoch,
                      user=(tenant.id, PSEUDO_TAG))
        return lines

    async def _timezone_of(self, tenant: Tenant) -> str:
        zone = getattr(tenant, "timezone", None)  # on the model once tenant time zones land
        if isinstance(zone, str) and zone:
            return zone
        return await self._read(lambda repo: repo.tenant_timezone(tenant.id))

    def _follow_pseudo_events(self) -> None:
        """Drop kept pseudo answers of a tenant when any status or user of it changes."""
        if self._pseudo_unsubscribe is not None:
            return

        def on_event(event: ChangeEvent) -> None:
            cache = self.read_cache
            if cache is not None and event.kind in _DROPPING_KINDS and event.tenant_id:
                cache.invalidate_user(event.tenant_id, PSEUDO_TAG)

        self._pseudo_unsubscribe = self.events.subscribe(on_event)
