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
wire bytes through the service's kept answers (``service.kept_answers``, when
the composition root enabled the read cache), keyed by the raw query line and
tagged with the user they show, so the change events that invalidate the
user's data drop the rendered answer at the same moment
(fingerplat/service/kept_answers.py). Lists, forwarded answers and errors are
never kept.

Pseudo-users (``finger help``) are asked before users: the service answers
them (time-limited, cached where their kind allows); their lines go through
the same encoder as every answer and are not kept here (a ``recent`` answer
depends on every user of the tenant, not on one tag).

The finger log ("who fingered me"): the answer of a user who opted in (with
their tenant) is kept as a :class:`LoggedAnswer`, so a cache hit knows to
record the lookup without asking anything; the flags are part of what a
change event invalidates, so the decision is never stale.

Networks (SPEC section 13): a client in a network the answering tenant
rejects gets one refusal line, and a tenant with trusted networks lists its
users only to them. A kept answer of a tenant without networks is plain
bytes (the cached path pays one type check); one of a tenant with rejected
networks is kept as a :class:`_Guarded` answer that checks the client first
(a :class:`LoggedAnswer` carries the same check). An answer showing a status
that expires is kept with that deadline.
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
from fingerplat.domain.visibility import NetworkPolicy
from fingerplat.service import FingerplatService
from fingerplat.service.cached_reads import deadline_of
from fingerplat.service.finger_log import Tally
from fingerplat.service.kept_answers import MISS, KeptAnswers, UserTag

log = logging.getLogger("fingerplat.finger")

# (user, remote host chain, verbose) -> answer lines, already neutralised.
ForwardFn = Callable[[str, list[str], bool], Awaitable[list[str]]]

HISTORY_LINES = 5
CHANNEL = "finger"
FORWARDING_DENIED = "forwarding denied: this server does not forward finger queries"
REJECTED_NETWORK = "your network is not allowed to finger this site"
LIST_UNTRUSTED = "the user list is only given to trusted networks; finger a user by name instead"
REJECTED_BYTES = render.encode(render.refusal(REJECTED_NETWORK))


class _Guarded:
    """A kept answer of a tenant that rejects networks: checked against the client."""

    __slots__ = ("data", "policy")

    def __init__(self, data: bytes, policy: NetworkPolicy) -> None:
        self.data = data
        self.policy = policy

    def for_peer(self, peer: str | None) -> bytes:
        return REJECTED_BYTES if self.policy.rejects(peer) else self.data

    def count(self, sub: bytes) -> int:  # a held answer's line count, as for bytes
        return self.data.count(sub)


class LoggedAnswer:
    """Kept answer bytes of a user whose lookups are recorded (the finger log).

    ``policy`` is the tenant's network policy when it rejects networks (else
    None): a rejected client gets the refusal and is not recorded.

    ``tally`` is the finger log's count of lookups of this user from ``peer``
    (:meth:`FingerLogRecorder.record`), kept here so that a repeat from the same
    client costs a comparison and an increment, not a call and two look-ups.
    """

    __slots__ = ("data", "peer", "policy", "tally", "tenant_id", "user_id")

    def __init__(self, data: bytes, tenant_id: int, user_id: int,
                 policy: NetworkPolicy | None = None) -> None:
        self.data = data
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.policy = policy
        self.peer: str | None = None
        self.tally: Tally | None = None

    def for_peer(self, peer: str | None) -> bytes:
        if self.policy is not None and self.policy.rejects(peer):
            return REJECTED_BYTES
        return self.data

    def count(self, sub: bytes) -> int:  # a held answer's line count, as for bytes
        return self.data.count(sub)


#: What the read cache keeps for one finger answer.
Kept = bytes | _Guarded | LoggedAnswer


def _kept(data: bytes, tenant: Tenant, user: User | None = None) -> Kept:
    """What to keep for an answer of ``tenant`` about ``user``.

    The bytes; guarded ones when the tenant rejects networks; a
    :class:`LoggedAnswer` when the user and the tenant opted in to the finger log.
    """
    policy = tenant.networks
    guard = policy if policy is not None and policy.rejected else None
    if user is not None and user.finger_log and tenant.finger_log:
        return LoggedAnswer(data, tenant.id, user.id, guard)
    return _Guarded(data, guard) if guard is not None else data


