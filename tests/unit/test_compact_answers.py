"""The warm start's compact store of bare-name answers (ReadCache.warm_batch).

The store holds the bytes of an answer under the user's name, without the
LRU map's per-entry objects; everything that invalidates a user's LRU
entries must drop its compact answer too, and the byte budget must count
and evict it.
"""

from __future__ import annotations

import asyncio

from fingerplat.domain.model import ChangeEvent
from fingerplat.service.cache import COMPACT_OVERHEAD, MISS, ReadCache
from fingerplat.service.events import EventBus

PREFIX = b"finger\0\0"


def answer(name: str) -> bytes:
    return (f"Login: {name:<32} Name: User {name}\r\n"
            "Status: working from home\r\nNo Plan.\r\n").encode()


Entry = tuple[object, object, tuple[int, str], None]


def batch(names: list[str], tenant_id: int = 1) -> list[Entry]:
    return [(PREFIX + n.encode(), answer(n), (tenant_id, n), None) for n in names]


def true_bytes(cache: ReadCache) -> int:
    lru = sum(entry[3] for entry in cache._data.values())
    compact = sum(len(packed) + COMPACT_OVERHEAD
                  for store in cache._compact for packed in store.answers.values())
    return lru + compact


def test_warmed_answers_are_kept_compact_and_answered_exactly() -> None:
    cache = ReadCache(EventBus(), max_bytes=1 << 20)
    names = [f"u{i:04d}" for i in range(200)]
    assert cache.warm_batch(batch(names), epoch=cache.epoch) == 200
    assert cache.compact_answers() == 200 and len(cache._data) == 0
    assert all(cache.get(PREFIX + n.encode()) == answer(n) for n in names)
    assert cache.get(PREFIX + b"U0001") is MISS  # another spelling is another query
    assert cache.get(PREFIX + b"u0001@host") is MISS
    assert cache.get(b"finger\0acme\0u0001") is MISS  # another listener
    assert cache.get(PREFIX + b"\xff") is MISS
    assert cache.bytes == true_bytes(cache)


def test_every_change_of_a_user_drops_its_compact_answer() -> None:
    bus = EventBus()
    cache = ReadCache(bus, max_bytes=1 << 20)
    cache.warm_batch(batch(["alice", "bob", "carol"]), epoch=cache.epoch)
    for kind in ("status", "plan", "user"):
        cache.warm_batch(batch(["alice"]), epoch=cache.epoch)
        asyncio.run(bus.publish(ChangeEvent(kind, 1, "default", "Alice")))
        assert cache.get(PREFIX + b"alice") is MISS, kind
        assert cache.get(PREFIX + b"bob") == answer("bob")
    asyncio.run(bus.publish(ChangeEvent("status", 2, "other", "bob")))  # another tenant's bob
    assert cache.get(PREFIX + b"bob") == answer("bob")
    asyncio.run(bus.publish(ChangeEvent("token", 1, "default")))
    assert cache.get(PREFIX + b"bob") == answer("bob")
    asyncio.run(bus.publish(ChangeEvent("tenant", 1, "default")))  # domains, settings, removal
    assert cache.get(PREFIX + b"bob") is MISS and cache.get(PREFIX + b"carol") is MISS
    assert cache.compact_answers() == 0 and cache.bytes == 0


def test_a_batch_read_before_a_change_is_not_kept_for_that_user() -> None:
    cache = ReadCache(EventBus(), max_bytes=1 << 20)
    epoch = cache.epoch  # the batch's read begins
    cache.invalidate_user(1, "bob")  # bob changes meanwhile
    cache.warm_batch(batch(["alice", "bob"]), epoch=epoch)
    assert cache.get(PREFIX + b"alice") == answer("alice")
    assert cache.get(PREFIX + b"bob") is MISS
    epoch = cache.epoch
    cache.clear()  # everything may have changed
    assert cache.warm_batch(batch(["alice"]), epoch=epoch) == 0
    assert cache.get(PREFIX + b"alice") is MISS


def test_expiring_statuses_and_other_values_go_to_the_lru_map() -> None:
    cache = ReadCache(EventBus(), max_bytes=1 << 20)
    entries = [(PREFIX + b"alice", answer("alice"), (1, "alice"), 4e9),  # a deadline
               (PREFIX + b"bob", ["not", "bytes"], (1, "bob"), None),
               (PREFIX + b"carol@acme.example", answer("carol"), (1, "carol"), None)]
    assert cache.warm_batch(entries, epoch=cache.epoch) == 3
    assert cache.compact_answers() == 0 and len(cache._data) == 3
    past = [(PREFIX + b"dave", answer("dave"), (1, "dave"), 1.0)]  # already expired
    cache.warm_batch(past, epoch=cache.epoch)
    assert cache.get(PREFIX + b"dave") is MISS


