"""The admin UI's pure parts: session store, CSV cells (no I/O)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from fingerplat.adapters.web.admin import csv_export
from fingerplat.adapters.web.admin.sessions import SessionStore
from fingerplat.domain.model import AuditEvent, Principal, Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_and_login_rotates_the_id() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    anonymous = store.create()
    admin = Principal(Role.PLATFORM_ADMIN, "admin:root", admin_id=1)
    session = store.login(anonymous, admin)
    assert session.id != anonymous.id and session.csrf_token != anonymous.csrf_token
    assert store.get(anonymous.id) is None
    assert store.get(session.id) is session
    clock.now += 60 * 60
    assert store.get(session.id) is session  # idle an hour: still there
    clock.now += 2 * 60 * 60 + 1
    assert store.get(session.id) is None  # idle over two hours: gone


def test_session_store_is_bounded_and_keeps_logged_in_admins() -> None:
    clock = Clock()
    store = SessionStore(clock=clock, max_sessions=10)
    admin = store.create(Principal(Role.PLATFORM_ADMIN, "admin:root"))
    for _ in range(50):
        clock.now += 1
        store.create()
    assert len(store) <= 10
    assert store.get(admin.id) is admin


def test_csrf_comparison() -> None:
    s = SessionStore().create()
    assert s.csrf_matches(s.csrf_token)
    assert not s.csrf_matches("")
    assert not s.csrf_matches(None)
    assert not s.csrf_matches(s.csrf_token + "x")


def test_csv_cells_starting_like_a_formula_get_a_quote() -> None:
    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_export.safe_cell(dangerous) == "'" + dangerous
    assert csv_export.safe_cell("plain") == "plain"
    assert csv_export.safe_cell(None) == ""
    event = AuditEvent(
        id=7, at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC), tenant="acme",
        actor="=HYPERLINK(\"http://evil\")", channel="web", action="status.set",
        target="-alice@acme", outcome="ok", before=None, after={"status": "=x"},
        remote_addr="127.0.0.1", detail="@here",
    )
    rows = list(csv.reader(io.StringIO(csv_export.encode([event], header=True).decode())))
    assert rows[0] == csv_export.HEADER
    assert rows[1] == ["7", "2026-11-21T12:00:00+00:00", "acme", "'=HYPERLINK(\"http://evil\")",
                       "web", "status.set", "'-alice@acme", "ok", "127.0.0.1", "'@here", "",
                       '{"status": "=x"}']
