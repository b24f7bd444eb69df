"""The service: every use case of fingerplat behind one object.

Adapters receive one :class:`FingerplatService` from the composition root and
call it with a :class:`~fingerplat.domain.model.Context` naming who acts.
"""

from __future__ import annotations

from sqlalchemy import text

from fingerplat.domain.errors import SchemaOutOfDate, Unavailable
from fingerplat.repository import migrations
from fingerplat.repository.uow import translate_db_error
from fingerplat.service.activity import ActivityUseCases
from fingerplat.service.audit_log import AuditUseCases
from fingerplat.service.cached_reads import CachedPublicReads
from fingerplat.service.credentials import CredentialUseCases
from fingerplat.service.finger_log import FingerLogUseCases
from fingerplat.service.imports import ImportUseCases
from fingerplat.service.pseudo_users import PseudoUserUseCases
from fingerplat.service.self_service import SelfServiceUseCases
from fingerplat.service.tenants import TenantUseCases
from fingerplat.service.users import UserUseCases
from fingerplat.service.web_sessions import WebSessionUseCases


class FingerplatService(
    CachedPublicReads,  # first: its public reads wrap the use cases' (super())
    TenantUseCases, UserUseCases, CredentialUseCases, AuditUseCases, ImportUseCases,
    ActivityUseCases, WebSessionUseCases, SelfServiceUseCases,
    PseudoUserUseCases, FingerLogUseCases,  # issue 16
):
    async def check_health(self) -> None:
        """Raise :class:`Unavailable` unless the database answers a query."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as error:
            mapped = translate_db_error(error)
            raise (mapped or Unavailable("database check failed")) from error

    async def check_schema(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the schema is at this release's head."""
        try:
            current = await migrations.current_revision(self.engine)
        except Exception as error:
            mapped = translate_db_error(error)
            if mapped is not None:
                raise mapped from error
            raise
        head = migrations.head_revision()
        if current != head:
            raise SchemaOutOfDate(
                f"database schema is at revision {current or 'none'}, this release needs {head}: "
                "run `fingerplat db upgrade`"
            )
