"""The public reads of every adapter's hot path, through the read cache.

The service's ``public`` component (fingerplat/service/core.py): it holds
the tenant and user use cases, and each method here answers from
:attr:`read_cache` when it can and otherwise calls the uncached use case
(``self._tenants`` or ``self._users``) and keeps its answer, negative answers
included. Without a cache (the default: the CLI, most tests) every call goes
straight to the database, so the cache is purely the composition root's
choice (``enable_read_cache``), see fingerplat/service/cache.py for why it
is exact.

When the database cannot be reached (a primary failing over to its standby)
each read answers what the cache held when it lost track of changes
(:meth:`ReadCache.held`) rather than an error: finger and the web keep
answering for the users they had been asked about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Mapping

from fingerplat.domain import expiry, rules, visibility
from fingerplat.domain.errors import NotFound, Unavailable, UserNotFound
from fingerplat.domain.model import StatusChange, Tenant, User
from fingerplat.service.base import ServiceCore, UseCase
from fingerplat.service.cache import MISS, Guard, ReadCache, Warmer, estimate_size
from fingerplat.service.kept_answers import KeptAnswers
from fingerplat.service.membership import Membership
from fingerplat.service.tenants import TenantUseCases
from fingerplat.service.users import UserUseCases


class _Absent:
    """A cached "not found" with the message the uncached read raised."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _held_or_raise(cache: ReadCache, key: Hashable, error: Unavailable) -> object:
    """The held answer for ``key`` while the database is unreachable, else ``error``."""
    kept = cache.held(key)
    if kept is MISS:
        raise error
    return kept


def deadline_of(user: User | None) -> float | None:
    """Until when (``time.time()``) a cached answer showing ``user`` is right."""
    moment = expiry.deadline(user)
    return moment.timestamp() if moment is not None else None


def _same_name(_tenant_id: int, username: str) -> str:
    return username


