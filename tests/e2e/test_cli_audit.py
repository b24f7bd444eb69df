"""``fingerplat audit`` through the real command: tenant identity and the hash chain."""

from __future__ import annotations

import json

from tests.e2e.conftest import Fingerplat


def _reuse_slug(cli: Fingerplat) -> None:
    cli("tenant", "add", "beta", ok=True)
    cli("user", "add", "ghost", "--tenant", "beta", "--hidden", ok=True)
    cli("user", "set", "ghost", "--tenant", "beta", "in the vault", ok=True)
    cli("tenant", "remove", "beta", "--yes", ok=True)
    cli("tenant", "add", "beta", ok=True)


def test_a_reused_slug_sees_only_its_own_audit_and_the_operator_sees_the_old_one(
    cli: Fingerplat,
) -> None:
    _reuse_slug(cli)
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
