"""Kept answers: the adapters' fast paths, behind an interface the service owns.

Finger keeps the bytes of its answers, the web its rendered pages (and the
front door's aliases of them), in the service's read cache
(fingerplat/service/cache.py), tagged with the user they show so that the
change events that drop the user's reads drop them too. What keeps such a
fill exact is the cache's epoch: taken before the read the value is made
from, and checked when it is kept, so a value made while what it shows
changed is refused. That bookkeeping is the service's; an adapter only says
"the kept answer for this key" (:meth:`KeptAnswers.get`), and, on a miss,
"I am about to make it" (:meth:`KeptAnswers.begin`, a :class:`Fill`) and
"keep what I made, tagged with this user" (:meth:`Fill.keep`). It never
sees an epoch (tests/unit/test_layers.py checks the source).

The hit path stays exactly as cheap as reading the cache itself: ``get``,
``held`` and ``absent`` are the cache's own bound methods, kept as
attributes, so ``kept.get(key)`` is the same single call as
``cache.get(key)`` (bench/README.md measures finger and the web with it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from fingerplat.service.cache import MISS, ReadCache, UserTag, Warmer

__all__ = ["MISS", "Fill", "KeptAnswers", "UserTag"]


class Fill:
    """One value being made for keeping: remembers when its read began.

    Begin it before reading anything the value is made from
    (:meth:`KeptAnswers.begin`); :meth:`keep` then refuses, silently, a
    value made while what it shows changed (the user it is tagged with, or
    everything), as well as anything while the cache cannot follow changes.
    """

    __slots__ = ("_cache", "_epoch")

    def __init__(self, cache: ReadCache) -> None:
        self._cache = cache
        self._epoch = cache.epoch

    def keep(self, key: Hashable, value: Any, *, user: UserTag | None = None,
             deadline: float | None = None) -> None:
        """Keep ``value`` under ``key``, tagged with ``user`` (dropped when that user changes).

        ``deadline`` (a ``time.time()`` value, a status that expires): the
        entry is a miss from then on and is never held.
        """
        self._cache.put(key, value, epoch=self._epoch, user=user, deadline=deadline)

    def keep_new(self, key: Hashable, value: Any, *, user: UserTag | None = None,
                 deadline: float | None = None) -> None:
        """:meth:`keep`, unless something is already kept under ``key`` (its recency untouched)."""
        if key not in self._cache:
            self.keep(key, value, user=user, deadline=deadline)


class KeptAnswers:
    """The kept answers of the adapters' fast paths (one per enabled read cache).

    :attr:`get` (``key`` -> the kept value or :data:`MISS`) is synchronous
    and as cheap as a dict lookup: finger answers hits from ``data_received``.
    :attr:`held` (``key`` -> what was kept when the node lost track of
    changes, or :data:`MISS`) is for answering during a failover instead of
    an error. :attr:`absent` (``tenant_id, username`` -> True only when the
    name surely is no visible user) answers "no such user" without a read.
    """

    __slots__ = ("_cache", "absent", "get", "held")

    def __init__(self, cache: ReadCache) -> None:
        self._cache = cache
        # The cache's own bound methods: no call layer of ours on the hit path.
        self.get: Callable[[Hashable], Any] = cache.get
        self.held: Callable[[Hashable], Any] = cache.held
        self.absent: Callable[[int, str], bool] = cache.absent

    def begin(self) -> Fill:
        """Start making a value to keep: call before the reads it is made from."""
        return Fill(self._cache)

    @property
    def knows_names(self) -> bool:
        """Whether :attr:`absent` can ever say True (the membership is kept)."""
        return self._cache.membership is not None

    def add_warmer(self, warmer: Warmer) -> None:
        """Let ``serve`` keep ``warmer``'s answers before anyone asks (one per tenant)."""
        warmers = self._cache.warmers
        if all(w.tenant != warmer.tenant for w in warmers):
            warmers.append(warmer)
