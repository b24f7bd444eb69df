"""``fingerplat db ...``, the embedded default, bad URLs and bad config files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fingerplat.repository import migrations
from tests.e2e.conftest import Fingerplat, base_env, one_error_line
from tests.support.databases import DatabaseFactory


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_db_upgrade_current_downgrade_on_an_empty_database(
    backend: str, db_factory: DatabaseFactory, tmp_path: Path
):
    url = await db_factory.empty(backend)
    cli = Fingerplat({**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": url}, tmp_path)
    head = migrations.head_revision()

    assert cli("db", "current", ok=True).stdout.startswith("none")
    if backend == "postgresql":
        refused = cli("user", "list")
        assert refused.returncode == 6
        assert "fingerplat db upgrade" in one_error_line(refused)

    assert f"to {head}" in cli("db", "upgrade", ok=True).stdout
    assert cli("db", "current", ok=True).stdout.strip() == f"{head} (current)"
    assert "already current" in cli("db", "upgrade", ok=True).stdout
    cli("user", "add", "alice", ok=True)

    bad = cli("db", "downgrade", "nonsense")
    assert bad.returncode == 2 and "nonsense" in one_error_line(bad)
    cli("db", "downgrade", "base", ok=True)
    assert cli("db", "current", ok=True).stdout.startswith("none")


def test_embedded_default_is_created_on_first_use(bare_cli: Fingerplat, tmp_path: Path):
    expected = tmp_path / "xdg-data" / "fingerplat" / "fingerplat.db"
    first = bare_cli("user", "add", "alice", ok=True)
    assert f"SQLite {expected} (created)" in first.stderr
    assert expected.exists()
    second = bare_cli("user", "set", "alice", "away", ok=True)
    assert second.stderr == ""  # nothing to say once it exists
    shown = json.loads(bare_cli("user", "show", "alice", "--json", ok=True).stdout)
    assert shown["status"] == "away"


def test_bad_database_urls_and_config_files_are_one_line(bare_cli: Fingerplat, tmp_path: Path):
    scheme = bare_cli("--database-url", "mysql://root@localhost/x", "user", "list")
    assert scheme.returncode == 2 and "unsupported database URL" in one_error_line(scheme)
    debug = bare_cli("--debug", "--database-url", "mysql://root@localhost/x", "user", "list",
                     traceback=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr  # --debug shows it

    down = bare_cli("user", "list", env={
        "FINGERPLAT_DATABASE_URL": "postgresql+asyncpg://postgres:hunter2@127.0.0.1:1/x"})
    line = one_error_line(down)
    assert down.returncode == 6 and "database unreachable" in line
    assert "hunter2" not in line and "127.0.0.1:1" in line

    config = tmp_path / "fingerplat.toml"
    config.write_text('[finger]\nlisten = ["127.0.0.1:0"]\nidel_timeout = 3\n')
    typo = bare_cli("--config", str(config), "user", "list")
    assert typo.returncode == 2 and "unknown key 'finger.idel_timeout'" in one_error_line(typo)
    via_env = bare_cli("serve", env={"FINGERPLAT_CONFIG": str(config)})
    assert "unknown key 'finger.idel_timeout'" in one_error_line(via_env)

    config.write_text('database_url = "sqlite+aiosqlite:///' + str(tmp_path / "c.db") + '"\n')
    bare_cli("--config", str(config), "user", "add", "carol", ok=True)
    assert (tmp_path / "c.db").exists()  # the file's URL beats the default...
    other = tmp_path / "o.db"
    bare_cli("--config", str(config), "--database-url", f"sqlite+aiosqlite:///{other}",
             "user", "add", "dave", ok=True)
    assert other.exists()  # ...and the option beats the file


def test_a_role_that_does_not_exist_is_named_with_the_way_out(bare_cli: Fingerplat):
    from sqlalchemy.engine import make_url

    from tests.support.databases import postgres_server_url

    server = make_url(postgres_server_url())
    url = server.set(username="no_such_role_fp", password=None, database="fingerplat")
    refused = bare_cli("user", "list", env={
        "FINGERPLAT_DATABASE_URL": url.render_as_string(hide_password=False)})
    line = one_error_line(refused)
    assert refused.returncode == 6
    assert 'role "no_such_role_fp" does not exist' in line
    assert "create the role and the database first" in line


def _stderr_on_a_terminal(cli: Fingerplat, *args: str) -> str:
    """Run a command whose stderr is a pseudo-terminal, as in an interactive shell."""
    import os
    import pty
    import subprocess

    from tests.e2e.conftest import fingerplat_executable

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([fingerplat_executable(), *args], env=cli.env, cwd=cli.cwd,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=follower, timeout=60, check=True)
        os.close(follower)
        follower = -1
        said = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            said += chunk
        assert done.stdout
        return said.decode()
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)


def test_a_command_on_a_terminal_names_its_database(cli: Fingerplat, backend: str):
    from fingerplat.repository.engine import describe_database

    cli("user", "add", "alice", ok=True)
    said = _stderr_on_a_terminal(cli, "user", "list")
    expected = describe_database(cli.env["FINGERPLAT_DATABASE_URL"])
    assert f"fingerplat: database: {expected}" in said
    assert expected.startswith("SQLite /" if backend == "sqlite" else "PostgreSQL postgres@")
    # Through a pipe (scripts), nothing is added.
    assert cli("user", "list", ok=True).stderr == ""
