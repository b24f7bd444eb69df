"""The JSON API under ``/api/v1/`` (SPEC section 4), described by ``openapi.py``.

Tenants are named by slug in the path. Reads are public (a token, when sent,
lets admins see hidden users); writes and the audit log need
``Authorization: Bearer <token>``. The service decides what a token may do; a
refusal arrives here as ``PermissionDenied`` and leaves as 403.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fingerplat.adapters.times import iso_utc
from fingerplat.adapters.user_fields import API_KEYS, user_dict
from fingerplat.adapters.web import tenancy
from fingerplat.adapters.web.keys import SERVICE
from fingerplat.adapters.web.payloads import MalformedRequest, read_json_object, string_field
from fingerplat.adapters.web.principals import (
    anonymous,
    audited_bearer_token,
    refuse,
    remote_addr,
    token_context,
)
from fingerplat.domain import expiry, rules
from fingerplat.domain.errors import InvalidInput, NotFound
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import (
    AuditEvent,
    AuditQuery,
    Channel,
    Context,
    StatusChange,
    User,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/api/v1"
DEFAULT_PAGE = 100
DEFAULT_HISTORY = 20
DEFAULT_AUDIT_PAGE = 50


# -- formatting ----------------------------------------------------------------

def user_json(user: User, *, with_plan: bool = True,
              fields: frozenset[str] | None = None) -> dict[str, Any]:
    """A user as JSON; with ``fields`` (a public answer) the other fields are left out."""
    return user_dict(user, API_KEYS if with_plan else API_KEYS[:-1], fields=fields)


def change_json(change: StatusChange) -> dict[str, Any]:
    """A history entry; who made it only when the caller may know (admins, the user)."""
    data: dict[str, Any] = {"status": change.text, "set_at": iso_utc(change.set_at)}
    if change.actor is not None:
        data["actor"] = change.actor
        data["channel"] = change.channel
    data["expires_at"] = iso_utc(change.expires_at) or None
    return data


def audit_json(event: AuditEvent) -> dict[str, Any]:
    return {**dataclasses.asdict(event), "at": iso_utc(event.at)}


# -- parsing -------------------------------------------------------------------

def tenant_slug(request: web.Request) -> str:
    slug = request.match_info["tenant"]
    if not rules.TENANT_SLUG_RE.fullmatch(slug):
        raise NotFound(f"no such tenant: {slug[:63]!r}")
    return slug


def username(request: web.Request) -> str:
    name = request.match_info["user"].lower()
    if not rules.USERNAME_RE.fullmatch(name):
        raise NotFound(f"no such user: {name[:40]!r}")
    return name


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not rules.ascii_digits(text) or len(text) > 9 or not low <= int(text) <= high:
        raise InvalidInput(f"{name} must be an integer between {low} and {high}")
    return int(text)


def time_param(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if not text:
        return None
    return rules.moment(text, name)


async def optional_context(request: web.Request) -> Context | None:
    token = await audited_bearer_token(request, Channel.API)
    return None if token is None else await token_context(request, token, Channel.API)


async def required_context(request: web.Request) -> Context:
    """The caller's token context; a request without one is refused and audited."""
    token = await audited_bearer_token(request, Channel.API)
    if token is None:
        await refuse(request, Channel.API, "this route needs 'Authorization: Bearer <token>'")
    return await token_context(request, token, Channel.API)


# -- handlers ------------------------------------------------------------------

async def list_users(request: web.Request) -> web.Response:
    service = request.config_dict[SERVICE]
    slug = tenant_slug(request)
    ctx = await optional_context(request)
    limit = int_param(request, "limit", DEFAULT_PAGE, 1, 1000)
    tenant = await service.public.resolve_tenant(slug)
    if ctx is None:  # trusted networks restrict the list without credentials
        tenancy.check_listing(request, tenant)
    page = await service.users.directory(
        tenant, ctx=ctx, limit=limit, cursor=request.query.get("cursor") or None,
        search=request.query.get("q") or None,
    )
    return web.json_response({
        "tenant": tenant.slug,
        "total": page.total,
        "users": [user_json(u, with_plan=False, fields=page.fields) for u in page.users],
        "next_cursor": page.next_cursor,
    })


async def get_user(request: web.Request) -> web.Response:
    """Hidden users are 404 unless the token may see them (the service decides)."""
    slug, name = tenant_slug(request), username(request)
    ctx = await optional_context(request) or anonymous(request, Channel.API)
    service = request.config_dict[SERVICE]
    user, fields = await service.users.user_view(ctx, slug, name)
    if user.finger_log:  # the finger log: only then is the tenant's opt-in asked
        tenant = await service.public.resolve_tenant(slug)
        service.finger_log.note_lookup(tenant, user, "api", remote_addr(request))
    return web.json_response(user_json(user, fields=fields))


async def get_fingered(request: web.Request) -> web.Response:
    """Who fingered this user lately (the user's own token or an admin's)."""
    slug, name = tenant_slug(request), username(request)
    ctx = await required_context(request)
    limit = int_param(request, "limit", 100, 1, 1000)
    entries = await request.config_dict[SERVICE].finger_log.fingered(ctx, slug, name, limit)
    return web.json_response({"username": name, "fingered": [
        {"at": iso_utc(e.at), "channel": e.channel, "network": e.network, "count": e.count}
        for e in entries]})


