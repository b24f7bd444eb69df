"""Admin account pages (platform admins only; the service refuses anyone else)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fingerplat.adapters.web.admin import forms, state
from fingerplat.adapters.web.statuses import status_for
from fingerplat.domain import rules
from fingerplat.domain.errors import Conflict, InvalidInput, NotFound

routes = web.RouteTableDef()


async def _page(request: web.Request, *, status: int = 200, error: str = "",
                values: dict[str, Any] | None = None) -> web.Response:
    svc = state.service(request)
    ctx = state.context(request)
    admins = await svc.credentials.list_admins(ctx)
    tenants = await svc.tenants.list_tenants(ctx)
    return state.render(request, "admins.html", status=status, admins=admins, tenants=tenants,
                        error=error, values=values or {})


@routes.get("/admins")
async def list_admins(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@routes.post("/admins")
async def create_admin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = forms.text(form, "name").strip()
    password = forms.text(form, "password")
    tenant = forms.text(form, "tenant").strip()
    try:
        if password != forms.text(form, "password2"):
            raise InvalidInput("the two passwords differ")
        admin = await state.service(request).credentials.add_admin(
            state.context(request), name, password, tenant_name=tenant or None
        )
    except (InvalidInput, Conflict, NotFound) as err:
        # The password is never sent back into the page.
        return await _page(request, status=status_for(err),
                           error=str(err), values={"name": name, "tenant": tenant})
    where = f"tenant {admin.tenant_slug}" if admin.tenant_slug else "the platform"
    raise state.redirect(request, state.url("/admins"),
                         ok=f"Admin {admin.name} created for {where}.")


@routes.get("/admins/{name}/remove")
async def confirm_remove(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    admins = await state.service(request).credentials.list_admins(state.context(request))
    admin = next((a for a in admins if a.name == name), None)
    if admin is None:
        raise NotFound(f"no such admin: {name[:64]!r}")
    return state.render(request, "admin_remove.html", admin=admin)


@routes.post("/admins/{name}/remove")
async def remove_admin(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    await state.service(request).credentials.remove_admin(state.context(request), name)
    label = f"admin:{rules.admin_name(name)}"
    # The account's session rows went with it (foreign key cascade), ours too if it was us.
    if state.principal(request).name == label:
        request[state.SESSION_KEY] = None
        raise web.HTTPSeeOther(state.url("/login"))
    raise state.redirect(request, state.url("/admins"), ok=f"Admin {name} removed.")
