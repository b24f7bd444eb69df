"""``fingerplat import`` and ``fingerplat export`` through the real command, both databases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fingerplat.domain.errors import UserNotFound
from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import AuditQuery, Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, fingerplat_executable, one_error_line

MESSY = (
    b"# the tutorial's /etc/users\n"
    b"alice: at lunch\r\n"
    b"\n"
    b"bob:   busy  \n"
    b"\xff\xfe\x00garbage\x01\x02\n"          # line 5
    b"carol: " + b"x" * 300 + b"\n"           # line 6
    b"Bad Name: hi\n"                          # line 7
    b"alice: again\n"                          # line 8
    b"dave:\n"
    b"eve: \x1b]0;owned\x07\n"                 # line 10
)


async def test_messy_file_reports_lines_and_exits_1(
    cli: Fingerplat, tmp_path: Path, service: FingerplatService, operator: Context
) -> None:
    path = tmp_path / "users"
    path.write_bytes(MESSY)
    result = cli("import", "users-file", str(path))
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    assert lines[0] == (f"{path}: tenant default: 8 records: 3 created, 0 updated, "
                        "0 unchanged, 5 rejected")
    assert lines[1:] == [
        "line 5 (\ufffd\ufffd^@garbage^A^B): line is not valid UTF-8 text",
        "line 6 (carol): status is 300 characters long; at most 280 are allowed",
        "line 7 (Bad Name): invalid username 'Bad Name': use 1-32 characters a-z, 0-9, '_', "
        "'.' and '-', starting with a letter or '_'",
        "line 8 (alice): duplicate: user alice is already on line 2",
        "line 10 (eve): status must not contain control characters (found 0x1b)",
    ]
    assert "\x1b" not in result.stdout and "\x00" not in result.stdout

    again = cli("import", "users-file", str(path), "--json")
    assert again.returncode == 1
    report = json.loads(again.stdout)
    assert (report["created"], report["unchanged"]) == (0, 3)
    assert [r["line"] for r in report["rejected"]] == [5, 6, 7, 8, 10]

    clean = tmp_path / "clean"
    clean.write_text("alice: back\nbob: busy\n")
    result = cli("import", "users-file", str(clean), ok=True)
    assert result.stdout.splitlines() == [
        f"{clean}: tenant default: 2 records: 0 created, 1 updated, 1 unchanged, 0 rejected"]
    _, users = await service.imports.export_users(operator, None)
    assert [(u.username, u.status) for u in users] == [
        ("alice", "back"), ("bob", "busy"), ("dave", None)]


def test_import_errors_are_one_line_and_stdin_works(cli: Fingerplat, tmp_path: Path) -> None:
    piped = cli("import", "users-file", "-", input="zed: piped in\n", ok=True)
    assert piped.stdout.startswith("<stdin>: tenant default: 1 records: 1 created")
    missing = one_error_line(cli("import", "users-file", str(tmp_path / "nope")))
    assert missing == f"fingerplat: users file {tmp_path / 'nope'} does not exist"
    (tmp_path / "u").write_text("alice: x\n")
    unknown = one_error_line(cli("import", "users-file", str(tmp_path / "u"), "--tenant", "zz"))
    assert "no such tenant" in unknown


async def test_export_round_trip_into_fresh_tenants(
    cli: Fingerplat, tmp_path: Path, service: FingerplatService, operator: Context
) -> None:
    await service.imports.import_records(operator, None, [
        ImportRecord(1, "alice", status="at lunch", full_name="Alice L", project="fingers",
                     plan="line one\nline two"),
        ImportRecord(2, "bob"), ImportRecord(3, "carol", status="été ☀"),
        ImportRecord(4, "dave", hidden=True)])
    await service.tenants.create_tenant(operator, "copy")
    await service.tenants.create_tenant(operator, "full")

    users_file = cli("export", "--format", "users-file", ok=True).stdout
    assert users_file.splitlines()[1:] == ["alice: at lunch", "bob:", "carol: été ☀", "dave:"]
    (tmp_path / "export.users").write_text(users_file)
    cli("import", "users-file", str(tmp_path / "export.users"), "--tenant", "copy", ok=True)
    _, copied = await service.imports.export_users(operator, "copy")
    assert [f"{u.username}: {u.status or ''}".rstrip() for u in copied] == [
        "alice: at lunch", "bob:", "carol: été ☀", "dave:"]

    document = cli("export", ok=True).stdout  # JSON is the default format
    (tmp_path / "export.json").write_text(document)
    result = cli("import", "json", str(tmp_path / "export.json"), "--tenant", "full", ok=True)
    assert "4 created" in result.stdout
    _, original = await service.imports.export_users(operator, None)
    _, restored = await service.imports.export_users(operator, "full")
    keep = ("username", "status", "full_name", "office", "phone", "project", "hidden", "plan")
    assert [[getattr(u, k) for k in keep] for u in restored] == [
        [getattr(u, k) for k in keep] for u in original]
    assert json.loads(document)["users"][0]["plan"] == "line one\nline two"
    assert restored[3].hidden is True


async def test_watch_reimports_when_the_file_changes(
    cli: Fingerplat, tmp_path: Path, service: FingerplatService, operator: Context
) -> None:
    path = tmp_path / "users"
    path.write_text("alice: one\n")
    process = subprocess.Popen(
        [fingerplat_executable(), "import", "users-file", str(path), "--watch", "0.2"],
        env=cli.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.endswith("1 created, 0 updated, 0 unchanged, 0 rejected\n")
        path.write_text("alice: two\nbob: new\n")
        os.utime(path, ns=(1, 1))
        second = process.stdout.readline()
        assert second.endswith("1 created, 1 updated, 0 unchanged, 0 rejected\n")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert out == ""  # no re-import while the file did not change
    assert "watching" in err and "stopped watching" in err and "Traceback" not in err
    assert (await service.users.get_user(operator, None, "alice")).status == "two"


# -- passwd: real local accounts ------------------------------------------------


def _useradd(name: str, *extra: str) -> None:
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", *extra, name], check=True,
                   capture_output=True)


@pytest.fixture
def local_accounts() -> Iterator[dict[str, str]]:
    """Real accounts: a full one, one with a symlink trap (later ~/.nofinger), one whose
    name our rule refuses, one without a login shell."""
    suffix = uuid.uuid4().hex[:6]
    names = {"full": f"fpa{suffix}", "hidden": f"fpb{suffix}", "bad": f"fpc{suffix}$",
             "nologin": f"fpd{suffix}", "nofinger": f"fpe{suffix}"}
    created: list[str] = []
    try:
        _useradd(names["full"], "-c", "Ada Lovelace,Room 7,555-1234,")
        created.append(names["full"])
        _useradd(names["hidden"])
        created.append(names["hidden"])
        _useradd(names["bad"])
        created.append(names["bad"])
        subprocess.run(["useradd", "-m", "-s", "/usr/sbin/nologin", names["nologin"]],
                       check=True, capture_output=True)
        created.append(names["nologin"])
        _useradd(names["nofinger"])
        created.append(names["nofinger"])
        Path(f"/home/{names['nofinger']}/.nofinger").touch()
        home = Path(f"/home/{names['full']}")
        plan = home / ".plan"
        plan.write_text("Analytical engine\n\tsecond line\n" + "x" * 20000)
        (home / ".project").write_text("Notes on the engine\nmore\n")
        for path in (plan, home / ".project"):
            os.chown(path, *_ids(names["full"]))
        hidden_home = Path(f"/home/{names['hidden']}")
        # A trap for a root-run importer: ~/.plan as a symlink to a root-only file.
        (hidden_home / ".plan").symlink_to("/etc/shadow")
        yield names
    finally:
        for name in created:
            subprocess.run(["userdel", "-r", name], capture_output=True)


def _ids(name: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


async def test_passwd_imports_real_accounts(
    cli: Fingerplat, local_accounts: dict[str, str], service: FingerplatService,
    operator: Context,
) -> None:
    result = cli("import", "passwd", "--json")
    assert result.returncode == 1, result  # the "$" account is refused
    report = json.loads(result.stdout)
    bad = [r for r in report["rejected"] if r["username"] == local_accounts["bad"]]
    assert len(bad) == 1 and bad[0]["reason"].startswith("invalid username")
    assert isinstance(bad[0]["line"], int)

    full = await service.users.get_user(operator, None, local_accounts["full"])
    assert full.full_name == "Ada Lovelace"
    assert full.project == "Notes on the engine"
    assert full.plan.startswith("Analytical engine\n\tsecond line\nxxx")
    assert len(full.plan.encode()) == 16 * 1024  # cut to the plan limit

    # The symlinked ~/.plan is not followed: the user is there, the shadow file is not.
    trap = await service.users.get_user(operator, None, local_accounts["hidden"])
    assert trap.plan == ""
    for skipped in ("nologin", "nofinger"):
        with pytest.raises(UserNotFound):
            await service.users.get_user(operator, None, local_accounts[skipped])

    # ~/.nofinger after an import: the user is hidden, the others are unchanged.
    Path(f"/home/{local_accounts['hidden']}/.nofinger").touch()
    again = json.loads(cli("import", "passwd", "--json").stdout)
    assert again["updated"] >= 1  # (other tests may add OS users meanwhile)
    assert (await service.users.get_user(operator, None, local_accounts["hidden"])).hidden is True
    assert (await service.users.get_user(operator, None, local_accounts["full"])).hidden is False
    audit = await service.audit.audit_log(operator, AuditQuery(username=local_accounts["full"]))
    assert [e.action for e in audit] == ["import.create"]  # untouched by the re-import
    with pytest.raises(UserNotFound):
        await service.users.get_user(operator, None, local_accounts["nofinger"])
