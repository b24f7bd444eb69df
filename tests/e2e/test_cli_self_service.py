"""``fingerplat user passwd`` and ``tenant set --self-edit-fields`` through the real command."""

from __future__ import annotations

import json

import pytest

from fingerplat.domain.errors import AuthenticationFailed
from fingerplat.domain.model import AuditQuery, Channel, Context, Role
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, fingerplat_executable, one_error_line
from tests.e2e.test_cli_admin import _pty_run


async def test_user_passwd_reads_the_password_twice_from_stdin(
    cli: Fingerplat, service: FingerplatService, operator: Context
) -> None:
    await service.tenants.create_tenant(operator, "acme")
    await service.users.add_user(operator, "acme", "carol")
    done = cli("user", "passwd", "carol", "--tenant", "acme",
               input="carol long secret\ncarol long secret\n", ok=True)
    assert done.stdout == "password of carol set in tenant acme\n"
    tenant = await service.public.resolve_tenant("acme")
    principal = await service.self_service.authenticate_user(
        tenant, "carol", "carol long secret", Channel.WEB)
    assert principal.role is Role.USER and principal.name == "user:carol"

    differ = cli("user", "passwd", "carol", "--tenant", "acme", input="one secret\nanother\n")
    assert differ.returncode == 2 and "differ" in one_error_line(differ)
    once = cli("user", "passwd", "carol", "--tenant", "acme", input="only once here\n")
    assert once.returncode == 2 and "second line" in one_error_line(once)
    short = cli("user", "passwd", "carol", "--tenant", "acme", input="short\nshort\n")
    assert short.returncode == 2 and "at least 8" in one_error_line(short)
    missing = cli("user", "passwd", "nobody", "--tenant", "acme",
                  input="long enough\nlong enough\n")
    assert missing.returncode == 3, missing
    # The refused attempts changed nothing.
    await service.self_service.authenticate_user(tenant, "carol", "carol long secret", Channel.WEB)
    with pytest.raises(AuthenticationFailed):
        await service.self_service.authenticate_user(tenant, "carol", "one secret", Channel.WEB)

    audited = await service.audit.audit_log(operator, AuditQuery(action="user.password"),
                                      all_tenants=True)
    assert [(e.target, e.channel, e.after and e.after["password"]) for e in audited] == [
        ("carol@acme", "cli", "set")]
    assert "secret" not in json.dumps(audited[0].after)


async def test_user_passwd_prompts_twice_on_a_terminal(
    cli: Fingerplat, service: FingerplatService, operator: Context
) -> None:
    await service.users.add_user(operator, None, "alice")
    code, output = _pty_run(
        [fingerplat_executable(), "user", "passwd", "alice"], cli.env,
        [("Password", "typed secret 1"), ("Repeat", "typed secret 1")],
    )
    assert code == 0, output
    assert "Password" in output and "Repeat" in output and "typed secret 1" not in output
    tenant = await service.public.resolve_tenant(None)
    await service.self_service.authenticate_user(tenant, "alice", "typed secret 1", Channel.WEB)


async def test_tenant_self_edit_fields_are_set_shown_and_checked(cli: Fingerplat) -> None:
    shown = json.loads(cli("tenant", "show", "default", "--json", ok=True).stdout)
    assert shown["self_edit_fields"] == ["full_name", "office", "phone", "project"]
    done = cli("tenant", "set", "default", "--self-edit-fields", "phone, office", ok=True)
    assert done.stdout == "tenant default: users may edit office,phone\n"
    lines = cli("tenant", "show", "default", ok=True).stdout.splitlines()
    assert [line.split() for line in lines if line.startswith("self-edit fields:")] == [
        ["self-edit", "fields:", "office,phone"]]
    cli("tenant", "set", "default", "--self-edit-fields", "none", "--name", "Main", ok=True)
    shown = json.loads(cli("tenant", "show", "default", "--json", ok=True).stdout)
    assert shown["self_edit_fields"] == [] and shown["name"] == "Main"
    wrong = cli("tenant", "set", "default", "--self-edit-fields", "phone,password")
    assert wrong.returncode == 2 and "unknown profile field 'password'" in one_error_line(wrong)