class CachedPublicReads(UseCase):
    read_cache: ReadCache | None = None
    #: The adapters' view of :attr:`read_cache` (fingerplat/service/kept_answers.py):
    #: None exactly when it is None. FingerplatService.kept_answers is the same
    #: object, as a plain attribute of the service read on every hit.
    kept_answers: KeptAnswers | None = None

    def __init__(self, core: ServiceCore, *, tenants: TenantUseCases,
                 users: UserUseCases) -> None:
        super().__init__(core)
        self._tenants = tenants
        self._users = users

    def enable_read_cache(self, *, max_bytes: int | None = None,
                          max_entries: int | None = None, guard: Guard | None = None,
                          membership: bool = False) -> ReadCache:
        """Start caching the public reads (invalidated by :attr:`events`).

        With ``membership`` (``serve`` asks for it; it needs a running event
        loop, which loads it in the background) names that do not exist are
        answered without a read (fingerplat/service/membership.py); stop it
        with :meth:`stop_read_cache` before the engines are disposed.
        """
        if self.read_cache is not None:
            self.read_cache.close()
        cache = self.read_cache = ReadCache(self.events, max_bytes=max_bytes,
                                               max_entries=max_entries, guard=guard)
        self.kept_answers = KeptAnswers(cache)
        if membership:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return cache
            cache.membership = Membership(self._read)
            cache.membership.start()
        return cache

    async def stop_read_cache(self) -> None:
        """Stop the membership's background loads (awaited), then the cache."""
        if self.read_cache is not None and self.read_cache.membership is not None:
            await self.read_cache.membership.aclose()
        self.disable_read_cache()

    def disable_read_cache(self) -> None:
        if self.read_cache is not None:
            self.read_cache.close()
            self.read_cache = None
            self.kept_answers = None

    async def resolve_tenant(self, name: str | None = None) -> Tenant:
        cache = self.read_cache
        if cache is None:
            return await self._tenants.resolve_tenant(name)
        key: Hashable = ("tenant", name or None)
        hit = cache.get(key)
        if isinstance(hit, Tenant):
            return hit
        if isinstance(hit, _Absent):
            raise NotFound(hit.message)
        epoch = cache.epoch
        try:
            tenant = await self._tenants.resolve_tenant(name)
        except NotFound as error:
            cache.put(key, _Absent(str(error)), epoch=epoch)
            raise
        except Unavailable as error:
            kept = _held_or_raise(cache, key, error)
            if isinstance(kept, _Absent):
                raise NotFound(kept.message) from None
            return kept  # type: ignore[return-value]
        cache.put(key, tenant, epoch=epoch)
        return tenant

    async def tenant_for_host(self, host: str) -> Tenant | None:
        cache = self.read_cache
        if cache is None:
            return await self._tenants.tenant_for_host(host)
        key: Hashable = ("host", host)
        hit = cache.get(key)
        if hit is not MISS:
            return hit  # type: ignore[no-any-return]
        epoch = cache.epoch
        try:
            tenant = await self._tenants.tenant_for_host(host)
        except Unavailable as error:
            return _held_or_raise(cache, key, error)  # type: ignore[return-value]
        cache.put(key, tenant, epoch=epoch)
        return tenant

    async def warm_read_cache(self, *, batch: int = 2000) -> int:
        """Fill the cache with every warmer's answers for visible users; returns how many.

        Run in the background at start (``serve``): a freshly started server
        then answers existing names from memory instead of a read each. Stops
        when the next entry would evict another (warming never pushes out
        what was asked for). A batch whose read raced a change is read again,
        so nothing kept is older than the change events say.
        """
        cache = self.read_cache
        warmed = 0
        if cache is None:
            return 0
        membership = cache.membership
        name = membership.kept_name if membership is not None else _same_name
        for warmer in list(cache.warmers):
            tenant = await self.resolve_tenant(warmer.tenant)
            # Whether the answers fit the budget as they are (else they are
            # kept compressed) is decided on the first batch from this count.
            expected: int = await self._read(
                lambda repo, tid=tenant.id: repo.count_users(tid, include_hidden=False))
            after: str | None = None
            while True:
                for _attempt in range(3):
                    epoch = cache.epoch
                    users: list[User] = await self._read(
                        lambda repo, after=after, tid=tenant.id: repo.visible_users_page(
                            tid, after, batch))
                    if epoch == cache.epoch:
                        break
                now = self.clock()
                entries = []
                for user in users:
                    # As a public read shows it: expired statuses and unpublished
                    # fields gone, and kept no longer than its status holds.
                    view = visibility.public_view(expiry.live(user, now), tenant.public_fields)
                    key, data = warmer.warm_entry(tenant, view)
                    entries.append((key, data, (tenant.id, name(tenant.id, user.username)),
                                    deadline_of(view)))
                kept = cache.warm_batch(entries, epoch=epoch, expected=expected)
                if kept is None:
                    return warmed
                warmed += kept
                if len(users) < batch:
                    break
                after = users[-1].username
                await asyncio.sleep(0)  # let queries in between batches
        return warmed + await self._warm_hosts(cache, batch)

    async def _warm_hosts(self, cache: ReadCache, batch: int) -> int:
        """Keep every tenant's answers as asked for by ``user@domain`` on each listener.

        One listener serves many tenants (SPEC section 2): with 10,000 tenants
        of 10 users asked for as ``user@domain``, each first query was a
        tenant lookup, a pseudo-user read and a user read. Here the tenants
        (with their domains) and their pseudo-user names are read in a few
        statements and kept as :meth:`tenant_for_host` and ``pseudo_kind_of``
        keep them, then the visible users of all tenants in keyset pages, each
        answer kept under each domain of its tenant, until the budget is full.
        """
        warmers = list(cache.warmers)
        if not warmers:
            return 0
        membership = cache.membership
        name = membership.kept_name if membership is not None else _same_name
        epoch = cache.epoch
        tenants = await self._read(lambda repo: repo.tenants_with_domains())
        pseudo = await self._read(lambda repo: repo.pseudo_names_by_tenant())
        if epoch != cache.epoch:
            return 0  # a change meanwhile: the ordinary path fills what is asked
        by_id = {t.id: t for t in tenants if t.domains}
        if not _keep_tenant_entries(cache, by_id.values(), pseudo, epoch):
            return 0  # warming never evicts
        warmed = 0
        after: tuple[int, str] | None = None
        while by_id:
            for _attempt in range(3):
                epoch = cache.epoch
                users: list[User] = await self._read(
                    lambda repo, after=after: repo.visible_users_all_page(after, batch))
                if epoch == cache.epoch:
                    break
            now = self.clock()
            for user in users:
                tenant = by_id.get(user.tenant_id)
                if tenant is None:
                    continue
                view = visibility.public_view(expiry.live(user, now), tenant.public_fields)
                kept = _keep_host_answers(cache, warmers, tenant, view, epoch,
                                          (tenant.id, name(tenant.id, user.username)))
                if kept is None:
                    return warmed
                warmed += kept
            if len(users) < batch:
                break
            after = (users[-1].tenant_id, users[-1].username)
            await asyncio.sleep(0)  # let queries in between batches
        return warmed

    async def public_user(self, tenant: Tenant, name: str, *, keep: bool = True) -> User | None:
        """``keep=False``: use a kept user but keep none (the caller keeps its rendering)."""
        cache = self.read_cache
        if cache is None:
            return await self._users.public_user(tenant, name)
        username = rules.username(name)
        if cache.absent(tenant.id, username):
            return None  # missing or hidden: the same answer, the same path
        key: Hashable = ("user", tenant.id, username)
        hit = cache.get(key)
        if hit is not MISS:
            return hit  # type: ignore[no-any-return]
        epoch = cache.epoch
        try:
            user = await self._users.public_user(tenant, username)
        except Unavailable as error:
            return _held_or_raise(cache, key, error)  # type: ignore[return-value]
        if keep:
            cache.put(key, user, epoch=epoch, user=(tenant.id, username),
                      deadline=deadline_of(user))
        return user

    async def public_history(self, tenant: Tenant, name: str, limit: int = 10, *,
                             keep: bool = True) -> list[StatusChange]:
        cache = self.read_cache
        if cache is None:
            return await self._users.public_history(tenant, name, limit)
        username = rules.username(name)
        if cache.absent(tenant.id, username):
            raise UserNotFound(username, tenant.slug)
        key: Hashable = ("history", tenant.id, username, limit)
        hit = cache.get(key)
        if isinstance(hit, _Absent):
            raise UserNotFound(username, tenant.slug)
        if hit is not MISS:
            return list(hit)
        epoch = cache.epoch
        tag = (tenant.id, username)
        try:
            history = await self._users.public_history(tenant, username, limit)
        except UserNotFound as error:
            cache.put(key, _Absent(str(error)), epoch=epoch, user=tag)
            raise
        except Unavailable as error:
            kept = _held_or_raise(cache, key, error)
            if isinstance(kept, _Absent):
                raise UserNotFound(username, tenant.slug) from None
            return list(kept)  # type: ignore[call-overload]
        if keep:
            cache.put(key, tuple(history), epoch=epoch, user=tag)
        return history


