"""Cross-cutting request handling: metrics and error mapping.

Domain errors become HTTP statuses here, once, so handlers stay thin: a
handler lets ``NotFound`` escape and the visitor gets a 404 page (or a JSON
``{"error": ...}`` under ``/api/``). Nothing unexpected ever reaches a client
as a traceback: it is logged and answered with a plain 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from fingerplat.adapters.web.keys import BASE, ERROR_KIND, SETTINGS, TENANT
from fingerplat.adapters.web.statuses import status_for, title_for
from fingerplat.adapters.web.templating import PUBLIC_TEMPLATES
from fingerplat.domain.errors import (
    AuthenticationFailed,
    FingerplatError,
)
from fingerplat.metrics import Metrics

log = logging.getLogger("fingerplat.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

ADAPTERS = ("api", "xmlrpc", "web")


def adapter_for(path: str) -> str:
    """The metrics label of a request: ``api``, ``xmlrpc`` or ``web``."""
    if path.startswith("/api/"):
        return "api"
    if path == "/RPC2" or (path.startswith("/t/") and path.endswith("/RPC2")):
        return "xmlrpc"
    return "web"


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/.well-known/"))


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    """The error answer in the request's medium: JSON for APIs, an HTML page otherwise."""
    if wants_json(request):
        response = web.json_response({"error": message}, status=status)
        if request.path.startswith("/.well-known/"):
            response.headers["Access-Control-Allow-Origin"] = "*"
    else:
        context = {
            "status": status,
            "title": title_for(status),
            "message": message,
            "tenant": request.get(TENANT),
            "base": request.get(BASE, ""),
        }
        try:
            response = aiohttp_jinja2.render_template(
                "error.html", request, context, status=status, app_key=PUBLIC_TEMPLATES
            )
        except Exception:  # a broken operator template must not hide the answer
            log.exception("web: cannot render error.html")
            response = web.Response(text=f"{status} {context['title']}: {message}\n",
                                    status=status)
    if status == 401:
        scheme = "Basic" if request.path.endswith("/RPC2") else "Bearer"
        response.headers["WWW-Authenticate"] = f'{scheme} realm="fingerplat"'
    return response


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Count every request, its latency and its errors under the adapter it belongs to.

    Requests and latencies go to plain-integer tallies (handed to Prometheus
    before each scrape); errors, which are rare, go straight to their counter.
    """
    tallies = {adapter: metrics.tally(adapter) for adapter in ADAPTERS}

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        adapter = adapter_for(request.path)
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            tallies[adapter].observe(time.perf_counter() - start)
            kind = request.get(ERROR_KIND) or (str(status) if status >= 400 else None)
            if kind:
                metrics.errors.labels(adapter, kind).inc()

    return count


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors and HTTP errors to answers; never leak a traceback."""
    admin = request.path.startswith("/admin/")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or admin:
            raise  # redirects, and the admin UI's own error answers, pass through
        if exc.status == 413:
            limit = request.config_dict[SETTINGS].max_body_bytes
            message = f"request body too large: at most {limit} bytes are accepted"
        else:
            message = exc.reason if exc.status != 404 else "no such page"
        response = error_response(request, exc.status, message)
        if "Allow" in exc.headers:  # 405 says which methods would work
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except FingerplatError as exc:
        status = status_for(exc)
        if status == 503:
            log.warning("web: %s %s: %s", request.method, request.path, exc)
        response = error_response(request, status, str(exc))
        if isinstance(exc, AuthenticationFailed) and exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Exception:
        log.exception("web: unexpected error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal error: the problem has been logged")
