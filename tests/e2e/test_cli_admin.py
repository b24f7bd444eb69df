"""Tenants, tokens and admin accounts through the real command, on both databases."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import time

import pytest

from fingerplat.domain.errors import AuthenticationFailed
from fingerplat.domain.model import Channel, Context, Role
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, fingerplat_executable, one_error_line


async def test_token_create_prints_the_token_alone_and_it_works(
    cli: Fingerplat, service: FingerplatService, operator: Context
):
    await service.users.add_user(operator, None, "alice")
    created = cli("token", "create", "--user", "alice", "--expires", "30", ok=True)
    token = created.stdout.strip()
    assert created.stdout == token + "\n"  # TOKEN=$(fingerplat token create ...) works
    assert token.startswith("fp_")
    assert "shown once" in created.stderr
    token_id = int(created.stderr.split()[1])
    assert f"token {token_id} created for user alice" in created.stderr

    principal = await service.credentials.authenticate_token(token, Channel.SETTER)
    assert principal.role is Role.USER and principal.token_id == token_id

    listed = json.loads(cli("token", "list", "--json", ok=True).stdout)
    assert [(t["id"], t["scope"], t["user"]) for t in listed] == [(token_id, "user", "alice")]
    assert listed[0]["expires_at"] and listed[0]["revoked_at"] is None

    wrong = cli("token", "create", "--user", "alice", "--platform")
    assert "exactly one of" in one_error_line(wrong) and wrong.stdout == ""

    cli("token", "revoke", str(token_id), ok=True)
    with pytest.raises(AuthenticationFailed):
        await service.credentials.authenticate_token(token, Channel.SETTER)


async def test_admin_add_reads_the_password_from_stdin(
    cli: Fingerplat, service: FingerplatService, operator: Context
):
    cli("admin", "add", "root-admin", input="correct horse battery\n", ok=True)
    await service.tenants.create_tenant(operator, "acme")
    cli("admin", "add", "acme-admin", "--tenant", "acme", input="another long secret\n",
        ok=True)
    short = cli("admin", "add", "weak", input="short\n")
    assert short.returncode == 2 and "at least 8" in one_error_line(short)

    admins = json.loads(cli("admin", "list", "--json", ok=True).stdout)
    assert sorted((a["name"], a["role"], a["tenant"]) for a in admins) == [
        ("acme-admin", "tenant_admin", "acme"), ("root-admin", "platform_admin", None)
    ]
    principal = await service.credentials.authenticate_admin("root-admin", "correct horse battery",
                                                 Channel.WEB)
    assert principal.role is Role.PLATFORM_ADMIN
    tenant_admin = await service.credentials.authenticate_admin("acme-admin", "another long secret",
                                                    Channel.WEB)
    assert tenant_admin.role is Role.TENANT_ADMIN


def test_tenant_add_set_show_remove(cli: Fingerplat):
    cli("tenant", "add", "acme", "--name", "ACME Corp", "--domain", "acme.example", ok=True)
    cli("tenant", "set", "acme", "--add-domain", "acme.test", "--remove-domain",
        "acme.example", "--no-list-users", "--forwarding", ok=True)
    cli("user", "add", "bob", "--tenant", "acme.test", ok=True)  # a domain names it too
    shown = json.loads(cli("tenant", "show", "acme", "--json", ok=True).stdout)
    assert shown == {**shown, "slug": "acme", "name": "ACME Corp", "domains": ["acme.test"],
                     "list_users": False, "forwarding": True, "default": False, "users": 1}

    table = cli("tenant", "list", ok=True).stdout.splitlines()
    assert table[0].split()[:2] == ["SLUG", "NAME"]
    acme_row = next(line for line in table if line.startswith("acme "))
    assert acme_row.index("ACME Corp") == table[0].index("NAME")

    refused = cli("tenant", "remove", "acme")
    assert "--yes" in one_error_line(refused)
    cli("tenant", "remove", "acme", "--yes", ok=True)
    events = json.loads(cli("audit", "--all", "--action", "tenant.remove", "--json",
                            ok=True).stdout)
    assert events[0]["target"] == "acme" and events[0]["before"]["users"] == 1
    assert events[0]["channel"] == "cli" and events[0]["actor"].startswith("cli:")


def _pty_run(argv: list[str], env: dict[str, str], answers: list[tuple[str, str]],
             timeout: float = 60.0) -> tuple[int, str]:
    """Run argv on a pseudo-terminal, answering each prompt; return exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout/stderr and the controlling tty are the pty
        os.execve(argv[0], argv, env)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and pending[0][0].encode() in output.split(b"\n")[-1]:
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


async def test_admin_add_prompts_twice_on_a_terminal(cli: Fingerplat,
                                                     service: FingerplatService):
    code, output = _pty_run(
        [fingerplat_executable(), "admin", "add", "ttyadmin"], cli.env,
        [("Password", "typed secret 1"), ("Repeat", "typed secret 1")],
    )
    assert code == 0, output
    assert "Password" in output and "Repeat" in output  # asked twice
    assert "typed secret 1" not in output  # never echoed
    assert "admin ttyadmin added" in output
    principal = await service.credentials.authenticate_admin(
        "ttyadmin", "typed secret 1", Channel.WEB)
    assert principal.role is Role.PLATFORM_ADMIN