def _keep_tenant_entries(cache: ReadCache, tenants: Iterable[Tenant],
                         pseudo: Mapping[int, object], epoch: int) -> bool:
    """Keep each tenant's pseudo-user names and its tenant under each of its domains,
    as ``pseudo_kind_of`` and ``tenant_for_host`` keep them; False once full."""
    for tenant in tenants:
        entries: list[tuple[Hashable, object]] = [
            (("pseudo-names", tenant.id), pseudo.get(tenant.id, {})),
            *((("host", domain), tenant) for domain in tenant.domains)]
        for key, value in entries:
            size = estimate_size(key, value)
            if not cache.room(size):
                return False
            cache.put(key, value, epoch=epoch, size=size)
    return True


def _keep_host_answers(cache: ReadCache, warmers: list[Warmer], tenant: Tenant, view: User,
                       epoch: int, tag: tuple[int, str]) -> int | None:
    """Keep a user's answer under each domain of its tenant on each listener: how many
    were new; None once the budget is full (warming never evicts)."""
    deadline = deadline_of(view)
    kept = 0
    for warmer in warmers:
        for domain in tenant.domains:
            key, data = warmer.warm_entry(tenant, view, host=domain)
            size = estimate_size(key, data)
            if not cache.room(size):
                return None
            if key not in cache:
                cache.put(key, data, epoch=epoch, user=tag, size=size, deadline=deadline)
                kept += 1
    return kept
