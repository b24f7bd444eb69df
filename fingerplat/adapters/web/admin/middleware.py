"""The admin app's request pipeline: headers, session, login gate, CSRF, error pages.

Order (outermost first): metrics and security headers, then the session is
loaded from its cookie, then anonymous visitors are sent to the login form,
then unsafe methods must carry the session's CSRF token, then domain errors
raised by the service become pages with the right status. Handlers never
see a request that skipped one of these steps.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from fingerplat.adapters.web import browser_session
from fingerplat.adapters.web.admin import state
from fingerplat.adapters.web.admin.refusals import audit_refusal
from fingerplat.adapters.web.headers import NO_STORE, add_missing, security_header_items
from fingerplat.adapters.web.statuses import status_for, title_for
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import (
    FingerplatError,
)
from fingerplat.domain.text import printable

log = logging.getLogger("fingerplat.web.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOGIN_PATH = state.PREFIX + "/login"
STATIC_PREFIX = state.PREFIX + "/static/"
PUBLIC_PATHS = (LOGIN_PATH, STATIC_PREFIX)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    request.app[state.METRICS].errors.labels("admin", str(status)).inc()
    return state.render(request, "error.html", status=status, title=title, message=message,
                        status_code=status)


@web.middleware
async def headers_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Redirects are raised as exceptions; catch them inside observe() so that
    # they are not counted as errors (error pages count themselves).
    with request.app[state.METRICS].observe("admin"):
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            response = exc
    if not response.prepared:
        # The site's one set (headers.py), also when mounted without the web app's hook.
        add_missing(response, security_header_items(secure=request.app[state.SECURE]))
        if not request.path.startswith(STATIC_PREFIX):
            # Admin pages hold private data and one-time token secrets.
            response.headers[NO_STORE[0]] = NO_STORE[1]
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def load_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One indexed lookup in the database: the session and the account behind it.

    A removed admin account (from any channel or node) finds no session here:
    the lookup reads the account's current row, and the foreign key's cascade
    deletes the session rows with the account.
    """
    if request.path.startswith(STATIC_PREFIX):  # a stylesheet needs no session lookup
        request[state.SESSION_KEY] = None
        return await handler(request)
    service = request.app[state.SERVICE]
    request[state.SESSION_KEY] = await browser_session.load(
        service, request.cookies.get(state.COOKIE_NAME), state.SESSION_KIND)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        await _finish(request, exc)
        raise
    await _finish(request, response)
    return response


async def _finish(request: web.Request, response: web.StreamResponse) -> None:
    """Write back changed flashes, and (re)issue or drop the cookie as the handler decided."""
    s = request.get(state.SESSION_KEY)
    await browser_session.save(request.app[state.SERVICE], s)
    sent = request.cookies.get(state.COOKIE_NAME)
    if response.prepared:
        return
    if s is None:
        if sent:
            response.del_cookie(state.COOKIE_NAME, path=state.PREFIX)
        return
    if s.token != sent:
        browser_session.set_session_cookie(response, state.COOKIE_NAME, s.token,
                                           path=state.PREFIX, secure=request.app[state.SECURE])


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PUBLIC_PATHS):
        return await handler(request)
    s = state.session(request)
    if s is None:
        if request.method in UNSAFE_METHODS:
            await audit_refusal(request, AuditAction.WEB_FORM, "form sent without a live session")
            return error_page(request, 403, "Session expired",
                              "Your session has ended. Log in again and repeat the change.")
        target = request.path_qs if request.method == "GET" else state.PREFIX + "/"
        raise web.HTTPSeeOther(state.url("/login", next=target))
    return await handler(request)


@web.middleware
async def check_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every state-changing request must echo its CSRF token from the form.

    The login form's token is the signature of the nonce in the visitor's
    login cookie (no session exists yet); every other form's is the session's.
    """
    if request.method in UNSAFE_METHODS:
        s = state.session(request)
        form = await request.post()
        token = form.get("csrf_token")
        if request.path == LOGIN_PATH:
            key = await request.app[state.SERVICE].web_sessions.shared_key()
            ok = browser_session.login_form_valid(request, key, state.LOGIN_PURPOSE,
                                                  state.LOGIN_COOKIE_NAME, token)
        else:
            ok = s is not None and isinstance(token, str) and s.csrf_matches(token)
        if not ok:
            log.info("refused %s %s: missing or wrong CSRF token", request.method, request.path)
            await audit_refusal(request, AuditAction.WEB_CSRF, "missing or wrong CSRF token")
            return error_page(
                request, 403, "Form refused",
                "This form was not sent by this admin page (missing or wrong security "
                "token), so nothing was changed. Reload the page and try again.",
            )
    return await handler(request)


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map what the service refuses to an error page; never a traceback."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_page(request, 404, "Not found", "There is no such page.")
    except web.HTTPRequestEntityTooLarge:
        return error_page(request, 413, "Form too large",
                          "The form sent more data than the server accepts; nothing was changed.")
    except web.HTTPMethodNotAllowed:
        return error_page(request, 405, "Method not allowed",
                          "This page does not accept that kind of request.")
    except web.HTTPException:
        raise
    except FingerplatError as err:
        status = status_for(err)
        return error_page(request, status, title_for(status), str(err))
    except Exception:
        log.exception("admin request %s %s failed", request.method, request.path)
        return error_page(request, 500, "Internal error",
                          "Something went wrong on our side; the error was logged.")


@web.middleware
async def read_form(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Parse the form of an unsafe request once, here, so a malformed one is a 400.

    aiohttp keeps the parsed form (``request.post()`` returns it again to
    the CSRF check and the handler). Its multipart parser raises plain
    ``ValueError`` (a part without a name, nested multipart, bytes that are
    not the declared charset) and ``LookupError`` (a charset Python does not
    know): a client's malformed form, answered 400 with one WARNING line, not
    a 500 with a traceback. Size limits stay aiohttp's (413).
    """
    if request.method in UNSAFE_METHODS:
        try:
            await request.post()
        except (ValueError, LookupError) as error:
            log.warning("refused %s %s from %s: unreadable form: %s", request.method,
                        printable(request.path)[:200], request.remote, printable(str(error))[:160])
            return error_page(request, 400, "Form cannot be read",
                              "The form could not be read (malformed or in an unknown "
                              "encoding), so nothing was changed.")
    return await handler(request)


MIDDLEWARES = [headers_and_metrics, load_session, domain_errors, require_login, read_form,
               check_csrf]
