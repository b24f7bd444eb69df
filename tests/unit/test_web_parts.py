"""Pure parts of the web adapter: host parsing, times, WebFinger resources, XML-RPC parsing."""

from __future__ import annotations

import xmlrpc.client
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerplat.adapters.times import absolute_time
from fingerplat.adapters.times import iso_utc as iso_time
from fingerplat.adapters.web.admin.state import make_environment as admin_environment
from fingerplat.adapters.web.middleware import adapter_for
from fingerplat.adapters.web.payloads import MalformedRequest, PayloadTooLarge
from fingerplat.adapters.web.statuses import status_for
from fingerplat.adapters.web.templating import relative_time
from fingerplat.adapters.web.tenancy import host_name
from fingerplat.adapters.web.webfinger import parse_acct
from fingerplat.adapters.web.xmlrpc import (
    FAULT_BAD_REQUEST,
    FAULT_PARSE,
    RpcFault,
    parse_call,
    xml_safe,
)
from fingerplat.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    PermissionDenied,
    SchemaOutOfDate,
    Unavailable,
    UserNotFound,
)


@pytest.mark.parametrize("header,expected", [
    ("acme.example", "acme.example"),
    ("ACME.Example:8000", "acme.example"),
    ("acme.example.", "acme.example"),
    ("localhost:8000", None),  # no dot: never a tenant domain
    ("127.0.0.1:8000", None),
    ("[::1]:8000", None),
    ("", None),
    (None, None),
])
def test_host_name(header: str | None, expected: str | None) -> None:
    assert host_name(header) == expected


def test_relative_and_absolute_times() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=10), now) == "just now"
    assert relative_time(now - timedelta(minutes=1), now) == "1 minute ago"
    assert relative_time(now - timedelta(minutes=5, seconds=50), now) == "5 minutes ago"
    assert relative_time(now - timedelta(hours=3), now) == "3 hours ago"
    assert relative_time(now - timedelta(days=1), now) == "1 day ago"
    assert relative_time(now - timedelta(days=400), now) == "1 year ago"
    assert relative_time(now + timedelta(hours=1), now) == "in the future"
    assert relative_time(None, now) == ""
    naive = datetime(2026, 11, 21, 11, 0)  # SQLite hands back naive UTC
    assert relative_time(naive, now) == "1 hour ago"
    assert absolute_time(naive) == "2026-11-21 11:00 UTC"
    assert iso_time(naive) == "2026-11-21T11:00:00Z"


@pytest.mark.parametrize(("before", "words"), [
    (timedelta(seconds=50), "just now"),
    (timedelta(minutes=59, seconds=59), "59 minutes ago"),
    (timedelta(hours=1, minutes=50), "2 hours ago"),
    (timedelta(days=45), "2 months ago"),
])
def test_admin_pages_show_times_as_the_public_pages_do(before: timedelta, words: str) -> None:
    """One "ago" rule and one absolute form on the public and the admin pages."""
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    admin = admin_environment()
    shown = admin.from_string("{{ t | when }} ({{ t | ago(now) }})").render(t=now - before, now=now)
    public = f"{absolute_time(now - before)} ({relative_time(now - before, now)})"
    assert shown == public
    assert shown.endswith(f"({words})")


def test_parse_acct() -> None:
    assert parse_acct("acct:Alice@Acme.Example.") == ("alice", "acme.example")
    assert parse_acct("ACCT:bob@host:8000") == ("bob", "host:8000")
    for bad in (None, "", "alice@acme.example", "mailto:a@b", "acct:alice", "acct:@b", "acct:a@"):
        with pytest.raises(MalformedRequest):
            parse_acct(bad)


def test_status_codes_and_adapter_labels() -> None:
    assert status_for(InvalidInput("x")) == 422
    assert status_for(UserNotFound("a", "b")) == 404
    assert status_for(Conflict("x")) == 409
    assert status_for(AuthenticationFailed("x")) == 401
    assert status_for(PermissionDenied("x")) == 403
    assert status_for(SchemaOutOfDate("x")) == 503
    assert status_for(Unavailable("x")) == 503
    assert status_for(MalformedRequest("x")) == 400
    assert status_for(PayloadTooLarge("x")) == 413
    assert adapter_for("/api/v1/tenants/a/users") == "api"
    assert adapter_for("/RPC2") == "xmlrpc" and adapter_for("/t/acme/RPC2") == "xmlrpc"
    assert adapter_for("/~alice") == "web" and adapter_for("/admin/login") == "web"


def test_parse_call_round_trips_the_reference_client() -> None:
    body = xmlrpc.client.dumps(("alice", "at <lunch> & more"), "setUser").encode()
    assert parse_call(body) == ("setUser", ("alice", "at <lunch> & more"))


@pytest.mark.parametrize("body,code", [
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodCall>'
     b"<methodName>getUser</methodName></methodCall>", FAULT_PARSE),
    (b"<methodCall><methodName>getUser", FAULT_PARSE),
    (b"", FAULT_PARSE),
    (b"<methodCall><params></params></methodCall>", FAULT_BAD_REQUEST),
])
def test_parse_call_refuses(body: bytes, code: int) -> None:
    with pytest.raises(RpcFault) as info:
        parse_call(body)
    assert info.value.code == code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_call_never_fails_with_anything_but_a_fault(body: bytes) -> None:
    try:
        parse_call(b"<methodCall>" + body)
    except RpcFault as fault:
        assert fault.code in (FAULT_PARSE, FAULT_BAD_REQUEST)


def test_xml_safe_keeps_answers_parseable() -> None:
    value = {"s": "a\x00b\x1bc\td\ne", "l": ["\x07"]}
    cleaned = xml_safe(value)
    assert cleaned == {"s": "a\ufffdb\ufffdc\td\ne", "l": ["\ufffd"]}
    payload = xmlrpc.client.dumps((cleaned,), methodresponse=True)
    assert xmlrpc.client.loads(payload)[0][0] == cleaned
