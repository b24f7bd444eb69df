"""The finger answer renderer and its wire encoding: what a finger client shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from fingerplat.adapters.finger import render
from fingerplat.domain.model import StatusChange, User

SET_AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
# Every byte of a C0 control except TAB, plus DEL (C1 controls are checked on the text).
FORBIDDEN_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def make_user(**fields: object) -> User:
    base: dict[str, object] = {
        "id": 1, "tenant_id": 1, "username": "alice", "full_name": "Alice Liddell",
        "status": "down the rabbit hole", "status_set_at": SET_AT,
    }
    base.update(fields)
    return User(**base)  # type: ignore[arg-type]


def assert_clean_wire(data: bytes) -> None:
    """Every line ends in CRLF, no bare CR or LF, no control byte but TAB."""
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert not FORBIDDEN_BYTES.search(line), line
        text = line.decode("utf-8")
        assert not any(0x80 <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in text), text


def test_short_entry_shows_login_name_status_time_and_plan() -> None:
    user = make_user(plan="Find the\nwhite rabbit.")
    data = render.encode(render.user_entry(user))
    assert data == (
        b"Login: alice                            Name: Alice Liddell\r\n"
        b"Status: down the rabbit hole (since 2026-11-21 09:30 UTC)\r\n"
        b"Plan:\r\n"
        b"Find the\r\n"
        b"white rabbit.\r\n"
    )


def test_entry_without_plan_or_status_says_so() -> None:
    lines = render.user_entry(make_user(status=None, status_set_at=None, full_name=""))
    assert lines == ["Login: alice", "Status: (none)", "No Plan."]


def test_verbose_entry_adds_office_phone_project_and_history() -> None:
    user = make_user(office="Room 4", phone="+44 1865", project="Tea party")
    history = [
        StatusChange(2, 1, None, datetime(2026, 11, 21, 10, 0, tzinfo=UTC), "x", "cli"),
        StatusChange(1, 1, "asleep", datetime(2026, 11, 20, 22, 5), "x", "setter"),
    ]
    lines = render.user_entry(user, verbose=True, history=history)
    assert lines[1] == "Office: Room 4                          Phone: +44 1865"
    assert lines[2] == "Project: Tea party"
    assert "Recent statuses:" in lines
    assert "  2026-11-21 10:00 UTC  (cleared)" in lines
    assert "  2026-11-20 22:05 UTC  asleep" in lines  # naive times are UTC


def test_user_list_is_aligned_and_capped_with_a_count() -> None:
    users = [make_user(username="alice"), make_user(username="bob", full_name="Bob",
                                                      status=None, status_set_at=None)]
    lines = render.user_list(users, total=7)
    assert lines[0].startswith("Login  Name")
    assert lines[1].startswith("alice  Alice Liddell")
    assert lines[1].endswith("2026-11-21 09:30 UTC  down the rabbit hole")
    assert lines[2] == "bob    Bob"
    assert lines[-1] == "...and 5 more users not listed"
    assert render.user_list([], 0) == ["No users."]
    assert render.user_list(users, 3)[-1] == "...and 1 more user not listed"


def test_escape_sequences_in_stored_text_are_neutralised() -> None:
    user = make_user(full_name="Eve\x1b]0;pwned\x07", plan="\x1b[31mred\x1b[0m\rover\x9bwrite")
    data = render.encode(render.user_entry(user))
    assert_clean_wire(data)
    assert b"^[[31mred^[[0m" in data
    assert b"Eve^[]0;pwned^G" in data
    assert b"\\u009b" in data


def test_no_such_user_names_the_query() -> None:
    assert render.encode(render.no_such_user("bob")) == b"No such user: bob\r\n"


control_heavy = st.lists(
    st.one_of(
        st.characters(min_codepoint=0, max_codepoint=0x20),
        st.characters(min_codepoint=0x7F, max_codepoint=0xA0),
        st.sampled_from(["\u2028", "\u2029", "\x1b[2J", "\r\n", "é", "✓"]),
        st.characters(),
    ),
    max_size=60,
).map("".join)


@given(st.lists(control_heavy, max_size=8))
def test_encode_never_lets_a_control_byte_or_bare_line_end_through(lines: list[str]) -> None:
    data = render.encode(lines)
    if lines:
        assert_clean_wire(data)
        assert data.count(b"\r\n") == len(lines)
    else:
        assert data == b""


@given(name=control_heavy, status=control_heavy, plan=control_heavy, office=control_heavy,
       verbose=st.booleans())
def test_rendered_entries_are_always_clean(name: str, status: str, plan: str, office: str,
                                           verbose: bool) -> None:
    user = make_user(full_name=name, status=status, plan=plan, office=office, project=status)
    history = [StatusChange(1, 1, status, SET_AT, "x", "cli")]
    assert_clean_wire(render.encode(render.user_entry(user, verbose=verbose, history=history)))
    assert_clean_wire(render.encode(render.user_list([user], 1000)))
