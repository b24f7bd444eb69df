"""The self-service page: ``/login``, ``/me`` and sign out, per tenant (Host or ``/t/<slug>/``).

The admin UI's machinery, reused: database sessions (browser_session.py,
kind ``user``), a per-session CSRF secret on every form, the signed
double-submit cookie on the login form (no state for anonymous visitors),
and the admin login's throttle (the service's, in the database) through the
same function (:func:`~fingerplat.adapters.web.admin.handlers.auth.checked_login`).

Each tenant has its own session cookie (``fingerplat_me_<tenant id>``), so
signing in to one tenant on a shared host never signs anyone out of another.
Forms carry the user and tenant they mean, and the service refuses (and
audits) any that are not the signed-in user's own: the page cannot be used
to change anybody else, whatever is edited by hand.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from fingerplat.adapters.web import browser_session
from fingerplat.adapters.web.admin.forms import FIELD_MAX
from fingerplat.adapters.web.admin.handlers.auth import LoginRefused, checked_login
from fingerplat.adapters.web.keys import BASE, SERVICE, SETTINGS, TENANT
from fingerplat.adapters.web.templating import PUBLIC_TEMPLATES
from fingerplat.adapters.web.tenancy import Handler, add_routed, resolve
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import FingerplatError, InvalidInput, PermissionDenied
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import Channel, Context, Principal
from fingerplat.domain.self_service import PROFILE_FIELDS
from fingerplat.domain.text import printable
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.web.self_service")

KIND = "user"
COOKIE_PREFIX = "fingerplat_me_"
LOGIN_COOKIE_NAME = "fingerplat_me_login"
LOGIN_PURPOSE = "user-login"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The paths this module answers, reserved from ``/<user>`` redirects.
RESERVED = frozenset({"login", "logout", "me"})

SESSION_KEY: web.RequestKey[browser_session.Session | None] = web.RequestKey(
    "self_service_session", browser_session.Session)  # type: ignore[arg-type]
FIELD_LABELS = {"full_name": "Full name", "office": "Office", "phone": "Phone",
                "project": "Project"}


def _cookie_name(request: web.Request) -> str:
    return f"{COOKIE_PREFIX}{request[TENANT].id}"


def _secure(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    return bool(settings.tls_cert and settings.tls_key)


def _service(request: web.Request) -> FingerplatService:
    return request.app[SERVICE]


def _session(request: web.Request) -> browser_session.Session | None:
    return request.get(SESSION_KEY)


def _context(request: web.Request) -> Context:
    s = _session(request)
    if s is None:
        raise PermissionDenied("sign in first")
    return Context(s.principal, Channel.WEB, request.remote)


def _url(request: web.Request, path: str) -> str:
    return f"{request[BASE]}{path}"


def _page(request: web.Request, template: str, status: int = 200,
          **values: Any) -> web.Response:
    s = _session(request)
    values.setdefault("csrf_token", s.csrf_token if s else "")
    response = aiohttp_jinja2.render_template(
        template, request,
        {"tenant": request[TENANT], "base": request[BASE], "now": datetime.now(UTC),
         "flashes": s.take_flashes() if s else [], **values},
        status=status, app_key=PUBLIC_TEMPLATES,
    )
    return response


def _refused(request: web.Request, title: str, message: str,
             status: int = 403) -> web.Response:
    return aiohttp_jinja2.render_template(
        "error.html", request,
        {"tenant": request[TENANT], "base": request[BASE], "status": status, "title": title,
         "message": message},
        status=status, app_key=PUBLIC_TEMPLATES,
    )


def self_service(handler: Handler) -> Handler:
    """Tenant routing, the session from its cookie, CSRF on forms, cookie upkeep.

    What the admin app's middlewares do, for the handful of routes here.
    """

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        tenant = await resolve(request)
        service = _service(request)
        s = await browser_session.load(service, request.cookies.get(_cookie_name(request)), KIND)
        if s is not None and s.principal.tenant_id != tenant.id:
            s = None
        request[SESSION_KEY] = s
        refusal = await _check_csrf(request)
        try:
            response = refusal or await handler(request)
        except web.HTTPException as exc:
            await _finish(request, exc)
            raise
        await _finish(request, response)
        return response

    return wrapped


async def _check_csrf(request: web.Request) -> web.Response | None:
    if request.method not in UNSAFE_METHODS:
        return None
    try:
        form = await request.post()
    except (ValueError, LookupError):  # a malformed form (as the admin's read_form)
        return _refused(request, "Form cannot be read", "The form could not be read "
                        "(malformed or in an unknown encoding), so nothing was changed.", 400)
    token = form.get("csrf_token")
    if request.path.endswith("/login"):
        key = await _service(request).web_sessions.shared_key()
        ok = browser_session.login_form_valid(request, key, LOGIN_PURPOSE, LOGIN_COOKIE_NAME,
                                              token)
    else:
        s = _session(request)
        if s is None:
            await _audit_refusal(request, AuditAction.WEB_FORM, "form sent without a live session")
            return _refused(request, "Signed out",
                            "Your session has ended. Sign in again and repeat the change.")
        ok = isinstance(token, str) and s.csrf_matches(token)
    if ok:
        return None
    log.info("refused %s %s: missing or wrong CSRF token", request.method, request.path)
    await _audit_refusal(request, AuditAction.WEB_CSRF, "missing or wrong CSRF token")
    return _refused(request, "Form refused",
                    "This form was not sent by your page (missing or wrong security token), "
                    "so nothing was changed. Reload the page and try again.")


async def _audit_refusal(request: web.Request, action: AuditAction, message: str) -> None:
    """Audit a form refused here, as the admin UI does its own (admin/refusals.py).

    As the session's user (``user:<name>``) or as anonymous (the login form,
    an ended session), through the service's ``audit_refusal``, which keeps
    anonymous floods down to a few rows and a summary.
    """
    s = _session(request)
    ctx = Context(s.principal if s is not None else Principal.anonymous(), Channel.WEB,
                  request.remote)
    try:
        await _service(request).throttle.audit_refusal(
            ctx, action, f"{request.method} {request.path}", message)
    except FingerplatError as error:  # the database is away: the refusal stands anyway
        log.warning("could not audit a refused self-service form: %s", error)


async def _finish(request: web.Request, response: web.StreamResponse) -> None:
    s = _session(request)
    await browser_session.save(_service(request), s)
    if response.prepared:
        return
    response.headers["Cache-Control"] = "no-store"
    name = _cookie_name(request)
    sent = request.cookies.get(name)
    if s is None:
        if sent:
            response.del_cookie(name, path="/")
    elif s.token != sent:
        browser_session.set_session_cookie(response, name, s.token, path="/",
                                           secure=_secure(request))


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text")
    if len(value) > FIELD_MAX:
        raise InvalidInput(f"{name} is too long")
    return value


# -- signing in and out ------------------------------------------------------------


async def _login_page(request: web.Request, *, nonce: str, status: int = 200,
                      error: str = "", name: str = "") -> web.Response:
    key = await _service(request).web_sessions.shared_key()
    return _page(request, "login.html", status=status, error=error, name=name,
                 csrf_token=browser_session.login_form_token(key, LOGIN_PURPOSE, nonce))


@self_service
async def login_form(request: web.Request) -> web.StreamResponse:
    if _session(request) is not None:
        raise web.HTTPSeeOther(_url(request, "/me"))
    nonce, new = browser_session.login_nonce(request, LOGIN_COOKIE_NAME)
    page = await _login_page(request, nonce=nonce)
    if new:
        browser_session.set_login_cookie(page, LOGIN_COOKIE_NAME, nonce, path="/",
                                         secure=_secure(request))
    return page


@self_service
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", ""))[:200]
    password = str(form.get("password", ""))[:1024]
    tenant = request[TENANT]
    service = _service(request)
    outcome = await checked_login(
        lambda: service.self_service.authenticate_user(
            tenant, name, password, Channel.WEB, request.remote),
        "Wrong user name or password.",
    )
    if isinstance(outcome, LoginRefused):
        nonce, _new = browser_session.login_nonce(request, LOGIN_COOKIE_NAME)
        page = await _login_page(request, nonce=nonce, status=outcome.status,
                                 error=outcome.message, name=name)
        if outcome.retry_after:
            page.headers["Retry-After"] = str(outcome.retry_after)
        return page
    request[SESSION_KEY] = await browser_session.start(service, outcome, _session(request))
    raise web.HTTPSeeOther(_url(request, "/me"))


@self_service
async def logout(request: web.Request) -> web.StreamResponse:
    s = _session(request)
    if s is not None:
        await _service(request).web_sessions.end_web_session(s.token)
    request[SESSION_KEY] = None
    raise web.HTTPSeeOther(_url(request, "/login"))


# -- the user's own page -------------------------------------------------------------


@self_service
async def me(request: web.Request) -> web.StreamResponse:
    if _session(request) is None:
        raise web.HTTPSeeOther(_url(request, "/login"))
    _tenant, user, editable = await _service(request).self_service.own_account(_context(request))
    return _page(
        request, "me.html", user=user, editable=editable, labels=FIELD_LABELS,
        profile_fields=PROFILE_FIELDS,
        status_expires_at=user.status_expires_at,  # status expiry (issue 15)
        shown=printable,
    )


def _done(request: web.Request, message: str) -> web.HTTPSeeOther:
    s = _session(request)
    if s is not None:
        s.flash("ok", message)
    return web.HTTPSeeOther(_url(request, "/me"))


def _failed(request: web.Request, message: str) -> web.HTTPSeeOther:
    s = _session(request)
    if s is not None:
        s.flash("error", message)
    return web.HTTPSeeOther(_url(request, "/me"))


@self_service
async def change_status(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    clear = form.get("action") == "clear"
    status = None if clear else _text(form, "status")
    until = "" if clear or not status else _text(form, "expires").strip()
    try:
        await _service(request).self_service.set_own_status(
            _context(request), _text(form, "tenant"), _text(form, "user"), status,
            expires=Expiry.parse(until) if until else None)
    except InvalidInput as err:
        raise _failed(request, str(err)) from None
    raise _done(request, "Status cleared." if clear or not status else "Status set.")


@self_service
async def change_plan(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        await _service(request).self_service.set_own_plan(
            _context(request), _text(form, "tenant"), _text(form, "user"),
            _text(form, "plan").replace("\r\n", "\n"))
    except InvalidInput as err:
        raise _failed(request, str(err)) from None
    raise _done(request, "Plan saved.")


@self_service
async def change_profile(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    changes = {f: _text(form, f) for f in PROFILE_FIELDS if f in form}
    try:
        await _service(request).self_service.edit_own_profile(
            _context(request), _text(form, "tenant"), _text(form, "user"), changes)
    except InvalidInput as err:
        raise _failed(request, str(err)) from None
    raise _done(request, "Profile saved.")


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the pages (before the public pages' ``/<user>`` catch-all)."""
    add_routed(router, "GET", "/login", login_form, name="self_login")
    add_routed(router, "POST", "/login", login)
    add_routed(router, "POST", "/logout", logout)
    add_routed(router, "GET", "/me", me, name="self_me")
    add_routed(router, "POST", "/me/status", change_status)
    add_routed(router, "POST", "/me/plan", change_plan)
    add_routed(router, "POST", "/me/profile", change_profile)
