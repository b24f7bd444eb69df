"""The two-role PostgreSQL set-up of deploy/ (SPEC 11, issue 12 "Beyond the fixes").

As docs/operations.md says: deploy/postgres/roles.sql (psql, as a superuser)
creates the schema owner, the runtime role and the database; ``fingerplat db
upgrade --grant-to`` runs as the owner; the service then runs as the runtime
role. The test does exactly that on the test server, with role and database
names unique to this run (dropped afterwards), then checks that everything the
service does works as the runtime role and that nothing can rewrite the audit
trail: no UPDATE, DELETE, TRUNCATE, ALTER TABLE … DISABLE TRIGGER or DROP
TRIGGER.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from fingerplat.domain.model import AuditQuery, Context
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, base_env
from tests.support.databases import postgres_server_url

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "postgres"


@dataclass
class TwoRoles:
    owner: str
    app: str
    db: str
    owner_url: str
    app_url: str


def _psql(server: str, *args: str, database: str = "postgres", user: str | None = None) -> None:
    url = make_url(server)
    completed = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host or "127.0.0.1",
         "-p", str(url.port or 5432), "-U", user or url.username or "postgres",
         "-d", database, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr


@pytest.fixture
async def two_roles() -> AsyncIterator[TwoRoles]:
    server = postgres_server_url()
    tag = uuid.uuid4().hex[:8]
    names = TwoRoles(f"fp_owner_{tag}", f"fp_app_{tag}", f"fp_roles_{tag}", "", "")
    _psql(server, "-v", f"owner={names.owner}", "-v", f"app={names.app}", "-v",
          f"db={names.db}", "-f", str(DEPLOY / "roles.sql"))
    base = make_url(server)
    names.owner_url = base.set(username=names.owner, database=names.db).render_as_string(
        hide_password=False)
    names.app_url = base.set(username=names.app, database=names.db).render_as_string(
        hide_password=False)
    try:
        yield names
    finally:
        admin = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(
            hide_password=False))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{names.db}" WITH (FORCE)')
            for role in (names.app, names.owner):
                await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await admin.close()


REFUSED = (
    "UPDATE audit_events SET actor = 'someone else'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    "DROP TRIGGER audit_events_append_only ON audit_events",
    "DROP TABLE audit_events",
    "ALTER TABLE audit_events ADD COLUMN x int",
    "INSERT INTO alembic_version VALUES ('9999')",
    "CREATE TABLE sneaky (id int)",
)


async def test_the_runtime_role_serves_but_cannot_rewrite_the_audit(
    two_roles: TwoRoles, tmp_path: Path, operator: Context
) -> None:
    env = base_env(tmp_path)
    owner_cli = Fingerplat({**env, "FINGERPLAT_DATABASE_URL": two_roles.owner_url}, tmp_path)
    app_cli = Fingerplat({**env, "FINGERPLAT_DATABASE_URL": two_roles.app_url}, tmp_path)
    # Before the upgrade the runtime role cannot create the schema.
    app_cli("db", "upgrade", ok=False)
    result = owner_cli("db", "upgrade", "--grant-to", two_roles.app, ok=True)
    assert "grants for runtime role" in result.stdout
    # grants.sql is the same thing by hand, and may be run again at any time.
    _psql(postgres_server_url(), "-v", f"app={two_roles.app}", "-f",
          str(DEPLOY / "grants.sql"), database=two_roles.db, user=two_roles.owner)

    # Everyday operations as the runtime role, through the real command…
    app_cli("db", "current", ok=True)
    app_cli("tenant", "add", "acme", ok=True)
    app_cli("user", "add", "alice", "--tenant", "acme", ok=True)
    app_cli("user", "set", "alice", "--tenant", "acme", "at work", ok=True)
    assert "user.create" in app_cli("audit", "--tenant", "acme", ok=True).stdout
    assert app_cli("audit", "verify", ok=True).stdout.splitlines()[-1].endswith(
        "events verified")

    # … and through the service as `serve` uses it.
    service = FingerplatService(create_engine(two_roles.app_url))
    try:
        await service.check_schema()  # what serve does first on PostgreSQL
        await service.users.add_user(operator, "acme", "bob")
        await service.users.set_status(operator, "acme", "bob", "here")
        await service.users.remove_user(operator, "acme", "alice")
        events = await service.audit.audit_log(operator, AuditQuery(tenant="acme"))
        assert [e.action for e in events][:2] == ["user.remove", "status.set"]
        assert all(r.intact for r in await service.audit.verify_audit(operator))
    finally:
        await service.engine.dispose()

    conn = await asyncpg.connect(make_url(two_roles.app_url).set(
        drivername="postgresql").render_as_string(hide_password=False))
    try:
        # The tables of sessions and throttles are usable.
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO auth_throttle (key, window_start, attempts, failures, audited, "
            "updated_at) VALUES ('addr:192.0.2.1', $1, 1, 1, 0, $1)", now)
        await conn.execute("UPDATE auth_throttle SET attempts = 2")
        await conn.execute("DELETE FROM auth_throttle")
        await conn.execute(
            "INSERT INTO web_sessions (token_hash, kind, csrf_secret, created_at, last_seen_at,"
            " expires_at) VALUES ('h', 'admin', 's', $1, $1, $2)", now, now + timedelta(1))
        await conn.execute("DELETE FROM web_sessions")
        await conn.execute("SELECT pg_notify('fingerplat_changes', '{}')")
        # Nothing rewrites the audit trail.
        for statement in REFUSED:
            with pytest.raises(asyncpg.PostgresError) as refused:
                await conn.execute(statement)
            assert refused.value.sqlstate in ("42501", "42P01"), (statement, refused.value)
    finally:
        await conn.close()
    assert app_cli("audit", "verify", ok=True).returncode == 0
