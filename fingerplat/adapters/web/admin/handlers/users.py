"""User pages of a tenant: search and pages, create, edit, hide, status, plan, history, remove.

Each handler asks the service for the tenant with the acting context first;
that call refuses an admin of another tenant (audited), whatever the URL says.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fingerplat.adapters.web.admin import forms, state
from fingerplat.adapters.web.admin.state import tenant_url
from fingerplat.adapters.web.statuses import status_for
from fingerplat.domain.errors import Conflict, InvalidInput
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import Tenant

routes = web.RouteTableDef()

PAGE_SIZE = 25
HISTORY_SHOWN = 20
PROFILE_FIELDS = ("full_name", "office", "phone", "project")


def user_url(tenant: str, username: str, rest: str = "") -> str:
    return tenant_url(tenant, f"/users/{state.seg(username)}{rest}")


async def _tenant(request: web.Request) -> Tenant:
    return await state.service(request).tenants.get_tenant(
        state.context(request), request.match_info["tenant"]
    )


@routes.get("/tenants/{tenant}/users")
async def list_users(request: web.Request) -> web.StreamResponse:
    tenant = await _tenant(request)
    search = request.query.get("q", "").strip()
    cursor = request.query.get("cursor") or None
    page = await state.service(request).users.directory(
        tenant, ctx=state.context(request), limit=PAGE_SIZE, cursor=cursor,
        search=search or None,
    )
    return state.render(request, "users.html", tenant=tenant, tab="users", page=page,
                        search=search, cursor=cursor, user_url=user_url)


async def _new_page(request: web.Request, tenant: Tenant, *, status: int = 200,
                    error: str = "", values: dict[str, Any] | None = None) -> web.Response:
    return state.render(request, "user_new.html", status=status, tenant=tenant, tab="users",
                        error=error, values=values or {})


@routes.get("/tenants/{tenant}/new-user")
async def new_user(request: web.Request) -> web.StreamResponse:
    return await _new_page(request, await _tenant(request))


@routes.post("/tenants/{tenant}/users")
async def create_user(request: web.Request) -> web.StreamResponse:
    tenant = await _tenant(request)
    form = await request.post()
    values: dict[str, Any] = {f: forms.text(form, f) for f in ("username", *PROFILE_FIELDS)}
    values["hidden"] = forms.checkbox(form, "hidden")
    try:
        user = await state.service(request).users.add_user(
            state.context(request), tenant.slug, values["username"],
            **{f: values[f] for f in PROFILE_FIELDS}, hidden=values["hidden"],
        )
    except (InvalidInput, Conflict) as err:
        return await _new_page(request, tenant, status=status_for(err), error=str(err),
                               values=values)
    raise state.redirect(request, user_url(tenant.slug, user.username),
                         ok=f"User {user.username} created.")


async def _user_page(request: web.Request, *, status: int = 200, error: str = "",
                     values: dict[str, Any] | None = None) -> web.Response:
    tenant = await _tenant(request)
    svc = state.service(request)
    ctx = state.context(request)
    user = await svc.users.get_user(ctx, tenant.slug, request.match_info["user"])
    history = await svc.users.history(ctx, tenant.slug, user.username, HISTORY_SHOWN)
    fingered = await svc.finger_log.fingered(ctx, tenant.slug, user.username, HISTORY_SHOWN) \
        if user.finger_log else []
    return state.render(request, "user.html", status=status, tenant=tenant, tab="users",
                        user=user, history=history, error=error, values=values or {},
                        user_url=user_url, fingered=fingered)


@routes.get("/tenants/{tenant}/users/{user}")
async def show_user(request: web.Request) -> web.StreamResponse:
    return await _user_page(request)


async def _change(request: web.Request, message: str, action: str,
                  **changes: Any) -> web.StreamResponse:
    """Run one user change; on a refused value show the page again with what was typed."""
    tenant = await _tenant(request)
    svc = state.service(request)
    ctx = state.context(request)
    name = request.match_info["user"]
    try:
        if action == "edit":
            user = await svc.users.edit_user(ctx, tenant.slug, name, **changes)
        elif action == "status":
            until = (changes.get("expires") or "").strip()
            user = await svc.users.set_status(ctx, tenant.slug, name, changes["status"],
                                        expires=Expiry.parse(until) if until else None)
        elif action == "clear":
            user = await svc.users.clear_status(ctx, tenant.slug, name)
        else:
            user = await svc.users.set_plan(ctx, tenant.slug, name, changes["plan"])
    except (InvalidInput, Conflict) as err:
        return await _user_page(request, status=status_for(err), error=str(err),
                                values=changes)
    raise state.redirect(request, user_url(tenant.slug, user.username), ok=message)


@routes.post("/tenants/{tenant}/users/{user}")
async def edit_user(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    changes: dict[str, Any] = {f: forms.text(form, f) for f in PROFILE_FIELDS}
    changes["hidden"] = forms.checkbox(form, "hidden")
    if forms.checkbox(form, "has_finger_log"):  # issue 16: who fingered me
        changes["finger_log"] = forms.checkbox(form, "finger_log")
    return await _change(request, "Profile saved.", "edit", **changes)


@routes.post("/tenants/{tenant}/users/{user}/status")
async def set_status(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    return await _change(request, "Status set.", "status", status=forms.text(form, "status"),
                         expires=forms.text(form, "expires"))


@routes.post("/tenants/{tenant}/users/{user}/status/clear")
async def clear_status(request: web.Request) -> web.StreamResponse:
    return await _change(request, "Status cleared.", "clear")


@routes.post("/tenants/{tenant}/users/{user}/plan")
async def set_plan(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    return await _change(request, "Plan saved.", "plan", plan=forms.text(form, "plan"))


@routes.get("/tenants/{tenant}/users/{user}/remove")
async def confirm_remove(request: web.Request) -> web.StreamResponse:
    tenant = await _tenant(request)
    user = await state.service(request).users.get_user(
        state.context(request), tenant.slug, request.match_info["user"]
    )
    return state.render(request, "user_remove.html", tenant=tenant, user=user,
                        user_url=user_url)


@routes.post("/tenants/{tenant}/users/{user}/remove")
async def remove_user(request: web.Request) -> web.StreamResponse:
    tenant = await _tenant(request)
    name = request.match_info["user"]
    await state.service(request).users.remove_user(state.context(request), tenant.slug, name)
    raise state.redirect(request, tenant_url(tenant.slug, "/users"), ok=f"User {name} removed.")
