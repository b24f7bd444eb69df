"""Absolute links, built from configuration and never from the request's ``Host``.

A ``Host`` header is whatever the client typed: echoing it into a WebFinger
``href`` (or any absolute link) hands an attacker a page of ours that points
at their site. So absolute links use either a tenant's own domain, when the
request came for that domain (the ``Host`` then matched a domain the
operator configured), or ``[web] public_url``. Without ``public_url`` the
first address the web listener is bound to stands in (``http://127.0.0.1:8000``),
with the machine's host name for a wildcard address: right for a single
machine, and a reason to set ``public_url`` behind a proxy.
"""

from __future__ import annotations

import socket

from aiohttp import web

from fingerplat.config import PublicUrl, parse_public_url

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


def default_public_url(listener_url: str) -> PublicUrl:
    """The first bound web address, a wildcard host replaced by this machine's name."""
    parsed = parse_public_url(listener_url)
    if parsed.host in WILDCARD_HOSTS or parsed.host in ("0.0.0.0", "::"):
        port = parsed.authority.rsplit(":", 1)[1]
        host = socket.gethostname().lower()
        return PublicUrl(parsed.scheme, f"{host}:{port}", host, parsed.path)
    return parsed


class PublicSite:
    """The application's public URL: configured, or set once the listener is bound."""

    def __init__(self, configured: str | None) -> None:
        self.configured = parse_public_url(configured) if configured else None
        self.fallback: PublicUrl | None = None

    @property
    def url(self) -> PublicUrl:
        if self.configured is not None:
            return self.configured
        if self.fallback is not None:
            return self.fallback
        return PublicUrl("http", "localhost", "localhost")


PUBLIC_SITE: web.AppKey[PublicSite] = web.AppKey("fingerplat_public_site", PublicSite)


def public_url(request: web.Request) -> PublicUrl:
    return request.config_dict[PUBLIC_SITE].url


def domain_base(request: web.Request, domain: str) -> str:
    """The base URL of a tenant's own domain: the configured scheme, no port.

    ``domain`` must be one of the tenant's configured domains (the caller
    checked that the request's ``Host`` named it), so nothing the client
    made up is echoed.
    """
    return f"{public_url(request).scheme}://{domain}"
