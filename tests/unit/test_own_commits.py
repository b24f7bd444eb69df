"""OwnCommits: which WAL-index headers are our own announced commit (pure logic, fake headers)."""

from __future__ import annotations

import struct

from fingerplat.repository.own_commits import OwnCommits


def header(change: int, frames: int, *, torn: bool = False) -> bytes:
    """Two copies of a 48-byte WAL-index header: iChange at 8, mxFrame at 16."""
    one = bytearray(48)
    struct.pack_into("=I", one, 8, change)
    struct.pack_into("=I", one, 16, frames)
    other = bytearray(one)
    if torn:  # SQLite writes the second copy first: caught in between
        struct.pack_into("=I", other, 8, change + 1)
    return bytes(other) + bytes(one) if torn else bytes(one) * 2


class Fake:
    def __init__(self, value: bytes) -> None:
        self.value = value

    def __call__(self) -> bytes:
        return self.value


def test_our_commit_and_the_wal_restart_it_begins_with_are_ignored():
    fake = Fake(header(5, 100))
    guard = OwnCommits(fake)
    start = guard()
    guard.expect()
    fake.value = header(5, 0)  # our commit starts the WAL over: salts and mxFrame change
    assert guard() == start
    fake.value = header(6, 3)  # our commit
    assert guard() == start
    guard.settle(True)
    assert guard.ignored == 2
    fake.value = header(7, 5)  # someone else's commit
    assert guard() != start


def test_anything_else_moves_the_token():
    fake = Fake(header(5, 100))
    guard = OwnCommits(fake)
    start = guard()
    fake.value = header(6, 101)  # not announced
    assert guard() != start

    moved = guard()
    guard.expect()
    fake.value = header(8, 103)  # another commit got in first (counter moved by two)
    assert guard() != moved
    moved = guard()
    fake.value = header(8, 0)  # no expectation left: a restart now is someone else's
    assert guard() != moved

    moved = guard()
    guard.expect()
    fake.value = header(8, 1, torn=True)  # caught mid-write: not finished, nothing yet
    assert guard() == moved
    fake.value = header(9, 1)
    assert guard() == moved  # our commit itself is recognised
    fake.value = header(9, 2, torn=True)  # someone else's commit, mid-write: not yet...
    assert guard() == moved
    fake.value = header(10, 2)  # ...and once written, a change
    assert guard() != moved

    moved = guard()
    guard.expect()
    guard.settle(False)  # a failed commit counts as a change
    assert guard() != moved


def test_a_guard_without_counters_never_ignores():
    fake = Fake(b"x")
    guard = OwnCommits(fake)  # type: ignore[arg-type]
    start = guard()
    guard.expect()
    fake.value = b"y"
    assert guard() != start and guard.ignored == 0
