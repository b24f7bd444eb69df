"""``fingerplat user ...`` and ``fingerplat audit`` through the real command, on both databases."""

from __future__ import annotations

import getpass
import json

from sqlalchemy import update

from fingerplat.domain.model import Context
from fingerplat.repository.engine import create_engine
from fingerplat.repository.schema import users as users_table
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, one_error_line


def _columns(header: str, line: str, names: list[str]) -> dict[str, str]:
    """Cut a table row at the header's column starts (proves the columns align)."""
    starts = [header.index(name) for name in names]
    cells = {}
    for i, name in enumerate(names):
        end = starts[i + 1] if i + 1 < len(names) else None
        cells[name] = line[starts[i]:end].strip()
    return cells


def test_readme_flow_status_json_history_and_audit(cli: Fingerplat):
    cli("user", "add", "alice", "--full-name", "Alice Liddell", ok=True)
    result = cli("user", "set", "alice", "away", ok=True)
    assert result.stdout.strip() == "alice: away"

    shown = json.loads(cli("user", "show", "alice", "--json", ok=True).stdout)
    assert shown["username"] == "alice"
    assert shown["tenant"] == "default"
    assert shown["full_name"] == "Alice Liddell"
    assert shown["status"] == "away"
    assert shown["status_set_at"]

    cli("user", "add", "bob", "--hidden", ok=True)
    lines = cli("user", "list", ok=True).stdout.splitlines()
    header = lines[0]
    names = ["LOGIN", "NAME", "HIDDEN", "SET", "STATUS"]
    rows = {r["LOGIN"]: r for r in (_columns(header, line, names) for line in lines[1:])}
    assert rows["alice"]["NAME"] == "Alice Liddell"
    assert rows["alice"]["STATUS"] == "away"
    assert rows["alice"]["HIDDEN"] == "no"
    assert rows["bob"]["HIDDEN"] == "yes"  # the operator sees hidden users, marked
    assert rows["bob"]["STATUS"] == "-"

    cli("user", "clear", "alice", ok=True)
    history = json.loads(cli("user", "history", "alice", "--json", ok=True).stdout)
    assert [h["status"] for h in history] == [None, "away"]
    actor = f"cli:{getpass.getuser()}"
    assert {h["actor"] for h in history} == {actor}
    assert {h["channel"] for h in history} == {"cli"}
    table = cli("user", "history", "alice", ok=True).stdout.splitlines()
    assert table[0].split() == ["WHEN", "ACTOR", "CHANNEL", "STATUS"]
    assert "(cleared)" in table[1] and table[2].endswith("away")

    events = json.loads(cli("audit", "--user", "alice", "--json", ok=True).stdout)
    assert [e["action"] for e in events] == ["status.clear", "status.set", "user.create"]
    assert all(e["actor"] == actor and e["channel"] == "cli" for e in events)
    assert events[1]["after"] == {"status": "away"}
    audit_lines = cli("audit", "--action", "status.set", ok=True).stdout.splitlines()
    audit_names = ["TIME", "TENANT", "ACTOR", "CHANNEL", "ACTION", "TARGET", "OUTCOME", "DETAIL"]
    row = _columns(audit_lines[0], audit_lines[1], audit_names)
    assert row["ACTOR"] == actor and row["CHANNEL"] == "cli"
    assert row["ACTION"] == "status.set" and row["OUTCOME"] == "ok"
    assert row["TARGET"] == "alice@default"
    assert row["DETAIL"] == "status: — → away"  # what changed, in words
    assert len(audit_lines) == 2


