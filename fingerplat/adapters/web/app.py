"""Assembling the aiohttp application: middlewares, routes, templates, sub-apps."""

from __future__ import annotations

from aiohttp import web

from fingerplat.config import WebConfig
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

SERVICE: web.AppKey[FingerplatService] = web.AppKey("service", FingerplatService)
SETTINGS: web.AppKey[WebConfig] = web.AppKey("settings", WebConfig)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        await service.check_health()
    except Exception:
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def build_app(
    service: FingerplatService, settings: WebConfig, *, metrics: Metrics
) -> web.Application:
    """The whole web listener as one aiohttp application (tests may run it directly)."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SERVICE] = service
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    return app
