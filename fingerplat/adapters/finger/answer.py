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

Pseudo-users (``finger help``) are asked before users: the service answers
them (time-limited, cached where their kind allows); their lines go through
the same encoder as every answer and are not kept here (a ``recent`` answer
depends on every user of the tenant, not on one tag).

The finger log ("who fingered me"): the answer of a user who opted in (with
their tenant) is kept as a :class:`LoggedAnswer`, so a cache hit knows to
record the lookup without asking anything; the flags are part of what a
change event invalidates, so the decision is never stale.
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
CHANNEL = "finger"

# Lines; the user they show when they may be kept; the (tenant, user) to log.
Answer = tuple[list[str], UserTag | None, tuple[Tenant, User] | None]


class LoggedAnswer:
    """Kept answer bytes of a user whose lookups are recorded (the finger log)."""

    __slots__ = ("data", "tenant_id", "user_id")

    def __init__(self, data: bytes, tenant_id: int, user_id: int) -> None:
        self.data = data
        self.tenant_id = tenant_id
        self.user_id = user_id
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

    def warm_entry(self, tenant: Tenant, user: User) -> tuple[Hashable, bytes | LoggedAnswer]:
        """The key and bytes of the short answer about ``user`` asked by name on this listener.

        The same bytes as :meth:`answer_bytes` makes for the query line
        ``user.username``, so a warmed entry is indistinguishable from a filled one
        (a user whose lookups are logged gets a :class:`LoggedAnswer`, as there).
        """
        data = render.encode(render.user_entry(user, verbose=False, history=[]))
        key = ("finger", self.tenant, user.username.encode())
        if user.finger_log and tenant.finger_log:
            return key, LoggedAnswer(data, tenant.id, user.id)
        return key, data

    def cached(self, raw: bytes, peer: str | None = None) -> bytes | None:
        """The wire bytes of a kept answer to exactly this query line, or None.

        Synchronous on purpose: a hit is answered from ``data_received``
        without a task or any await. ``peer`` (the client's address) is only
        used for the finger log of a user who opted in.
        """
        cache = self.service.read_cache
        if cache is None:
            return None
        hit = cache.get(("finger", self.tenant, raw))
        if hit is not MISS:
            if type(hit) is LoggedAnswer:
                recorder = self.service.finger_log_recorder
                if recorder is not None:
                    recorder.record(hit.tenant_id, hit.user_id, CHANNEL, peer)
                return hit.data
            return hit  # type: ignore[no-any-return]
        if cache.membership is None:
            return None
        return self._absent(cache, raw)

    def _absent(self, cache: ReadCache, raw: bytes) -> bytes | None:
        """"No such user" for a name the membership knows is missing or hidden.

        Answered here, on accept, from what is already in memory (the tenant
        and any ``@host`` resolved before), and not kept: a flood of random
        names must not push real users out of the cache. None whenever
        anything is not certain (a pseudo-user's name is not a user either:
        only the tenant's kept list of pseudo names rules it out); the
        ordinary path then answers.
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
        pseudo = cache.get(("pseudo-names", tenant.id))
        if pseudo is MISS or query.user in pseudo:  # type: ignore[operator]
            return None
        return render.encode(render.no_such_user(query.user))

    async def answer_bytes(self, raw: bytes, peer: str | None = None) -> tuple[bytes, int]:
        """The wire bytes and line count for one raw query line; never raises."""
        cache = self.service.read_cache
        epoch = cache.epoch if cache is not None else 0
        lines, user, logged = await self._answer_tagged(raw)
        if cache is not None and lines == [render.UNAVAILABLE]:
            # The database is unreachable (a failover): the answer kept when
            # this node lost track of changes beats an error (ReadCache.held).
            held = cache.held(("finger", self.tenant, raw))
            if held is not MISS:
                data = held.data if type(held) is LoggedAnswer else held
                return data, data.count(b"\r\n")
        data = render.encode(lines)
        if logged is not None:
            self.service.note_lookup(logged[0], logged[1], CHANNEL, peer)
        if cache is not None and user is not None:
            kept: bytes | LoggedAnswer = data
            if logged is not None:
                kept = LoggedAnswer(data, logged[0].id, logged[1].id)
            cache.put(("finger", self.tenant, raw), kept, epoch=epoch, user=user)
        return data, len(lines)

    async def answer(self, raw: bytes) -> list[str]:
        """Answer lines for one raw query line; never raises (except cancellation)."""
        return (await self._answer_tagged(raw))[0]

    async def _answer_tagged(self, raw: bytes) -> Answer:
        """Lines, the user they show when the answer may be kept (else None), and the
        (tenant, user) whose lookup the finger log records (else None)."""
        try:
            return await self._answer(parse_query(raw))
        except Unavailable:
            return [render.UNAVAILABLE], None, None
        except FingerplatError as error:
            return render.refusal(str(error)), None, None
        except Exception:
            log.exception("finger query %r failed", raw[:100])
            return [render.INTERNAL_ERROR], None, None

    async def _answer(self, query: FingerQuery) -> Answer:
        tenant = await self.service.resolve_tenant(self.tenant)
        while query.hosts:
            local = await self.service.tenant_for_host(query.hosts[-1])
            if local is None:
                return await self._forward(tenant, query), None, None
            tenant, query = local, query.without_last_host()
        if query.is_list:
            return await self._list(tenant), None, None
        pseudo = await self.service.pseudo_answer(tenant, query.user, verbose=query.verbose)
        if pseudo is not None:  # never kept here: the service keeps what its kind allows
            return pseudo, None, None
        cache = self.service.read_cache
        if cache is not None and cache.absent(tenant.id, query.user):
            return render.no_such_user(query.user), None, None  # not kept: see _absent
        lines, user = await self._user(tenant, query)
        logged = (tenant, user) if user is not None and user.finger_log and tenant.finger_log \
            else None
        return lines, (tenant.id, query.user), logged

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

    async def _user(self, tenant: Tenant, query: FingerQuery) -> tuple[list[str], User | None]:
        """The entry's lines, and the user shown (None for "No such user").

        The rendered answer is kept (answer_bytes), not the objects behind it.
        """
        user = await self.service.public_user(tenant, query.user, keep=False)
        if user is None:
            return render.no_such_user(query.user), None
        history = []
        if query.verbose:
            try:
                history = await self.service.public_history(tenant, user.username,
                                                            limit=HISTORY_LINES, keep=False)
            except NotFound:  # hidden or removed between the two reads
                return render.no_such_user(query.user), None
        return render.user_entry(user, verbose=query.verbose, history=history), user