class _Answered:
    """Answer lines plus what decides whether and how long they may be kept.

    ``logged`` is the (tenant, user) whose lookup the finger log records (else None).
    """

    __slots__ = ("lines", "logged", "tenant", "user", "viewed")

    def __init__(self, lines: list[str], user: UserTag | None = None,
                 viewed: User | None = None, tenant: Tenant | None = None,
                 logged: tuple[Tenant, User] | None = None) -> None:
        self.lines = lines
        self.user = user
        self.viewed = viewed
        self.tenant = tenant
        self.logged = logged


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
        # The components a query uses, bound once: a query pays no more
        # attribute hops than when they were methods of the service.
        self.public = service.public
        self.pseudo_users = service.pseudo_users
        self.users = service.users
        self.finger_log = service.finger_log
        self.tenant = tenant
        self.max_listed_users = max_listed_users
        self.forward = forward
        # A kept answer's key: one bytes object, this prefix and the query line
        # as received (a slug holds no NUL). A (kind, tenant, line) tuple
        # around the line cost 64 bytes more per kept answer: 6 MB per
        # 100,000 users (bench/README.md, "Resident memory").
        self.key_prefix = b"finger\0" + (tenant or "").encode() + b"\0"
        kept = service.kept_answers
        if kept is not None:
            kept.add_warmer(self)  # serve keeps our answers before anyone asks (one per tenant)

    def warm_entry(self, tenant: Tenant, user: User,
                   host: str | None = None) -> tuple[Hashable, Kept]:
        """The key and bytes of the short answer about ``user`` asked by name on this listener.

        The same bytes as :meth:`answer_bytes` makes for the query line
        ``user.username`` (``user@host`` with ``host``, a domain of ``tenant``:
        the same answer, routed there), so a warmed entry is indistinguishable
        from a filled one (``user`` is the public view: the service applied
        expiry and public fields; a user whose lookups are logged gets a
        :class:`LoggedAnswer`, as there).
        """
        data = render.encode(render.user_entry(user, verbose=False, history=[], tenant=tenant))
        line = user.username if host is None else f"{user.username}@{host}"
        key = self.key_prefix + line.encode()
        return key, _kept(data, tenant, user)

    def cached(self, raw: bytes, peer: str | None = None) -> bytes | None:
        """The wire bytes of a kept answer to exactly this query line, or None.

        Synchronous on purpose: a hit is answered from ``data_received``
        without a task or any await. ``peer`` is the client's address (checked
        against rejected networks, and recorded by the finger log of a user
        who opted in).
        """
        kept = self.service.kept_answers
        if kept is None:
            return None
        hit = kept.get(self.key_prefix + raw)
        if hit.__class__ is bytes:
            return hit  # type: ignore[no-any-return]
        if hit is not MISS:
            if type(hit) is LoggedAnswer:
                if hit.policy is not None and hit.policy.rejects(peer):
                    return REJECTED_BYTES
                recorder = self.finger_log.finger_log_recorder
                if recorder is not None:
                    tally = hit.tally
                    if tally is not None and tally.live and hit.peer == peer:
                        tally.count += 1  # the common repeat: no call
                    else:
                        hit.tally = recorder.record(hit.tenant_id, hit.user_id, CHANNEL, peer)
                        hit.peer = peer
                return hit.data
            return hit.for_peer(peer)  # type: ignore[no-any-return]
        if not kept.knows_names:
            return None
        return self._absent(kept, raw, peer)

    def _absent(self, kept: KeptAnswers, raw: bytes, peer: str | None = None) -> bytes | None:
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
        tenant = kept.get(("tenant", self.tenant))
        hosts = query.hosts
        while hosts:
            tenant = kept.get(("host", hosts[-1]))
            hosts = hosts[:-1]
        if not isinstance(tenant, Tenant) or not kept.absent(tenant.id, query.user):
            return None
        if tenant.networks is not None and tenant.networks.rejects(peer):
            return REJECTED_BYTES
        pseudo = kept.get(("pseudo-names", tenant.id))
        if pseudo is MISS or query.user in pseudo:  # type: ignore[operator]
            return None
        return render.encode(render.no_such_user(query.user))

    async def answer_bytes(self, raw: bytes, peer: str | None = None) -> tuple[bytes, int]:
        """The wire bytes and line count for one raw query line; never raises."""
        kept = self.service.kept_answers
        fill = kept.begin() if kept is not None else None  # before the reads
        answered = await self._answer_tagged(raw, peer)
        lines = answered.lines
        if kept is not None and lines == [render.UNAVAILABLE]:
            # The database is unreachable (a failover): the answer kept when
            # this node lost track of changes beats an error (KeptAnswers.held).
            held = kept.held(self.key_prefix + raw)
            if held is not MISS:
                data = held if held.__class__ is bytes else held.for_peer(peer)
                return data, data.count(b"\r\n")
        data = render.encode(lines)
        logged = answered.logged
        if logged is not None:
            self.finger_log.note_lookup(logged[0], logged[1], CHANNEL, peer)
        if fill is not None and answered.user is not None and answered.tenant is not None:
            fill.keep(self.key_prefix + raw,
                      _kept(data, answered.tenant, logged[1] if logged is not None else None),
                      user=answered.user, deadline=deadline_of(answered.viewed))
        return data, len(lines)

    async def _answer_tagged(self, raw: bytes, peer: str | None) -> _Answered:
        """Lines, the user they show when the answer may be kept (else None), and the
        (tenant, user) whose lookup the finger log records (else None)."""
        try:
            return await self._answer(parse_query(raw), peer)
        except Unavailable:
            return _Answered([render.UNAVAILABLE])
        except FingerplatError as error:
            return _Answered(render.refusal(str(error)))
        except Exception:
            log.exception("finger query %r failed", raw[:100])
            return _Answered([render.INTERNAL_ERROR])

    async def _answer(self, query: FingerQuery, peer: str | None) -> _Answered:
        tenant = await self.public.resolve_tenant(self.tenant)
        while query.hosts:
            local = await self.public.tenant_for_host(query.hosts[-1])
            if local is None:
                return _Answered(await self._forward(tenant, query))
            tenant, query = local, query.without_last_host()
        policy = tenant.networks
        if policy is not None and policy.rejects(peer):
            return _Answered(render.refusal(REJECTED_NETWORK))
        if query.is_list:
            if policy is not None and not policy.lists_to(peer):
                return _Answered(render.refusal(LIST_UNTRUSTED))
            return _Answered(await self._list(tenant))
        pseudo = await self.pseudo_users.pseudo_answer(tenant, query.user, verbose=query.verbose)
        if pseudo is not None:  # never kept here: the service keeps what its kind allows
            return _Answered(pseudo)
        kept = self.service.kept_answers
        if kept is not None and kept.absent(tenant.id, query.user):
            return _Answered(render.no_such_user(query.user))  # not kept: see _absent
        lines, viewed = await self._user(tenant, query)
        logged = (tenant, viewed) if viewed is not None and viewed.finger_log \
            and tenant.finger_log else None
        return _Answered(lines, (tenant.id, query.user), viewed, tenant, logged)

    async def _forward(self, tenant: Tenant, query: FingerQuery) -> list[str]:
        if not tenant.forwarding or self.forward is None:
            return render.refusal(FORWARDING_DENIED)
        lines = await self.forward(query.user, list(query.hosts), query.verbose)
        return [printable(line) for line in lines]

    async def _list(self, tenant: Tenant) -> list[str]:
        try:
            page = await self.users.directory(tenant, limit=self.max_listed_users)
        except PermissionDenied:
            return render.refusal(f"{tenant.name} does not publish its user list; "
                                  "finger a user by name instead")
        return render.user_list(page.users, page.total, tenant)

    async def _user(self, tenant: Tenant, query: FingerQuery) -> tuple[list[str], User | None]:
        """The entry's lines, and the user shown (None for "No such user").

        The rendered answer is kept (answer_bytes), not the objects behind it.
        """
        user = await self.public.public_user(tenant, query.user, keep=False)
        if user is None:
            return render.no_such_user(query.user), None
        history = []
        if query.verbose:
            try:
                history = await self.public.public_history(tenant, user.username,
                                                           limit=HISTORY_LINES, keep=False)
            except NotFound:  # hidden or removed between the two reads
                return render.no_such_user(query.user), None
        return render.user_entry(user, verbose=query.verbose, history=history,
                                 tenant=tenant), user
