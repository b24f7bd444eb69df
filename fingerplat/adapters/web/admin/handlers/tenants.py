"""Tenant pages: the list, creating one, its settings and domains, removing it.

Every page first asks the service for the tenant with the acting context
(``get_tenant``), which refuses (and audits) an admin of another tenant, so
a URL naming someone else's tenant ends on a 403 page.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fingerplat.adapters.web.admin import forms, state
from fingerplat.adapters.web.admin.charts import daily_bars
from fingerplat.adapters.web.admin.state import tenant_url
from fingerplat.adapters.web.statuses import status_for
from fingerplat.domain.errors import Conflict, InvalidInput
from fingerplat.domain.visibility import PUBLIC_FIELDS, network

routes = web.RouteTableDef()

ACTIVITY_DAYS = 30  # the chart of status changes on each tenant's page


async def _list_page(request: web.Request, *, status: int = 200, error: str = "",
                     values: dict[str, Any] | None = None) -> web.Response:
    tenants = await state.service(request).tenants.list_tenants(state.context(request))
    return state.render(request, "tenants.html", status=status, tenants=tenants, error=error,
                        values=values or {})


@routes.get("/tenants")
async def list_tenants(request: web.Request) -> web.StreamResponse:
    return await _list_page(request)


@routes.post("/tenants")
async def create_tenant(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    slug = forms.text(form, "slug").strip()
    name = forms.text(form, "name").strip()
    domains = forms.text(form, "domains")
    try:
        tenant = await state.service(request).tenants.create_tenant(
            state.context(request), slug, name=name or None, domains=forms.words(domains)
        )
    except (InvalidInput, Conflict) as err:
        return await _list_page(request, status=status_for(err),
                                error=str(err),
                                values={"slug": slug, "name": name, "domains": domains})
    raise state.redirect(request, tenant_url(tenant.slug), ok=f"Tenant {tenant.slug} created.")


async def _tenant_page(request: web.Request, *, status: int = 200, error: str = "",
                       values: dict[str, Any] | None = None,
                       public_checked: list[str] | None = None) -> web.Response:
    service, ctx = state.service(request), state.context(request)
    tenant = await service.tenants.get_tenant(ctx, request.match_info["tenant"])
    activity = await service.activity.status_activity(ctx, tenant.slug, days=ACTIVITY_DAYS)
    if public_checked is None:
        public_checked = [f for f in PUBLIC_FIELDS if tenant.shows(f)]
    return state.render(request, "tenant.html", status=status, tenant=tenant, error=error,
                        values=values or {}, tab="settings", chart=daily_bars(activity),
                        public_field_names=PUBLIC_FIELDS, public_checked=public_checked)


@routes.get("/tenants/{tenant}")
async def show_tenant(request: web.Request) -> web.StreamResponse:
    return await _tenant_page(request)


async def _update(request: web.Request, message: str, **changes: Any) -> web.StreamResponse:
    slug = request.match_info["tenant"]
    try:
        tenant = await state.service(request).tenants.update_tenant(state.context(request), slug,
                                                            **changes)
    except (InvalidInput, Conflict) as err:
        form = await request.post()
        checked = form.getall("public_fields", []) if "has_public_fields" in form else None
        return await _tenant_page(request, status=status_for(err),
                                  error=str(err), values=dict(form),
                                  public_checked=[str(f) for f in checked]
                                  if checked is not None else None)
    raise state.redirect(request, tenant_url(tenant.slug), ok=message)


@routes.post("/tenants/{tenant}/visibility")
async def update_visibility(request: web.Request) -> web.StreamResponse:
    """Time zone, public fields and both network lists, from one form.

    The network text areas hold the whole lists: the change is their
    difference to the tenant's current lists (each entry validated by the
    service, which names a bad one).
    """
    form = await request.post()
    tenant = await state.service(request).tenants.get_tenant(
        state.context(request), request.match_info["tenant"]
    )
    changes: dict[str, Any] = {"timezone": forms.text(form, "timezone").strip()}
    if forms.checkbox(form, "has_public_fields"):
        changes["public_fields"] = [str(f) for f in form.getall("public_fields", [])]
    for kind, current in (("trusted", tenant.trusted_networks),
                          ("rejected", tenant.rejected_networks)):
        wanted = forms.words(forms.text(form, f"{kind}_networks"))
        canonical = {_canonical(w): w for w in wanted}
        changes[f"add_{kind}_networks"] = [w for c, w in canonical.items() if c not in current]
        changes[f"remove_{kind}_networks"] = [c for c in current if c not in canonical]
    return await _update(request, "Time zone, public fields and networks saved.", **changes)


def _canonical(text: str) -> str:
    try:
        return network(text)
    except InvalidInput:
        return text  # left for the service to refuse with its message


@routes.post("/tenants/{tenant}/settings")
async def update_settings(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    changes: dict[str, Any] = {
        "name": forms.text(form, "name").strip(),
        "list_users": forms.checkbox(form, "list_users"),
    }
    # The forwarding box is only on the form platform admins see; a missing box
    # from a tenant admin's form must mean "unchanged", not "off".
    if forms.checkbox(form, "has_forwarding"):
        changes["forwarding"] = forms.checkbox(form, "forwarding")
    if forms.checkbox(form, "has_finger_log"):  # issue 16: who fingered me
        changes["finger_log"] = forms.checkbox(form, "finger_log")
    return await _update(request, "Settings saved.", **changes)


@routes.post("/tenants/{tenant}/domains")
async def add_domain(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    domains = forms.words(forms.text(form, "domain"))
    if not domains:
        raise InvalidInput("enter a domain name, like acme.example")
    return await _update(request, f"Added {', '.join(domains)}.", add_domains=domains)


@routes.post("/tenants/{tenant}/domains/remove")
async def remove_domain(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    domain = forms.text(form, "domain").strip()
    return await _update(request, f"Removed {domain}.", remove_domains=[domain])


@routes.get("/tenants/{tenant}/remove")
async def confirm_remove(request: web.Request) -> web.StreamResponse:
    tenant = await state.service(request).tenants.get_tenant(
        state.context(request), request.match_info["tenant"]
    )
    return state.render(request, "tenant_remove.html", tenant=tenant, error="")


@routes.post("/tenants/{tenant}/remove")
async def remove_tenant(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    svc = state.service(request)
    ctx = state.context(request)
    tenant = await svc.tenants.get_tenant(ctx, request.match_info["tenant"])
    if forms.text(form, "confirm").strip().lower() != tenant.slug:
        refusal = InvalidInput(f"Type the tenant's slug, {tenant.slug}, to confirm.")
        return state.render(request, "tenant_remove.html", status=status_for(refusal),
                            tenant=tenant, error=str(refusal))
    await svc.tenants.remove_tenant(ctx, tenant.slug)
    raise state.redirect(request, state.url("/tenants"), ok=f"Tenant {tenant.slug} removed.")
