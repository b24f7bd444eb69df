"""``user set --for/--until`` and the tenant settings of SPEC section 13, via the real command."""

from __future__ import annotations

import json

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, one_error_line


async def test_expiring_status_and_tenant_settings(
    cli: Fingerplat, service: FingerplatService, operator: Context
) -> None:
    await service.users.add_user(operator, None, "alice")
    result = cli("user", "set", "alice", "at lunch", "--for", "1h30m", ok=True)
    assert result.stdout.startswith("alice: at lunch (until 20")
    shown = json.loads(cli("user", "show", "alice", "--json", ok=True).stdout)
    assert shown["status"] == "at lunch" and shown["status_expires_at"]
    history = json.loads(cli("user", "history", "alice", "--json", ok=True).stdout)
    assert history[0]["expires_at"] == shown["status_expires_at"]

    for args, message in [
        (("--for", "90x"), "invalid duration '90x'"),
        (("--until", "25:00"), "invalid time '25:00'"),
        (("--for", "1h", "--until", "14:00"), "either --for or --until"),
    ]:
        failed = cli("user", "set", "alice", "gone", *args)
        assert failed.returncode == 2 and message in one_error_line(failed)
    assert json.loads(cli("user", "show", "alice", "--json").stdout)["status"] == "at lunch"

    cli("tenant", "set", "default", "--timezone", "Europe/Paris",
        "--public-fields", "status,plan", "--add-trusted-network", "10.0.0.0/8",
        "--add-rejected-network", "2001:db8::/32", "--add-rejected-network", "192.0.2.1",
        ok=True)
    cli("tenant", "set", "default", "--remove-rejected-network", "192.0.2.1/32", ok=True)
    settings = json.loads(cli("tenant", "show", "default", "--json", ok=True).stdout)
    assert settings["timezone"] == "Europe/Paris"
    assert settings["public_fields"] == ["status", "plan"]
    assert settings["trusted_networks"] == ["10.0.0.0/8"]
    assert settings["rejected_networks"] == ["2001:db8::/32"]
    text = cli("tenant", "show", "default", ok=True).stdout
    assert "Europe/Paris" in text and "status,plan" in text and "2001:db8::/32" in text

    for args, message in [
        (("--timezone", "Mars/Olympus"), "unknown time zone"),
        (("--public-fields", "status,email"), "unknown public field 'email'"),
        (("--add-trusted-network", "10.0.0.0/99"), "invalid network"),
    ]:
        failed = cli("tenant", "set", "default", *args)
        assert failed.returncode == 2 and message in one_error_line(failed)
    events = json.loads(cli("audit", "--action", "tenant.update", "--json", ok=True).stdout)
    assert events[0]["after"]["rejected_networks"] == ["2001:db8::/32"]
    assert events[0]["before"]["rejected_networks"] == ["192.0.2.1/32", "2001:db8::/32"]
