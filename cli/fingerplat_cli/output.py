"""Rendering for the terminal and for scripts: aligned tables, key/value blocks, JSON.

Every command prints through these helpers so that two rules hold everywhere:
stored text is passed through :func:`~fingerplat.domain.text.printable` before
it reaches a terminal (an escape sequence in a status must not repaint the
operator's screen), and ``--json`` output is one JSON document that a script
can parse. Tables are aligned by hand (display width, so wide characters line
up) rather than with rich tables, because rich wraps and truncates to the
terminal width, which breaks ``grep``/``awk`` on piped output.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import click

from fingerplat.domain.text import BIDI_CONTROLS, printable

# Characters json.dumps(ensure_ascii=False) leaves raw but a terminal may act
# on: DEL, the C1 controls (0x9b is a one-byte CSI), the Unicode line and
# paragraph separators, and the bidi embedding/override/isolate controls
# (which reorder how the rest of the line displays). Inside JSON strings they
# are re-escaped as \uXXXX.
_JSON_UNSAFE_RE = re.compile(f"[\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")

COLUMN_GAP = "  "


def format_time(value: datetime | None) -> str:
    """A timestamp for a table: UTC to the second; naive values are taken as UTC."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cell(value: Any) -> str:
    """One table cell: None as ``-``, booleans as yes/no, everything neutralised."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return format_time(value)
    return printable(str(value))


def table_lines(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Columns aligned by display width; the last column is not padded."""
    from rich.cells import cell_len  # here: a command that prints one line does not load rich

    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [cell_len(h) for h in headers]
    for row in text_rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], cell_len(value))

    def line(values: Sequence[str]) -> str:
        padded = [
            value + " " * (widths[i] - cell_len(value)) if i < len(values) - 1 else value
            for i, value in enumerate(values)
        ]
        return COLUMN_GAP.join(padded).rstrip()

    return [line(list(headers)), *(line(row) for row in text_rows)]


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
                empty: str | None = None) -> None:
    """Print an aligned table; with no rows, print ``empty`` (to stderr) instead."""
    materialised = list(rows)
    if not materialised and empty is not None:
        click.echo(empty, err=True)
        return
    lines = table_lines(headers, materialised)
    click.echo(click.style(lines[0], bold=True))
    for text in lines[1:]:
        click.echo(text)


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """``label: value`` lines with the values aligned (the human form of ``show``)."""
    from rich.cells import cell_len

    width = max((cell_len(label) for label, _ in pairs), default=0) + 1
    for label, value in pairs:
        click.echo(f"{label + ':':<{width}} {cell(value)}")


def print_block(title: str, text: str) -> None:
    """A multi-line stored text (a plan), each line neutralised, under a title."""
    click.echo(f"{title}:")
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        click.echo(f"  {printable(line)}")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    """Stable, readable JSON whose raw text is safe to show on a terminal."""
    text = json.dumps(data, default=_default, ensure_ascii=False, indent=2)
    return _JSON_UNSAFE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(data: Any) -> None:
    click.echo(to_json(data))


def record(obj: Any, *, drop: Iterable[str] = ()) -> dict[str, Any]:
    """A domain dataclass as a JSON-ready dict, without internal fields."""
    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)
    for key in drop:
        data.pop(key, None)
    return data


def notice(message: str) -> None:
    """A progress or confirmation line for people: stderr, so stdout stays data."""
    click.echo(printable(message), err=True)

