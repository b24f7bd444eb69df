"""The audit log pages: filters, newest-first pages, and the CSV export.

Pages go backwards with ``before`` (the id of the last row shown), which
stays correct while new events arrive. The export runs the same query page
by page and streams it, so a large log does not sit in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from aiohttp import web

from fingerplat.adapters.web.admin import csv_export, forms, state
from fingerplat.adapters.web.admin.state import tenant_url
from fingerplat.adapters.web.statuses import status_for
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.changes import describe_changes
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import AuditEvent, AuditQuery, Tenant

routes = web.RouteTableDef()

PAGE_SIZE = 50
EXPORT_BATCH = 1000
MAX_EXPORT_ROWS = 200_000
# Offered in the action filter (free text works too): every action the service audits.
KNOWN_ACTIONS = tuple(action.value for action in AuditAction)
FILTERS = ("user", "action", "since", "until", "tenant")


def _filters(request: web.Request) -> dict[str, str]:
    return {k: request.query.get(k, "").strip()[:200] for k in FILTERS}


def _query(f: dict[str, str], *, tenant: str | None, limit: int) -> AuditQuery:
    before = forms.optional_int(f.get("before"), "before")
    return AuditQuery(
        tenant=tenant,
        username=f["user"] or None,
        action=f["action"] or None,
        since=forms.day_start(f["since"], "from date"),
        until=forms.day_start(f["until"], "to date", next_day=True),
        before_id=before,
        limit=limit,
    )


async def _fetch(request: web.Request, query: AuditQuery, *,
                 all_tenants: bool) -> Sequence[AuditEvent]:
    return await state.service(request).audit.audit_log(state.context(request), query,
                                                  all_tenants=all_tenants)


async def _page(request: web.Request, *, tenant: Tenant | None) -> web.Response:
    f = _filters(request)
    f["before"] = request.query.get("before", "").strip()[:12]
    slug = tenant.slug if tenant else (f["tenant"] or None)
    events: Sequence[AuditEvent] = []
    error = ""
    status = 200
    try:
        events = await _fetch(request, _query(f, tenant=slug, limit=PAGE_SIZE),
                              all_tenants=slug is None)
    except InvalidInput as err:
        error, status = str(err), status_for(err)
    base = tenant_url(tenant.slug, "/audit") if tenant else state.url("/audit")
    keep = {k: v for k, v in f.items() if k != "before" and v and not (tenant and k == "tenant")}
    return state.render(
        request, "audit.html", status=status, tenant=tenant, tab="audit", events=events,
        filters=f, error=error, actions=KNOWN_ACTIONS, base=base,
        next_url=state.with_query(base, **keep, before=events[-1].id)
        if len(events) == PAGE_SIZE else None,
        first_url=state.with_query(base, **keep) if f["before"] else None,
        csv_url=state.with_query(base + ".csv", **keep),
        tenants=await state.service(request).tenants.list_tenants(state.context(request))
        if tenant is None else [],
        changes=_changes,
    )


def _changes(event: AuditEvent) -> str:
    """``field: old → new`` for the table (the CSV has the full JSON)."""
    return describe_changes(event.before, event.after)


async def _export(request: web.Request, *, tenant: Tenant | None) -> web.StreamResponse:
    f = _filters(request)
    slug = tenant.slug if tenant else (f["tenant"] or None)
    query = _query({**f, "before": ""}, tenant=slug, limit=EXPORT_BATCH)
    # The first batch before the response starts: a refusal is still an error page.
    batch = await _fetch(request, query, all_tenants=slug is None)
    name = f"audit-{slug or 'all'}-{state.service(request).clock():%Y%m%d-%H%M%S}.csv"
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    })
    await response.prepare(request)
    try:
        await response.write(csv_export.encode(batch, header=True))
        written = len(batch)
        while len(batch) == EXPORT_BATCH and written < MAX_EXPORT_ROWS:
            query = replace(query, before_id=batch[-1].id)
            batch = await _fetch(request, query, all_tenants=slug is None)
            await response.write(csv_export.encode(batch, header=False))
            written += len(batch)
        await response.write_eof()
    except ConnectionError:
        pass  # the browser went away mid-download; nothing to answer
    return response


async def _tenant(request: web.Request) -> Tenant:
    return await state.service(request).tenants.get_tenant(
        state.context(request), request.match_info["tenant"]
    )


@routes.get("/tenants/{tenant}/audit")
async def tenant_audit(request: web.Request) -> web.StreamResponse:
    return await _page(request, tenant=await _tenant(request))


@routes.get("/tenants/{tenant}/audit.csv")
async def tenant_audit_csv(request: web.Request) -> web.StreamResponse:
    return await _export(request, tenant=await _tenant(request))


@routes.get("/audit")
async def platform_audit(request: web.Request) -> web.StreamResponse:
    return await _page(request, tenant=None)


@routes.get("/audit.csv")
async def platform_audit_csv(request: web.Request) -> web.StreamResponse:
    return await _export(request, tenant=None)
