"""The rules of the authentication throttle, without storage (SPEC section 11).

One throttle guards every way in (setter ``AUTH``, JSON API bearer tokens,
XML-RPC Basic tokens, the admin login). It keeps fixed-window counters under
two kinds of key:

- the **address** (``addr:192.0.2.7``; an IPv6 client by its /64, a local
  UNIX-socket peer by its uid): every failed or refused authentication from
  there, and every anonymous refusal (a ``SET`` without ``AUTH``), counts;
- the **account at an address** (``acct:admin:root|addr:192.0.2.7``): the
  guesses against one account from one place.

There is deliberately no key on the account alone: a flood from one address
must never lock the rightful owner out from another (no lock-out weapon).

An attempt is counted *before* its secret is checked (``attempts`` holds the
pending and the failed ones), so parallel guesses cannot all slip in before the
first failure is recorded. A success gives its slot back. Past a key's limit
every attempt is refused unchecked until the window ends.

The same counters keep the audit small: the first ``audit_free`` failures of
an address in a window are written one row each, later ones only counted and
written into ``auth.failures`` summary rows, at most one a minute per address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from fingerplat.domain.addresses import unmapped

ADDRESS_PREFIX = "addr:"
ACCOUNT_PREFIX = "acct:"
KEY_MAX = 200


@dataclass(frozen=True, slots=True)
class Counter:
    """One row of ``auth_throttle``: a key's counts in its current window."""

    key: str
    window_start: datetime
    attempts: int = 0  # pending + failed attempts (the limit applies to these)
    failures: int = 0  # failures and refusals (what the audit reports)
    audited: int = 0  # of those, written one audit row each
    blocked_until: datetime | None = None
    updated_at: datetime | None = None
    last_channel: str | None = None
    summarised_at: datetime | None = None  # when the last auth.failures row was written

    @property
    def clean(self) -> bool:
        return self.attempts == 0 and self.failures == 0


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The numbers. The defaults are documented in docs/security.md."""

    window: timedelta = timedelta(minutes=5)
    account_limit: int = 5  # attempts per (account, address) per window
    address_limit: int = 20  # attempts per address per window, any account
    audit_free: int = 3  # failures per address per window written one row each
    delay_free_account: int = 2  # failed attempts before replies are slowed down
    delay_free_address: int = 10
    delay_base: float = 0.25  # seconds; doubles with each further failure
    delay_max: float = 2.0
    summary_every: timedelta = timedelta(minutes=1)  # at most one summary row this often

    def summary_due(self, counter: Counter, now: datetime) -> bool:
        """Whether the address has unreported failures and may get a summary row now."""
        return unreported(counter) > 0 and (
            counter.summarised_at is None or counter.summarised_at + self.summary_every <= now)

    def expired(self, counter: Counter, now: datetime) -> bool:
        return counter.window_start + self.window <= now

    def window_end(self, counter: Counter) -> datetime:
        return counter.window_start + self.window

    def limit(self, key: str) -> int:
        return self.address_limit if key.startswith(ADDRESS_PREFIX) else self.account_limit

    def over_limit(self, counter: Counter) -> bool:
        return counter.attempts >= self.limit(counter.key)

    def delay(self, account_attempts: int, address_attempts: int) -> float:
        """How long to hold a failed reply: nothing at first, then doubling, capped."""
        over = max(account_attempts - self.delay_free_account,
                   address_attempts - self.delay_free_address)
        if over <= 0:
            return 0.0
        return min(self.delay_max, self.delay_base * 2 ** min(over - 1, 16))


def address_label(remote_addr: str | None) -> str:
    """The unit a client is counted by: its IPv4 address, its IPv6 /64, its local uid.

    An IPv6 host usually owns a whole /64, so counting single addresses would
    give it 2**64 fresh starts.
    """
    text = (remote_addr or "").strip()
    if not text:
        return "unknown"
    if text.startswith("unix:"):
        uid = next((p for p in text[5:].split(",") if p.startswith("uid=")), text[5:])
        return ("unix:" + uid)[:64]
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text[:64]
    ip = unmapped(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def address_key(remote_addr: str | None) -> str:
    return ADDRESS_PREFIX + address_label(remote_addr)


def account_key(kind: str, account: str, remote_addr: str | None) -> str:
    """``acct:<kind>:<account>|addr:<address>``; the account part is bounded."""
    return f"{ACCOUNT_PREFIX}{kind}:{account[:80]}|{address_key(remote_addr)}"[:KEY_MAX]


def restart_if_expired(counter: Counter, now: datetime, policy: ThrottlePolicy) -> Counter:
    """The counter for ``now``: a new, empty window once the old one has ended."""
    if policy.expired(counter, now):
        return Counter(counter.key, now, updated_at=now)
    return counter


def count_failure(counter: Counter, now: datetime, channel: str,
                  policy: ThrottlePolicy) -> tuple[Counter, bool]:
    """One more failure; returns the counter and whether it gets an audit row of its own.

    The first ``audit_free`` failures of a window do; later ones wait for the
    window's summary row.
    """
    own_row = counter.audited < policy.audit_free
    return replace(counter, failures=counter.failures + 1,
                   audited=counter.audited + (1 if own_row else 0), updated_at=now,
                   last_channel=channel), own_row


def unreported(counter: Counter) -> int:
    """Failures of the window not yet in the audit (the summary row's count)."""
    return max(0, counter.failures - counter.audited)
