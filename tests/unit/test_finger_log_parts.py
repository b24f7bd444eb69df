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
    assert len(recorder.queue) == 3 and recorder.dropped == 2
    assert [r[1] for r in recorder.take(2)] == [0, 1]
    rows = recorder.take()
    assert [r[1] for r in rows] == [2]
    assert {r[4] for r in rows} == {"192.0.2.0/24"}
    assert all("192.0.2.1" not in str(r) for r in rows)
    assert not recorder.queue
    recorder.record(1, 9, "web", None)
    assert recorder.take()[0][4] == "unknown"


async def test_flush_writes_in_batches_of_at_most_batch_rows():
    recorder = FingerLogRecorder(batch=2)
    for n in range(5):
        recorder.record(1, n, "finger", "2001:db8::1")
    batches: list[list] = []

    async def write(rows):
        batches.append(rows)

    assert await recorder.flush(write) == 5
    assert [len(b) for b in batches] == [2, 2, 1]
    assert recorder.written == 5 and not recorder.queue
    assert {row[4] for batch in batches for row in batch} == {"2001:db8::/48"}
