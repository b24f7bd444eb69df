"""Issue 16 through the real ``fingerplat`` command and ``fingerplat serve``, on both databases.

``pseudo add/list/remove`` with names reserved both ways (exit 4), the finger
log switched on with ``tenant set --finger-log`` and ``user edit
--finger-log`` and read with ``user fingered``, and the example plugin
package in examples/ installed with pip and fingered over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, finger, one_error_line

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fingerplat-pseudo-fortune"


async def test_pseudo_users_and_reserved_names(
    cli: Fingerplat, service: FingerplatService, operator: Context
):
    await service.users.add_user(operator, None, "alice")
    taken = cli("pseudo", "add", "alice", "--kind", "help")
    assert taken.returncode == 4
    assert "already a user" in one_error_line(taken)

    result = cli("pseudo", "add", "help", "--kind", "help", ok=True)
    assert result.stdout.strip() == "pseudo-user help (help) added"
    cli("pseudo", "add", "recent", "--kind", "recent", ok=True)

    reserved = cli("user", "add", "help")
    assert reserved.returncode == 4
    assert "pseudo-user" in one_error_line(reserved)
    assert cli("pseudo", "add", "Help", "--kind", "time").returncode == 4

    unknown = cli("pseudo", "add", "x", "--kind", "nope")
    assert "unknown pseudo-user kind" in one_error_line(unknown)

    listed = json.loads(cli("pseudo", "list", "--json", ok=True).stdout)
    assert [(p["name"], p["kind"], p["installed"]) for p in listed] == [
        ("help", "help", True), ("recent", "recent", True)]
    table = cli("pseudo", "list", ok=True).stdout
    assert "what this tenant answers and where" in table

    users = json.loads(cli("user", "list", "--json", ok=True).stdout)
    assert [u["username"] for u in users] == ["alice"]

    cli("pseudo", "remove", "help", ok=True)
    missing = cli("pseudo", "remove", "help")
    assert "no such pseudo-user" in one_error_line(missing)
    cli("user", "add", "help", ok=True)  # the name is free again

    # In another tenant: the same words as `user add/remove --tenant`.
    await service.tenants.create_tenant(operator, "acme")
    added = cli("pseudo", "add", "help", "--kind", "help", "--tenant", "acme", ok=True)
    assert added.stdout == "pseudo-user help (help) added in tenant acme\n"
    removed = cli("pseudo", "remove", "help", "--tenant", "acme", ok=True)
    assert removed.stdout == "pseudo-user help removed in tenant acme\n"
    cli("user", "add", "help", "--tenant", "acme", ok=True)
    gone = cli("user", "remove", "help", "--tenant", "acme", ok=True)
    assert gone.stdout == "user help removed in tenant acme\n"

    audit = json.loads(cli("audit", "--json", "--limit", "20", ok=True).stdout)
    actions = [e["action"] for e in audit]
    assert "pseudo.create" in actions and "pseudo.remove" in actions


async def test_finger_log_from_the_command_line(
    cli: Fingerplat, serve_factory, service: FingerplatService, operator: Context
):
    await service.users.add_user(operator, None, "alice")
    await service.users.set_status(operator, None, "alice", "around")
    assert json.loads(cli("user", "show", "alice", "--json", ok=True).stdout)["finger_log"] \
        is False
    shown = json.loads(cli("tenant", "show", "default", "--json", ok=True).stdout)
    assert shown["finger_log"] is False

    server = await serve_factory(cli.env, "--finger", "127.0.0.1:0", "--setter", "",
                                 "--web", "127.0.0.1:0")
    host, port = server.address("finger")
    assert "Login: alice" in await finger(host, port, "alice")  # off: not recorded

    out = cli("tenant", "set", "default", "--finger-log", ok=True).stdout
    assert "finger log on" in out
    cli("user", "edit", "alice", "--finger-log", ok=True)
    assert json.loads(cli("user", "show", "alice", "--json", ok=True).stdout)["finger_log"]

    assert "Login: alice" in await finger(host, port, "alice")
    assert "Login: alice" in await finger(host, port, "alice")
    deadline = asyncio.get_running_loop().time() + 20
    while True:  # the first lookup is written within a second or so
        entries = json.loads(cli("user", "fingered", "alice", "--json", ok=True).stdout)
        if entries:
            break
        assert asyncio.get_running_loop().time() < deadline, entries
        await asyncio.sleep(0.2)
    assert {(e["channel"], e["network"]) for e in entries} == {("finger", "127.0.0.0/24")}
    table = cli("user", "fingered", "alice", ok=True).stdout
    assert "127.0.0.0/24" in table and "127.0.0.1" not in table and "LOOKUPS" in table
    code, _, stderr = await server.stop()
    assert code == 0, stderr
    # The repeat is counted on the same line by the time the server stopped.
    entries = json.loads(cli("user", "fingered", "alice", "--json", ok=True).stdout)
    assert [(e["channel"], e["network"], e["count"]) for e in entries] == [
        ("finger", "127.0.0.0/24", 2)]


async def test_the_example_plugin_installs_and_answers(cli: Fingerplat, tmp_path: Path,
                                                       serve_factory):
    source = tmp_path / "plugin-source"
    shutil.copytree(EXAMPLE, source)  # the build leaves files beside its source
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site),
         str(source)],
        check=True, capture_output=True, timeout=180,
    )
    with_plugin = {"PYTHONPATH": str(site)}

    # Without the package the kind is unknown; with it, it is listed and usable.
    assert "unknown pseudo-user kind" in one_error_line(
        cli("pseudo", "add", "fortune", "--kind", "fortune"))
    cli("pseudo", "add", "fortune", "--kind", "fortune", env=with_plugin, ok=True)
    listed = cli("pseudo", "list", env=with_plugin, ok=True).stdout
    assert "a saying, a different one each day" in listed

    server = await serve_factory({**cli.env, **with_plugin}, "--finger", "127.0.0.1:0",
                                 "--setter", "", "--web", "")
    host, port = server.address("finger")
    answer = await finger(host, port, "fortune")
    assert answer.startswith("Fortune for Default:\r\n  "), answer
    assert "No such user" not in answer
    verbose = await finger(host, port, "/W fortune@default")
    assert "(asked of fortune@default at " in verbose
    code, _, stderr = await server.stop()
    assert code == 0, stderr
