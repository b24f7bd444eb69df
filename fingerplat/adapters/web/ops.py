"""Operations endpoints: ``/healthz`` for load balancers, ``/metrics`` for Prometheus."""

from __future__ import annotations

from aiohttp import web

from fingerplat.adapters.web.keys import METRICS, SERVICE
from fingerplat.domain.errors import FingerplatError

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def healthz(request: web.Request) -> web.Response:
    """200 when the process answers and the database runs a query, else 503."""
    try:
        await request.config_dict[SERVICE].check_health()
    except FingerplatError as exc:
        return web.json_response(
            {"status": "unavailable", "database": "down", "error": str(exc)}, status=503,
            headers={"Cache-Control": "no-store"},
        )
    return web.json_response({"status": "ok", "database": "ok"},
                             headers={"Cache-Control": "no-store"})


async def metrics_view(request: web.Request) -> web.Response:
    response = web.Response(body=request.config_dict[METRICS].render())
    response.headers["Content-Type"] = PROMETHEUS_TEXT
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/metrics", metrics_view)
