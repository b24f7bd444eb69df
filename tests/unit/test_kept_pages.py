"""A kept page filled in later reads exactly as the page rendered at that moment."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from fingerplat.adapters.web.kept_pages import render_kept
from fingerplat.adapters.web.templating import setup_templates
from fingerplat.domain.model import StatusChange, Tenant, User

SET_AT = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def page_app(override: dict[str, str] | None = None) -> tuple[web.Application, jinja2.Environment]:
    app = web.Application()
    env = setup_templates(app, None)
    if override:
        env.loader = jinja2.ChoiceLoader([jinja2.DictLoader(override), env.loader])  # type: ignore[list-item]
    return app, env


def context() -> dict[str, Any]:
    tenant = Tenant(id=1, slug="default", name="Example", list_users=True, forwarding=False,
                    is_default=True, domains=("example.org",))
    user = User(id=7, tenant_id=1, username="alice", full_name="Alice Liddell",
                status="reading", status_set_at=SET_AT, plan="tea at four")
    history = [StatusChange(id=2, user_id=7, text="reading", set_at=SET_AT, actor="alice",
                            channel="web"),
               StatusChange(id=1, user_id=7, text="asleep", set_at=SET_AT - timedelta(days=2),
                            actor="alice", channel="web")]
    return {"tenant": tenant, "base": "", "user": user, "history": history}


@pytest.mark.parametrize("later", [
    timedelta(seconds=5), timedelta(minutes=7), timedelta(hours=5), timedelta(days=40),
])
def test_kept_user_page_equals_a_fresh_render_at_any_later_time(later: timedelta) -> None:
    app, env = page_app()
    request = make_mocked_request("GET", "/~alice", app=app)
    page, keepable = render_kept(request, "user.html", context(), now=SET_AT)
    assert keepable
    now = SET_AT + later
    fresh = env.get_template("user.html").render({**context(), "now": now})
    assert page.body(now).decode() == fresh
    assert fresh.count(" ago<") + fresh.count("just now<") == 3  # three relative times


def test_a_template_reading_the_clock_is_not_keepable() -> None:
    app, _env = page_app({"user.html": "{{ user.username }} in {{ now.year }}"})
    request = make_mocked_request("GET", "/~alice", app=app)
    page, keepable = render_kept(request, "user.html", context(), now=SET_AT)
    assert not keepable
    assert page.body(SET_AT) == b"alice in 2026"


def test_stored_text_cannot_forge_a_relative_time_mark() -> None:
    app, _env = page_app({"user.html": "{{ user.status }}|{{ user.status_set_at | ago(now) }}"})
    request = make_mocked_request("GET", "/~alice", app=app)
    values = context()
    forged = "\x00" + "0" * 16 + ":0\x00"
    values["user"] = dataclasses.replace(values["user"], status=forged)
    page, keepable = render_kept(request, "user.html", values, now=SET_AT)
    assert keepable
    # Not a mark, and not even raw NULs: the web shows control characters (^@).
    shown = "^@" + "0" * 16 + ":0^@"
    assert page.body(SET_AT + timedelta(hours=2)).decode() == f"{shown}|2 hours ago"
