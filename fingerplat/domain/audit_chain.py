"""The hash chain of the audit trail: canonical encoding, hash, and the walk that checks it.

Pure functions only (no I/O), so the migration that backfills old rows, the
repository that appends new ones and ``fingerplat audit verify`` all hash
exactly the same bytes.

There is one chain per tenant id (``tenant:<id>``) and one for events that
belong to no tenant (``platform``). Each event stores ``prev_hash`` (the hash
of the previous event of its chain, :data:`GENESIS` for the first) and
``hash`` = SHA-256 over :func:`canonical` of its fields and ``prev_hash``.
The newest event of each chain is also recorded in ``audit_chain_heads``, so
a removed last event is noticed too.

The encoding is frozen: changing it would make every stored hash wrong. A new
encoding would need a new version tag and a migration that re-chains.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fingerplat.domain import json_text

VERSION_TAG = "fingerplat-audit-v1"
GENESIS = "0" * 64
PLATFORM_CHAIN = "platform"

# The hashed fields, in the order they are encoded. ``id`` is not among them:
# the chain order is the order of ids within a chain, and the link to the
# previous event is what makes insertions and removals visible.
HASHED_FIELDS = ("at", "tenant_id", "tenant", "actor", "channel", "action", "target",
                 "username", "outcome", "before", "after", "remote_addr", "detail")

_PLAIN_FIELDS = HASHED_FIELDS[2:]
assert HASHED_FIELDS[:2] == ("at", "tenant_id")

# How many recent hashes the walk remembers to tell an insertion from a removal.
_REMEMBERED = 4096


def chain_key(tenant_id: int | None) -> str:
    """The chain an event of this tenant (None: platform-level) belongs to."""
    return PLATFORM_CHAIN if tenant_id is None else f"tenant:{int(tenant_id)}"


# (datetime object, its text): the rows of an import batch share one object.
# Replaced as one tuple, so a reader never sees a time with another's text.
_last_time: tuple[Any, str] = (None, "")


def _time(value: Any) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC."""
    global _last_time
    last = _last_time
    if value is last[0]:
        return last[1]
    if not isinstance(value, datetime):
        raise TypeError(f"audit time must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError("audit time must be timezone-aware")
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    _last_time = (value, text)
    return text


def _refuse(value: Any) -> Any:
    raise TypeError(f"audit values must be JSON: {type(value).__name__}")


# json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"),
# allow_nan=False), the encoder built once (an import hashes one per changed user).
_encode = json_text.reusable_encoder(ensure_ascii=True, sort_keys=True, separators=(",", ":"),
                                     allow_nan=False, default=_refuse)


def canonical(fields: Mapping[str, Any], prev_hash: str) -> bytes:
    """The bytes an event's hash covers: version tag, previous hash, then the fields.

    A JSON array (ASCII only, dict keys sorted, no blanks), so the encoding is
    the same whatever the database or driver hands back for the same values.
    """
    get = fields.get
    tenant_id = get("tenant_id")
    values = [VERSION_TAG, prev_hash, _time(get("at")),
              None if tenant_id is None else int(tenant_id),
              *[get(name) for name in _PLAIN_FIELDS]]
    return _encode(values).encode("ascii")


def event_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of :func:`canonical`."""
    return hashlib.sha256(canonical(fields, prev_hash)).hexdigest()


@dataclass(frozen=True, slots=True)
class BatchFields:
    """What the events of one batch (an import's) share: all but their own five fields.

    ``at`` must be timezone-aware. The events go to the chain of ``tenant_id``.
    """

    at: datetime
    tenant_id: int | None
    tenant: str | None
    actor: str
    channel: str
    outcome: str
    remote_addr: str | None
    detail: str


# One event of a batch: (action, target, username, before, after).
BatchRow = tuple[str, str, str | None, Mapping[str, Any] | None, Mapping[str, Any] | None]

_OPEN = _encode([VERSION_TAG])[:-1] + ',"'  # '["fingerplat-audit-v1","'
assert HASHED_FIELDS == ("at", "tenant_id", "tenant", "actor", "channel", "action", "target",
                         "username", "outcome", "before", "after", "remote_addr", "detail")


def link_batch(shared: BatchFields, rows: Iterable[BatchRow],
               prev_hash: str) -> list[tuple[str, str, str | None, str | None]]:
    """(prev_hash, hash, before, after) for consecutive events of one chain, starting
    after ``prev_hash``; ``before`` and ``after`` as the JSON text that was hashed
    (None for None), which is also what the repository stores: encoded once.

    The same bytes as :func:`event_hash` of each event's fields (a unit test
    compares them), built faster for a batch: the array
    ``[tag,prev,at,tenant_id,tenant,actor,channel,action,target,username,
    outcome,before,after,remote_addr,detail]`` is put together from the
    shared fields' text, encoded once per action, and each row's own text
    (strings as the JSON encoder writes them with ``ensure_ascii``).
    """
    out: list[tuple[str, str, str | None, str | None]] = []
    sha256 = hashlib.sha256
    string, encode = json_text.string, _encode
    head = encode([_time(shared.at),
                   None if shared.tenant_id is None else int(shared.tenant_id),
                   shared.tenant, shared.actor, shared.channel])[1:-1]
    outcome = string(shared.outcome)
    tail = encode([shared.remote_addr, shared.detail])[1:]  # with the closing bracket
    middles: dict[str, str] = {}
    for action, target, username, before, after in rows:
        middle = middles.get(action)
        if middle is None:
            middle = middles[action] = f"{head},{string(action)}"
        name = "null" if username is None else string(username)
        old = None if before is None else encode(before)
        new = None if after is None else encode(after)
        digest = sha256(f'{_OPEN}{prev_hash}",{middle},{string(target)},{name},{outcome},'
                        f'{old or "null"},{new or "null"},{tail}'.encode("ascii")).hexdigest()
        out.append((prev_hash, digest, old, new))
        prev_hash = digest
    return out


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An audit row as read back for verification."""

    id: int
    fields: Mapping[str, Any]
    prev_hash: str | None
    hash: str | None


@dataclass(frozen=True, slots=True)
class ChainHead:
    last_id: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first place where a chain is broken.

    ``kind`` is "altered", "inserted" or "removed"; ``event_id`` the event named
    (for a removal: the event that follows the gap, or the removed last event).
    """

    event_id: int | None
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    chain: str
    events: int  # events verified before the first problem (all of them when intact)
    problem: ChainProblem | None
    head_hash: str  # the hash of the last intact event (GENESIS for an empty chain)


class ChainWalk:
    """Checks one chain's events fed in id order (one at a time, so a long chain
    is never held in memory) and names the first altered, inserted or removed one.

    ``feed`` returns False once a problem is found; ``finish`` gives the report.
    """

    def __init__(self, chain: str, head: ChainHead | None) -> None:
        self.chain = chain
        self.head = head
        self.count = 0
        self.problem: ChainProblem | None = None
        self._expected = GENESIS
        self._last_id: int | None = None
        self._pending: StoredEvent | None = None
        # hash of a recent intact event -> id of the event accepted after it
        self._recent: OrderedDict[str, int | None] = OrderedDict({GENESIS: None})

    def feed(self, event: StoredEvent) -> bool:
        if self.problem is not None:
            return False
        if self._pending is not None:
            self._step(self._pending, event)
        self._pending = event
        return self.problem is None

    def finish(self) -> ChainReport:
        if self.problem is None and self._pending is not None:
            self._step(self._pending, None)
            self._pending = None
        if self.problem is None:
            self.problem = self._check_head()
        return ChainReport(self.chain, self.count, self.problem, self._expected)

    def _step(self, current: StoredEvent, following: StoredEvent | None) -> None:
        self.problem = self._judge(current, following)

    def _judge(self, current: StoredEvent,
               following: StoredEvent | None) -> ChainProblem | None:
        own_ok = (current.prev_hash is not None and current.hash is not None
                  and current.hash == event_hash(current.fields, current.prev_hash))
        if own_ok and current.prev_hash == self._expected:
            return self._accept(current)
        return self._diagnose(current, following, own_ok=own_ok)

    def _accept(self, current: StoredEvent) -> ChainProblem | None:
        """Take an event whose hash and link are intact (unless the head says it is extra)."""
        assert current.hash is not None
        expected, head = self._expected, self.head
        if head is not None and current.id > head.last_id:
            # Well linked, but written past what the head record says is the
            # last event: appended without going through the application.
            return ChainProblem(
                current.id, "inserted",
                f"event {current.id} was inserted after the chain's last event "
                f"({head.last_id})")
        self.count += 1
        self._recent[expected] = current.id
        self._recent[current.hash] = None
        while len(self._recent) > _REMEMBERED:
            self._recent.popitem(last=False)
        self._expected, self._last_id = current.hash, current.id
        return None

    def _diagnose(self, current: StoredEvent, following: StoredEvent | None, *,
                  own_ok: bool) -> ChainProblem:
        """Name what broke the chain at ``current``: inserted, altered or removed."""
        expected, last_id = self._expected, self._last_id
        if following is not None and following.prev_hash == expected:
            start = f"event {last_id}" if last_id is not None else "the start of the chain"
            return ChainProblem(
                current.id, "inserted",
                f"event {current.id} was inserted (event {following.id} follows {start})")
        if current.prev_hash == expected:
            return ChainProblem(
                current.id, "altered",
                f"event {current.id} was altered (its hash does not match its contents)")
        first_inserted = self._recent.get(current.prev_hash or "")
        if first_inserted is not None:
            return ChainProblem(
                first_inserted, "inserted",
                f"event {first_inserted} was inserted (event {current.id} follows the "
                "event before it)")
        if not own_ok:
            return ChainProblem(
                current.id, "altered",
                f"event {current.id} was altered (its hash and link do not match)")
        after = f"after event {last_id}" if last_id is not None else "at the start of the chain"
        return ChainProblem(
            current.id, "removed",
            f"an event before event {current.id} ({after}) was removed")

    def _check_head(self) -> ChainProblem | None:
        head, last_id = self.head, self._last_id
        if head is None:
            if last_id is not None:
                return ChainProblem(last_id, "removed", "the chain's head record is missing")
            return None
        if last_id is None or head.last_id > last_id:
            return ChainProblem(
                head.last_id, "removed",
                f"event {head.last_id}, the chain's last event, was removed")
        if head.last_id != last_id or head.last_hash != self._expected:
            return ChainProblem(
                last_id, "altered", f"event {last_id} does not match the chain's head record")
        return None


def verify_chain(chain: str, events: Iterable[StoredEvent],
                 head: ChainHead | None) -> ChainReport:
    """Walk one chain's events (in id order) at once; see :class:`ChainWalk`."""
    walk = ChainWalk(chain, head)
    for event in events:
        if not walk.feed(event):
            break
    return walk.finish()
