"""Importing users files into a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fingerplat.adapters.sources.export import parse_json_export, render_json, render_users_file
from fingerplat.adapters.sources.users_file import parse_users_file, read_users_file
from fingerplat.domain.errors import InvalidInput, PermissionDenied
from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import AuditQuery, Channel, Context, Principal, Role
from fingerplat.repository.sql import Repository
from fingerplat.service import FingerplatService

MESSY = (
    b"# the tutorial's /etc/users\n"
    b"alice: at lunch\r\n"
    b"\n"
    b"   \n"
    b"bob:   busy  \n"
    b"\xff\xfe\x00garbage\x01\x02\n"          # line 6: not UTF-8
    b"carol: " + b"x" * 300 + b"\n"           # line 7: status too long
    b"Bad Name: hi\n"                          # line 8: invalid username
    b"alice: again\n"                          # line 9: duplicate
    b"no colon here\n"                         # line 10
    b"dave:\n"                                 # line 11: no status
    b"eve: esc \x1b[31m red\n"                 # line 12: control character
    b"  # indented comment\n"
    b"Frank: Upper\n"                          # line 14: names are case-insensitive
)


async def test_messy_file_takes_good_lines_and_names_bad_ones(
    service: FingerplatService, operator: Context, tmp_path: Path
) -> None:
    path = tmp_path / "users"
    path.write_bytes(MESSY)
    report = await service.imports.import_records(operator, None, read_users_file(path))
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    reasons = {r.line: r.reason for r in report.rejected}
    assert sorted(reasons) == [6, 7, 8, 9, 10, 12]
    assert reasons[6] == "line is not valid UTF-8 text"
    assert reasons[7] == "status is 300 characters long; at most 280 are allowed"
    assert reasons[8].startswith("invalid username 'Bad Name'")
    assert reasons[9] == "duplicate: user alice is already on line 2"
    assert reasons[10] == "expected 'user: status' (no colon on this line)"
    assert reasons[12] == "status must not contain control characters (found 0x1b)"
    assert not report.ok

    alice = await service.users.get_user(operator, None, "alice")
    assert alice.status == "at lunch"
    assert (await service.users.get_user(operator, None, "bob")).status == "busy"
    assert (await service.users.get_user(operator, None, "dave")).status is None
    assert (await service.users.get_user(operator, None, "frank")).status == "Upper"
    history = await service.users.history(operator, None, "alice")
    assert [(h.text, h.channel, h.actor) for h in history] == [
        ("at lunch", "import", operator.principal.name)
    ]


async def test_reimport_is_idempotent_and_changes_only_what_changed(
    service: FingerplatService, operator: Context
) -> None:
    first = parse_users_file(b"alice: one\nbob: two\ncarol: three\n")
    report = await service.imports.import_records(operator, None, first)
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)

    again = await service.imports.import_records(operator, None, first)
    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 3, [])
    assert len(await service.users.history(operator, None, "alice")) == 1

    changed = parse_users_file(b"alice: one\nbob: TWO\ncarol:\n")
    report = await service.imports.import_records(operator, None, changed)
    assert (report.created, report.updated, report.unchanged) == (0, 2, 1)
    assert (await service.users.get_user(operator, None, "bob")).status == "TWO"
    assert (await service.users.get_user(operator, None, "carol")).status is None
    assert [h.text for h in await service.users.history(operator, None, "carol")] == [None, "three"]

    audit = await service.audit.audit_log(operator, AuditQuery(limit=100))
    actions = [e.action for e in audit]
    assert actions.count("import.create") == 3
    assert actions.count("import.update") == 2
    assert actions.count("import.run") == 2  # the no-op import wrote nothing at all
    bob = next(e for e in audit if e.action == "import.update" and "bob" in e.target)
    assert (bob.before, bob.after, bob.channel) == ({"status": "two"}, {"status": "TWO"},
                                                    "import")


async def test_many_lines_cross_batches(service: FingerplatService, operator: Context) -> None:
    data = "".join(f"user{i}: status {i}\n" for i in range(2500)).encode()
    report = await service.imports.import_records(operator, None, parse_users_file(data),
                                          batch_size=1000)
    assert (report.created, report.rejected) == (2500, [])
    data = "".join(f"user{i}: status {i + (i % 2)}\n" for i in range(2500)).encode()
    seen: list[int] = []
    report = await service.imports.import_records(operator, None, parse_users_file(data),
                                          batch_size=1000, progress=seen.append)
    assert (report.created, report.updated, report.unchanged) == (0, 1250, 1250)
    assert seen[-1] == 2500
    assert (await service.users.get_user(operator, None, "user2499")).status == "status 2500"


async def test_profile_fields_and_plans(service: FingerplatService, operator: Context) -> None:
    records = [ImportRecord(1, "alice", full_name="Alice A", project="p1", plan="line1\nline2")]
    report = await service.imports.import_records(operator, None, records)
    assert report.created == 1
    report = await service.imports.import_records(operator, None, records)
    assert report.unchanged == 1
    records = [ImportRecord(1, "alice", full_name="Alice B", plan="new plan")]
    report = await service.imports.import_records(operator, None, records)
    assert report.updated == 1
    alice = await service.users.get_user(operator, None, "alice")
    assert (alice.full_name, alice.project, alice.plan) == ("Alice B", "p1", "new plan")
    too_big = [ImportRecord(4, "bob", plan="x" * (16 * 1024 + 1))]
    report = await service.imports.import_records(operator, None, too_big)
    assert [r.line for r in report.rejected] == [4]
    assert "16 KiB" in report.rejected[0].reason


async def test_export_round_trip_into_a_fresh_tenant(
    service: FingerplatService, operator: Context
) -> None:
    await service.imports.import_records(operator, None, parse_users_file(
        b"alice: at lunch\nbob:\ncarol: \xc3\xa9t\xc3\xa9 \xe2\x98\x80\n"))
    await service.imports.import_records(operator, None, [
        ImportRecord(1, "dave", status="hidden one", hidden=True, plan="my plan",
                     full_name="Dave D", office="B2", phone="123")])
    tenant, users = await service.imports.export_users(operator, None)
    text = render_users_file(users, tenant=tenant.slug)
    assert "\nalice: at lunch\nbob:\ncarol: été ☀\ndave: hidden one\n" in text

    await service.tenants.create_tenant(operator, "copy", name="Copy")
    report = await service.imports.import_records(operator, "copy", parse_users_file(text.encode()))
    assert (report.created, report.rejected) == (4, [])
    _, copied = await service.imports.export_users(operator, "copy")
    assert [(u.username, u.status) for u in copied] == [(u.username, u.status) for u in users]

    # JSON keeps everything, hidden and plan included.
    document = render_json(users, tenant=tenant.slug).encode()
    await service.tenants.create_tenant(operator, "full", name="Full")
    report = await service.imports.import_records(operator, "full", parse_json_export(document))
    assert (report.created, report.rejected) == (4, [])
    _, full = await service.imports.export_users(operator, "full")
    keep = ("username", "status", "full_name", "office", "phone", "project", "hidden", "plan")
    assert [[getattr(u, k) for k in keep] for u in full] == [
        [getattr(u, k) for k in keep] for u in users
    ]
    again = await service.imports.import_records(operator, "full", parse_json_export(document))
    assert again.unchanged == 4


async def test_only_admins_of_the_tenant_may_import(
    service: FingerplatService, operator: Context
) -> None:
    other = await service.tenants.create_tenant(operator, "other", name="Other")
    stranger = Context(Principal(Role.TENANT_ADMIN, "token:9(admin@other)", tenant_id=other.id),
                       Channel.CLI)
    with pytest.raises(PermissionDenied):
        await service.imports.import_records(stranger, None, parse_users_file(b"alice: hi\n"))
    with pytest.raises(PermissionDenied):
        await service.imports.export_users(stranger, None)
    report = await service.imports.import_records(
        stranger, "other", parse_users_file(b"alice: hi\n"))
    assert report.created == 1
    runs = await service.audit.audit_log(operator, AuditQuery(action="import.run", limit=10),
                                   all_tenants=True)
    assert [(e.outcome, e.tenant) for e in runs] == [("ok", "other"), ("denied", "default")]


async def test_sources_that_do_not_create_users(
    service: FingerplatService, operator: Context
) -> None:
    await service.users.add_user(operator, None, "alice")
    records = [ImportRecord(1, "alice", status="web says hi"),
               ImportRecord(2, "ghost", status="boo")]
    report = await service.imports.import_records(operator, None, records, create_missing=False)
    assert (report.updated, [r.line for r in report.rejected]) == (1, [2])
    assert "does not create users" in report.rejected[0].reason


def test_reader_refuses_non_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        read_users_file(tmp_path / "missing")
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_users_file(tmp_path)


async def test_concurrent_imports_of_the_same_new_users(
    service: FingerplatService, operator: Context
) -> None:
    records = parse_users_file("".join(f"u{i}: s{i}\n" for i in range(300)).encode())
    first, second = await asyncio.gather(
        service.imports.import_records(operator, None, records),
        service.imports.import_records(operator, None, records),
    )
    assert first.created + second.created == 300
    assert first.unchanged + second.unchanged == 300
    _, users = await service.imports.export_users(operator, None)
    assert len(users) == 300


async def test_change_events_per_user_for_small_imports_one_for_big_ones(
    service: FingerplatService, operator: Context
) -> None:
    seen: list[tuple[str, str | None, str | None]] = []
    service.events.subscribe(lambda e: seen.append((e.kind, e.username, e.status)))
    await service.imports.import_records(operator, None, parse_users_file(b"alice: hi\nbob:\n"))
    assert seen == [("user", "alice", None), ("status", "alice", "hi"), ("user", "bob", None)]
    seen.clear()
    await service.imports.import_records(operator, None, parse_users_file(b"alice: hi\nbob:\n"))
    assert seen == []  # nothing changed, nothing announced
    big = "".join(f"u{i}: s{i}\n" for i in range(200)).encode()
    await service.imports.import_records(operator, None, parse_users_file(big))
    assert seen == [("tenant", None, None)]


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite: a batch holds the write lock
async def test_a_change_made_while_a_batch_is_read_is_kept_in_the_audit(
    service: FingerplatService, operator: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches read users without row locks; a user changed through another
    channel between that read and the batch's write must not be overwritten
    blindly: the batch is read again (locked) and its audit says what it replaced.
    """
    await service.imports.import_records(operator, None, [
        ImportRecord(1, "alice", status="one", full_name="Alice", plan="old plan"),
        ImportRecord(2, "bob", status="one")])
    read = Repository.users_in_range
    reads: list[bool] = []

    async def read_then_someone_else_writes(self: Repository, *args: object,
                                            **kwargs: bool) -> object:
        found = await read(self, *args, **kwargs)  # type: ignore[arg-type]
        reads.append(kwargs.get("for_update", False))
        if len(reads) == 1:  # another channel, another connection, committed now
            await service.users.set_status(operator, None, "alice", "typed by hand")
            await service.users.edit_user(operator, None, "alice", full_name="Alice A.")
            await service.users.set_plan(operator, None, "alice", "new by hand")
        return found

    monkeypatch.setattr(Repository, "users_in_range", read_then_someone_else_writes)
    report = await service.imports.import_records(operator, None, [
        ImportRecord(1, "alice", status="two", full_name="Alice Import", plan="imported"),
        ImportRecord(2, "bob", status="two")])
    assert (report.updated, report.rejected) == (2, [])
    assert reads == [False, True]  # read again, locked, after the conflict
    alice = await service.users.get_user(operator, None, "alice")
    assert (alice.status, alice.full_name, alice.plan) == ("two", "Alice Import", "imported")
    assert [h.text for h in await service.users.history(operator, None, "alice")] == [
        "two", "typed by hand", "one"]
    audit = await service.audit.audit_log(operator, AuditQuery(action="import.update", limit=10))
    by_user = {e.target.split("@")[0]: e for e in audit}
    assert by_user["alice"].before == {"status": "typed by hand", "full_name": "Alice A.",
                                       "plan_bytes": len("new by hand")}
    assert by_user["bob"].before == {"status": "one"}
    assert len(audit) == 2  # the rolled-back first attempt left no audit rows


