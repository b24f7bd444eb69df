"""The documentation keeps up with the interface (Datasette keeps such a test too).

Every configuration key must appear in a ```toml example in README.md or
docs/*.md, every CLI command must be shown as ``fingerplat <path>``, and every
option must be mentioned, so a user reading the docs sees the whole interface.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from fingerplat.config import Config
from fingerplat_cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def _doc_text() -> str:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(f.read_text(encoding="utf-8") for f in files if f.exists())


def _toml_examples(text: str) -> list[dict]:
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    return [tomllib.loads(block) for block in blocks]


def _config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        submodels = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if submodels and name not in ("listen",):
            keys.extend(_config_keys(submodels[0], f"{path}."))
        else:
            keys.append(path)
    return keys


def _documented_keys(examples: list[dict]) -> set[str]:
    found: set[str] = set()

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{prefix}{key}"
                found.add(path)
                walk(value, f"{path}.")
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, dict):
                    walk(item, prefix)

    for example in examples:
        walk(example, "")
    return found


def test_every_config_key_is_in_a_toml_example():
    documented = _documented_keys(_toml_examples(_doc_text()))
    missing = [key for key in _config_keys(Config) if key not in documented]
    assert missing == [], f"config keys missing from the docs' TOML examples: {missing}"


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


COMMANDS = _commands(cli, "fingerplat")


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_cli_command_and_option_is_documented(path, command):
    text = _doc_text()
    assert path in text, f"`{path}` is not shown in README.md or docs/"
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                if opt in ("-h", "--help"):
                    continue
                assert opt in text, f"option {opt} of `{path}` is not documented"


def test_global_options_are_documented():
    text = _doc_text()
    for opt in ("--database-url", "--config", "FINGERPLAT_DATABASE_URL", "FINGERPLAT_CONFIG"):
        assert opt in text


def test_the_cli_has_its_command_groups():
    names = {path for path, _ in COMMANDS}
    for group in ("serve", "db", "tenant", "user", "token", "admin", "audit", "import",
                  "export", "finger"):
        assert f"fingerplat {group}" in names
