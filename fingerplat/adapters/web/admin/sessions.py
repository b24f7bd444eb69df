"""Server-side admin sessions kept in memory, with their CSRF tokens.

Why in memory: sessions are short-lived, a restart logging admins out is
acceptable, and keeping the state on the server means the cookie carries
nothing but a random id (no signing key to manage, nothing to forge). Every
session, even the anonymous one the login form gets, has its own CSRF token
(the synchroniser-token pattern), so the login form is protected too.

The store is bounded: when full, expired sessions are dropped first and then
the oldest anonymous ones, so a flood of login-page visits cannot grow memory
without limit or push logged-in admins out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fingerplat.domain.model import Principal

# An admin session ends after this much inactivity, and in any case after MAX_AGE.
IDLE_TIMEOUT = 2 * 60 * 60.0
MAX_AGE = 12 * 60 * 60.0
# The anonymous session behind the login form lives shortly.
ANONYMOUS_TIMEOUT = 30 * 60.0
MAX_SESSIONS = 10_000
FLASH_MAX = 5


@dataclass(slots=True)
class Session:
    """One browser's state: who is logged in (or nobody), its CSRF token, flash messages."""

    id: str
    csrf_token: str
    created: float
    last_seen: float
    principal: Principal | None = None
    # A tenant admin's tenant slug, shown in the navigation.
    home_tenant: str | None = None
    # A just-created token's secret, shown by the next page and then forgotten.
    secret_once: str | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def authenticated(self) -> bool:
        return self.principal is not None

    def csrf_matches(self, presented: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed byte by byte."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf_token.encode())

    def flash(self, kind: str, message: str) -> None:
        """A one-shot message shown on the next page (after a redirect)."""
        self.flashes = [*self.flashes, (kind, message)][-FLASH_MAX:]

    def take_secret(self) -> str | None:
        shown, self.secret_once = self.secret_once, None
        return shown

    def take_flashes(self) -> list[tuple[str, str]]:
        shown, self.flashes = self.flashes, []
        return shown


def _new_id() -> str:
    return secrets.token_urlsafe(32)


class SessionStore:
    """A dict of random session ids to :class:`Session`, with expiry and a size bound."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        max_age: float = MAX_AGE,
        anonymous_timeout: float = ANONYMOUS_TIMEOUT,
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._clock = clock
        self._max = max_sessions
        self._idle = idle_timeout
        self._max_age = max_age
        self._anon = anonymous_timeout

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, s: Session, now: float) -> bool:
        idle = self._idle if s.authenticated else self._anon
        return now - s.last_seen > idle or now - s.created > self._max_age

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, touching it; None when unknown or expired."""
        if not session_id or len(session_id) > 100:
            return None
        s = self._sessions.get(session_id)
        if s is None:
            return None
        now = self._clock()
        if self._expired(s, now):
            del self._sessions[session_id]
            return None
        s.last_seen = now
        return s

    def create(self, principal: Principal | None = None) -> Session:
        now = self._clock()
        if len(self._sessions) >= self._max:
            self._make_room(now)
        s = Session(id=_new_id(), csrf_token=secrets.token_urlsafe(32), created=now,
                    last_seen=now, principal=principal)
        self._sessions[s.id] = s
        return s

    def login(self, old: Session | None, principal: Principal) -> Session:
        """A fresh session (new id and CSRF token) for a principal: no session fixation."""
        if old is not None:
            self._sessions.pop(old.id, None)
        return self.create(principal)

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def drop_principal(self, principal_name: str) -> int:
        """End every session of an admin (after the account is removed here)."""
        doomed = [k for k, s in self._sessions.items()
                  if s.principal is not None and s.principal.name == principal_name]
        for k in doomed:
            del self._sessions[k]
        return len(doomed)

    def _make_room(self, now: float) -> None:
        for k in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[k]
        if len(self._sessions) < self._max:
            return
        anonymous = sorted((s.last_seen, k) for k, s in self._sessions.items()
                           if not s.authenticated)
        for _, k in anonymous[: max(1, len(anonymous) // 2)]:
            del self._sessions[k]
        if len(self._sessions) >= self._max:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.id]
