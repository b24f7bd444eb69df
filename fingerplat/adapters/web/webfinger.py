"""WebFinger (RFC 7033): ``/.well-known/webfinger?resource=acct:user@domain``.

The domain part names the tenant: one of its DNS domains, its slug, or the
host of ``[web] public_url`` (which then means the tenant that address routes
to, usually the default tenant). The answer is a JRD with the profile page as
a link and the status as properties; hidden users do not exist here either.
Links are built from configuration (links.py), never from the ``Host`` header.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from fingerplat.adapters.times import iso_utc
from fingerplat.adapters.web import links, tenancy
from fingerplat.adapters.web.keys import SERVICE
from fingerplat.adapters.web.payloads import MalformedRequest
from fingerplat.adapters.web.principals import remote_addr
from fingerplat.domain import rules
from fingerplat.domain.errors import NotFound
from fingerplat.domain.model import Tenant, User

PROFILE_REL = "http://webfinger.net/rel/profile-page"
STATUS_PROP = "urn:fingerplat:status"
STATUS_SET_PROP = "urn:fingerplat:status-set-at"
NAME_PROP = "urn:fingerplat:full-name"
JRD = "application/jrd+json"


def parse_acct(resource: str | None) -> tuple[str, str]:
    """``acct:user@domain`` -> (user, domain); anything else is a 400."""
    if not resource:
        raise MalformedRequest("missing resource parameter: expected resource=acct:user@domain")
    if not resource.lower().startswith("acct:"):
        raise MalformedRequest("unsupported resource: only acct:user@domain URIs are answered")
    user, sep, domain = resource[5:].rpartition("@")
    if not sep or not user or not domain:
        raise MalformedRequest("malformed resource: expected acct:user@domain")
    return user.lower(), domain.lower().rstrip(".")


async def find_tenant(request: web.Request, domain: str) -> tuple[Tenant, str]:
    """The tenant ``domain`` names, and the base URL of its pages (from configuration).

    ``domain`` may be one of a tenant's DNS domains, a tenant's slug, or the
    host (``host`` or ``host:port``) of ``[web] public_url``, which means the
    tenant that address routes to. The request's ``Host`` header is never
    taken on trust: it only counts when it names a tenant's configured domain,
    and then the request is for that tenant alone, so another tenant's
    ``acct:`` is 404 there rather than a link that 404s on that host.
    """
    service = request.config_dict[SERVICE]
    public = links.public_url(request)
    host_tenant, host_domain = await _tenant_of_host(service, request.headers.get("Host"))
    public_tenant, _ = await _tenant_of_host(service, public.host)
    if domain in (public.authority, public.host):
        tenant = public_tenant or await service.public.resolve_tenant(None)
    else:
        tenant = await service.public.tenant_for_host(domain)  # a domain or a slug
    if tenant is None or (host_tenant is not None and host_tenant.id != tenant.id):
        raise NotFound("no such account here: unknown domain")  # nothing echoed
    if host_tenant is not None and host_domain is not None:
        return tenant, links.domain_base(request, host_domain)
    routes_here = (public_tenant.id if public_tenant is not None
                   else (await service.public.resolve_tenant(None)).id)
    prefix = "" if tenant.id == routes_here else f"/t/{tenant.slug}"
    return tenant, f"{public.base}{prefix}"


async def _tenant_of_host(
    service: Any, host_header: str | None
) -> tuple[Tenant | None, str | None]:
    """The tenant whose configured domain the ``Host`` names, and that domain (else None)."""
    name = tenancy.host_name(host_header)
    if name is None:
        return None, None
    tenant = await service.public.tenant_for_host(name)
    if tenant is None or name not in tenant.domains:
        return None, None
    return tenant, name


def jrd(user: User, domain: str, profile: str, rels: list[str],
        tenant: Tenant | None = None) -> dict[str, Any]:
    """The JRD; properties of fields ``tenant`` does not publish are left out."""
    links = [{"rel": PROFILE_REL, "type": "text/html", "href": profile}]
    if rels:
        links = [link for link in links if link["rel"] in rels]
    properties: dict[str, Any] = {}
    if tenant is None or tenant.shows("status"):
        properties[STATUS_PROP] = user.status
        properties[STATUS_SET_PROP] = iso_utc(user.status_set_at) or None
    if tenant is None or tenant.shows("full_name"):
        properties[NAME_PROP] = user.full_name or None
    return {
        "subject": f"acct:{user.username}@{domain}",
        "aliases": [profile],
        "properties": properties,
        "links": links,
    }


async def webfinger(request: web.Request) -> web.Response:
    name, domain = parse_acct(request.query.get("resource"))
    if not rules.USERNAME_RE.fullmatch(name):
        raise NotFound(f"no such user: {name[:40]!r}")
    tenant, base = await find_tenant(request, domain)
    tenancy.check_network(request, tenant)
    user = await request.config_dict[SERVICE].public.public_user(tenant, name)
    if user is None:
        raise NotFound(f"no such user: {name!r}")
    request.config_dict[SERVICE].finger_log.note_lookup(
        tenant, user, "webfinger", remote_addr(request))
    profile = f"{base}/~{user.username}"
    body = jrd(user, domain, profile, request.query.getall("rel", []), tenant)
    return web.Response(
        text=json.dumps(body), content_type=JRD,
        headers={"Access-Control-Allow-Origin": "*"},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/.well-known/webfinger", webfinger)
