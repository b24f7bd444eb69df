"""Audit actions are named once, in the domain's enum, and stored as the same text."""

from __future__ import annotations

import ast
from pathlib import Path

from fingerplat.domain.audit_actions import AuditAction

SERVICE = Path(__file__).resolve().parents[2] / "fingerplat" / "service"
# Service helpers whose argument (positional index, or keyword ``action``) is an audit action.
AUDITING = {"_audit": 3, "_deny": 1, "_require": 2, "auth_failed": 1, "audit": 0,
            "_writable_user": 4, "_own": 3, "auth_gate": None, "Refusal": 1}


def test_members_are_their_stored_text() -> None:
    assert AuditAction.USER_CREATE == "user.create"
    assert f"{AuditAction.IMPORT_RUN}" == "import.run"
    assert AuditAction("auth.local") is AuditAction.AUTH_LOCAL
    values = [a.value for a in AuditAction]
    assert len(values) == len(set(values))


def _action_args(call: ast.Call, name: str) -> list[ast.expr]:
    found = [kw.value for kw in call.keywords if kw.arg == "action"]
    index = AUDITING[name]
    if index is not None and len(call.args) > index:
        found.append(call.args[index])
    return found


def test_the_service_never_audits_a_free_string() -> None:
    """A literal action string would escape the enum (and the admin UI's filter)."""
    literals: list[str] = []
    for path in SERVICE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in AUDITING:
                continue
            for arg in _action_args(node, name):
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    literals.append(f"{path.name}:{node.lineno} {arg.value!r}")
    assert literals == []


def test_permission_checks_go_through_the_one_gate() -> None:
    """``_deny`` directly is for refused authentication only; permissions use ``_require``."""
    direct: list[str] = []
    for path in SERVICE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "_deny"):
                continue
            action = node.args[1] if len(node.args) > 1 else None
            if isinstance(action, ast.Attribute) and action.attr.startswith("AUTH_"):
                continue
            if path.name == "base.py":  # ``_require`` itself
                continue
            if path.name == "throttle.py" and isinstance(action, ast.Call):
                continue  # deny_unauthenticated: an adapter's auth.* refusal
            direct.append(f"{path.name}:{node.lineno}")
    assert direct == []
