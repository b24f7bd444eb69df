"""Who may speak for a client: ``[network] trusted_proxies`` (SPEC section 12).

A PROXY protocol header or an ``X-Forwarded-For`` header is a claim about
who the client is; only the proxies named here may make it. Everyone else
is the client itself. Lookups are cached per address (a listener asks for
every connection), with the cache bounded so a flood of addresses costs
bounded memory.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from fingerplat.domain.addresses import client_ip

_CACHE_LIMIT = 4096


class TrustedProxies:
    """A set of networks; ``address in trusted`` for a textual IP address."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        if not self.networks or not isinstance(address, str):
            return False
        known = self._known.get(address)
        if known is None:
            known = self._lookup(address)
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            self._known[address] = known
        return known

    def _lookup(self, address: str) -> bool:
        ip = client_ip(address)
        if ip is None:
            return False
        return any(ip in network for network in self.networks)
