"""Audit events as CSV, safe to open in a spreadsheet.

Spreadsheets run a cell starting with ``=``, ``+``, ``-`` or ``@`` (and some
also a leading tab or carriage return) as a formula, so a status such as
``=HYPERLINK(...)`` could act when an auditor opens the export. Such cells
get a leading apostrophe (OWASP's advice), which shows the text as typed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC

from fingerplat.domain.model import AuditEvent

HEADER = ["id", "at", "tenant", "actor", "channel", "action", "target", "outcome",
          "remote_addr", "detail", "before", "after"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _json(value: dict | None) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def row(event: AuditEvent) -> list[str]:
    at = event.at if event.at.tzinfo is not None else event.at.replace(tzinfo=UTC)
    return [safe_cell(v) for v in (
        event.id, at.astimezone(UTC).isoformat(),
        event.tenant_label if event.tenant else "", event.actor,
        event.channel, event.action, event.target, event.outcome, event.remote_addr or "",
        event.detail, _json(event.before), _json(event.after),
    )]


def encode(events: Iterable[AuditEvent], *, header: bool) -> bytes:
    """A chunk of CSV (UTF-8, CRLF line ends as RFC 4180 says)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows(row(e) for e in events)
    return buf.getvalue().encode("utf-8")
