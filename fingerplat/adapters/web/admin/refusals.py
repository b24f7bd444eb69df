"""Auditing what the admin app refuses by itself (CSRF, an ended session).

Refusals of the service are audited by the service; these two are decided
here, before any use case runs, so the middleware reports them through
:meth:`~fingerplat.service.throttle.ThrottleUseCases.audit_refusal` (which
keeps anonymous floods down to a few rows and a summary).
"""

from __future__ import annotations

import logging

from aiohttp import web

from fingerplat.adapters.web.admin import state
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import FingerplatError
from fingerplat.domain.model import Channel, Context, Principal

log = logging.getLogger("fingerplat.web.admin")


async def audit_refusal(request: web.Request, action: AuditAction, message: str) -> None:
    """Audit a refused admin request as its session's admin, or as anonymous."""
    s = state.session(request)
    principal = s.principal if s is not None and s.principal is not None else None
    ctx = Context(principal or Principal.anonymous(), Channel.WEB, request.remote)
    try:
        await state.service(request).throttle.audit_refusal(
            ctx, action, f"{request.method} {request.path}", message)
    except FingerplatError as error:  # the database is away: the refusal stands anyway
        log.warning("could not audit a refused admin request: %s", error)
