"""Typed keys under which the application keeps what every handler needs."""

from __future__ import annotations

from aiohttp import web

from fingerplat.config import WebConfig
from fingerplat.domain.model import Tenant
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

SERVICE: web.AppKey[FingerplatService] = web.AppKey("service", FingerplatService)
SETTINGS: web.AppKey[WebConfig] = web.AppKey("settings", WebConfig)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)

# Per-request values.
TENANT: web.RequestKey[Tenant] = web.RequestKey("tenant", Tenant)  # chosen by routing
BASE: web.RequestKey[str] = web.RequestKey("base", str)  # "" or "/t/<slug>" for links
# Set by handlers that answer errors with HTTP 200 (XML-RPC faults) for the metrics.
ERROR_KIND: web.RequestKey[str] = web.RequestKey("error_kind", str)

__all__ = ["BASE", "ERROR_KIND", "METRICS", "SERVICE", "SETTINGS", "TENANT"]