def test_the_budget_counts_compact_answers_and_fills_evict_them() -> None:
    names = [f"u{i:04d}" for i in range(100)]
    size = len(answer(names[0])) + COMPACT_OVERHEAD
    cache = ReadCache(EventBus(), max_bytes=size * 100 + 4000)  # fits as they are
    assert cache.warm_batch(batch(names), epoch=cache.epoch) == 100
    assert cache._compact[0].zdict is None
    more = [f"v{i:04d}" for i in range(50)]
    assert cache.warm_batch(batch(more), epoch=cache.epoch) is None  # full: warming stops
    assert cache.bytes <= cache.max_bytes and cache.bytes == true_bytes(cache)
    kept = cache.compact_answers()
    cache.put("page", b"p" * 3000, epoch=cache.epoch, user=(1, "u0000"))
    cache.put("page2", b"q" * 3000, epoch=cache.epoch, user=(1, "u0001"))
    assert cache.bytes <= cache.max_bytes and cache.bytes == true_bytes(cache)
    assert cache.compact_answers() < kept  # a fill made room by evicting warmed answers
    assert cache.get("page") == b"p" * 3000 and cache.get("page2") == b"q" * 3000
    for name in names + more:  # whatever is still kept is still exact
        assert cache.get(PREFIX + name.encode()) in (MISS, answer(name))


def test_answers_that_would_not_fit_are_compressed_and_still_exact() -> None:
    names = [f"u{i:04d}" for i in range(1000)]
    plain = len(answer(names[0])) + COMPACT_OVERHEAD
    cache = ReadCache(EventBus(), max_bytes=plain * 600)
    kept = 0
    for start in range(0, 1000, 200):
        done = cache.warm_batch(batch(names[start:start + 200]), epoch=cache.epoch,
                                  expected=1000)
        assert done is not None
        kept += done
    assert kept == 1000 and cache._compact[0].zdict is not None
    assert cache.bytes <= cache.max_bytes and cache.bytes == true_bytes(cache)
    assert all(cache.get(PREFIX + n.encode()) == answer(n) for n in names)
    cache.invalidate_user(1, "u0500")
    assert cache.get(PREFIX + b"u0500") is MISS and cache.bytes == true_bytes(cache)


def test_held_answers_include_the_compact_ones_until_a_change_gets_through() -> None:
    bus = EventBus()
    cache = ReadCache(bus, max_bytes=1 << 20)
    cache.warm_batch(batch(["alice", "bob"]), epoch=cache.epoch)
    asyncio.run(bus.publish(ChangeEvent("resync", None, None, data={"reason": "lost"})))
    assert cache.get(PREFIX + b"alice") is MISS  # not answered while changes are not followed
    assert cache.held(PREFIX + b"alice") == answer("alice")
    cache.invalidate_user(1, "bob")  # a change got through: the database is back
    assert cache.held(PREFIX + b"alice") is MISS


def test_after_a_drop_of_everything_fills_go_back_to_the_compact_store() -> None:
    bus = EventBus()
    cache = ReadCache(bus, max_bytes=1 << 20)
    cache.warm_batch(batch(["alice", "bob"]), epoch=cache.epoch)
    cache.put(PREFIX + b"carol", answer("carol"), epoch=cache.epoch, user=(1, "carol"))
    assert cache.compact_answers() == 3 and len(cache._data) == 0  # a bare name: compact
    cache.clear()  # a tenant change; on SQLite any commit
    assert cache.get(PREFIX + b"alice") is MISS and cache.bytes == 0
    epoch = cache.epoch
    new = answer("alice").replace(b"working", b"resting")
    cache.put(PREFIX + b"alice", new, epoch=epoch, user=(1, "alice"))
    cache.put(PREFIX + b"Alice", new, epoch=epoch, user=(1, "alice"))  # another spelling
    cache.put(PREFIX + b"bob", answer("bob"), epoch=epoch, user=(1, "bob"), deadline=4e9)
    assert cache.compact_answers() == 1 and len(cache._data) == 2
    assert cache.get(PREFIX + b"alice") == new and cache.get(PREFIX + b"Alice") == new
    assert cache.bytes == true_bytes(cache)
    cache.put(PREFIX + b"bob", answer("bob"), epoch=epoch, user=(1, "bob"))  # replaces the LRU one
    assert cache.compact_answers() == 2 and cache.bytes == true_bytes(cache)
    asyncio.run(bus.publish(ChangeEvent("status", 1, "default", "alice")))
    assert cache.get(PREFIX + b"alice") is MISS and cache.get(PREFIX + b"Alice") is MISS
    stale = cache.epoch
    cache.invalidate_user(1, "bob")
    cache.put(PREFIX + b"bob", answer("bob"), epoch=stale, user=(1, "bob"))  # read before
    assert cache.get(PREFIX + b"bob") is MISS and cache.bytes == true_bytes(cache)
    cache.put(PREFIX + b"dave", answer("dave"), epoch=cache.epoch, user=(2, "dave"))
    assert cache.compact_answers() == 0  # another tenant's user: not this listener's store
