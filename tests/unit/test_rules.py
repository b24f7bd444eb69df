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
    clean.encode("utf-8")


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
