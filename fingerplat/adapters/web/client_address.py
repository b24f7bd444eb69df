"""Who the web client is behind trusted proxies: ``Forwarded`` and ``X-Forwarded-For``.

A request that comes from an address in ``[network] trusted_proxies`` may
name the client it carries for (SPEC section 12): RFC 7239 ``Forwarded``
(``for=`` parameters) when present, else ``X-Forwarded-For`` (what HAProxy's
``option forwardfor`` adds). Each proxy appends the address it received the
request from, so the list is read from the right: trusted proxies are
skipped, and the first address that is not a trusted proxy is the client.
Anything to its left was written by that client and is ignored. A value
that is not an IP address (``unknown``, an obfuscated ``_node``, garbage)
ends the walk at the last proxy that was trusted. From any other address the
headers mean nothing: the peer is the client.

The middleware gives every handler the client as ``request.remote``
(aiohttp's ``BaseRequest.clone(remote=...)``), so audit rows, throttles and
rate limits see it; the access loggers (aiohttp's and the front door's) log
it. aiohttp's own ``request.forwarded`` parses ``Forwarded`` only, and the
front door has no request object: one small parser serves both here.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger

from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.domain.addresses import unmapped

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Hops read from a header at most (a longer chain is cut on its left).
MAX_HOPS = 32


def client_address(peer: str | None, headers: Mapping[str, str] | Any,
                   trusted: TrustedProxies) -> str | None:
    """The client's address for a request from ``peer`` with these ``headers``."""
    if peer is None or not trusted or peer not in trusted:
        return peer
    hops = _forwarded_hops(headers)
    if hops is None:
        return peer
    client = peer
    for hop in reversed(hops[-MAX_HOPS:]):
        address = _address(hop)
        if address is None:
            return client  # unreadable: the last trusted proxy is as far as we can tell
        client = address
        if address not in trusted:
            return address
    return client


def _forwarded_hops(headers: Any) -> list[str] | None:
    """The ``for`` values of ``Forwarded``, else of ``X-Forwarded-For``, left to right."""
    forwarded = _header_values(headers, "Forwarded")
    if forwarded:
        return [_for_value(element) for element in ",".join(forwarded).split(",")]
    xff = _header_values(headers, "X-Forwarded-For")
    if not xff:
        return None
    return [hop.strip() for hop in ",".join(xff).split(",")]


def _header_values(headers: Any, name: str) -> list[str]:
    """Every non-empty value of ``name`` (a multidict, or a plain mapping's one value)."""
    getall = getattr(headers, "getall", None)
    values = getall(name, ()) if getall else [headers.get(name)]
    return [value for value in values if value]


def _for_value(element: str) -> str:
    """The ``for=`` parameter of one ``Forwarded`` element (``unknown`` when it has none)."""
    found = "unknown"  # an element without for= names no client
    for pair in element.split(";"):
        name, _, value = pair.strip().partition("=")
        if name.strip().lower() == "for":
            found = value.strip()
    return found


def _address(hop: str) -> str | None:
    """An IP address from one hop (``1.2.3.4``, ``"1.2.3.4:80"``, ``"[::1]:80"``), or None."""
    text = _without_port(_unquoted(hop.strip()))
    if not text or "%" in text or not text.isascii():
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(unmapped(address))


def _unquoted(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _without_port(text: str) -> str | None:
    """``[::1]:80`` -> ``::1``, ``1.2.3.4:80`` -> ``1.2.3.4``; None when the port is not one."""
    if text.startswith("["):
        text, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest[:1] == ":" and _is_port(rest[1:]))):
            return None
        return text
    if text.count(":") == 1:  # IPv4 with a port
        text, _, port = text.partition(":")
        if not _is_port(port):
            return None
    return text


def client_address_middleware(trusted: TrustedProxies) -> Callable[..., Any]:
    """Give handlers the client behind a trusted proxy as ``request.remote``.

    Only installed when ``trusted_proxies`` is set: without it a request
    costs nothing more.
    """

    @web.middleware
    async def resolve(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote
        client = client_address(peer, request.headers, trusted)
        if client != peer:
            request = request.clone(remote=client)
        return await handler(request)

    return resolve


def access_logger_class(trusted: TrustedProxies) -> type[AccessLogger]:
    """aiohttp's access logger, with ``%a`` the client behind trusted proxies."""

    class ClientAccessLogger(AccessLogger):
        def __init__(self, logger: logging.Logger,
                     log_format: str = AccessLogger.LOG_FORMAT) -> None:
            super().__init__(logger, log_format)
            # aiohttp caches compiled formats for every AccessLogger: replace
            # the "%a" method on this instance only.
            self._methods = [
                type(method)(method.key, _remote) if method.key == "remote_address" else method
                for method in self._methods
            ]

    def _remote(request: web.BaseRequest, response: web.StreamResponse, time: float) -> str:
        if request is None:
            return "-"
        return client_address(request.remote, request.headers, trusted) or "-"

    return ClientAccessLogger
