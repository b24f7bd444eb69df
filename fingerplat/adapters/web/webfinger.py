"""WebFinger (RFC 7033): ``/.well-known/webfinger?resource=acct:user@domain``.

The domain part names the tenant: one of its DNS domains, its slug, or the
host name this request was sent to (which then means the tenant the request
routes to, usually the default tenant). The answer is a JRD with the
profile page as a link and the status as properties; hidden users do not
exist here either.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from fingerplat.adapters.web import tenancy
from fingerplat.adapters.web.keys import SERVICE
from fingerplat.adapters.web.payloads import MalformedRequest
from fingerplat.adapters.web.templating import iso_time
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
    """The tenant named by ``domain`` and the path prefix of its pages on this host."""
    service = request.config_dict[SERVICE]
    request_host = (request.host or "").lower()
    if domain in (request_host, tenancy.host_name(request_host), _without_port(request_host)):
        tenant = await tenancy.resolve(request)
        return tenant, ""
    tenant = await service.tenant_for_host(domain)
    if tenant is None:
        raise NotFound(f"no tenant for domain {domain[:100]!r} here")
    routed = await tenancy.resolve(request)
    return tenant, "" if routed.id == tenant.id else f"/t/{tenant.slug}"


def _without_port(host: str) -> str:
    """``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:8000`` -> ``[::1]``: acct: has no port."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] or host if host.count(":") == 1 else host


def jrd(user: User, domain: str, profile: str, rels: list[str]) -> dict[str, Any]:
    links = [{"rel": PROFILE_REL, "type": "text/html", "href": profile}]
    if rels:
        links = [link for link in links if link["rel"] in rels]
    return {
        "subject": f"acct:{user.username}@{domain}",
        "aliases": [profile],
        "properties": {
            STATUS_PROP: user.status,
            STATUS_SET_PROP: iso_time(user.status_set_at) or None,
            NAME_PROP: user.full_name or None,
        },
        "links": links,
    }


async def webfinger(request: web.Request) -> web.Response:
    name, domain = parse_acct(request.query.get("resource"))
    if not rules.USERNAME_RE.fullmatch(name):
        raise NotFound(f"no such user: {name[:40]!r}")
    tenant, base = await find_tenant(request, domain)
    user = await request.config_dict[SERVICE].public_user(tenant, name)
    if user is None:
        raise NotFound(f"no such user: {name!r}")
    profile = f"{request.scheme}://{request.host}{base}/~{user.username}"
    body = jrd(user, domain, profile, request.query.getall("rel", []))
    return web.Response(
        text=json.dumps(body), content_type=JRD,
        headers={"Access-Control-Allow-Origin": "*"},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/.well-known/webfinger", webfinger)
