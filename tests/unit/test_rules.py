"""Every validation rule of SPEC section 1, at and just past its boundaries."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fingerplat.domain import rules
from fingerplat.domain.errors import InvalidInput

CONTROL_CHARS = [chr(c) for c in [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)]]


# -- tenant slug -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_slug", "expected"),
    [
        ("acme", "acme"),
        ("a", "a"),
        ("0", "0"),
        ("9lives", "9lives"),
        ("a-b-c", "a-b-c"),
        ("ACME", "acme"),
        ("  acme \n", "acme"),
        ("a" * 63, "a" * 63),
        ("a-", "a-"),
    ],
)
def test_tenant_slug_accepts(given_slug: str, expected: str) -> None:
    assert rules.tenant_slug(given_slug) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "-acme", "a" * 64, "ac me", "acme_corp", "acme.example", "äcme", "a/b", "\x00"],
)
def test_tenant_slug_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid tenant slug"):
        rules.tenant_slug(bad)


# -- username --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("ALICE", "alice"),
        ("_daemon", "_daemon"),
        ("a", "a"),
        ("a.b-c_d9", "a.b-c_d9"),
        ("a" * 32, "a" * 32),
        (" bob\r\n", "bob"),
    ],
)
def test_username_accepts_and_folds_case(given_name: str, expected: str) -> None:
    assert rules.username(given_name) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a" * 33,
        "9lives",  # must start with a letter or '_'
        "-x",
        ".x",
        "al ice",
        "alice@host",
        "alice/w",
        "al\x1bice",
        "\u212a",  # KELVIN SIGN lower-cases to 'k': refused, not folded onto 'k'
        "ålice",
        "alice\x00",
    ],
)
def test_username_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid username"):
        rules.username(bad)


def test_username_error_quotes_long_input_briefly() -> None:
    with pytest.raises(InvalidInput) as info:
        rules.username("x" * 5000 + "!")
    assert len(str(info.value)) < 200


@given(st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1, max_size=40))
def test_username_is_case_insensitive(name: str) -> None:
    """Upper and lower case spell the same user, or are refused alike."""
    try:
        lowered = rules.username(name.lower())
    except InvalidInput:
        with pytest.raises(InvalidInput):
            rules.username(name.upper())
        return
    assert rules.username(name.upper()) == lowered == rules.username(name)
    assert rules.USERNAME_RE.fullmatch(lowered)


# -- admin name and password -----------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [("root", "root"), ("Ops@Example", "ops@example"), ("a" * 64, "a" * 64), ("_x.y-z", "_x.y-z")],
)
def test_admin_name_accepts(given_name: str, expected: str) -> None:
    assert rules.admin_name(given_name) == expected


@pytest.mark.parametrize("bad", ["", "a" * 65, "1admin", "ad min", "ädmin", "ad:min"])
def test_admin_name_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid admin name"):
        rules.admin_name(bad)


def test_admin_password_lengths() -> None:
    assert rules.admin_password("x" * 8) == "x" * 8
    assert rules.admin_password("p" * 1024) == "p" * 1024
    with pytest.raises(InvalidInput, match="at least 8"):
        rules.admin_password("x" * 7)
    with pytest.raises(InvalidInput, match="at least 8"):
        rules.admin_password("")
    with pytest.raises(InvalidInput, match="at most 1024"):
        rules.admin_password("p" * 1025)


# -- domain ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_domain", "expected"),
    [
        ("acme.example", "acme.example"),
        ("ACME.Example.", "acme.example"),
        ("a.b", "a.b"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("finger-1.acme.example", "finger-1.acme.example"),
        (("a" * 63 + ".") * 3 + "b" * 61, ("a" * 63 + ".") * 3 + "b" * 61),  # 253 characters
    ],
)
def test_domain_accepts(given_domain: str, expected: str) -> None:
    assert rules.domain(given_domain) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "localhost",  # no dot
        "-acme.example",
        "acme-.example",
        "acme..example",
        "ac me.example",
        "a" * 64 + ".example",  # label over 63
        ("a" * 63 + ".") * 3 + "b" * 62,  # 254 characters
        "bücher.example",  # IDNs must be given as xn-- labels
        "acme.example/x",
        "acme_corp.example",
    ],
)
def test_domain_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid domain"):
        rules.domain(bad)


# -- status ----------------------------------------------------------------------


def test_status_boundaries() -> None:
    assert rules.status("x" * 280) == "x" * 280
    assert rules.status("  away  ") == "away"
    assert rules.status("é" * 280) == "é" * 280  # characters, not bytes
    assert rules.status("tab\tinside") == "tab\tinside"
    with pytest.raises(InvalidInput, match="281 characters long; at most 280"):
        rules.status("x" * 281)
    with pytest.raises(InvalidInput, match="must not be empty"):
        rules.status("   ")
    with pytest.raises(InvalidInput, match="must not be empty"):
        rules.status("")


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"])
def test_status_is_one_line(brk: str) -> None:
    with pytest.raises(InvalidInput, match="status must be a single line"):
        rules.status(f"first{brk}second")


@pytest.mark.parametrize("ch", CONTROL_CHARS)
def test_status_refuses_every_control_character(ch: str) -> None:
    with pytest.raises(InvalidInput, match="status must"):
        rules.status(f"a{ch}b")


def test_status_refuses_lone_surrogate() -> None:
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        rules.status("a\ud800b")


@given(st.text(max_size=300))
def test_status_accepted_text_is_clean(text: str) -> None:
    """Whatever the status rule accepts is one stored line with no control character."""
    try:
        clean = rules.status(text)
    except InvalidInput:
        return
    assert 1 <= len(clean) <= 280
    assert clean == clean.strip()
    assert not any((ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) < 0xA0 for c in clean)
    assert "\u2028" not in clean and "\u2029" not in clean
    assert not any(c in BIDI_CONTROL_CHARS for c in clean)
    clean.encode("utf-8")


# -- bidirectional controls (SPEC section 11: text safety includes direction) --------

BIDI_CONTROL_CHARS = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]]
# The marks reorder nothing; right-to-left writers need them (README "Choices").
BIDI_MARKS = ["\u200e", "\u200f", "\u061c"]


@pytest.mark.parametrize("ch", BIDI_CONTROL_CHARS)
@pytest.mark.parametrize(
    "rule",
    [rules.status, rules.plan, lambda v: rules.one_line("full name", v), rules.tenant_name],
    ids=["status", "plan", "one_line", "tenant_name"],
)
def test_bidi_controls_are_refused_everywhere(ch: str, rule: object) -> None:
    with pytest.raises(InvalidInput, match=f"bidirectional control characters.*U\\+{ord(ch):04X}"):
        rule(f"invoice {ch}fdp.exe")  # type: ignore[operator]


@pytest.mark.parametrize("ch", BIDI_MARKS)
def test_bidi_marks_are_allowed(ch: str) -> None:
    assert rules.status(f"שלום {ch}(1)") == f"שלום {ch}(1)"


@given(st.text(alphabet=st.sampled_from(["a", " ", "\t", "\n", *BIDI_CONTROL_CHARS,
                                         *BIDI_MARKS, "\u05d0"]), max_size=60))
def test_plan_accepted_text_has_no_bidi_control(text: str) -> None:
    try:
        clean = rules.plan(text)
    except InvalidInput as error:
        assert any(c in BIDI_CONTROL_CHARS for c in text), str(error)
        return
    assert not any(c in BIDI_CONTROL_CHARS for c in clean)


# -- ASCII digits ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "7", "0123456789", "9" * 30])
def test_ascii_digits_accepts(text: str) -> None:
    assert rules.ascii_digits(text)


@pytest.mark.parametrize("text", ["", "²", "1²", "٣", "１", "-1", "+1", " 1", "1 ", "1_0", "𝟙"])
def test_ascii_digits_refuses_what_int_would_misread(text: str) -> None:
    assert not rules.ascii_digits(text)


@given(st.text(max_size=12))
def test_ascii_digits_means_int_parses(text: str) -> None:
    if rules.ascii_digits(text):
        assert int(text) >= 0 and str(int(text)).zfill(len(text)) == text


# -- plan ------------------------------------------------------------------------


def test_plan_size_is_counted_in_utf8_bytes() -> None:
    assert rules.plan("x" * 16384) == "x" * 16384
    with pytest.raises(InvalidInput, match="16385 bytes long; at most 16384"):
        rules.plan("x" * 16385)
    two_byte = "é" * 8192  # 16384 bytes
    assert rules.plan(two_byte) == two_byte
    with pytest.raises(InvalidInput, match="bytes long"):
        rules.plan(two_byte + "x")
    with pytest.raises(InvalidInput, match="bytes long"):
        rules.plan("€" * 5462)  # 3 bytes each: 16386 bytes in 5462 characters


def test_plan_normalises_line_ends() -> None:
    assert rules.plan("one\r\ntwo\rthree\n\n") == "one\ntwo\nthree"
    assert rules.plan("") == ""
    assert rules.plan("\tindented\n  spaced") == "\tindented\n  spaced"


@pytest.mark.parametrize("ch", [c for c in CONTROL_CHARS if c not in "\n\r"])
def test_plan_refuses_control_characters(ch: str) -> None:
    with pytest.raises(InvalidInput, match="plan must not contain control characters"):
        rules.plan(f"line one\nline{ch}two")


def test_plan_refuses_lone_surrogate() -> None:
    with pytest.raises(InvalidInput, match="plan is not valid Unicode"):
        rules.plan("a\udfffb")


# -- one-line fields and tenant names -------------------------------------------


@pytest.mark.parametrize("field", ["full name", "office", "phone", "project"])
def test_one_line_fields(field: str) -> None:
    assert rules.one_line(field, "  Alice Liddell ") == "Alice Liddell"
    assert rules.one_line(field, None) == ""
    assert rules.one_line(field, "y" * 200) == "y" * 200
    with pytest.raises(InvalidInput, match=f"{field} is 201 characters long; at most 200"):
        rules.one_line(field, "y" * 201)
    with pytest.raises(InvalidInput, match=f"{field} must be a single line"):
        rules.one_line(field, "a\nb")
    with pytest.raises(InvalidInput, match=f"{field} must not contain control characters"):
        rules.one_line(field, "a\x1b[2Jb")
    with pytest.raises(InvalidInput, match=f"{field} must not contain control characters"):
        rules.one_line(field, "a\x7fb")


def test_tenant_name() -> None:
    assert rules.tenant_name(" Acme Corp ") == "Acme Corp"
    assert rules.tenant_name("n" * 200) == "n" * 200
    with pytest.raises(InvalidInput, match="tenant name must not be empty"):
        rules.tenant_name("  ")
    with pytest.raises(InvalidInput, match="at most 200"):
        rules.tenant_name("n" * 201)
    with pytest.raises(InvalidInput, match="single line"):
        rules.tenant_name("Acme\nCorp")


# -- times in filters (SPEC section 11: bad input is a 4xx) ---------------------------


def test_moment_is_utc() -> None:
    from datetime import UTC, datetime

    assert rules.moment("2026-01-31T12:00:00Z", "since") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert rules.moment("2026-01-31T13:00:00+01:00", "since") == datetime(
        2026, 1, 31, 12, tzinfo=UTC)
    assert rules.moment("9999-12-31T23:59:59+14:00", "since").year == 9999


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("2026-01-01", "must include a time zone"),
        ("2026-01-01T10:00:00", "must include a time zone"),
        ("9999-12-31T23:59:59-14:00", "out of range"),
        ("0001-01-01T00:00:00+14:00", "out of range"),
        ("yesterday", "ISO 8601"),
        ("２０２６-01-01T00:00:00Z", "ISO 8601"),
        ("2026-01-01T00:00:00.000000" + "0" * 50 + "Z", "ISO 8601"),
    ],
)
def test_moment_refuses(bad: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=f"since.*{words}"):
        rules.moment(bad, "since")


def test_day_bounds() -> None:
    assert rules.day("2026-11-21", "from date").day == 21
    assert rules.day("2026-11-21", "to date", next_day=True).day == 22
    with pytest.raises(InvalidInput, match="to date is out of range"):
        rules.day("9999-12-31", "to date", next_day=True)
    with pytest.raises(InvalidInput, match="must be a date"):
        rules.day("31/12/2026", "from date")


@given(st.text(max_size=40))
def test_moment_never_raises_anything_but_invalid_input(text: str) -> None:
    try:
        parsed = rules.moment(text, "since")
    except InvalidInput:
        return
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
