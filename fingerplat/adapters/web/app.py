"""Assembling the aiohttp application: middlewares, routes, templates, sub-apps.

Route order matters: fixed paths first, the admin sub-application, and the
public pages last because ``/<user>`` matches any single path segment.
"""

from __future__ import annotations

from aiohttp import web

from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.web import api, ops, pages, self_service, webfinger, xmlrpc
from fingerplat.adapters.web.admin import build_admin_app
from fingerplat.adapters.web.client_address import client_address_middleware
from fingerplat.adapters.web.headers import security_headers
from fingerplat.adapters.web.keys import METRICS, SERVICE, SETTINGS
from fingerplat.adapters.web.links import PUBLIC_SITE, PublicSite
from fingerplat.adapters.web.middleware import error_middleware, metrics_middleware
from fingerplat.adapters.web.templating import STATIC_DIR, setup_templates
from fingerplat.config import WebConfig
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService


async def _favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "favicon.svg",
                            headers={"Content-Type": "image/svg+xml",
                                     "Cache-Control": "public, max-age=86400"})


def build_app(
    service: FingerplatService, settings: WebConfig, *, metrics: Metrics,
    trusted: TrustedProxies | None = None,
) -> web.Application:
    """The whole web listener as one aiohttp application (tests may run it directly).

    With ``trusted`` proxies, the first middleware makes ``request.remote``
    the client they forward for (client_address.py).
    """
    secure = bool(settings.tls_cert and settings.tls_key)
    middlewares = [metrics_middleware(metrics), error_middleware]
    if trusted:
        middlewares.insert(0, client_address_middleware(trusted))
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=middlewares,
    )
    app[SERVICE] = service
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[PUBLIC_SITE] = PublicSite(settings.public_url)
    setup_templates(app, settings.templates)
    app.on_response_prepare.append(security_headers(secure=secure))

    ops.add_routes(app.router)
    api.add_routes(app.router)
    webfinger.add_routes(app.router)
    xmlrpc.add_routes(app.router)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    # Browsers ask for /favicon.ico on every site; answer with the SVG icon
    # (the pages also name it with <link rel="icon">).
    app.router.add_get("/favicon.ico", _favicon)
    app.add_subapp("/admin/", build_admin_app(service, secure=secure, metrics=metrics))
    self_service.add_routes(app.router)
    pages.add_routes(app.router)
    return app
