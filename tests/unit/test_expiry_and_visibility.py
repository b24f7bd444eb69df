"""Parsing expiries, public fields and networks: pure functions, fuzzed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fingerplat.adapters.finger import render
from fingerplat.domain import expiry, visibility
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import Tenant, User

NOW = datetime(2026, 12, 7, 12, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "span"), [
    ("90s", timedelta(seconds=90)),
    ("45m", timedelta(minutes=45)),
    ("2h", timedelta(hours=2)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1d", timedelta(days=1)),
    (" 1D2H ", timedelta(days=1, hours=2)),
])
def test_durations(text: str, span: timedelta) -> None:
    assert expiry.parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "0s", "45", "m", "1x", "-5m", "2m1h", "400d", "1.5h",
                                  "45 m"])
def test_bad_durations_are_input_errors(text: str) -> None:
    with pytest.raises(InvalidInput, match="duration"):
        expiry.parse_duration(text)


@given(st.text(max_size=30))
def test_duration_parser_never_fails_otherwise(text: str) -> None:
    try:
        span = expiry.parse_duration(text)
    except InvalidInput:
        return
    assert timedelta(0) < span <= expiry.MAX_EXPIRY


@given(st.text(max_size=40), st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata"]))
def test_expiry_parser_gives_a_future_instant_or_an_input_error(text: str, zone: str) -> None:
    try:
        moment = expiry.parse_expiry(text, NOW, zone)
    except InvalidInput:
        return
    assert moment.tzinfo is not None and NOW < moment <= NOW + expiry.MAX_EXPIRY


def test_until_clock_times_are_the_next_one_in_the_tenant_zone() -> None:
    assert expiry.parse_until("13:00", NOW) == datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    assert expiry.parse_until("12:00", NOW) == datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    # 14:00 in Paris (UTC+1 in December) is 13:00 UTC.
    assert expiry.parse_until("14:00", NOW, "Europe/Paris") == datetime(2026, 12, 7, 13, 0,
                                                                        tzinfo=UTC)
    assert expiry.parse_until("2026-12-07T14:00:00Z", NOW) == datetime(2026, 12, 7, 14,
                                                                       tzinfo=UTC)
    assert expiry.parse_until("2026-12-07T16:00:00+02:00", NOW) == datetime(2026, 12, 7, 14,
                                                                            tzinfo=UTC)


@pytest.mark.parametrize(("text", "message"), [
    ("24:00", "invalid time"), ("2026-12-07T11:00:00Z", "in the past"),
    ("2026-12-07T14:00:00", "invalid time"), ("2030-01-01T00:00:00Z", "too far"),
    ("noon", "invalid time"),
])
def test_bad_times(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        expiry.parse_until(text, NOW)


@pytest.mark.parametrize("zone", ["Mars/Base", "../../etc/passwd", "", "Europe/Paris/x/y/z"])
def test_unknown_zones(zone: str) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        expiry.timezone_name(zone)


def test_expires_in_and_at() -> None:
    assert expiry.expires_in(60, NOW) == NOW + timedelta(minutes=1)
    for bad in (0, -1, True, "60", float("nan"), 10**9):
        with pytest.raises(InvalidInput):
            expiry.expires_in(bad, NOW)
    assert expiry.expires_at("2026-12-07T13:00:00Z", NOW) == datetime(2026, 12, 7, 13,
                                                                      tzinfo=UTC)
    with pytest.raises(InvalidInput, match="RFC 3339"):
        expiry.expires_at("tomorrow", NOW)


def test_live_view_clears_an_expired_status() -> None:
    user = User(1, 1, "alice", status="at lunch", status_set_at=NOW,
                status_expires_at=NOW + timedelta(hours=1))
    assert expiry.live(user, NOW).status == "at lunch"
    assert expiry.live(user, NOW + timedelta(hours=1)).status is None
    assert expiry.deadline(user) == NOW + timedelta(hours=1)


def test_finger_shows_since_and_until_in_the_tenant_zone() -> None:
    user = User(1, 1, "alice", status="at lunch",
                status_set_at=datetime(2026, 12, 7, 12, 1, tzinfo=UTC),
                status_expires_at=datetime(2026, 12, 7, 13, 0, tzinfo=UTC))
    lines = render.user_entry(user, tenant=Tenant(1, "d", "D", True, False, True))
    assert "Status: at lunch (since 12:01 UTC, until 13:00 UTC)" in lines
    paris = Tenant(1, "d", "D", True, False, True, timezone="Europe/Paris")
    assert "Status: at lunch (since 13:01 CET, until 14:00 CET)" in render.user_entry(
        user, tenant=paris)


def test_public_fields() -> None:
    assert visibility.public_fields("status, plan") == ("status", "plan")
    assert visibility.public_fields(",".join(visibility.PUBLIC_FIELDS)) is None
    assert visibility.public_fields("") == ()
    with pytest.raises(InvalidInput, match="unknown public field 'email'"):
        visibility.public_fields("status,email")
    user = User(1, 1, "alice", full_name="Alice", phone="123", status="x", plan="p")
    shown = visibility.public_view(user, frozenset({"status"}))
    assert (shown.full_name, shown.phone, shown.plan, shown.status) == ("", "", "", "x")
    tenant = Tenant(1, "d", "D", True, False, True, public_fields=frozenset({"full_name"}))
    lines = render.user_entry(shown, verbose=True, tenant=tenant)
    assert not any(line.startswith(("Status", "Plan", "No Plan")) for line in lines)


@pytest.mark.parametrize(("cidr", "canonical"), [
    ("192.0.2.7/24", "192.0.2.0/24"), ("2001:DB8::1/32", "2001:db8::/32"),
    ("10.1.2.3", "10.1.2.3/32"), ("::1", "::1/128"),
])
def test_networks(cidr: str, canonical: str) -> None:
    assert visibility.network(cidr) == canonical


@pytest.mark.parametrize("bad", ["", "300.1.1.1/8", "10.0.0.0/33", "example.com", "::g/64"])
def test_bad_networks(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid network"):
        visibility.network(bad)


def test_network_policy() -> None:
    assert visibility.network_policy(None, None) is None
    policy = visibility.network_policy(["10.0.0.0/8", "2001:db8::/32"], ["192.0.2.0/24"])
    assert policy is not None
    assert policy.rejects("192.0.2.9") and policy.rejects("::ffff:192.0.2.9")
    assert not policy.rejects("10.0.0.1") and not policy.rejects(None)
    assert policy.lists_to("10.9.9.9") and policy.lists_to("2001:db8::5")
    assert not policy.lists_to("127.0.0.1") and not policy.lists_to(None)
    assert not policy.lists_to("2001:db9::1")


@given(st.ip_addresses())
def test_a_policy_without_trusted_networks_lists_to_everyone(address: object) -> None:
    policy = visibility.network_policy([], ["2001:db8::/32"])
    assert policy is not None and policy.lists_to(str(address))
