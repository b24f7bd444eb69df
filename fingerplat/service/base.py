"""What every use case shares: transactions, the clock, auditing and denial."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain import rules
from fingerplat.domain.errors import InvalidInput, NotFound, PermissionDenied, UserNotFound
from fingerplat.domain.model import ChangeEvent, Context, Tenant, User
from fingerplat.repository.sql import Repository
from fingerplat.repository.uow import UnitOfWork
from fingerplat.service.events import EventBus

log = logging.getLogger("fingerplat.service")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ServiceBase:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        events: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.events = events or EventBus()
        self.clock = clock

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)

    # -- auditing --------------------------------------------------------------

    async def _audit(
        self,
        repo: Repository,
        ctx: Context,
        action: str,
        target: str,
        *,
        tenant: str | None,
        username: str | None = None,
        outcome: str = "ok",
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        detail: str = "",
    ) -> None:
        await repo.add_audit(
            at=self.clock(),
            tenant=tenant,
            actor=ctx.principal.name[:200],
            channel=ctx.channel.value,
            action=action,
            target=target[:300],
            username=username,
            outcome=outcome,
            before=before,
            after=after,
            remote_addr=(ctx.remote_addr or None) and ctx.remote_addr[:100],
            detail=detail[:500],
        )

    async def _deny(
        self,
        ctx: Context,
        action: str,
        target: str,
        *,
        tenant: str | None,
        username: str | None = None,
        message: str,
        error: type[Exception] = PermissionDenied,
    ) -> NoReturn:
        """Record a refused attempt in its own transaction, then refuse."""
        async with self.uow() as repo:
            await self._audit(
                repo, ctx, action, target, tenant=tenant, username=username,
                outcome="denied", detail=message,
            )
        log.info("denied %s on %s for %s: %s", action, target, ctx.principal.name, message)
        raise error(message)

    async def _publish(self, event: ChangeEvent) -> None:
        await self.events.publish(event)

    # -- lookups shared by the use cases ---------------------------------------

    async def _tenant(self, repo: Repository, name: str | None) -> Tenant:
        """A tenant by slug or domain; ``None`` means the default tenant."""
        if name is None or name == "":
            tenant = await repo.default_tenant()
            if tenant is None:
                raise NotFound("no default tenant: run `fingerplat db upgrade`")
            return tenant
        key = name.strip().lower()
        tenant = await repo.tenant_by_slug(key)
        if tenant is None and "." in key:
            tenant = await repo.tenant_by_domain(key.rstrip("."))
        if tenant is None:
            raise NotFound(f"no such tenant: {name[:63]!r}")
        return tenant

    async def _user(self, repo: Repository, tenant: Tenant, name: str) -> User:
        username = rules.username(name)
        user = await repo.user(tenant.id, username)
        if user is None:
            raise UserNotFound(username, tenant.slug)
        return user


def user_target(username: str, tenant: Tenant) -> str:
    return f"{username}@{tenant.slug}"


def require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidInput(message)
