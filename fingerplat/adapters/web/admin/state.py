"""What the admin handlers share: app keys, the acting context, rendering, redirects.

Handlers stay thin: they call :func:`context` to learn who acts, the service
to do the work, and :func:`render` or :func:`redirect` to answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from fingerplat.adapters.times import ago, minutes
from fingerplat.adapters.web.browser_session import Session
from fingerplat.adapters.web.templating import neutralise
from fingerplat.domain.model import Channel, Context, Principal, Role, Token
from fingerplat.metrics import Metrics
from fingerplat.service.core import FingerplatService

# The web adapter mounts this sub-application here (``add_subapp("/admin/", ...)``).
PREFIX = "/admin"
COOKIE_NAME = "fingerplat_admin"
# The login form's CSRF nonce (signed double submit: no server-side state).
LOGIN_COOKIE_NAME = "fingerplat_admin_login"
LOGIN_PURPOSE = "admin-login"
SESSION_KIND = "admin"
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

SERVICE = web.AppKey("admin_service", FingerplatService)
METRICS = web.AppKey("admin_metrics", Metrics)
SECURE = web.AppKey("admin_secure", bool)
JINJA = web.AppKey("admin_jinja", jinja2.Environment)

SESSION_KEY = web.RequestKey("admin_session", Session | None)  # type: ignore[arg-type]


def url(path: str = "/", **query: Any) -> str:
    """An admin URL: ``url("/tenants/acme")`` -> ``/admin/tenants/acme``; empty values dropped."""
    return with_query(PREFIX + path, **query)


def with_query(path: str, **query: Any) -> str:
    """``path`` with a query string of the non-empty values."""
    q = {k: v for k, v in query.items() if v not in (None, "")}
    return path + ("?" + urlencode(q) if q else "")


def seg(value: str) -> str:
    """One URL path segment, percent-encoded (names are validated, but be safe)."""
    return quote(str(value), safe="")


def tenant_url(slug: str, rest: str = "") -> str:
    """A page of one tenant: ``tenant_url("acme", "/users")`` -> ``/admin/tenants/acme/users``."""
    return url(f"/tenants/{seg(slug)}{rest}")


def public_user_url(tenant_slug: str, username: str) -> str:
    """The user's public page, outside the admin (path-prefix routing works for every tenant)."""
    return f"/t/{seg(tenant_slug)}/~{seg(username)}"


def service(request: web.Request) -> FingerplatService:
    return request.app[SERVICE]


def session(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)


def principal(request: web.Request) -> Principal:
    s = session(request)
    if s is None or s.principal is None:
        raise web.HTTPFound(url("/login"))
    return s.principal


def context(request: web.Request) -> Context:
    """Who acts on this request, as the service and the audit trail see it."""
    return Context(principal(request), Channel.WEB, request.remote)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def token_state(token: Token, now: datetime) -> str:
    """``active``, ``revoked`` or ``expired``, for the badge in the token tables."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and _aware(token.expires_at) <= _aware(now):
        return "expired"
    return "active"


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template is HTML; user data is escaped everywhere
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=neutralise,  # no control or bidi character reaches the browser
    )
    env.globals.update(url=url, seg=seg, tenant_url=tenant_url,
                       public_user_url=public_user_url)
    env.filters.update(when=minutes, ago=ago, token_state=token_state)
    return env


def render(
    request: web.Request, template: str, status: int = 200, **values: Any
) -> web.Response:
    """Render a page with the layout's shared values (who is logged in, CSRF, flashes)."""
    s = session(request)
    p = s.principal if s else None
    page = request.app[JINJA].get_template(template).render(
        request_path=request.path,
        me=p,
        platform_admin=p is not None and p.role is Role.PLATFORM_ADMIN,
        home_tenant=s.home_tenant if s else None,
        csrf_token=values.pop("csrf_token", s.csrf_token if s else ""),
        flashes=s.take_flashes() if s else [],
        **values,
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def redirect(request: web.Request, path: str, *, ok: str | None = None,
             error: str | None = None) -> web.HTTPSeeOther:
    """Post/redirect/get with an optional flash message for the next page."""
    s = session(request)
    if s is not None:
        if ok:
            s.flash("ok", ok)
        if error:
            s.flash("error", error)
    return web.HTTPSeeOther(path)
