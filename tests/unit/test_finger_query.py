"""The finger query parser: examples from RFC 1288 and SPEC section 2, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fingerplat.adapters.finger.query import MAX_QUERY_BYTES, FingerQuery, parse_query
from fingerplat.domain.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", FingerQuery()),
        (b"\r", FingerQuery()),
        (b"   ", FingerQuery()),
        (b"alice", FingerQuery("alice")),
        (b"Alice\r", FingerQuery("alice")),
        (b"/W", FingerQuery(verbose=True)),
        (b"/w", FingerQuery(verbose=True)),
        (b"/W alice", FingerQuery("alice", verbose=True)),
        (b"/walice", FingerQuery("alice", verbose=True)),
        (b"/W    alice", FingerQuery("alice", verbose=True)),
        (b"alice@acme.example", FingerQuery("alice", ("acme.example",))),
        (b"alice@ACME.example.", FingerQuery("alice", ("acme.example",))),
        (b"alice@h1@h2", FingerQuery("alice", ("h1", "h2"))),
        (b"/W alice@acme", FingerQuery("alice", ("acme",), verbose=True)),
        (b"@acme", FingerQuery("", ("acme",))),
        (b"alice@[::1]", FingerQuery("alice", ("[::1]",))),
        (b"bob.smith_2-x", FingerQuery("bob.smith_2-x")),
    ],
)
def test_valid_queries(raw: bytes, expected: FingerQuery) -> None:
    assert parse_query(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"alice bob", "one user name"),
        (b"/W alice bob", "one user name"),
        (b"alice@", "empty host"),
        (b"alice@@h2", "empty host"),
        (b"alice@ho st", "invalid host"),
        (b"alice@h/x", "invalid host"),
        (b"\xff\xfe", "UTF-8"),
        (b"ali\x1bce", "control characters"),
        (b"alice\x00", "control characters"),
        (b"/X", "invalid username"),
        (b"al!ce", "invalid username"),
        (b"a" * 40, "invalid username"),
        (b"a" * (MAX_QUERY_BYTES + 2), "too long"),
    ],
)
def test_garbage_is_refused_with_a_named_problem(raw: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_query(raw)
    assert problem in str(caught.value)


def test_without_last_host_pops_the_next_hop() -> None:
    query = parse_query(b"/W alice@h1@h2")
    assert query.without_last_host() == FingerQuery("alice", ("h1",), verbose=True)
    assert not query.is_list
    assert parse_query(b"@h1").without_last_host().is_list


usernames = st.from_regex(r"[a-z_][a-z0-9_.-]{0,31}", fullmatch=True)
hosts = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}(\.[a-z0-9][a-z0-9-]{0,20}){0,3}", fullmatch=True)


@given(
    verbose=st.booleans(),
    spaces=st.sampled_from(["", " ", "  "]),
    w=st.sampled_from(["/W", "/w"]),
    user=usernames,
    chain=st.lists(hosts, max_size=4),
    crlf=st.booleans(),
)
def test_well_formed_queries_round_trip(verbose: bool, spaces: str, w: str, user: str,
                                        chain: list[str], crlf: bool) -> None:
    text = (w + spaces if verbose else "") + user + "".join("@" + h for h in chain)
    raw = text.encode() + (b"\r" if crlf else b"")
    assert parse_query(raw) == FingerQuery(user, tuple(chain), verbose)


@given(st.binary(max_size=MAX_QUERY_BYTES + 40))
def test_any_bytes_parse_or_raise_invalid_input(raw: bytes) -> None:
    """Garbage never escapes as another exception type; results are normalised."""
    try:
        query = parse_query(raw)
    except InvalidInput as error:
        assert str(error)
        return
    assert query.user == query.user.lower().strip()
    assert all(h and h == h.lower() and "@" not in h and " " not in h for h in query.hosts)


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_invalid_input(text: str) -> None:
    try:
        query = parse_query(text)
    except InvalidInput:
        return
    assert all(ord(c) >= 0x20 for c in query.user + "".join(query.hosts))
