"""The output sanitiser: no control character reaches a terminal, IRC line or log."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fingerplat.domain.text import printable, printable_lines, web_text

ALL_CONTROLS = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return (
        (code < 0x20 and ch != "\t")
        or 0x7F <= code < 0xA0
        or ch in "\u2028\u2029"
        or 0xD800 <= code <= 0xDFFF
        or ch in BIDI_CONTROLS
    )


BIDI_CONTROLS = "".join(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


@pytest.mark.parametrize("ch", ALL_CONTROLS)
def test_every_c0_c1_and_del_is_neutralised_except_tab(ch: str) -> None:
    shown = printable(f"a{ch}b")
    if ch == "\t":
        assert shown == "a\tb"
    else:
        assert shown.startswith("a") and shown.endswith("b")
        assert len(shown) > 3  # replaced by a visible spelling, not dropped
        assert not any(_is_control(c) for c in shown)


def test_caret_notation_for_c0_and_del() -> None:
    assert printable("\x1b[31mred") == "^[[31mred"
    assert printable("\x00\x07\r\n\x7f") == "^@^G^M^J^?"


def test_c1_and_separators_shown_as_escapes() -> None:
    assert printable("\x85\x9b\u2028\u2029") == "\\u0085\\u009b\\u2028\\u2029"


def test_lone_surrogate_is_neutralised_and_encodable() -> None:
    shown = printable("a\ud800b")
    assert shown == "a\\ud800b"
    shown.encode("utf-8")


def test_ordinary_text_is_untouched() -> None:
    text = "Alice Liddell — in Wonderland\t(room 42) ☕ ünïcode"
    assert printable(text) == text


def test_printable_lines_splits_on_every_line_end() -> None:
    assert printable_lines("one\r\ntwo\rthree\nfour\x1b") == ["one", "two", "three", "four^["]


@given(st.text())
def test_no_control_character_survives(text: str) -> None:
    shown = printable(text)
    assert not any(_is_control(c) for c in shown)
    shown.encode("utf-8")


@given(st.text())
def test_lines_never_contain_line_breaks(text: str) -> None:
    for line in printable_lines(text):
        assert "\n" not in line and "\r" not in line
        assert not any(_is_control(c) for c in line)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
                                      blacklist_characters=BIDI_CONTROLS)))
def test_clean_text_passes_unchanged(text: str) -> None:
    assert printable(text) == text
    assert web_text(text) == text


@pytest.mark.parametrize("ch", BIDI_CONTROLS)
def test_bidi_controls_are_shown_not_applied(ch: str) -> None:
    assert printable(f"abc{ch}def") == f"abc\\u{ord(ch):04x}def"
    assert web_text(f"abc{ch}def") == f"abc\\u{ord(ch):04x}def"


def test_bidi_marks_pass() -> None:
    assert printable("a\u200e\u200f\u061cb") == "a\u200e\u200f\u061cb"


def test_web_text_keeps_line_ends_and_tabs_only() -> None:
    assert web_text("plan\r\nline\ttwo\n") == "plan\r\nline\ttwo\n"
    assert web_text("\x1b[2J\x00\x7f\x9b\u2066") == "^[[2J^@^?\\u009b\\u2066"


@given(st.text())
def test_web_text_leaves_no_control_but_line_ends(text: str) -> None:
    shown = web_text(text)
    assert not any(_is_control(c) and c not in "\r\n\u2028\u2029" for c in shown)
    shown.encode("utf-8")
