"""The authentication throttle's rules (fingerplat/domain/throttle.py), without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fingerplat.domain.throttle import (
    Counter,
    ThrottlePolicy,
    account_key,
    address_key,
    address_label,
    count_failure,
    restart_if_expired,
    unreported,
)

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
POLICY = ThrottlePolicy()


def test_clients_are_counted_by_address_ipv6_by_its_slash_64_and_local_peers_by_uid() -> None:
    assert address_label("192.0.2.7") == "192.0.2.7"
    assert address_label("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_label("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_label("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_label("unix:pid=42,uid=1000") == "unix:uid=1000"
    assert address_label("unix:pid=43,uid=1000") == "unix:uid=1000"
    assert address_label(None) == address_label("  ") == "unknown"


def test_account_keys_pair_the_account_with_the_address_and_never_stand_alone() -> None:
    key = account_key("admin", "root", "192.0.2.7")
    assert key == "acct:admin:root|addr:192.0.2.7"
    assert key != account_key("admin", "root", "198.51.100.1")
    assert len(account_key("admin", "x" * 500, "2001:db8::1")) <= 200
    assert address_key("192.0.2.7") == "addr:192.0.2.7"


def test_limits_differ_for_the_pair_and_the_address() -> None:
    pair = Counter(account_key("admin", "root", "192.0.2.7"), T0, attempts=4)
    assert not POLICY.over_limit(pair)
    assert POLICY.over_limit(Counter(pair.key, T0, attempts=5))
    address = Counter(address_key("192.0.2.7"), T0, attempts=19)
    assert not POLICY.over_limit(address)
    assert POLICY.over_limit(Counter(address.key, T0, attempts=20))


def test_only_the_first_few_failures_of_a_window_get_an_audit_row() -> None:
    counter = Counter(address_key("192.0.2.7"), T0)
    own = []
    for _ in range(50):
        counter, row = count_failure(counter, T0, "setter", POLICY)
        own.append(row)
    assert own.count(True) == POLICY.audit_free == 3 and own[:3] == [True] * 3
    assert counter.failures == 50 and unreported(counter) == 47
    assert counter.last_channel == "setter"


def test_a_window_restarts_empty_once_it_has_ended() -> None:
    counter = Counter(address_key("192.0.2.7"), T0, attempts=20, failures=30, audited=3)
    assert restart_if_expired(counter, T0 + timedelta(minutes=4), POLICY) is counter
    fresh = restart_if_expired(counter, T0 + POLICY.window, POLICY)
    assert fresh.clean and fresh.window_start == T0 + POLICY.window


def test_replies_are_slowed_down_then_capped() -> None:
    delays = [POLICY.delay(n, 0) for n in range(1, 9)]
    assert delays[:2] == [0.0, 0.0]
    assert delays[2:5] == [0.25, 0.5, 1.0]
    assert max(delays) == POLICY.delay_max
    assert POLICY.delay(0, 10) == 0.0 and POLICY.delay(0, 11) == 0.25


def test_a_summary_row_is_due_for_unreported_failures_at_most_once_a_minute() -> None:
    counter = Counter(address_key("192.0.2.7"), T0, failures=3, audited=3)
    assert not POLICY.summary_due(counter, T0)  # nothing unreported
    counter = Counter(counter.key, T0, failures=10, audited=3)
    assert POLICY.summary_due(counter, T0)
    summarised = Counter(counter.key, T0, failures=12, audited=10, summarised_at=T0)
    assert not POLICY.summary_due(summarised, T0 + timedelta(seconds=59))
    assert POLICY.summary_due(summarised, T0 + timedelta(seconds=60))


@given(st.one_of(st.none(), st.text(max_size=300), st.ip_addresses().map(str)))
def test_any_client_address_gives_a_bounded_key(remote: str | None) -> None:
    """Whatever a listener hands over as the client address (fuzzed), keys stay bounded."""
    label = address_label(remote)
    assert 0 < len(label) <= 64
    assert len(account_key("admin", "x" * 300, remote)) <= 200
    assert address_key(remote) == "addr:" + label
