"""Turning a parsed query into answer lines: tenant routing, forwarding, errors.

This is the finger adapter's use of the service, kept apart from the socket
code so it reads as the rules of SPEC section 2:

* ``user@host`` where ``host`` is a domain or slug hosted here is answered
  locally from that tenant (repeatedly, so ``user@acme@beta`` works when both
  are local); the rightmost host of a chain is always the next hop;
* any other host is forwarding: only when the answering tenant has
  ``forwarding`` on and the composition root gave us a forwarder;
* unknown and hidden users get the same bytes (the service returns ``None``
  for both);
* every domain error becomes one polite line; anything unexpected is logged
  and answered with one line too, never a traceback.

Answers about one user (found, unknown or hidden; short or ``/W``) are kept as
wire bytes in the service's read cache when the composition root enabled one,
keyed by the raw query line and tagged with the user they show, so the change
events that invalidate the user's data drop the rendered answer at the same
moment (fingerplat/service/cache.py). Lists, forwarded answers and errors are
never kept.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable

from fingerplat.adapters.finger import render
from fingerplat.adapters.finger.query import FingerQuery, parse_query
from fingerplat.domain.errors import (
    FingerplatError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from fingerplat.domain.model import Tenant, User
from fingerplat.domain.text import printable
from fingerplat.service import FingerplatService
from fingerplat.service.cache import MISS, ReadCache, UserTag

log = logging.getLogger("fingerplat.finger")

# (user, remote host chain, verbose) -> answer lines, already neutralised.
ForwardFn = Callable[[str, list[str], bool], Awaitable[list[str]]]

HISTORY_LINES = 5
FORWARDING_DENIED = "forwarding denied: this server does not forward finger queries"


class FingerAnswerer:
    """Answers one query line for a listener (bound to ``tenant`` or the default)."""

    def __init__(
        self,
        service: FingerplatService,
        *,
        tenant: str | None,
        max_listed_users: int,
        forward: ForwardFn | None = None,
    ) -> None:
        self.service = service
        self.tenant = tenant
        self.max_listed_users = max_listed_users
        self.forward = forward
        cache = service.read_cache
        if cache is not None and all(w.tenant != tenant for w in cache.warmers):
            cache.warmers.append(self)  # serve warms the cache with our answers (one per tenant)

    def warm_entry(self, tenant: Tenant, user: User) -> tuple[Hashable, bytes]:
        """The key and bytes of the short answer about ``user`` asked by name on this listener.

        The same bytes as :meth:`answer_bytes` makes for the query line
        ``user.username``, so a warmed entry is indistinguishable from a filled one.
        """
        data = render.encode(render.user_entry(user, verbose=False, history=[]))
        return ("finger", self.tenant, user.username.encode()), data

    def cached(self, raw: bytes) -> bytes | None:
        """The wire bytes of a kept answer to exactly this query line, or None.

        Synchronous on purpose: a hit is answered from ``data_received``
        without a task or any await.
        """
        cache = self.service.read_cache
        if cache is None:
            return None
        hit = cache.get(("finger", self.tenant, raw))
        if hit is not MISS:
            return hit  # type: ignore[no-any-return]
        if cache.membership is None:
            return None
        return self._absent(cache, raw)

    def _absent(self, cache: ReadCache, raw: bytes) -> bytes | None:
        """"No such user" for a name the membership knows is missing or hidden.

        Answered here, on accept, from what is already in memory (the tenant
        and any ``@host`` resolved before), and not kept: a flood of random
        names must not push real users out of the cache. None whenever
        anything is not certain; the ordinary path then answers.
        """
        try:
            query = parse_query(raw)
        except FingerplatError:
            return None
        if query.is_list:
            return None
        tenant = cache.get(("tenant", self.tenant))
        hosts = query.hosts
        while hosts:
            tenant = cache.get(("host", hosts[-1]))
            hosts = hosts[:-1]
        if not isinstance(tenant, Tenant) or not cache.absent(tenant.id, query.user):
            return None
        return render.encode(render.no_such_user(query.user))

    async def answer_bytes(self, raw: bytes) -> tuple[bytes, int]:
        """The wire bytes and line count for one raw query line; never raises."""
        cache = self.service.read_cache
        epoch = cache.epoch if cache is not None else 0
        lines, user = await self._answer_tagged(raw)
        if cache is not None and lines == [render.UNAVAILABLE]:
            # The database is unreachable (a failover): the answer kept when
            # this node lost track of changes beats an error (ReadCache.held).
            held = cache.held(("finger", self.tenant, raw))
            if held is not MISS:
                return held, held.count(b"\r\n")
        data = render.encode(lines)
        if cache is not None and user is not None:
            cache.put(("finger", self.tenant, raw), data, epoch=epoch, user=user)
        return data, len(lines)

    async def answer(self, raw: bytes) -> list[str]:
        """Answer lines for one raw query line; never raises (except cancellation)."""
        return (await self._answer_tagged(raw))[0]

    async def _answer_tagged(self, raw: bytes) -> tuple[list[str], UserTag | None]:
        """Lines, and the user they show when the answer may be kept (else None)."""
        try:
            return await self._answer(parse_query(raw))
        except Unavailable:
            return [render.UNAVAILABLE], None
        except FingerplatError as error:
            return render.refusal(str(error)), None
        except Exception:
            log.exception("finger query %r failed", raw[:100])
            return [render.INTERNAL_ERROR], None

    async def _answer(self, query: FingerQuery) -> tuple[list[str], UserTag | None]:
        tenant = await self.service.resolve_tenant(self.tenant)
        while query.hosts:
            local = await self.service.tenant_for_host(query.hosts[-1])
            if local is None:
                return await self._forward(tenant, query), None
            tenant, query = local, query.without_last_host()
        if query.is_list:
            return await self._list(tenant), None
        cache = self.service.read_cache
        if cache is not None and cache.absent(tenant.id, query.user):
            return render.no_such_user(query.user), None  # not kept: see _absent
        return await self._user(tenant, query), (tenant.id, query.user)

    async def _forward(self, tenant: Tenant, query: FingerQuery) -> list[str]:
        if not tenant.forwarding or self.forward is None:
            return render.refusal(FORWARDING_DENIED)
        lines = await self.forward(query.user, list(query.hosts), query.verbose)
        return [printable(line) for line in lines]

    async def _list(self, tenant: Tenant) -> list[str]:
        try:
            page = await self.service.directory(tenant, limit=self.max_listed_users)
        except PermissionDenied:
            return render.refusal(f"{tenant.name} does not publish its user list; "
                                  "finger a user by name instead")
        return render.user_list(page.users, page.total)

    async def _user(self, tenant: Tenant, query: FingerQuery) -> list[str]:
        # The rendered answer is kept (answer_bytes), not the objects behind it.
        user = await self.service.public_user(tenant, query.user, keep=False)
        if user is None:
            return render.no_such_user(query.user)
        history = []
        if query.verbose:
            try:
                history = await self.service.public_history(tenant, user.username,
                                                            limit=HISTORY_LINES, keep=False)
            except NotFound:  # hidden or removed between the two reads
                return render.no_such_user(query.user)
        return render.user_entry(user, verbose=query.verbose, history=history)
