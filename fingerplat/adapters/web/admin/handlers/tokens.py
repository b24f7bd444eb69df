"""Token pages: a tenant's tokens, the platform's tokens, creating (shown once) and revoking.

A created token's secret is kept in the creating admin's server-side session
only until the page after the redirect shows it (never in a URL or a cookie,
the page is ``no-store``); reloading that page does not show it again, and
does not re-post the form and create a second token.
"""

from __future__ import annotations

from typing import NoReturn

from aiohttp import web

from fingerplat.adapters.web.admin import forms, state
from fingerplat.adapters.web.admin.state import tenant_url
from fingerplat.adapters.web.statuses import status_for
from fingerplat.domain.errors import Conflict, InvalidInput, NotFound
from fingerplat.domain.model import IssuedToken, Tenant, TokenScope

routes = web.RouteTableDef()

_SCOPES = {"user": TokenScope.USER, "tenant": TokenScope.TENANT}


def _take_secret(request: web.Request) -> str | None:
    s = state.session(request)
    return s.take_secret() if s is not None else None


def _created(request: web.Request, issued: IssuedToken, page: str) -> NoReturn:
    s = state.session(request)
    assert s is not None  # require_login guarantees a session
    s.secret_once = issued.secret
    raise state.redirect(request, page, ok=f"Token {issued.token.id} created.")


async def _tenant_page(request: web.Request, tenant: Tenant, *, status: int = 200,
                       error: str = "",
                       values: dict[str, str] | None = None) -> web.Response:
    tokens = await state.service(request).credentials.list_tokens(
        state.context(request), tenant.slug)
    return state.render(request, "tokens.html", status=status, tenant=tenant, tab="tokens",
                        tokens=tokens, secret=_take_secret(request), error=error,
                        values=values or {},
                        now=state.service(request).clock(), platform_page=False,
                        form_action=tenant_url(tenant.slug, "/tokens"))


async def _tenant(request: web.Request) -> Tenant:
    return await state.service(request).tenants.get_tenant(
        state.context(request), request.match_info["tenant"]
    )


@routes.get("/tenants/{tenant}/tokens")
async def list_tokens(request: web.Request) -> web.StreamResponse:
    return await _tenant_page(request, await _tenant(request))


@routes.post("/tenants/{tenant}/tokens")
async def create_token(request: web.Request) -> web.StreamResponse:
    tenant = await _tenant(request)
    form = await request.post()
    values = {k: forms.text(form, k).strip() for k in ("scope", "username", "expires_days")}
    try:
        scope = _SCOPES.get(values["scope"])
        if scope is None:
            raise InvalidInput("choose a token kind: user or tenant admin")
        issued = await state.service(request).credentials.create_token(
            state.context(request), scope, tenant_name=tenant.slug,
            username=values["username"] if scope is TokenScope.USER else None,
            expires_days=forms.optional_int(values["expires_days"], "expiry (days)"),
        )
    except (InvalidInput, Conflict, NotFound) as err:
        return await _tenant_page(request, tenant, status=status_for(err), error=str(err),
                                  values=values)
    _created(request, issued, tenant_url(tenant.slug, "/tokens"))


@routes.post("/tenants/{tenant}/tokens/{token_id:[0-9]{1,9}}/revoke")
async def revoke_tenant_token(request: web.Request) -> web.StreamResponse:
    tenant = await _tenant(request)
    token = await state.service(request).credentials.revoke_token(
        state.context(request), int(request.match_info["token_id"])
    )
    raise state.redirect(request, tenant_url(tenant.slug, "/tokens"),
                         ok=f"Token {token.id} revoked.")


async def _platform_page(request: web.Request, *, status: int = 200,
                         error: str = "",
                         values: dict[str, str] | None = None) -> web.Response:
    tokens = await state.service(request).credentials.list_tokens(
        state.context(request), all_tenants=True)
    return state.render(request, "tokens.html", status=status, tenant=None, tab="tokens",
                        tokens=tokens, secret=_take_secret(request), error=error,
                        values=values or {},
                        now=state.service(request).clock(), platform_page=True,
                        form_action=state.url("/tokens"))


@routes.get("/tokens")
async def list_all_tokens(request: web.Request) -> web.StreamResponse:
    return await _platform_page(request)


@routes.post("/tokens")
async def create_platform_token(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {"expires_days": forms.text(form, "expires_days").strip()}
    try:
        issued = await state.service(request).credentials.create_token(
            state.context(request), TokenScope.PLATFORM,
            expires_days=forms.optional_int(values["expires_days"], "expiry (days)"),
        )
    except InvalidInput as err:
        return await _platform_page(request, status=status_for(err), error=str(err),
                                    values=values)
    _created(request, issued, state.url("/tokens"))


@routes.post("/tokens/{token_id:[0-9]{1,9}}/revoke")
async def revoke_token(request: web.Request) -> web.StreamResponse:
    token = await state.service(request).credentials.revoke_token(
        state.context(request), int(request.match_info["token_id"])
    )
    raise state.redirect(request, state.url("/tokens"), ok=f"Token {token.id} revoked.")
