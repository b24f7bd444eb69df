"""Which tenant a public request is for: Host header, ``/t/<slug>/``, or the default.

Order (SPEC section 4): a Host header naming one of a tenant's DNS domains
wins; otherwise a ``/t/<slug>/`` path prefix picks the tenant by slug;
otherwise the default tenant answers. Only domains count for Host (a Host of
``acme`` is not the slug ``acme``), so a bare machine name or IP address never
selects a tenant by accident. A ``/t/<slug>/`` prefix naming a *different*
tenant than the Host header is answered 404: a branded domain serves only its
own tenant.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from fingerplat.adapters.web.keys import BASE, SERVICE, TENANT
from fingerplat.domain import rules
from fingerplat.domain.errors import NetworkRejected, NotFound, PermissionDenied
from fingerplat.domain.model import Tenant

PREFIX_VAR = "site"  # the match_info name of the slug in /t/{site}/...
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tenant_routed(handler: Handler) -> Handler:
    """Wrap a handler whose request needs a tenant chosen by the routing rules.

    The tenant is resolved before the handler runs (``request[TENANT]`` and
    ``request[BASE]`` are set), so only these handlers pay for it, not every
    request as a middleware would.
    """

    @functools.wraps(handler)
    async def routed(request: web.Request) -> web.StreamResponse:
        await resolve(request)
        return await handler(request)

    return routed


def host_name(host_header: str | None) -> str | None:
    """The DNS name of a Host header (port and trailing dot removed), or None for IPs."""
    if not host_header:
        return None
    return _host_name(host_header)


@functools.lru_cache(maxsize=1024)
def _host_name(host_header: str) -> str | None:
    """Memoised: a site sees a handful of Host headers, and parsing an IP is slow."""
    host = host_header.strip().lower()
    if host.startswith("["):  # an IPv6 literal
        return None
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.rstrip(".")
    if "." not in host or len(host) > 253:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


async def resolve(request: web.Request) -> Tenant:
    """Apply the routing rules; the result is cached on the request."""
    cached = request.get(TENANT)
    if cached is not None:
        return cached
    public = request.app[SERVICE].public  # routed handlers are all the main application's
    by_host: Tenant | None = None
    name = host_name(request.headers.get("Host"))
    if name is not None:
        candidate = await public.tenant_for_host(name)
        if candidate is not None and name in candidate.domains:
            by_host = candidate
    slug = request.match_info.get(PREFIX_VAR)
    base = ""
    if slug is not None:
        if not rules.TENANT_SLUG_RE.fullmatch(slug):
            raise NotFound(f"no such tenant: {slug[:63]!r}")
        if by_host is not None and by_host.slug != slug:
            raise NotFound(f"no such tenant on this site: {slug!r}")
        tenant = by_host or await public.resolve_tenant(slug)
        base = f"/t/{tenant.slug}"
    else:
        tenant = by_host or await public.resolve_tenant(None)
    check_network(request, tenant)
    request[TENANT] = tenant
    request[BASE] = base
    return tenant


def check_network(request: web.Request, tenant: Tenant) -> None:
    """A 403 for a client in a network ``tenant`` rejects (one attribute read without any).

    The client address is the one aiohttp established (the peer, or what the
    listener took from a trusted proxy), never a header.
    """
    if tenant.networks is not None and tenant.networks.rejects(request.remote):
        raise NetworkRejected(tenant.slug)


def check_listing(request: web.Request, tenant: Tenant) -> None:
    """A 403 when ``tenant`` lists its users only to trusted networks and this is not one."""
    if tenant.networks is not None and not tenant.networks.lists_to(request.remote):
        raise PermissionDenied(
            f"tenant {tenant.slug!r} gives its user list only to trusted networks"
        )


def add_routed(
    router: web.UrlDispatcher, method: str, path: str, handler: Handler, *, name: str | None = None
) -> None:
    """Register ``path`` and the same path under ``/t/{site}``."""
    router.add_route(method, path, handler, name=name)
    router.add_route(method, f"/t/{{{PREFIX_VAR}}}{path}", handler,
                     name=f"{name}.prefixed" if name else None)
