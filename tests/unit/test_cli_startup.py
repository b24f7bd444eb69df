"""The CLI starts in a blink: --version and --help import no database or web stack.

Timing targets live in bench/cli_start.py; these tests check the cause (what is
imported), which does not depend on how busy the machine is.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from fingerplat_cli.main import COMMANDS, cli

HEAVY = ("sqlalchemy", "alembic", "aiohttp", "pydantic", "asyncpg", "aiosqlite", "jinja2")

_PROBE = """
import json, sys
from fingerplat_cli.main import cli
try:
    cli.main(args=sys.argv[1:], prog_name="fingerplat")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules)), file=sys.stderr)
"""


def _modules_imported_by(*args: str) -> tuple[str, set[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout, set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("user", "--help"),
                                  ("tenant", "--help"), ("token", "--help")])
def test_version_and_help_import_no_heavy_module(args):
    out, modules = _modules_imported_by(*args)
    assert out.strip(), "the command printed nothing"
    loaded = {name for name in HEAVY if name in modules}
    assert loaded == set(), f"`fingerplat {' '.join(args)}` imported {sorted(loaded)}"


def test_version_is_printed():
    out, _ = _modules_imported_by("--version")
    assert out.startswith("fingerplat, version ")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_lists_each_command_with_its_own_help(name):
    module, summary = COMMANDS[name]
    command = importlib.import_module(f"fingerplat_cli.commands.{module}").command
    assert command.name == name
    assert summary == (command.help or "").split("\n\n")[0].strip()


def test_every_command_module_is_listed():
    from pathlib import Path

    import fingerplat_cli.commands as package

    modules = {p.stem for p in Path(package.__path__[0]).glob("*.py") if p.stem != "__init__"}
    assert modules == {module for module, _ in COMMANDS.values()}
    assert set(cli.list_commands(None)) == set(COMMANDS)  # type: ignore[arg-type]


def test_engine_defaults_are_the_documented_database_defaults():
    # The CLI without a configuration file uses the engine's defaults directly.
    import inspect

    from fingerplat.bootstrap import PoolSettings
    from fingerplat.config import DatabaseConfig
    from fingerplat.repository.engine import create_engine

    defaults = DatabaseConfig()
    for name, parameter in inspect.signature(create_engine).parameters.items():
        if parameter.default is not inspect.Parameter.empty:
            assert getattr(defaults, name) == parameter.default, name
    # The bootstrap assembles the pool settings once, for the CLI and serve alike.
    assert PoolSettings.of(None) == PoolSettings.of(defaults)


def test_a_command_without_a_config_file_does_not_load_the_configuration_model(tmp_path):
    env_url = f"sqlite+aiosqlite:///{tmp_path / 'fp.db'}"
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGERPLAT_")}
    env["FINGERPLAT_DATABASE_URL"] = env_url
    done = subprocess.run([sys.executable, "-c", _PROBE, "user", "list"], capture_output=True,
                          text=True, timeout=120, check=True, env=env)
    modules = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "sqlalchemy" in modules  # it did reach the database
    assert "pydantic" not in modules and "aiohttp" not in modules


# What `fingerplat user set` must not load: the web and server stacks, the
# migration tool, the configuration model, password hashing and rich tables.
NOT_FOR_A_STATUS = ("aiohttp", "aiohttp_jinja2", "jinja2", "alembic", "pydantic",
                    "prometheus_client", "argon2", "rich", "pydle", "defusedxml",
                    "fingerplat.adapters", "fingerplat.server", "fingerplat.config",
                    "fingerplat_migrations")

# The console script itself (fingerplat_cli.main.main, with its garbage-collector
# handling), then what was imported and whether the cyclic GC was back on.
_CONSOLE_PROBE = """
import gc, json, sys
from fingerplat_cli.main import main
sys.argv = ["fingerplat", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exit:
    code = exit.code or 0
print(json.dumps({"modules": sorted(sys.modules), "gc": gc.isenabled(), "code": code}),
      file=sys.stderr)
"""


def _console(database_url: str, *args: str) -> tuple[str, dict]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGERPLAT_")}
    env["FINGERPLAT_DATABASE_URL"] = database_url
    done = subprocess.run([sys.executable, "-c", _CONSOLE_PROBE, *args], capture_output=True,
                          text=True, timeout=120, check=True, env=env, stdin=subprocess.DEVNULL)
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_setting_a_status_loads_only_the_database_stack_and_the_service(database_url, backend):
    out, seen = _console(database_url, "user", "add", "alice")
    assert seen["code"] == 0, out
    out, seen = _console(database_url, "user", "set", "alice", "away")
    assert (out, seen["code"]) == ("alice: away\n", 0)
    modules = set(seen["modules"])
    assert {"sqlalchemy", "fingerplat.service"} <= modules  # it did go through the service
    loaded = sorted(name for name in NOT_FOR_A_STATUS if name in modules)
    assert loaded == [], f"`fingerplat user set` imported {loaded}"
    if backend == "sqlite":
        # The dialect-specific INSERTs are imported where built, for the
        # connection's own dialect.
        assert "sqlalchemy.dialects.postgresql" not in modules
        assert "asyncpg" not in modules
    # The console script keeps the cyclic GC off while loading only: a command
    # that ran has it back on (an import of 100,000 users must collect).
    assert seen["gc"] is True
