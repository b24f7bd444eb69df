"""Building the admin sub-application that the web adapter mounts at ``/admin/``."""

from __future__ import annotations

from aiohttp import web

from fingerplat.adapters.web.admin import state
from fingerplat.adapters.web.admin.handlers import ROUTE_TABLES
from fingerplat.adapters.web.admin.middleware import MIDDLEWARES
from fingerplat.metrics import Metrics
from fingerplat.service.core import FingerplatService

# Forms are small; the largest is a plan (16 KiB) plus field names and the token.
MAX_FORM_BYTES = 64 * 1024


def build_admin_app(
    service: FingerplatService,
    *,
    secure: bool,
    metrics: Metrics,
) -> web.Application:
    """The admin UI as an aiohttp application, to be mounted at ``/admin/``.

    ``secure`` marks the session cookie ``Secure`` (set it when the listener
    serves HTTPS). Sessions live in the database, through the service, and
    login throttling is the service's too (shared by every worker and node,
    fingerplat/service/throttle.py).
    """
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=MAX_FORM_BYTES)
    app[state.SERVICE] = service
    app[state.METRICS] = metrics
    app[state.SECURE] = secure
    app[state.JINJA] = state.make_environment()
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    app.router.add_static("/static/", state.STATIC_DIR, append_version=False)
    return app
