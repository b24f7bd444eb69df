"""SQL for web sessions, shared server keys and user passwords (no rules here).

A mixin of :class:`~fingerplat.repository.sql.Repository`, kept in its own
module so the session queries sit together. The session lookup is one
indexed statement (the unique ``token_hash``) that also reads the account
behind the session, so a request costs one round trip and a removed account
is noticed on the very next request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from fingerplat.repository.dialects import upsert_insert
from fingerplat.repository.schema import admins, server_keys, tenants, users, web_sessions

_admin_tenants = tenants.alias("admin_tenants")
_user_tenants = tenants.alias("user_tenants")

# Built once: it runs on every admin and self-service request.
_SESSION_BY_HASH = (
    select(
        web_sessions,
        admins.c.name.label("admin_name"),
        admins.c.tenant_id.label("admin_tenant_id"),
        _admin_tenants.c.slug.label("admin_tenant_slug"),
        users.c.username.label("username"),
        users.c.tenant_id.label("user_tenant_id"),
        _user_tenants.c.slug.label("user_tenant_slug"),
    )
    .select_from(
        web_sessions.outerjoin(admins, admins.c.id == web_sessions.c.admin_id)
        .outerjoin(_admin_tenants, _admin_tenants.c.id == admins.c.tenant_id)
        .outerjoin(users, users.c.id == web_sessions.c.user_id)
        .outerjoin(_user_tenants, _user_tenants.c.id == users.c.tenant_id)
    )
    .where(web_sessions.c.token_hash == bindparam("token_hash"))
)


class WebSessionQueries:
    conn: AsyncConnection

    async def add_web_session(self, **values: Any) -> int:
        result = await self.conn.execute(insert(web_sessions).values(**values))
        return int(result.inserted_primary_key[0])

    async def web_session(self, token_hash: str) -> RowMapping | None:
        """The session row with its account's current name and tenant (None: no such row)."""
        rows = await self.conn.execute(_SESSION_BY_HASH, {"token_hash": token_hash})
        return rows.mappings().first()

    async def touch_web_session(self, session_id: int, last_seen_at: datetime,
                                expires_at: datetime) -> None:
        await self.conn.execute(
            update(web_sessions).where(web_sessions.c.id == session_id)
            .values(last_seen_at=last_seen_at, expires_at=expires_at)
        )

    async def set_web_session_data(self, session_id: int, data: dict[str, Any] | None) -> None:
        await self.conn.execute(
            update(web_sessions).where(web_sessions.c.id == session_id).values(data=data)
        )

    async def remove_web_session(self, token_hash: str) -> None:
        await self.conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash))

    async def remove_web_session_by_id(self, session_id: int) -> None:
        await self.conn.execute(delete(web_sessions).where(web_sessions.c.id == session_id))

    async def remove_user_web_sessions(self, user_id: int) -> int:
        result = await self.conn.execute(
            delete(web_sessions).where(web_sessions.c.user_id == user_id)
        )
        return int(result.rowcount or 0)

    async def purge_web_sessions(self, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` expired sessions (oldest expiry first); how many went.

        Bounded so that a purge after a long quiet spell never holds locks for long.
        """
        doomed = (
            select(web_sessions.c.id).where(web_sessions.c.expires_at < now)
            .order_by(web_sessions.c.expires_at).limit(limit)
        )
        result = await self.conn.execute(
            delete(web_sessions).where(web_sessions.c.id.in_(doomed.scalar_subquery()))
        )
        return int(result.rowcount or 0)

    # -- keys shared by every worker and node ------------------------------------

    async def server_key(self, name: str) -> str | None:
        rows = await self.conn.execute(
            select(server_keys.c.value).where(server_keys.c.name == name)
        )
        return rows.scalar_one_or_none()

    async def add_server_key(self, name: str, value: str, now: datetime) -> None:
        """Insert unless another process got there first (then its key stays)."""
        stmt = upsert_insert(self.conn)(server_keys).values(name=name, value=value, created_at=now)
        await self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

    # -- user passwords (self-service) --------------------------------------------

    async def user_password_hash(self, user_id: int) -> str | None:
        rows = await self.conn.execute(
            select(users.c.password_hash).where(users.c.id == user_id)
        )
        return rows.scalar_one_or_none()

    async def set_user_password(self, user_id: int, password_hash: str | None) -> None:
        await self.conn.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )

    # -- the tenant's self-service setting ------------------------------------------

    async def tenant_self_edit_fields(self, tenant_id: int) -> object:
        """The stored JSON (a list of field names) or None for the default."""
        rows = await self.conn.execute(
            select(tenants.c.self_edit_fields).where(tenants.c.id == tenant_id)
        )
        return rows.scalar_one_or_none()

    async def set_tenant_self_edit_fields(self, tenant_id: int, fields: list[str]) -> None:
        await self.conn.execute(
            update(tenants).where(tenants.c.id == tenant_id).values(self_edit_fields=fields)
        )
