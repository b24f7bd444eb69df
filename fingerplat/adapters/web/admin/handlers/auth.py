"""Logging in and out, and the landing page that sends each admin where they belong."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from fingerplat.adapters.web import browser_session
from fingerplat.adapters.web.admin import state
from fingerplat.domain.errors import AuthenticationFailed, TooManyAttempts
from fingerplat.domain.model import Channel, Principal, Role

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


async def _login_page(request: web.Request, *, nonce: str, status: int = 200, error: str = "",
                      name: str = "", next_path: str = "") -> web.Response:
    key = await state.service(request).web_sessions.shared_key()
    return state.render(request, "login.html", status=status, error=error, name=name,
                        next_path=_safe_next(next_path),
                        csrf_token=browser_session.login_form_token(key, state.LOGIN_PURPOSE,
                                                                    nonce))


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    s = state.session(request)
    if s is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    # No session for an anonymous visitor: the form's CSRF token is the signature
    # of a nonce kept in the visitor's own cookie (signed double submit).
    nonce, new = browser_session.login_nonce(request, state.LOGIN_COOKIE_NAME)
    page = await _login_page(request, next_path=request.query.get("next", ""), nonce=nonce)
    if new:
        browser_session.set_login_cookie(page, state.LOGIN_COOKIE_NAME, nonce,
                                         path=state.PREFIX, secure=request.app[state.SECURE])
    return page


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """Why a login was refused: the HTTP status, the sentence for the form, the wait."""

    status: int
    message: str
    retry_after: int = 0


async def checked_login(
    authenticate: Callable[[], Awaitable[Principal]], wrong: str,
) -> Principal | LoginRefused:
    """The one login procedure of the web: the service's answer, as a page would say it.

    The admin login and the self-service login (``/login``) both come here.
    The service throttles (in the database, shared by every worker and node,
    counted before the password is checked) and audits; ``wrong`` is the
    refusal sentence.
    """
    try:
        return await authenticate()
    except TooManyAttempts as error:
        return LoginRefused(
            429, f"Too many failed logins. Wait {_wait_text(error.retry_after)} before "
                 "trying again.", int(error.retry_after))
    except AuthenticationFailed as error:
        message = wrong
        if error.retry_after > 0:
            message += (f" Too many failed logins: wait {_wait_text(error.retry_after)} "
                        "before trying again.")
        return LoginRefused(401, message)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", ""))[:200]
    password = str(form.get("password", ""))[:1024]
    next_path = str(form.get("next", ""))
    service = state.service(request)
    outcome = await checked_login(
        lambda: service.credentials.authenticate_admin(name, password, Channel.WEB, request.remote),
        "Wrong admin name or password.",
    )
    if isinstance(outcome, LoginRefused):
        nonce, _new = browser_session.login_nonce(request, state.LOGIN_COOKIE_NAME)
        page = await _login_page(request, status=outcome.status, error=outcome.message,
                                 name=name, next_path=next_path, nonce=nonce)
        if outcome.retry_after:
            page.headers["Retry-After"] = str(outcome.retry_after)
        return page
    request[state.SESSION_KEY] = await browser_session.start(service, outcome,
                                                             state.session(request))
    raise web.HTTPSeeOther(_safe_next(next_path))


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    s = state.session(request)
    if s is not None:
        await state.service(request).web_sessions.end_web_session(s.token)
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