async def get_history(request: web.Request) -> web.Response:
    slug, name = tenant_slug(request), username(request)
    ctx = await optional_context(request) or anonymous(request, Channel.API)
    limit = int_param(request, "limit", DEFAULT_HISTORY, 1, 100)
    changes = await request.config_dict[SERVICE].users.history(ctx, slug, name, limit)
    return web.json_response({"username": name, "history": [change_json(c) for c in changes]})


def expiry_field(data: dict[str, Any]) -> Expiry | None:
    """``expires_at`` (RFC 3339) or ``expires_in`` (seconds), at most one of them."""
    at, seconds = data.get("expires_at"), data.get("expires_in")
    try:
        if at is not None and seconds is not None:
            raise InvalidInput("give either expires_at or expires_in, not both")
        if at is not None:
            return Expiry.at(expiry.expires_at(at, datetime.now(UTC)))
        if seconds is not None:
            expiry.expires_in(seconds, datetime.now(UTC))  # a clear 400 before any lookup
            return Expiry.after(seconds)
    except InvalidInput as error:  # a bad duration or time is a bad request (400)
        raise MalformedRequest(str(error)) from None
    return None


async def put_status(request: web.Request) -> web.Response:
    slug, name = tenant_slug(request), username(request)
    ctx = await required_context(request)
    data = await read_json_object(request)
    status = string_field(data, "status")
    expires = expiry_field(data)
    if "if_status" in data:  # compare-and-set: 409 when someone changed it meanwhile
        expected = data["if_status"]
        if expected is not None and not isinstance(expected, str):
            raise InvalidInput("field 'if_status' must be a string or null")
        user = await request.config_dict[SERVICE].users.set_status(
            ctx, slug, name, status, if_status=expected, expires=expires
        )
    else:
        user = await request.config_dict[SERVICE].users.set_status(ctx, slug, name, status,
                                                             expires=expires)
    return web.json_response(user_json(user))


async def delete_status(request: web.Request) -> web.Response:
    slug, name = tenant_slug(request), username(request)
    ctx = await required_context(request)
    user = await request.config_dict[SERVICE].users.clear_status(ctx, slug, name)
    return web.json_response(user_json(user))


async def put_plan(request: web.Request) -> web.Response:
    slug, name = tenant_slug(request), username(request)
    ctx = await required_context(request)
    plan = string_field(await read_json_object(request), "plan")
    user = await request.config_dict[SERVICE].users.set_plan(ctx, slug, name, plan)
    return web.json_response(user_json(user))


async def get_audit(request: web.Request) -> web.Response:
    slug = tenant_slug(request)
    ctx = await required_context(request)
    limit = int_param(request, "limit", DEFAULT_AUDIT_PAGE, 1, 1000)
    cursor = request.query.get("cursor") or None
    if cursor is not None and not (rules.ascii_digits(cursor) and len(cursor) <= 18):
        raise InvalidInput("invalid cursor: pass the next_cursor of a previous page")
    query = AuditQuery(
        tenant=slug,
        username=request.query.get("user") or None,
        action=request.query.get("action") or None,
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        before_id=int(cursor) if cursor else None,
        limit=limit,
    )
    events = await request.config_dict[SERVICE].audit.audit_log(ctx, query)
    next_cursor = str(events[-1].id) if len(events) == limit else None
    return web.json_response({
        "events": [audit_json(e) for e in events],
        "next_cursor": next_cursor,
    })


def network_checked(handler: Handler) -> Handler:
    """Refuse (403) a client in a network the path's tenant rejects, before anything else."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        slug = request.match_info.get("tenant", "")
        if rules.TENANT_SLUG_RE.fullmatch(slug):
            try:
                tenant = await request.config_dict[SERVICE].public.resolve_tenant(slug)
            except NotFound:
                tenant = None  # the handler says so
            if tenant is not None:
                tenancy.check_network(request, tenant)
        return await handler(request)

    return checked


def add_routes(router: web.UrlDispatcher) -> None:
    from fingerplat.adapters.web.openapi import openapi_document

    base = f"{PREFIX}/tenants/{{tenant}}"
    router.add_get(f"{base}/users", network_checked(list_users))
    router.add_get(f"{base}/users/{{user}}", network_checked(get_user))
    router.add_get(f"{base}/users/{{user}}/history", network_checked(get_history))
    router.add_get(f"{base}/users/{{user}}/fingered", network_checked(get_fingered))
    router.add_put(f"{base}/users/{{user}}/status", network_checked(put_status))
    router.add_delete(f"{base}/users/{{user}}/status", network_checked(delete_status))
    router.add_put(f"{base}/users/{{user}}/plan", network_checked(put_plan))
    router.add_get(f"{base}/audit", network_checked(get_audit))
    router.add_get(f"{PREFIX}/openapi.json", openapi_document)