async def test_batches_in_flight_add_up(service: FingerplatService, operator: Context) -> None:
    """Many small batches (two at a time on PostgreSQL) with creates, updates,
    unchanged users, bad lines and duplicates spread over all of them."""
    first = "".join(f"u{i:03d}: s{i}\n" for i in range(0, 300, 2)).encode()
    await service.imports.import_records(operator, None, parse_users_file(first), batch_size=7)
    lines = []
    for i in range(300):
        lines.append(f"u{i:03d}: s{i + (i % 4 == 0)}")  # even: every other one changes
        if i % 50 == 0:
            lines.append(f"u{i:03d}: again")  # duplicate of the line before
        if i % 60 == 1:
            lines.append(f"U{i:03d}: " + "x" * 300)  # too long, names the same user
    seen: list[int] = []
    events: list[str] = []
    service.events.subscribe(lambda e: events.append(e.kind))
    report = await service.imports.import_records(
        operator, None, parse_users_file(("\n".join(lines) + "\n").encode()), batch_size=7,
        progress=seen.append)
    assert (report.created, report.updated, report.unchanged) == (150, 75, 75)
    assert sorted(r.line for r in report.rejected) == [r.line for r in report.rejected]
    assert len([r for r in report.rejected if r.reason.startswith("duplicate")]) == 6
    assert len([r for r in report.rejected if "300 characters" in r.reason]) == 5
    assert seen == sorted(seen) and seen[-1] == report.total == len(lines)
    _, users = await service.imports.export_users(operator, None)
    assert len(users) == 300
    assert {u.username: u.status for u in users}["u004"] == "s5"
    audit = await service.audit.audit_log(operator, AuditQuery(limit=1000))
    assert [e.action for e in audit].count("import.create") == 300
    assert [e.action for e in audit].count("import.update") == 75
    assert len(await service.users.history(operator, None, "u004")) == 2
    assert events and set(events) <= {"user", "status", "tenant"}


