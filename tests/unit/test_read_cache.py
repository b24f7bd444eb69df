"""ReadCache rules that a socket test cannot time: fills racing invalidations, guards, LRU."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from fingerplat.config import DatabaseConfig
from fingerplat.domain.model import ChangeEvent
from fingerplat.service.cache import (
    DROPS_REMEMBERED,
    MAX_DEFAULT_BYTES,
    MIN_DEFAULT_BYTES,
    MISS,
    ReadCache,
    default_max_bytes,
)
from fingerplat.service.events import EventBus


def test_a_fill_that_raced_an_invalidation_is_refused() -> None:
    bus = EventBus()
    cache = ReadCache(bus)
    epoch = cache.epoch  # a read starts...
    asyncio.run(bus.publish(ChangeEvent("status", 1, "default", "alice")))  # ...a change commits
    cache.put("k", "old answer", epoch=epoch, user=(1, "alice"))  # ...the read ends
    assert cache.get("k") is MISS


def test_a_fill_is_refused_only_for_a_change_that_could_touch_it() -> None:
    # Under a steady stream of writes, other users' changes must not stop
    # the cache from filling; the changed user's fill, and any fill that
    # raced a drop of everything, still are refused.
    bus = EventBus()
    cache = ReadCache(bus)
    epoch = cache.epoch  # reads of alice, bob and the tenant begin
    asyncio.run(bus.publish(ChangeEvent("status", 1, "default", "Alice")))
    cache.put("alice", "old", epoch=epoch, user=(1, "alice"))
    cache.put("bob", "current", epoch=epoch, user=(1, "bob"))
    cache.put("tenant", "current", epoch=epoch)
    assert (cache.get("alice"), cache.get("bob"), cache.get("tenant")) == (
        MISS, "current", "current")
    epoch = cache.epoch
    asyncio.run(bus.publish(ChangeEvent("tenant", 1, "default")))  # drops everything
    cache.put("bob", "old", epoch=epoch, user=(1, "bob"))
    cache.put("tenant", "old", epoch=epoch)
    assert (cache.get("bob"), cache.get("tenant")) == (MISS, MISS)
    cache.put("bob", "new", epoch=cache.epoch, user=(1, "bob"))  # a read begun after: kept
    assert cache.get("bob") == "new"


def test_a_fill_older_than_the_changes_the_cache_remembers_is_refused() -> None:
    bus = EventBus()
    cache = ReadCache(bus)
    epoch = cache.epoch
    for i in range(DROPS_REMEMBERED + 1):  # more users changed than are remembered
        cache.invalidate_user(1, f"user{i}")
    cache.put("bob", "maybe stale", epoch=epoch, user=(1, "bob"))
    assert cache.get("bob") is MISS  # bob's change may have been forgotten: refused
    epoch = cache.epoch
    cache.invalidate_user(1, "carol")
    cache.put("bob", "current", epoch=epoch, user=(1, "bob"))
    assert cache.get("bob") == "current"


def test_user_events_drop_only_that_users_entries() -> None:
    bus = EventBus()
    cache = ReadCache(bus)
    cache.put("a1", 1, epoch=cache.epoch, user=(1, "alice"))
    cache.put("a2", 2, epoch=cache.epoch, user=(1, "alice"))
    cache.put("b", 3, epoch=cache.epoch, user=(1, "bob"))
    cache.put("t", 4, epoch=cache.epoch)
    asyncio.run(bus.publish(ChangeEvent("plan", 1, "default", "Alice")))
    assert (cache.get("a1"), cache.get("a2"), cache.get("b"), cache.get("t")) == (MISS, MISS, 3, 4)
    asyncio.run(bus.publish(ChangeEvent("token", 1, "default")))
    assert cache.get("b") == 3
    for kind in ("tenant", "resync", "something-new"):
        cache.put("t", 4, epoch=cache.epoch)
        asyncio.run(bus.publish(ChangeEvent(kind, 1, "default")))
        assert cache.get("t") is MISS


def test_least_recently_used_entries_go_first() -> None:
    cache = ReadCache(EventBus(), max_entries=2)
    cache.put("a", 1, epoch=cache.epoch, user=(1, "a"))
    cache.put("b", 2, epoch=cache.epoch, user=(1, "b"))
    assert cache.get("a") == 1
    cache.put("c", 3, epoch=cache.epoch, user=(1, "c"))
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, MISS, 3)
    assert len(cache) == 2 and len(cache.tagged_users()) == 2  # no tags left behind


def test_a_users_entries_stay_tagged_through_evictions_and_refills() -> None:
    # A user's keys are kept as one key or a list of them: every step between
    # the two must leave each kept entry reachable by the user's next change.
    bus = EventBus()
    cache = ReadCache(bus, max_entries=3)
    alice = (1, "alice")
    cache.put("a1", 1, epoch=cache.epoch, user=alice)
    cache.put("a2", 2, epoch=cache.epoch, user=alice)
    cache.put("a1", 10, epoch=cache.epoch, user=alice)  # refilled: one tag, not two
    cache.put("b", 3, epoch=cache.epoch, user=(1, "bob"))
    cache.put("c", 4, epoch=cache.epoch, user=(1, "carol"))  # evicts a2, the oldest
    assert (cache.get("a1"), cache.get("a2")) == (10, MISS)
    asyncio.run(bus.publish(ChangeEvent("status", 1, "default", "alice")))
    assert (cache.get("a1"), cache.get("b"), cache.get("c")) == (MISS, 3, 4)
    assert sorted(cache.tagged_users()) == [(1, "bob"), (1, "carol")]
    cache.put("a3", 5, epoch=cache.epoch, user=alice)
    cache.put("a4", 6, epoch=cache.epoch, user=alice)  # evicts b; alice has two keys
    asyncio.run(bus.publish(ChangeEvent("plan", 1, "default", "alice")))
    assert (cache.get("a3"), cache.get("a4"), cache.get("c")) == (MISS, MISS, 4)
    assert cache.tagged_users() == [(1, "carol")] and len(cache) == 1


def test_entry_sizes_count_exactly_through_fills_and_drops() -> None:
    cache = ReadCache(EventBus(), max_bytes=10_000)
    for i in range(50):
        cache.put(f"k{i}", b"x" * 700, epoch=cache.epoch, user=(1, f"u{i % 7}"))
    kept = len(cache)
    assert 0 < kept < 50 and cache.bytes <= 10_000
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_guard_token_change_drops_everything_and_none_turns_the_cache_off() -> None:
    token: list[object] = [1]
    cache = ReadCache(EventBus(), guard=lambda: token[0])
    cache.put("k", "v", epoch=cache.epoch)
    assert cache.get("k") == "v"
    token[0] = 2  # someone else wrote the database
    assert cache.get("k") is MISS
    cache.put("k", "v", epoch=cache.epoch)
    token[0] = None  # changes can no longer be followed
    assert cache.get("k") is MISS
    epoch = cache.epoch
    cache.put("k", "v", epoch=epoch)
    assert cache.get("k") is MISS
    token[0] = 3
    assert cache.get("k") is MISS
    cache.put("k", "v", epoch=cache.epoch)
    assert cache.get("k") == "v"


async def test_guard_is_asked_once_per_event_loop_iteration() -> None:
    """Reads in one iteration share one check; the next iteration sees a new token."""
    token: list[object] = [1]
    asked: list[object] = []

    def guard() -> object:
        asked.append(token[0])
        return token[0]

    cache = ReadCache(EventBus(), guard=guard)
    asked.clear()
    cache.put("k", "v", epoch=cache.epoch)
    assert [cache.get("k") for _ in range(5)] == ["v"] * 5
    assert len(asked) == 1
    token[0] = 2  # another process commits
    await asyncio.sleep(0)  # the next loop iteration
    assert cache.get("k") is MISS
    assert len(asked) == 2
    token[0] = None  # the guard loses track: off at once in the next iteration
    await asyncio.sleep(0)
    cache.put("k", "v", epoch=cache.epoch)
    assert cache.get("k") is MISS
    assert cache.get("k") is MISS
    assert len(asked) == 3


def test_entries_held_when_changes_are_lost_serve_only_as_a_fallback() -> None:
    """LISTEN lost (a failover): the entries stop answering but stay held for held()."""
    bus = EventBus()
    cache = ReadCache(bus)
    cache.put("a", "alice's answer", epoch=cache.epoch, user=(1, "alice"))
    asyncio.run(bus.publish(ChangeEvent("resync", None, data={"reason": "lost"}, remote=True)))
    assert cache.get("a") is MISS  # never answered from while the database answers
    assert cache.held("a") == "alice's answer"
    assert cache.held("never asked") is MISS
    cache.put("b", "filled meanwhile", epoch=cache.epoch)
    asyncio.run(bus.publish(ChangeEvent("resync", None, data={"reason": "resubscribed"},
                                        remote=True)))
    assert cache.held("a") is MISS  # following changes again: nothing held any more
    cache.put("a", "fresh", epoch=cache.epoch)
    asyncio.run(bus.publish(ChangeEvent("resync", None, data={"reason": "lost"}, remote=True)))
    asyncio.run(bus.publish(ChangeEvent("status", 1, "default", "bob")))
    assert cache.held("a") is MISS  # a change got through: the database is back


def test_a_guard_turning_off_holds_the_entries_and_turning_on_drops_them() -> None:
    token: list[object] = [1]
    cache = ReadCache(EventBus(), guard=lambda: token[0])
    cache.put("k", "v", epoch=cache.epoch)
    token[0] = None
    assert cache.get("k") is MISS
    assert cache.held("k") == "v"
    token[0] = 1
    assert cache.get("k") is MISS
    assert cache.held("k") is MISS


def test_the_cache_is_sized_in_bytes_and_evicts_by_size() -> None:
    """Large answers push out more entries than small ones; the byte count stays honest."""
    cache = ReadCache(EventBus(), max_bytes=10_000)
    for i in range(20):
        cache.put(("finger", None, b"u%d" % i), b"x" * 300, epoch=cache.epoch, user=(1, f"u{i}"))
    assert cache.bytes <= 10_000
    small = len(cache)
    assert 5 < small < 20
    assert cache.get(("finger", None, b"u19")) == b"x" * 300  # the newest stayed
    assert cache.get(("finger", None, b"u0")) is MISS  # the oldest went
    cache.put("big", b"y" * 6_000, epoch=cache.epoch, user=(1, "big"))
    assert cache.bytes <= 10_000 and len(cache) < small  # one large entry took many places
    assert cache.get("big") == b"y" * 6_000
    cache.invalidate_user(1, "big")
    assert cache.get("big") is MISS
    assert cache.bytes == sum(entry[3] for entry in cache._data.values())
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_room_says_when_warming_would_evict() -> None:
    cache = ReadCache(EventBus(), max_bytes=2_000)
    assert cache.room(1_000)
    cache.put("a", b"x" * 1_000, epoch=cache.epoch)
    assert not cache.room(1_000)


def test_the_default_budget_follows_the_machine() -> None:
    budget = default_max_bytes()
    assert MIN_DEFAULT_BYTES <= budget <= MAX_DEFAULT_BYTES
    assert ReadCache(EventBus()).max_bytes == budget


@pytest.mark.parametrize(("value", "limits"), [
    ("auto", (None, None)),
    ("64MB", (64 << 20, None)),
    ("1.5 GiB", (int(1.5 * (1 << 30)), None)),
    ("512k", (512 << 10, None)),
    (400_000, (sys.maxsize, 400_000)),  # the old unit: a number of entries, as before
    (0, None),
    ("0MB", None),
])
def test_read_cache_setting(value: object, limits: object) -> None:
    config = DatabaseConfig.model_validate({"read_cache": value})
    assert config.read_cache_limits() == limits


def test_read_cache_default_and_bad_values() -> None:
    assert DatabaseConfig().read_cache_limits() == (None, None)
    for bad in ("lots", "64 parsecs", -1, "-5MB"):
        with pytest.raises(ValueError, match=r"read_cache|size"):
            DatabaseConfig.model_validate({"read_cache": bad})


def test_a_held_finger_answer_is_the_fallback_when_the_database_is_away() -> None:
    """Finger keeps answer bytes, not users: during a failover its held bytes answer."""
    from fingerplat.adapters.finger.answer import FingerAnswerer
    from fingerplat.domain.errors import Unavailable
    from fingerplat.service.kept_answers import KeptAnswers

    class AwayReads:
        async def resolve_tenant(self, name: object) -> object:
            raise Unavailable("database unreachable")

    class Away:
        kept_answers: KeptAnswers
        public = AwayReads()
        pseudo_users = users = finger_log = None  # not reached: the tenant read fails first

    bus = EventBus()
    service = Away()
    cache = ReadCache(bus)
    service.kept_answers = KeptAnswers(cache)
    answerer = FingerAnswerer(service, tenant=None, max_listed_users=10)  # type: ignore[arg-type]
    cache.put(answerer.key_prefix + b"alice", b"Login: alice\r\n", epoch=cache.epoch,
              user=(1, "alice"))
    asyncio.run(bus.publish(ChangeEvent("resync", None, data={"reason": "lost"}, remote=True)))
    assert asyncio.run(answerer.answer_bytes(b"alice")) == (b"Login: alice\r\n", 1)
    data, _count = asyncio.run(answerer.answer_bytes(b"bob"))
    assert b"unavailable" in data.lower()


def test_an_entry_past_its_deadline_is_a_miss_and_never_held() -> None:
    """A status that expires: the answer showing it is right only until then."""
    cache = ReadCache(EventBus())
    cache.put("soon", "at lunch", epoch=cache.epoch, user=(1, "alice"),
              deadline=time.time() - 0.001)
    cache.put("later", "at work", epoch=cache.epoch, user=(1, "bob"),
              deadline=time.time() + 3600)
    assert cache.get("soon") is MISS and "soon" not in cache
    assert cache.get("later") == "at work"
    cache.put("soon", "at lunch", epoch=cache.epoch, deadline=time.time() - 0.001)
    cache.hold()
    assert cache.held("soon") is MISS
    assert cache.held("later") == "at work"


def test_the_same_name_in_two_tenants_is_two_users() -> None:
    # Tags are kept per tenant: a change of alice in tenant 1 leaves tenant 2's alice.
    bus = EventBus()
    cache = ReadCache(bus)
    cache.put("one", 1, epoch=cache.epoch, user=(1, "alice"))
    cache.put("two", 2, epoch=cache.epoch, user=(2, "alice"))
    asyncio.run(bus.publish(ChangeEvent("status", 1, "default", "alice")))
    assert (cache.get("one"), cache.get("two")) == (MISS, 2)
    assert cache.tagged_users() == [(2, "alice")]
    cache.invalidate_user(2, "ALICE")
    assert cache.get("two") is MISS and cache.tagged_users() == []
