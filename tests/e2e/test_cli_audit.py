"""``fingerplat audit`` through the real command: tenant identity and the hash chain."""

from __future__ import annotations

import json

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat


async def _reuse_slug(service: FingerplatService, operator: Context) -> None:
    """What ``fingerplat tenant add/remove`` and ``user add/set`` do, as the operator."""
    await service.tenants.create_tenant(operator, "beta")
    await service.users.add_user(operator, "beta", "ghost", hidden=True)
    await service.users.set_status(operator, "beta", "ghost", "in the vault")
    await service.tenants.remove_tenant(operator, "beta")
    await service.tenants.create_tenant(operator, "beta")


async def test_a_reused_slug_sees_only_its_own_audit_and_the_operator_sees_the_old_one(
    cli: Fingerplat, service: FingerplatService, operator: Context
) -> None:
    await _reuse_slug(service, operator)
    mine = cli("audit", "--tenant", "beta", ok=True).stdout
    assert "tenant.create" in mine
    assert "ghost" not in mine and "tenant.remove" not in mine and "(removed)" not in mine
    events = json.loads(cli("audit", "--tenant", "beta", "--json", ok=True).stdout)
    assert [e["action"] for e in events] == ["tenant.create"]
    everything = cli("audit", "--all", "--limit", "1000", ok=True).stdout
    old_lines = [line for line in everything.splitlines() if "beta (removed)" in line]
    assert any("ghost@beta" in line for line in old_lines), everything
    assert any("tenant.remove" in line for line in old_lines), everything
    records = json.loads(cli("audit", "--all", "--json", "--limit", "1000", ok=True).stdout)
    removed = [r for r in records if r["tenant"] == "beta" and r["tenant_removed"]]
    assert {r["action"] for r in removed} >= {"user.create", "status.set", "tenant.remove"}


async def test_audit_verify_exits_0_when_intact_and_1_naming_an_altered_event(
    cli: Fingerplat, database_url: str, service: FingerplatService, operator: Context
) -> None:
    from sqlalchemy import text

    from fingerplat.repository.engine import create_engine

    await service.tenants.create_tenant(operator, "acme")
    await service.users.add_user(operator, "acme", "alice")
    await service.users.add_user(operator, None, "bob")
    result = cli("audit", "verify", ok=True)
    assert result.stdout.splitlines()[-1] == "3 events verified"
    assert cli("audit", "verify", "--tenant", "acme", ok=True).stdout.splitlines()[-1] == \
        "2 events verified"
    [alice] = json.loads(cli("audit", "--tenant", "acme", "--user", "alice", "--json",
                             ok=True).stdout)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:  # as the schema owner, trigger out of the way
            if conn.dialect.name == "sqlite":
                await conn.execute(text("DROP TRIGGER audit_events_no_update"))
            else:
                await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            await conn.execute(text("UPDATE audit_events SET actor = 'cli:nobody' WHERE id = :id"),
                               {"id": alice["id"]})
    finally:
        await engine.dispose()
    for args in (("audit", "verify"), ("audit", "verify", "--tenant", "acme")):
        broken = cli(*args)
        assert broken.returncode == 1, broken
        assert f"event {alice['id']} was altered" in broken.stderr
        assert f"event {alice['id']} was altered" in broken.stdout
    # The default tenant's chain is still fine on its own.
    assert cli("audit", "verify", "--tenant", "default", ok=True).stdout.splitlines()[-1] == \
        "1 events verified"