async def test_a_bad_line_does_not_hide_a_later_good_one_for_the_same_user(
    service: FingerplatService, operator: Context
) -> None:
    data = b"carol: " + b"x" * 300 + b"\nalice: ok\ncarol: fine\ncarol: late\n"
    report = await service.imports.import_records(
        operator, None, parse_users_file(data), batch_size=1)
    assert report.created == 2
    assert [(r.line, r.reason[:20]) for r in report.rejected] == [
        (1, "status is 300 charac"), (4, "duplicate: user caro")]
    assert report.rejected[1].reason == "duplicate: user carol is already on line 3"
    assert (await service.users.get_user(operator, None, "carol")).status == "fine"


async def test_batched_audit_events_verify_and_read_back_as_written(
    service: FingerplatService, operator: Context
) -> None:
    """Issue 18: a batch's audit events are hashed and stored in one pass; the chain
    verifies and the events read back with the values that were hashed."""
    records = [*parse_users_file("".join(
        f"user{i}: status {i} \u00e9\u2603 \"q\" \\\n" for i in range(30)).encode()),
        ImportRecord(31, "prof", full_name="Zo\u00eb", office="\u00c5", plan="p\u00e9\nx")]
    report = await service.imports.import_records(operator, None, records, batch_size=7)
    assert (report.created, report.rejected) == (31, [])
    changed = parse_users_file("".join(
        f"user{i}: {'new' if i % 3 else 'status'} {i} \u00e9\u2603 \"q\" \\\n"
        for i in range(30)).encode())
    report = await service.imports.import_records(operator, None, changed, batch_size=7)
    assert (report.updated, report.unchanged) == (20, 10)
    results = await service.audit.verify_audit(operator)
    assert all(r.intact for r in results), [r.report for r in results]
    audit = await service.audit.audit_log(operator, AuditQuery(limit=200))
    created = next(e for e in audit if e.action == "import.create" and e.target.startswith("prof@"))
    assert created.after == {"full_name": "Zo\u00eb", "office": "\u00c5", "phone": "",
                             "project": "", "hidden": False, "plan_bytes": 5}
    updated = next(e for e in audit if e.action == "import.update"
                   and e.target.startswith("user1@"))
    assert (updated.before, updated.after) == ({"status": 'status 1 \u00e9\u2603 "q" \\'},
                                               {"status": 'new 1 \u00e9\u2603 "q" \\'})
    assert [h.text for h in await service.users.history(operator, None, "user1")] == [
        'new 1 \u00e9\u2603 "q" \\', 'status 1 \u00e9\u2603 "q" \\']