async def test_user_errors_are_one_line_and_change_nothing(
    cli: Fingerplat, service: FingerplatService, operator: Context
):
    await service.users.add_user(operator, None, "alice")
    await service.users.set_status(operator, None, "alice", "away")

    unknown = cli("user", "set", "bob", "hello")
    assert unknown.returncode == 3
    assert "fingerplat user add bob" in one_error_line(unknown)

    for args, code, says in [
        (("user", "add", "Bad Name"), 2, "invalid username 'Bad Name'"),
        (("user", "set", "alice", "x" * 281), 2, "at most 280"),
        (("user", "add", "carol", "--tenant", "nope"), 3, "no such tenant: 'nope'"),
        (("user", "edit", "alice", "--phone", "\x1b[2J"), 2, "control characters"),
        (("tenant", "add", "Bad_Slug"), 2, "invalid tenant slug"),
    ]:
        result = cli(*args)
        line = one_error_line(result)
        assert result.returncode == code, result
        assert says in line, result
        assert result.stdout == "", result
        assert "\x1b" not in line
    tenant = await service.public.resolve_tenant(None)
    page = await service.users.directory(tenant, ctx=operator)
    assert [(u.username, u.status, u.phone) for u in page.users] == [("alice", "away", "")]
    assert [t.slug for t in await service.tenants.list_tenants(operator)] == ["default"]


async def test_stored_control_characters_never_reach_the_terminal(
    cli: Fingerplat, database_url: str, service: FingerplatService, operator: Context
):
    await service.users.add_user(operator, None, "mallory")
    # A row written by an older release or a careless import: the rules would refuse it.
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(users_table).where(users_table.c.username == "mallory")
                               .values(full_name="Mal\x1b[2J\x9bory 日本", office="a\rb"))
    finally:
        await engine.dispose()
    outputs = {args: cli(*args, ok=True).stdout for args in (
        ("user", "list"), ("user", "show", "mallory"), ("user", "show", "mallory", "--json"))}
    for out in outputs.values():
        assert "\x1b" not in out and "\x9b" not in out and "\r" not in out, out
    assert "Mal^[[2J\\u009bory 日本" in outputs[("user", "show", "mallory")]
    row = outputs[("user", "list")].splitlines()[1]
    assert row.startswith("mallory  Mal^[[2J\\u009bory 日本  no")
    parsed = json.loads(outputs[("user", "show", "mallory", "--json")])
    assert parsed["full_name"] == "Mal\x1b[2J\x9bory 日本"  # JSON keeps the data, escaped


async def test_plan_from_file_and_stdin(cli: Fingerplat, tmp_path, service: FingerplatService,
                                        operator: Context):
    await service.users.add_user(operator, None, "alice")
    plan_file = tmp_path / "plan.txt"
    plan_file.write_text("Finish the finger daemon.\n  Then the web view.\n", encoding="utf-8")
    assert "plan set" in cli("user", "plan", "alice", str(plan_file), ok=True).stdout
    user = await service.users.get_user(operator, None, "alice")
    assert user.plan == "Finish the finger daemon.\n  Then the web view."

    cli("user", "plan", "alice", "-", input="from stdin\n", ok=True)
    too_big = cli("user", "plan", "alice", input="x" * (16 * 1024 + 1))
    assert "16 KiB" in one_error_line(too_big) and too_big.returncode == 2
    assert (await service.users.get_user(operator, None, "alice")).plan == "from stdin"


async def test_bidi_controls_are_refused_and_never_reach_the_terminal(
    cli: Fingerplat, database_url: str, service: FingerplatService, operator: Context
):
    """Issue 12 item 17: ``invoice\u202efdp.exe`` displays as ``invoiceexe.pdf``."""
    await service.users.add_user(operator, None, "mallory")
    line = one_error_line(cli("user", "set", "mallory", "invoice\u202efdp.exe"))
    assert "bidirectional control" in line and "U+202E" in line
    engine = create_engine(database_url)  # an older release's row
    try:
        async with engine.begin() as conn:
            await conn.execute(update(users_table).where(users_table.c.username == "mallory")
                               .values(full_name="Mal \u202eyrol\u202c", status="x\u2066y"))
    finally:
        await engine.dispose()
    for args in (("user", "list"), ("user", "show", "mallory"),
                 ("user", "show", "mallory", "--json")):
        out = cli(*args, ok=True).stdout
        assert not any(ch in out for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068"
                       "\u2069"), (args, out)
        assert "\\u202e" in out or "\\u2066" in out, (args, out)
