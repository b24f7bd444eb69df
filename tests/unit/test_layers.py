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
