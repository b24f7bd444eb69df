"""Telling our own background commits apart from other writers' (SQLite read cache guard).

On SQLite the read cache is guarded by the WAL-index header (sqlite_watch.py):
any commit by anyone drops the whole cache, since we cannot tell what it
changed. That is right for other processes, but the finger log ("who
fingered me") writes a batch every second from this very process, and those
rows change no public read: dropping 100,000 cached answers each second for
them would undo the cache.

:class:`OwnCommits` wraps the guard and lets one known commit through. Its
token is a counter that moves on every change *except* a commit announced
with :meth:`expect`. That is exact because of two facts of SQLite's WAL:

* a writer holds the database's write lock from its first write until its
  commit, so the first commit after a header read taken while we hold the
  lock is ours;
* every commit increments the header's change counter (``iChange``) by one;
  a commit that starts the WAL over (after a checkpoint) first writes a
  header with new salts and the counter unchanged, then the commit's.

So :meth:`expect` (called inside our transaction, after its first write)
notes the counter; until a header shows it plus one (our commit), headers
with the counter unchanged are our restart. A header read while a commit
writes it (its two copies differ) is "not changed yet": that commit has not
finished. Anything else (another commit first, the ``-wal`` fallback whose
token has no counter) moves the token as before: never a stale read, at
worst a dropped cache.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable

# Offsets of iChange in the two copies of the 48-byte WAL-index header.
_ICHANGE_OFFSETS = (8, 56)


def _ichange(header: bytes) -> int | None:
    """The change counter when both copies agree (a consistent header), else None."""
    if len(header) < 60:
        return None
    first, second = (struct.unpack_from("=I", header, o)[0] for o in _ICHANGE_OFFSETS)
    return first if first == second else None


class OwnCommits:
    """A read cache guard that ignores the commits this process announced."""

    def __init__(self, guard: Callable[[], Hashable | None]) -> None:
        self._guard = guard
        self._last = guard()
        self._expected: int | None = None  # iChange of our commit, once announced
        self.generation = 0
        self.ignored = 0

    def __call__(self) -> Hashable | None:
        raw = self._guard()
        if raw is None:
            return None
        if raw != self._last:
            counter = _ichange(raw) if isinstance(raw, bytes) else None
            if counter is None and isinstance(raw, bytes) and len(raw) >= 60:
                # A header caught while a commit writes it (the two copies differ):
                # that commit has not finished, so nothing changed yet for anyone.
                # Answer as before and look again next time.
                return self.generation
            expected = self._expected
            if expected is not None and counter in ((expected - 1) & 0xFFFFFFFF, expected):
                # Ours: our commit (the counter moved by one), or the WAL restart
                # our commit begins with (the counter not yet moved). While we
                # hold the write lock nobody else can change the header.
                self.ignored += 1
                if counter == expected:
                    self._expected = None
            else:
                self.generation += 1
                self._expected = None  # past our commit (or never ours): stop expecting
            self._last = raw
        return self.generation
    def expect(self) -> None:
        """Announce one commit of ours; call inside the transaction, after its first write."""
        self()  # take in whatever happened before (other writers' commits move the token)
        last = self._last
        counter = _ichange(last) if isinstance(last, bytes) else None
        self._expected = None if counter is None else (counter + 1) & 0xFFFFFFFF

    def settle(self, committed: bool) -> None:
        """After the transaction: look once more; a failed commit counts as a change."""
        if committed:
            self()
        else:
            self.generation += 1
        self._expected = None
