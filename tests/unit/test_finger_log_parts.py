"""The finger log's pure parts: networks instead of addresses, the bounded queue."""

from __future__ import annotations

import pytest

from fingerplat.service.finger_log import FingerLogRecorder, network_of


@pytest.mark.parametrize("address,network", [
    ("192.0.2.77", "192.0.2.0/24"),
    ("127.0.0.1", "127.0.0.0/24"),
    ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
    ("::ffff:198.51.100.9", "198.51.100.0/24"),
    ("fe80::1%eth0", "fe80::/48"),
    ("?", "unknown"),
    ("irc.example.net", "unknown"),
    ("", "unknown"),
    (None, "unknown"),
])
def test_only_the_network_is_kept(address, network):
    assert network_of(address) == network
    if address and network != "unknown":
        assert address.split("%")[0] not in network


def test_the_queue_is_bounded_and_counts_what_it_drops():
    recorder = FingerLogRecorder(max_queue=3)
    for n in range(5):
        recorder.record(1, n, "finger", "192.0.2.1")
    assert len(recorder.counts) == 3 and recorder.dropped == 2
    recorder.record(1, 0, "finger", "192.0.2.1")  # a repeat of a kept key: counted
    recorder.record(1, 4, "finger", "192.0.2.1")  # a dropped one: dropped again
    assert recorder.counts[(1, 0, "finger", "192.0.2.0/24")].count == 2
    assert recorder.dropped == 3
    tally = recorder.record(1, 9, "web", None)
    assert recorder.dropped == 4 and not tally.live


class Database:
    """What the writer writes, as a database would keep it (ids from 100)."""

    def __init__(self) -> None:
        self.rows: dict[int, list] = {}
        self.calls: list[tuple[list, list]] = []

    async def write(self, rows, counts):
        self.calls.append((rows, list(counts)))
        for row_id, n in counts:
            self.rows[row_id][5] = n
        ids = []
        for row in rows:
            ids.append(100 + len(self.rows))
            self.rows[ids[-1]] = list(row)
        return ids


async def test_repeats_are_one_row_written_new_and_counted_at_the_generations_end():
    recorder = FingerLogRecorder()
    db = Database()
    recorder.record(1, 1, "finger", "192.0.2.1")
    recorder.record(1, 1, "finger", "192.0.2.9")  # the same /24: the same row
    recorder.record(1, 1, "web", "192.0.2.1")
    assert await recorder.flush(db.write, final=False) == 2
    assert sorted((r[3], r[4], r[5]) for r in db.rows.values()) == [
        ("finger", "192.0.2.0/24", 2), ("web", "192.0.2.0/24", 1)]
    recorder.record(1, 1, "finger", "192.0.2.1")
    recorder.record(1, 1, "finger", "192.0.2.1")
    recorder.record(2, 2, "finger", "2001:db8::1")
    assert await recorder.flush(db.write, final=False) == 1  # only the new key
    assert db.calls[-1][1] == []  # repeats wait for the end of the generation
    kept = recorder.record(1, 1, "web", "192.0.2.1")  # what a kept finger answer holds
    kept.count += 1  # ... and counts itself while live: 3 lookups of web
    assert await recorder.flush(db.write) == 0  # the end: counts only, of rows that changed
    assert not kept.live
    assert db.calls[-1] == ([], [(100, 4), (101, 3)])
    assert sorted((r[1], r[3], r[4], r[5]) for r in db.rows.values()) == [
        (1, "finger", "192.0.2.0/24", 4), (1, "web", "192.0.2.0/24", 3),
        (2, "finger", "2001:db8::/48", 1)]
    assert not any("192.0.2.1" in str(row) or "2001:db8::1," in str(row)
                   for row in db.rows.values())
    assert not any(key[3] == "192.0.2.1" for key in recorder.counts)
    # A new generation: the same lookup is a new row again.
    recorder.record(1, 1, "finger", "192.0.2.1")
    recorder.record(1, 1, "finger", "192.0.2.1")
    assert await recorder.flush(db.write) == 1  # never written: written with its count
    assert db.calls[-1][0][0][5] == 2 and len(db.rows) == 4


async def test_new_rows_are_written_in_batches_of_at_most_batch_rows():
    recorder = FingerLogRecorder(batch=2)
    db = Database()
    for n in range(5):
        recorder.record(1, n, "finger", "2001:db8::1")
    assert await recorder.flush(db.write, final=False) == 5
    assert [len(rows) for rows, _ in db.calls] == [2, 2, 1]
    assert recorder.written == 5 and not recorder.fresh
    assert {row[4] for row in db.rows.values()} == {"2001:db8::/48"}


async def test_a_generation_ends_after_its_time():
    recorder = FingerLogRecorder(generation=3600)
    assert not recorder.due()
    recorder.generation = 0
    assert recorder.due()
