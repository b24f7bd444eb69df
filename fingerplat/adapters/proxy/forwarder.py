"""Finger forwarding (``user@remote``): the tutorial's proxy, made safe to expose.

The finger adapter calls a :class:`Forwarder` for queries naming a host that
is not hosted here, when the tenant has ``forwarding`` on. A public finger
port that connects anywhere on request would let anyone probe the networks
behind it, so before connecting the forwarder

* refuses chains longer than ``[forwarding] max_hops``;
* resolves the host name itself and refuses loopback, private, link-local,
  multicast, unspecified, reserved and other non-global addresses unless a
  network in ``[forwarding] allow`` contains them;
* connects to the address it checked, never to the name again, so a second
  DNS answer (DNS rebinding) cannot redirect it;
* bounds the connection and the answer by ``timeout`` and ``max_bytes``, and
  at most :data:`MAX_CONCURRENT` forwarded queries run at once.

Every line of a remote answer is neutralised and prefixed by the remote host
name, so a reader can always tell local text from remote text. Every failure
becomes one polite answer line: the finger adapter never sees an exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket

from fingerplat.adapters.proxy.client import finger
from fingerplat.config import ForwardingConfig
from fingerplat.domain.addresses import unmapped
from fingerplat.domain.errors import FingerplatError, InvalidInput, PermissionDenied, Unavailable
from fingerplat.domain.text import printable
from fingerplat.metrics import Metrics

log = logging.getLogger("fingerplat.proxy")

ADAPTER = "proxy"
# Forwarded queries in flight at once; past this the query is refused at once.
MAX_CONCURRENT = 32

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Underscores are not valid in host names but are seen in the wild; accept them.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def parse_host(text: str) -> str:
    """A host name or IP literal from a query, lower-cased; anything else is refused."""
    host = text.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME_RE.fullmatch(host):
        raise InvalidInput(f"invalid host name {printable(text[:80])!r}")
    return host.rstrip(".")


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached from the public internet, or None when it may."""
    address = unmapped(address)
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    if not address.is_global:
        return "non-public"
    return None


class Forwarder:
    """The proxy handed to the finger adapter: ``await forwarder(user, hosts, verbose)``."""

    def __init__(self, settings: ForwardingConfig, *, metrics: Metrics) -> None:
        self.metrics = metrics
        self.reconfigure(settings)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    def reconfigure(self, settings: ForwardingConfig) -> None:
        """SIGHUP: new settings apply to the next forwarded query."""
        self.settings = settings
        self.allow: list[IPNetwork] = [
            ipaddress.ip_network(item, strict=False) for item in settings.allow
        ]

    async def __call__(self, user: str, hosts: list[str], verbose: bool) -> list[str]:
        """Answer ``user@hosts[0]@...@hosts[-1]`` by asking the last host.

        ``hosts`` are in query order. Per RFC 1288 the query is passed on hop
        by hop: we connect to the LAST host and send it ``user@h1@...`` with
        the remaining hosts, so each server forwards one step.
        """
        label = printable(hosts[-1][:80]) if hosts else "forwarding"
        if self._slots.locked():
            log.warning("forwarding %r to %r refused: %d queries already in flight",
                        user, hosts, MAX_CONCURRENT)
            self.metrics.refused.labels(ADAPTER, "busy").inc()
            return [f"[{label}] forwarding is busy, please try again later"]
        async with self._slots:
            try:
                with self.metrics.observe(ADAPTER):
                    return await self._forward(user, hosts, verbose)
            except FingerplatError as error:
                log.info("forwarding %r to %r failed: %s", user, hosts, error)
                return [f"[{label}] forwarding failed: {printable(str(error))}"]
            except Exception:
                log.exception("forwarding %r to %r failed unexpectedly", user, hosts)
                return [f"[{label}] forwarding failed: internal error"]

    async def _forward(self, user: str, hosts: list[str], verbose: bool) -> list[str]:
        if not hosts:
            raise InvalidInput("no host to forward to")
        if len(hosts) > self.settings.max_hops:
            raise PermissionDenied(
                f"too many hops ({len(hosts)}); at most {self.settings.max_hops} are allowed"
            )
        names = [parse_host(h) for h in hosts]
        target = names[-1]
        query = "@".join([user, *names[:-1]])
        if verbose:
            query = f"/W {query}"
        address = await self._checked_address(target)
        log.info("forwarding finger query %r to %s (%s) port %d",
                 query, target, address, self.settings.port)
        answer = await finger(
            query, target, self.settings.port, timeout=float(self.settings.timeout),
            max_bytes=self.settings.max_bytes, address=address,
        )
        prefix = f"[{target}]"
        lines = [f"{prefix} {line}" if line else prefix for line in answer.lines]
        if answer.truncated:
            lines.append(f"{prefix} ... answer truncated at {self.settings.max_bytes} bytes")
        if not lines:
            lines.append(f"{prefix} (empty answer)")
        return lines

    def _allowed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allow)

    async def _checked_address(self, host: str) -> str:
        """Resolve ``host`` and return the first address we may connect to."""
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, self.settings.port, type=socket.SOCK_STREAM),
                timeout=float(self.settings.timeout),
            )
        except TimeoutError:
            raise Unavailable(f"resolving {host} took too long") from None
        except OSError:
            raise Unavailable(f"cannot resolve host {host!r}") from None
        refused: list[tuple[str, str]] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            text = str(sockaddr[0]).split("%", 1)[0]
            address = ipaddress.ip_address(text)
            reason = blocked_reason(address)
            if reason is None or self._allowed(address):
                return str(address)
            refused.append((str(address), reason))
        log.warning("refused forwarding to %s: %s", host,
                    ", ".join(f"{a} is {r}" for a, r in refused))
        self.metrics.refused.labels(ADAPTER, "address").inc()
        kinds = sorted({r for _, r in refused})
        raise PermissionDenied(
            f"{host} resolves to a {'/'.join(kinds)} address, which is not allowed"
        )
