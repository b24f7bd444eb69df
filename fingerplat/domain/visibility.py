"""What a tenant shows the public, and to which networks (SPEC section 13).

Public fields: a tenant may leave some of a user's fields out of every
public answer. :func:`public_view` blanks them in the user value itself, so
no adapter can leak a field by forgetting a check; renderers additionally
ask :meth:`Tenant.shows` to leave the line or key out rather than print it
empty.

Networks: a :class:`NetworkPolicy` is built once per tenant (when the tenant
row is read), holding parsed networks, so a check is a few integer
comparisons; a tenant without networks has ``networks = None`` and pays one
attribute read.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from fingerplat.domain.addresses import client_ip
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import User

PUBLIC_FIELDS: tuple[str, ...] = (
    "full_name", "office", "phone", "project", "status", "plan", "history",
)
MAX_NETWORKS = 200
_MAX_VERDICTS = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def public_fields(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """A comma list (or list) of field names, in canonical order; None: all fields.

    The empty list is allowed (nothing but the login is public).
    """
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen: set[str] = set()
    for raw in names:
        if not isinstance(raw, str):
            raise InvalidInput("public fields must be names")
        name = raw.strip().lower()
        if not name:
            continue
        if name not in PUBLIC_FIELDS:
            raise InvalidInput(
                f"unknown public field {raw.strip()[:40]!r}: choose from {','.join(PUBLIC_FIELDS)}"
            )
        chosen.add(name)
    fields = tuple(f for f in PUBLIC_FIELDS if f in chosen)
    return None if fields == PUBLIC_FIELDS else fields


def public_view(user: User, fields: frozenset[str] | None) -> User:
    """``user`` with every field the tenant does not publish blanked."""
    if fields is None:
        return user
    changes: dict[str, object] = {}
    for name in ("full_name", "office", "phone", "project", "plan"):
        if name not in fields and getattr(user, name):
            changes[name] = ""
    if "status" not in fields and (user.status is not None or user.status_set_at is not None):
        changes.update(status=None, status_set_at=None, status_expires_at=None)
    return dataclasses.replace(user, **changes) if changes else user


def shows_history(fields: frozenset[str] | None) -> bool:
    """History reveals past statuses: public only when both are."""
    return fields is None or ("history" in fields and "status" in fields)


# -- networks -----------------------------------------------------------------

def network(value: str) -> str:
    """A CIDR network (IPv4 or IPv6) in canonical form; a bare address is a /32 or /128."""
    text = (value or "").strip()
    try:
        if len(text) > 64:
            raise ValueError
        parsed = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidInput(
            f"invalid network {text[:64]!r}: expected a CIDR like 192.0.2.0/24 or 2001:db8::/32"
        ) from None
    return str(parsed)


def networks(values: Iterable[str]) -> list[str]:
    return sorted({network(v) for v in values}, key=_order)


def _order(text: str) -> tuple[int, int, int]:
    parsed = ipaddress.ip_network(text)
    return (parsed.version, int(parsed.network_address), parsed.prefixlen)


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """A tenant's trusted and rejected networks, parsed once.

    ``rejects`` runs on every kept finger answer of a tenant with rejected
    networks, so its verdicts are memoised per client address (a dict
    lookup instead of address parsing and network tests; bounded).
    """

    trusted: tuple[Network, ...]
    rejected: tuple[Network, ...]
    _verdicts: dict[str | None, bool] = dataclasses.field(
        default_factory=dict, compare=False, repr=False)

    def rejects(self, address: str | None) -> bool:
        """Whether a client at ``address`` is refused everything of this tenant."""
        verdict = self._verdicts.get(address)
        if verdict is None:
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            ip = _address(address)
            verdict = self._verdicts[address] = ip is not None and any(
                ip in net for net in self.rejected if net.version == ip.version)
        return verdict

    def lists_to(self, address: str | None) -> bool:
        """Whether a client at ``address`` may have the tenant's user list."""
        if not self.trusted:
            return True
        ip = _address(address)
        return ip is not None and any(ip in net for net in self.trusted
                                      if net.version == ip.version)


def network_policy(trusted: Iterable[str] | None,
                   rejected: Iterable[str] | None) -> NetworkPolicy | None:
    """The policy of a tenant; None when it has no networks at all."""
    t = tuple(ipaddress.ip_network(n, strict=False) for n in trusted or ())
    r = tuple(ipaddress.ip_network(n, strict=False) for n in rejected or ())
    return NetworkPolicy(t, r) if t or r else None


# Per query on tenants with networks: parsed once per address seen lately.
_address = lru_cache(maxsize=4096)(client_ip)
