"""The read cache of the public lookups, kept exact by change events.

Every finger query, web page and IRC answer starts with the same two public
reads: which tenant (by slug, domain or host name) and which user in it. Done
through the database that is several round trips per query; this cache keeps
the answers (negative ones too: unknown and hidden users are looked up as
often as real ones) in memory, bounded (least recently used entries go first),
and drops them when a change event says they changed:

* ``status``, ``plan``, ``user`` events drop every entry tagged with that
  user, ``(tenant_id, username)``, including the "no such user" ones;
* ``tenant`` events (settings, domains, removal), ``resync`` (this node may
  have missed events) and any kind this release does not know drop all;
* ``token`` events drop nothing: no public read depends on a token.

Correctness does not rest on timing. An entry filled from a read that began
before an invalidation would be stale, so a fill carries the cache's
``epoch`` taken before its read and is refused when an invalidation that
could touch it happened since: a drop of everything, or a change of the user
it is tagged with. A change of another user does not refuse it (under a
steady stream of writes a single epoch for all once refused nearly every
fill, so the cache stopped filling); the cache remembers the epochs of the
last ``DROPS_REMEMBERED`` users changed, and refuses every fill older than
the ones it forgot. Events are published after commit and before the writer's call
returns, so once a change through this node has returned, the next read sees
it. Other nodes' changes arrive as events through the PostgreSQL bridge.

Some writers publish no event this process can hear (another process on the
same SQLite file, a node whose LISTEN connection is down). For those the
composition root passes a ``guard``: a cheap function returning a token that
changes whenever the database may have changed behind our back (SQLite: the
file's size and time), or None while the cache must not be used at all
(PostgreSQL: while the LISTEN connection is down). A new token drops
everything; None bypasses the cache until it is back, keeping what it held
aside for :meth:`ReadCache.held` (answers while the database itself cannot be
reached, e.g. during a failover), and the token's return drops everything.
The guard is asked once per event-loop iteration, not once per read: every
read in one iteration then sees the database as of that iteration's start,
as if they had all happened at that instant (on SQLite each check is two
system calls, which cost as much as the rest of a cached web page).

An entry may carry a deadline (a status that expires): past it the entry
is a miss and is dropped (and never held), so no read ever shows an expired
status from the cache, without any write or event when the time comes.

Adapters keep derived values here too (the finger adapter's rendered answer
bytes), tagged with the user they show, so they are invalidated by the same
events at the same moment as the reads they were made from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, Protocol

from fingerplat.domain.model import ChangeEvent
from fingerplat.service.events import EventBus
from fingerplat.service.membership import Membership

log = logging.getLogger(__name__)

#: A user an entry shows: (tenant id, username).
UserTag = tuple[int, str]
Guard = Callable[[], Hashable | None]

#: The byte budget when the configuration does not give one: 1/32 of the
#: machine's memory, at least 16 MiB and at most 128 MiB (default_max_bytes).
MIN_DEFAULT_BYTES = 16 << 20
MAX_DEFAULT_BYTES = 128 << 20

#: What an entry costs beyond its value and key: the ordered dict's node
#: and slot, the entry tuple, the user's slot among the tags (tracemalloc on
#: the bench data, 100,000 users: a finger answer of 140 bytes with its
#: 20-byte key costs 448 bytes in all; 506 while the tag was a tuple).
ENTRY_OVERHEAD = 256


def default_max_bytes() -> int:
    """The default budget, from the machine's memory (fixed 64 MiB when unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 64 << 20
    return max(MIN_DEFAULT_BYTES, min(MAX_DEFAULT_BYTES, total // 32))


def estimate_size(key: Hashable, value: Any) -> int:
    """About what keeping ``value`` under ``key`` costs, in bytes.

    An estimate by type, cheap enough for every fill: rendered bytes count
    as their length; objects as measured with tracemalloc on typical data.
    """
    size = ENTRY_OVERHEAD
    if isinstance(key, tuple):
        for part in key:
            if isinstance(part, bytes | str):
                size += len(part)
    elif isinstance(key, bytes):  # a key of one bytes object (finger's answers)
        size += len(key)
    if isinstance(value, bytes):
        return size + len(value) + 33
    data = getattr(value, "data", None)  # kept bytes with a note (a logged finger answer)
    if isinstance(data, bytes):
        return size + len(data) + 33 + 64
    pieces = getattr(value, "pieces", None)  # a kept web page
    if isinstance(pieces, tuple):
        return size + sum(len(p) for p in pieces) + 64 * len(pieces) + 200
    if isinstance(value, tuple):  # a history: StatusChange objects
        return size + 56 + 400 * len(value)
    if value is None:
        return size
    return size + 700  # a User, a Tenant, a cached "not found"

_USER_KINDS: Final = frozenset({"status", "plan", "user"})
#: How many users' latest invalidations are remembered for refusing fills;
#: a fill whose read began before a forgotten one is refused.
DROPS_REMEMBERED = 4096
#: A kept entry: (value, tenant id, username, estimated size, deadline).
_Entry = tuple[Any, int | None, str | None, int, float | None]
#: One int object per entry size seen (see ReadCache.put).
_SIZES: dict[int, int] = {}


class Warmer(Protocol):
    """An adapter's rendering of a user's answer, to keep before anyone asks.

    The finger adapter registers one per listener (``cache.warmers``); the
    service's :meth:`warm_read_cache` reads the tenant's visible users in
    batches and keeps what each warmer renders, until the budget is full;
    then every tenant's users as asked for by ``user@host`` for each of the
    tenant's domains (one listener serves many tenants).
    """

    tenant: str | None

    def warm_entry(self, tenant: Any, user: Any,
                   host: str | None = None) -> tuple[Hashable, Any]: ...


#: What a compact answer costs beyond its bytes: the bytes object's header
#: and its slot in the store's dict (keyed by the membership's own string
#: for the name, so the name itself costs nothing more).
COMPACT_OVERHEAD = 80
#: Answers a compressed store's shared dictionary is made of (its first batch).
ZDICT_SAMPLE = 32
#: The shared dictionary's size at most (a larger one compresses little
#: better and costs more per decompression: 2.5 us at 1 KiB, 3.2 at 18 KiB).
ZDICT_BYTES = 4096


class _Compact:
    """One listener's warmed answers to a bare user name, without per-entry objects.

    The warm start keeps most of what it renders here instead of in the LRU
    map: ``answers`` maps the membership's own string for the name to the
    answer's bytes (compressed with ``zdict`` when the tenant's answers
    would not fit the budget as they are). What a user's entry in the LRU
    map costs besides its bytes (an ordered dict node, the entry tuple, the
    key's bytes, the user's tag: about 250 bytes) is here a dict slot. The
    key a query looks up is ``prefix`` + the name's UTF-8 bytes.
    """

    __slots__ = ("answers", "prefix", "tenant_id", "zdict")

    def __init__(self, prefix: bytes, tenant_id: int, zdict: bytes | None) -> None:
        self.prefix = prefix
        self.tenant_id = tenant_id
        self.zdict = zdict
        self.answers: dict[str, bytes] = {}

    def lookup(self, key: bytes) -> Any:
        try:
            name = key[len(self.prefix):].decode()
        except UnicodeDecodeError:
            return MISS
        data = self.answers.get(name)
        if data is None:
            return MISS
        if self.zdict is None:
            return data
        return zlib.decompressobj(-15, self.zdict).decompress(data)

    def pack(self, data: bytes) -> bytes:
        if self.zdict is None:
            return data
        packer = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, self.zdict)
        return packer.compress(data) + packer.flush()


def _compact_lookup(stores: list[_Compact], key: Hashable) -> Any:
    if key.__class__ is bytes:
        for store in stores:
            if key.startswith(store.prefix):  # type: ignore[attr-defined]
                found = store.lookup(key)  # type: ignore[arg-type]
                if found is not MISS:
                    return found
    return MISS


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = _Miss()


class ReadCache:
    """A bounded LRU map whose entries change events invalidate."""

    def __init__(self, events: EventBus, *, max_bytes: int | None = None,
                 max_entries: int | None = None, guard: Guard | None = None) -> None:
        if max_bytes is None:
            max_bytes = default_max_bytes()
        if max_bytes < 1 or (max_entries is not None and max_entries < 1):
            raise ValueError("max_bytes and max_entries must be at least 1")
        self.max_bytes = max_bytes
        self.max_entries = max_entries if max_entries is not None else sys.maxsize
        self.bytes = 0  # estimated bytes of what is kept (estimate_size)
        self.epoch = 0
        # Fills whose epoch is below this are refused (the last drop of
        # everything, or the newest invalidation no longer in _dropped).
        self._floor = 0
        # user tag -> the epoch its entries were last dropped at, oldest first.
        self._dropped: dict[UserTag, int] = {}
        self.hits = 0
        # key -> (value, tenant id, username, estimated size, deadline as
        # time.time() or None); tenant id and username None for an untagged
        # entry. The user's tag is kept as its two parts, not as the
        # (tenant id, username) tuple callers pass: a tuple per user was
        # 5.4 MiB per 100,000 users (tracemalloc), the slot in this tuple 0.8.
        self._data: OrderedDict[Hashable, _Entry] = OrderedDict()
        # tenant id -> username -> that user's keys: the key itself while it
        # is the only one (most users have one entry: their finger answer),
        # else a list of them (never a set: an empty set alone is 216 bytes;
        # a one-key list cost 9 MiB per 100,000 users). Per tenant, so the
        # inner dicts are keyed by strings alone (CPython's denser layout
        # for them) and hold the username given, the membership's own
        # string on the warm start.
        self._by_user: dict[int, dict[str, Hashable | list[Hashable]]] = {}
        # What the cache held when following changes stopped (LISTEN lost): never
        # answered from while the database answers, only instead of an error
        # while it does not (a failover), see held().
        self._held: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._held_used = False  # said so in the log since the last hold()
        # The warm start's answers to bare names, one store per listener
        # (see _Compact and warm_batch); invalidated with the LRU entries.
        self._compact: list[_Compact] = []
        self._held_compact: list[_Compact] = []
        self._guard = guard
        self._token: Hashable | None = guard() if guard is not None else None
        self._usable = self._token is not None or guard is None
        self._guard_checked = False  # already asked in this event-loop iteration
        self._unsubscribe = events.subscribe(self.on_event)
        #: Which names exist (fingerplat/service/membership.py), driven by the
        #: same events and guard as the entries; None: not kept.
        self.membership: Membership | None = None
        self.warmers: list[Warmer] = []

    def __len__(self) -> int:
        return len(self._data) + self._compact_len()

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is kept (no hit or miss counted, no recency changed)."""
        return key in self._data or (
            bool(self._compact) and _compact_lookup(self._compact, key) is not MISS)

    def _compact_len(self) -> int:
        return sum(len(store.answers) for store in self._compact)

    def close(self) -> None:
        """Stop listening to change events (the cache is then no longer used)."""
        self._unsubscribe()
        self.clear()
        if self.membership is not None:
            self.membership.close()

    def absent(self, tenant_id: int, username: str) -> bool:
        """True only when the name surely is no visible user: missing or hidden alike.

        ``username`` must be normalised (rules.username). False whenever the
        cache is off or the membership is not sure: the caller then reads.
        """
        membership = self.membership
        if membership is None:
            return False
        if self._guard is not None and not self._check_guard():
            return False
        return membership.absent(tenant_id, username)

    # -- reads and fills ---------------------------------------------------------

    def get(self, key: Hashable) -> Any:
        """The cached value, or :data:`MISS`. Take ``epoch`` after a miss, before reading."""
        if self._guard is not None and not self._check_guard():
            return MISS
        entry = self._data.get(key)
        if entry is None or (entry[4] is not None and entry[4] <= time.time()):
            if entry is not None:  # past its deadline: gone for good
                del self._data[key]
                self.bytes -= entry[3]
                self._untag(key, entry[1], entry[2])
            elif self._compact:
                found = _compact_lookup(self._compact, key)
                if found is not MISS:
                    self.hits += 1
                return found
            return MISS
        self._data.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Hashable, value: Any, *, epoch: int, user: UserTag | None = None,
            size: int | None = None, deadline: float | None = None) -> None:
        """Keep ``value`` unless what it shows was invalidated since ``epoch`` was read.

        "What it shows": everything for a fill without ``user``; else that
        user's entries, or everything.

        The least recently used entries go until the estimated bytes
        (``size``, else :func:`estimate_size`) fit ``max_bytes``.
        ``deadline`` (a ``time.time()`` value): the entry is a miss from then on.
        """
        if epoch != self.epoch and (  # something was invalidated since the read began
                self._floor > epoch or (user is not None and self._dropped.get(user, 0) > epoch)):
            return
        if not self._usable:
            return
        if self._compact and user is not None and self._refill(key, value, user, deadline):
            return
        if size is None:
            size = estimate_size(key, value)
        data = self._data
        old = data.get(key)
        if old is not None:
            self._untag(key, old[1], old[2])
            self.bytes -= old[3]
        # Sizes repeat (answers of a similar length): share their int objects,
        # 32 bytes each above 256 (3 MiB per 100,000 entries otherwise).
        size = _SIZES.setdefault(size, size)
        if user is None:
            data[key] = (value, None, None, size, deadline)
        else:  # untagged above if it was there
            data[key] = (value, user[0], user[1], size, deadline)
            self._tag(key, user)
        self.bytes += size
        data.move_to_end(key)
        if self._compact:  # the warm start's answers go before anything asked for
            self._evict_compact()
        self._evict_lru(count_entries=True)

    def _tag(self, key: Hashable, user: UserTag) -> None:
        """Remember ``key`` among ``user``'s entries (one key alone, not in a list)."""
        tenant_id, name = user
        users = self._by_user.get(tenant_id)
        if users is None:
            users = self._by_user[tenant_id] = {}
        keys = users.get(name)
        if keys is None:
            users[name] = key
        elif keys.__class__ is list:
            keys.append(key)  # type: ignore[union-attr]
        else:
            users[name] = [keys, key]

    def _evict_lru(self, *, count_entries: bool) -> None:
        """Drop the least recently used entries until the bytes (and entries) fit."""
        data = self._data
        while ((self.bytes > self.max_bytes
                or (count_entries and len(data) > self.max_entries)) and len(data) > 1):
            old_key, (_value, old_tenant, old_name, old_size, _deadline) = data.popitem(last=False)
            self.bytes -= old_size
            self._untag(old_key, old_tenant, old_name)

    def _refill(self, key: Hashable, value: Any, user: UserTag, deadline: float | None) -> bool:
        """Keep a fill in its listener's compact store when it is one's kind of answer.

        After a drop of everything (a tenant change; on SQLite any commit)
        the stores are empty and the warm start is not repeated: the answers
        to bare names come back as they are asked, as compactly as warmed.
        """
        if value.__class__ is not bytes or deadline is not None or key.__class__ is not bytes:
            return False
        tenant_id, name = user
        for store in self._compact:
            if store.tenant_id == tenant_id and key == store.prefix + name.encode():
                if self.membership is not None:
                    name = self.membership.kept_name(tenant_id, name)
                entry = self._data.pop(key, None)
                if entry is not None:  # kept before as an LRU entry: replaced here
                    self.bytes -= entry[3]
                    self._untag(key, entry[1], entry[2])
                old = store.answers.get(name)
                if old is not None:
                    self.bytes -= len(old) + COMPACT_OVERHEAD
                packed = store.pack(value)
                store.answers[name] = packed
                self.bytes += len(packed) + COMPACT_OVERHEAD
                self._evict_compact()
                self._evict_lru(count_entries=False)
                return True
        return False

    def _evict_compact(self) -> None:
        """Drop compact answers (the last warmed first) until the budget holds."""
        for store in self._compact:
            answers = store.answers
            while answers and (self.bytes > self.max_bytes or len(self) > self.max_entries):
                _name, packed = answers.popitem()
                self.bytes -= len(packed) + COMPACT_OVERHEAD

    def warm_batch(self, entries: list[tuple[Hashable, Any, UserTag, float | None]], *,
                   epoch: int, expected: int | None = None) -> int | None:
        """Keep a batch the warm start rendered: the number kept, None once the budget is full.

        Each entry is (key, value, user, deadline). A plain bytes answer
        without a deadline whose key is a listener's prefix and the user's
        name goes to that listener's compact store (created on the first
        batch: compressed, with a dictionary made of that batch's answers,
        when the tenant's names as counted by the membership, or
        ``expected``, would not fit as they are); everything else is :meth:`put` as a fill. Warming
        never evicts: it stops at the first entry that does not fit.
        """
        if epoch != self.epoch and self._floor > epoch:
            return 0  # everything dropped since the read: the caller reads again
        kept = 0
        for key, value, user, deadline in entries:
            if key in self._data:
                continue
            store = self._compact_for(key, value, user, deadline, entries, expected)
            if store is None:
                if key in self:
                    continue
                size = estimate_size(key, value)
                if not self.room(size):
                    return None
                self.put(key, value, epoch=epoch, user=user, size=size, deadline=deadline)
                kept += 1
                continue
            if user[1] in store.answers:
                continue
            packed = store.pack(value)
            size = len(packed) + COMPACT_OVERHEAD
            if not self.room(size):
                return None
            if not self._usable or self._dropped.get(user, 0) > epoch:
                continue  # changed since the read: the ordinary path fills it
            store.answers[user[1]] = packed
            self.bytes += size
            kept += 1
        return kept

    def _compact_for(self, key: Hashable, value: Any, user: UserTag, deadline: float | None,
                     batch: list[tuple[Hashable, Any, UserTag, float | None]],
                     expected: int | None) -> _Compact | None:
        """The compact store ``key`` belongs in, made on first use; None: not a compact answer."""
        if value.__class__ is not bytes or deadline is not None or key.__class__ is not bytes:
            return None
        name = user[1].encode()
        if not key.endswith(name):  # type: ignore[attr-defined]
            return None
        prefix = key[: len(key) - len(name)]  # type: ignore[index]
        for store in self._compact:
            if store.prefix == prefix:
                return store if store.tenant_id == user[0] else None
        store = _Compact(prefix, user[0], self._zdict_for(batch, user[0], expected))
        self._compact.append(store)
        return store

    def _zdict_for(self, batch: list[tuple[Hashable, Any, UserTag, float | None]],
                   tenant_id: int, expected: int | None) -> bytes | None:
        """None when the tenant's answers fit the budget as they are; else the shared
        dictionary (from the first batch's answers) they are compressed against."""
        plain = [v for _k, v, _u, d in batch if v.__class__ is bytes and d is None]
        average = sum(map(len, plain)) // max(1, len(plain))
        names = expected or (self.membership.count(tenant_id) if self.membership is not None
                             else 0) or len(batch)
        if names * (average + COMPACT_OVERHEAD) <= self.max_bytes - self.bytes:
            return None
        return b"".join(plain[:ZDICT_SAMPLE])[-ZDICT_BYTES:] or None

    def room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit without evicting anything (warming stops there)."""
        return self.bytes + size <= self.max_bytes and len(self) < self.max_entries

    # -- invalidation --------------------------------------------------------------

    def held(self, key: Hashable) -> Any:
        """What was kept under ``key`` when following changes stopped, or :data:`MISS`.

        For a read whose database is unreachable (a primary failing over): the
        answer as of the moment this node lost track of changes is better than
        an error, and nobody can change it meanwhile without a primary. It is
        never used while the database answers, and is dropped once changes
        are followed again (``resync``) or this node changes anything.
        """
        entry = self._held.get(key)
        if entry is None and self._held_compact:
            found = _compact_lookup(self._held_compact, key)
            if found is not MISS:
                entry = (found, None, None, 0, None)
        if entry is None or (entry[4] is not None and entry[4] <= time.time()):
            return MISS  # past its deadline (a status that expired): never held
        if not self._held_used:
            self._held_used = True
            log.warning("database unreachable: answering from what the read cache held "
                        "(%d entries) until it is back", len(self._held))
        return entry[0]

    def hold(self) -> None:
        """Stop answering from the entries (they may go stale) but keep them for held()."""
        self._drop_everything()
        if self._data or self._compact:
            self._held = self._data
            self._data = OrderedDict()
            self._held_compact = self._compact
            self._compact = []
            self._held_used = False
        self._by_user.clear()
        self.bytes = 0

    def on_event(self, event: ChangeEvent) -> None:
        """EventBus subscriber (synchronous: invalidation never waits on anything)."""
        if event.kind == "token":
            return
        membership = self.membership
        if event.kind == "resync" and event.data.get("reason") == "lost":
            self.hold()  # the LISTEN connection is gone: see held()
            if membership is not None:
                membership.reset()
            return
        if event.kind in _USER_KINDS and event.tenant_id is not None and event.username:
            self.invalidate_user(event.tenant_id, event.username)
            if membership is not None:
                membership.touch(event.tenant_id, event.username)
            return
        self.clear()
        if membership is not None:
            if event.kind == "tenant" and event.tenant_id is not None:
                membership.touch_tenant(event.tenant_id)
            else:
                membership.reset()

    def invalidate_user(self, tenant_id: int, username: str) -> None:
        self.epoch += 1
        tag = (tenant_id, username.lower())
        dropped = self._dropped
        dropped.pop(tag, None)  # re-inserted last: the dict stays ordered by epoch
        dropped[tag] = self.epoch
        if len(dropped) > DROPS_REMEMBERED:
            self._floor = dropped.pop(next(iter(dropped)))  # forgotten: refuse all older fills
        self._held.clear()  # a change got through: the database is back
        self._held_compact = []
        for store in self._compact:
            if store.tenant_id == tenant_id:
                packed = store.answers.pop(tag[1], None)
                if packed is not None:
                    self.bytes -= len(packed) + COMPACT_OVERHEAD
        users = self._by_user.get(tag[0])
        keys = users.pop(tag[1], None) if users is not None else None
        if keys is None:
            return
        if not users:
            del self._by_user[tag[0]]
        for key in keys if keys.__class__ is list else (keys,):  # type: ignore[union-attr]
            entry = self._data.pop(key, None)
            if entry is not None:
                self.bytes -= entry[3]

    def clear(self) -> None:
        self._drop_everything()
        self._data.clear()
        self._by_user.clear()
        self._held.clear()
        for store in self._compact:  # kept, empty, for _refill (a tenant id never changes)
            store.answers = {}
        self._held_compact = []
        self.bytes = 0

    def _drop_everything(self) -> None:
        """A new epoch that refuses every fill whose read began before it."""
        self.epoch += 1
        self._floor = self.epoch
        self._dropped.clear()

    def compact_answers(self) -> int:
        """How many answers the compact stores hold (tests, bench/warm_memory.py)."""
        return self._compact_len()

    def tagged_users(self) -> list[UserTag]:
        """The users some kept entry is tagged with (tests: no tag left behind)."""
        return [(tenant_id, name) for tenant_id, users in self._by_user.items()
                for name in users]

    def _untag(self, key: Hashable, tenant_id: int | None, name: str | None) -> None:
        if tenant_id is None:
            return
        users = self._by_user.get(tenant_id)
        keys = users.get(name) if users is not None else None  # type: ignore[arg-type]
        if keys is None:
            return
        assert users is not None and name is not None
        if keys.__class__ is not list:
            if keys == key:
                del users[name]
                if not users:
                    del self._by_user[tenant_id]
            return
        with contextlib.suppress(ValueError):
            keys.remove(key)  # type: ignore[union-attr]
        if len(keys) == 1:  # type: ignore[arg-type]
            users[name] = keys[0]  # type: ignore[index]

    def _check_guard(self) -> bool:
        if self._guard_checked:
            return self._usable
        try:
            asyncio.get_running_loop().call_soon(self._guard_expired)
            self._guard_checked = True
        except RuntimeError:  # no event loop: ask every time
            pass
        assert self._guard is not None
        token = self._guard()
        if token is None:
            if self._usable:
                log.info("read cache off until changes can be followed again")
                self._usable = False
                self.hold()
                if self.membership is not None:
                    self.membership.reset()
            return False
        if token != self._token or not self._usable:
            self._token = token
            self._usable = True
            self.clear()
            if self.membership is not None:
                self.membership.reset()
        return True

    def _guard_expired(self) -> None:
        self._guard_checked = False
