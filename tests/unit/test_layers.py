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


def _service_classes() -> dict[str, tuple[str, list[str]]]:
    """Every class of fingerplat/service: name -> (module file, names of its bases)."""
    classes: dict[str, tuple[str, list[str]]] = {}
    for path in sorted((PACKAGE / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
                classes[node.name] = (path.name, bases)
    return classes


def test_the_service_is_composed_not_inherited():
    """Issue 14: each use case is a component holding the shared core; no use
    case inherits another, and FingerplatService mixes none in (DEVELOPERS.md,
    "The service: components on one core")."""
    classes = _service_classes()
    assert classes["UseCase"][1] == [], "UseCase is the one root of the use cases"
    use_cases: set[str] = {"UseCase"}
    grew = True
    while grew:  # every class deriving, at any depth, from UseCase
        found = {name for name, (_, bases) in classes.items() if use_cases & set(bases)}
        grew = not found <= use_cases
        use_cases |= found
    offenders = {
        f"{classes[name][0]}:{name}": classes[name][1]
        for name in sorted(use_cases - {"UseCase"})
        if classes[name][1] != ["UseCase"]
    }
    assert offenders == {}, "a use case may derive from UseCase only"
    assert "FingerplatService" in classes
    assert classes["FingerplatService"][1] == [], "FingerplatService holds its use cases"
    assert "ServiceCore" not in use_cases and classes["ServiceCore"][1] == []
    # The components: every use case is held by the service (a forgotten one
    # would be code no adapter can reach).
    core = (PACKAGE / "service" / "core.py").read_text()
    unheld = sorted(name for name in use_cases - {"UseCase"} if f"{name}(core" not in core)
    assert unheld == []
