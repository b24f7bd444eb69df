"""The CLI's table and JSON rendering: aligned by display width, never a raw control byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from fingerplat_cli.output import table_lines, to_json


def test_columns_align_by_display_width():
    lines = table_lines(["LOGIN", "NAME", "STATUS"], [
        ["alice", "Alice Liddell", "away"],
        ["bob", "日本語", None],
        ["carol", True, datetime(2026, 11, 21, 21, 44, 3, tzinfo=UTC)],
    ])
    assert lines == [
        "LOGIN  NAME           STATUS",
        "alice  Alice Liddell  away",
        "bob    日本語         -",
        "carol  yes            2026-11-21 21:44:03Z",
    ]
    status_column = [cell_len(line[: line.index(part)]) for line, part in
                     zip(lines, ["STATUS", "away", "-", "2026"], strict=True)]
    assert len(set(status_column)) == 1


BIDI = "".join(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
WITH_BIDI = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(BIDI)), max_size=30)


@given(st.lists(WITH_BIDI, min_size=1, max_size=4))
def test_no_control_character_reaches_a_table(values):
    for line in table_lines(["A"] * len(values), [values]):
        assert not any((ord(ch) < 0x20 and ch != "\t") or 0x7F <= ord(ch) <= 0x9F
                       or ch in "\u2028\u2029" or ch in BIDI for ch in line)


@given(WITH_BIDI)
def test_json_is_terminal_safe_and_lossless(value):
    text = to_json({"status": value})
    assert not any(0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029" or ord(ch) < 0x0A
                   or ch in BIDI for ch in text)
    assert json.loads(text) == {"status": value}
