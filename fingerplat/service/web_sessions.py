"""Web sessions in the database: the admin UI's and the self-service page's.

Why the database: every worker of ``serve --workers N`` and every node on one
PostgreSQL must accept a login made on any other, and a restart or a rolling
upgrade must log nobody out (SPEC section 12). The browser holds a random
256-bit token; only its SHA-256 hash is stored, so a copy of the database
cannot be replayed as a cookie.

Cost: one indexed lookup per request (the token hash), which also reads the
account behind the session, so a removed account ends its sessions on the
next request even before the foreign key's cascade has removed the row. The
last-seen time is written at most once a minute per session. Expired
sessions are deleted in bounded batches whenever a session starts and by
serve's periodic sweeper (server/auth_sweeper.py), and one by one when they
are presented.

Anonymous visitors get no session at all: the login forms are protected by a
signed double-submit cookie whose key (:meth:`shared_key`) is the only
server-side state, one row for the whole platform.
"""

from __future__ import annotations

import secrets as pysecrets
from datetime import datetime, timedelta
from typing import Any

from fingerplat.domain.model import Principal, Role, WebSession
from fingerplat.service import credential_crypto
from fingerplat.service.base import UseCase
from fingerplat.service.ports import Repository

ADMIN = "admin"
USER = "user"
# A session ends after this much inactivity, and in any case MAX_AGE after login.
IDLE_TIMEOUT = timedelta(hours=2)
MAX_AGE = timedelta(hours=12)
# last_seen_at is written at most this often (the idle limit is this precise).
TOUCH_EVERY = timedelta(minutes=1)
# Expired sessions deleted per login, at most.
PURGE_BATCH = 500
# The name of the key that signs the login forms' CSRF cookies.
LOGIN_FORM_KEY = "login-form-csrf"


def _expiry(created_at: datetime, last_seen_at: datetime) -> datetime:
    return min(created_at + MAX_AGE, last_seen_at + IDLE_TIMEOUT)


def _principal(row: Any) -> tuple[Principal, str | None] | None:
    """The acting principal, built from the account's current row; None when it is gone."""
    if row["kind"] == ADMIN:
        if row["admin_name"] is None:
            return None
        tenant_id = row["admin_tenant_id"]
        role = Role.TENANT_ADMIN if tenant_id is not None else Role.PLATFORM_ADMIN
        return (Principal(role, f"admin:{row['admin_name']}", tenant_id=tenant_id,
                          admin_id=row["admin_id"]), row["admin_tenant_slug"])
    if row["kind"] == USER:
        if row["username"] is None:
            return None
        return (Principal(Role.USER, f"user:{row['username']}",
                          tenant_id=row["user_tenant_id"], user_id=row["user_id"]),
                row["user_tenant_slug"])
    return None


class WebSessionUseCases(UseCase):
    _shared_keys: dict[str, bytes] | None = None

    async def start_web_session(self, principal: Principal) -> tuple[str, WebSession]:
        """A new session for a just-authenticated admin or user: (cookie token, session).

        Always a fresh token and CSRF secret, so nothing chosen before the
        login (session fixation) survives it.
        """
        if principal.admin_id is not None:
            kind, values = ADMIN, {"admin_id": principal.admin_id}
        elif principal.role is Role.USER and principal.user_id is not None:
            kind, values = USER, {"user_id": principal.user_id}
        else:
            raise ValueError(f"no web session for {principal.name}")
        token = credential_crypto.new_session_token()
        now = self.clock()
        async with self._uow() as repo:
            await repo.purge_web_sessions(now, PURGE_BATCH)
            await repo.add_web_session(
                token_hash=credential_crypto.hash_token_secret(token), kind=kind,
                csrf_secret=pysecrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                expires_at=_expiry(now, now), data=None, **values,
            )
            row = await repo.web_session(credential_crypto.hash_token_secret(token))
        assert row is not None
        found = _principal(row)
        assert found is not None
        return token, self._session(row, *found)

    @staticmethod
    def _session(row: Any, principal: Principal, home: str | None) -> WebSession:
        return WebSession(
            id=row["id"], kind=row["kind"], principal=principal, csrf_secret=row["csrf_secret"],
            created_at=row["created_at"], last_seen_at=row["last_seen_at"],
            expires_at=row["expires_at"], home_tenant=home, data=dict(row["data"] or {}),
        )

    async def web_session(self, token: str | None, kind: str) -> WebSession | None:
        """The live session of ``kind`` this cookie token names, or None.

        None for an unknown, expired or other-kind token, and for a session
        whose account was removed (or removed and created again: the new
        account has a new id).
        """
        if not token or len(token) > 100:
            return None
        token_hash = credential_crypto.hash_token_secret(token)

        async def fetch(repo: Repository) -> Any:
            return await repo.web_session(token_hash)

        row = await self._read(fetch)
        if row is None or row["kind"] != kind:
            return None
        now = self.clock()
        found = _principal(row)
        if found is None or row["expires_at"] <= now:
            async with self._uow() as repo:
                await repo.remove_web_session_by_id(row["id"])
            return None
        session = self._session(row, *found)
        if now - row["last_seen_at"] >= TOUCH_EVERY:
            expires = _expiry(row["created_at"], now)
            async with self._uow() as repo:
                await repo.touch_web_session(row["id"], now, expires)
        return session

    async def save_web_session_data(self, session: WebSession, data: dict[str, Any]) -> None:
        """Store the session's flash messages and sealed secret (empty: clear them)."""
        async with self._uow() as repo:
            await repo.set_web_session_data(session.id, data or None)

    async def end_web_session(self, token: str | None) -> None:
        """Log out: the row goes, so the cookie is worthless everywhere at once."""
        if token and len(token) <= 100:
            async with self._uow() as repo:
                await repo.remove_web_session(credential_crypto.hash_token_secret(token))

    async def purge_web_sessions(self, limit: int = PURGE_BATCH) -> int:
        """Delete up to ``limit`` expired sessions; how many were deleted."""
        async with self._uow() as repo:
            return await repo.purge_web_sessions(self.clock(), limit)

    async def shared_key(self, name: str = LOGIN_FORM_KEY) -> bytes:
        """A random 256-bit key that every worker and node shares, made once.

        Stored in the database (table ``server_keys``) by whichever process
        needs it first; the others read that one (an insert that loses the race
        changes nothing). Kept in memory after the first read.
        """
        cache = self._shared_keys
        if cache is None:
            cache = self._shared_keys = {}
        key = cache.get(name)
        if key is not None:
            return key
        async with self._uow() as repo:
            value = await repo.server_key(name)
            if value is None:
                await repo.add_server_key(name, pysecrets.token_hex(32), self.clock())
                value = await repo.server_key(name)
        assert value is not None
        key = cache[name] = bytes.fromhex(value)
        return key
