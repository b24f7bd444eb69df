"""Logging in and out, and the landing page that sends each admin where they belong."""

from __future__ import annotations

import math

from aiohttp import web

from fingerplat.adapters.web.admin import state
from fingerplat.domain.errors import AuthenticationFailed, TooManyAttempts
from fingerplat.domain.model import Channel, Context, Role

routes = web.RouteTableDef()


def _safe_next(value: object) -> str:
    """Only ever redirect inside the admin after login (no open redirect)."""
    if isinstance(value, str) and value.startswith(state.PREFIX + "/") and "//" not in value \
            and "\\" not in value and not value.startswith(state.PREFIX + "/login"):
        return value
    return state.PREFIX + "/"


def _wait_text(seconds: float) -> str:
    s = max(1, math.ceil(seconds))
    if s < 120:
        return f"{s} second{'s' if s != 1 else ''}"
    return f"{math.ceil(s / 60)} minutes"


def _login_page(request: web.Request, *, status: int = 200, error: str = "",
                name: str = "", next_path: str = "") -> web.Response:
    return state.render(request, "login.html", status=status, error=error, name=name,
                        next_path=_safe_next(next_path))


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    s = state.session(request)
    if s is not None and s.authenticated:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    if s is None:
        # An anonymous session just to carry the login form's CSRF token.
        request[state.SESSION_KEY] = request.app[state.SESSIONS].create()
    return _login_page(request, next_path=request.query.get("next", ""))


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", ""))[:200]
    password = str(form.get("password", ""))[:1024]
    next_path = str(form.get("next", ""))
    # The service throttles (shared by every worker and node, counted before
    # the password is checked) and audits; here its answers become pages.
    try:
        principal = await state.service(request).authenticate_admin(
            name, password, Channel.WEB, request.remote
        )
    except TooManyAttempts as error:
        page = _login_page(
            request, status=429, name=name, next_path=next_path,
            error=f"Too many failed logins. Wait {_wait_text(error.retry_after)} before "
                  "trying again.",
        )
        page.headers["Retry-After"] = str(error.retry_after)
        return page
    except AuthenticationFailed as error:
        message = "Wrong admin name or password."
        if error.retry_after > 0:
            message += (f" Too many failed logins: wait {_wait_text(error.retry_after)} "
                        "before trying again.")
        return _login_page(request, status=401, error=message, name=name, next_path=next_path)
    new = request.app[state.SESSIONS].login(state.session(request), principal)
    if principal.role is Role.TENANT_ADMIN:
        ctx = Context(principal, Channel.WEB, request.remote)
        mine = await state.service(request).list_tenants(ctx)
        new.home_tenant = mine[0].slug if mine else None
    request[state.SESSION_KEY] = new
    raise web.HTTPSeeOther(_safe_next(next_path))


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    s = state.session(request)
    if s is not None:
        request.app[state.SESSIONS].drop(s.id)
    request[state.SESSION_KEY] = None
    raise web.HTTPSeeOther(state.url("/login"))


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    s = state.session(request)
    assert s is not None and s.principal is not None  # require_login guarantees it
    if s.principal.role is Role.PLATFORM_ADMIN:
        raise web.HTTPSeeOther(state.url("/tenants"))
    if s.home_tenant:
        raise web.HTTPSeeOther(state.url(f"/tenants/{state.seg(s.home_tenant)}/users"))
    return state.render(request, "error.html", status=404, title="No tenant",
                        message="Your admin account is not attached to an existing tenant.")
