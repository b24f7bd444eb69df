"""The layers, checked on the source: who may import whom (DEVELOPERS.md, "Layers").

Adapters and the service are built by the composition root and never reach
back into it; the bootstrap is on the CLI's start-up path, so it imports
nothing heavy (nor the configuration model) at module level.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fingerplat"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", ["adapters", "service", "repository", "domain"])
def test_no_layer_below_the_composition_root_imports_it(layer):
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            name for name in _imports(path)
            if name.split(".")[:2] in (["fingerplat", "bootstrap"], ["fingerplat", "server"]))
        for path in (PACKAGE / layer).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_bootstrap_imports_nothing_heavy_when_loaded():
    probe = ("import json, sys, fingerplat.bootstrap; "
             "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    modules = set(json.loads(done.stdout))
    heavy = {"sqlalchemy", "alembic", "aiohttp", "pydantic", "fingerplat.config",
             "fingerplat.service", "fingerplat.adapters", "fingerplat.server"}
    assert heavy & modules == set()


def _cache_internals(path: Path) -> list[str]:
    """Where ``path`` reaches past the kept answers into the read cache itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("epoch", "read_cache"):
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg == "epoch":
            found.append(f"{node.lineno}: epoch=")
        elif isinstance(node, ast.ImportFrom) and node.module == "fingerplat.service.cache":
            found.append(f"{node.lineno}: from fingerplat.service.cache import")
        elif isinstance(node, ast.Import) and any(
                alias.name == "fingerplat.service.cache" for alias in node.names):
            found.append(f"{node.lineno}: import fingerplat.service.cache")
    return found


def test_adapters_keep_answers_through_the_service_and_never_see_an_epoch():
    """Adapters ask ``service.kept_answers`` (fingerplat/service/kept_answers.py):
    whether a fill is still exact is the service's bookkeeping, not theirs."""
    offenders = {
        str(path.relative_to(PACKAGE.parent)): found
        for path in (PACKAGE / "adapters").rglob("*.py")
        if (found := _cache_internals(path))
    }
    assert offenders == {}
