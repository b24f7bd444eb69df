"""Every rule of fingerplat/service/permissions.py for every kind of principal.

The acting principals look at tenant 1 and its user 10. "other" principals
belong elsewhere: tenant 2, or user 11 of tenant 1. ``stray_user`` carries user
id 10 but another tenant, so a rule that checked only the user id would fail.
"""

from __future__ import annotations

import pytest

from fingerplat.domain.model import Principal, Role, TokenScope
from fingerplat.service import permissions as perm

TENANT = 1
USER = 10

P = {
    "platform": Principal(Role.PLATFORM_ADMIN, "admin:root"),
    "operator": Principal.operator("root"),
    "tenant_admin": Principal(Role.TENANT_ADMIN, "admin:ops", tenant_id=TENANT, admin_id=3),
    "other_tenant_admin": Principal(Role.TENANT_ADMIN, "admin:x", tenant_id=2, admin_id=4),
    "self": Principal(Role.USER, "token:1", tenant_id=TENANT, user_id=USER, token_id=1),
    "other_user": Principal(Role.USER, "token:2", tenant_id=TENANT, user_id=11, token_id=2),
    "stray_user": Principal(Role.USER, "token:3", tenant_id=2, user_id=USER, token_id=3),
    "anonymous": Principal.anonymous(),
}
PLATFORM_ONLY = {"platform", "operator"}
ADMINS_OF_TENANT = PLATFORM_ONLY | {"tenant_admin"}


def _check(rule, allowed: set[str]) -> None:
    """``rule(principal)`` must be True for exactly the ``allowed`` principals."""
    got = {name for name, principal in P.items() if rule(principal)}
    assert got == allowed


def test_operator_is_a_platform_admin_audited_as_cli_user() -> None:
    assert P["operator"].role is Role.PLATFORM_ADMIN
    assert P["operator"].name == "cli:root"
    assert P["anonymous"].role is Role.ANONYMOUS


def test_is_platform_admin() -> None:
    _check(perm.is_platform_admin, PLATFORM_ONLY)


def test_is_admin_of() -> None:
    _check(lambda p: perm.is_admin_of(p, TENANT), ADMINS_OF_TENANT)
    _check(lambda p: perm.is_admin_of(p, 2), PLATFORM_ONLY | {"other_tenant_admin"})


def test_can_manage_tenants() -> None:
    _check(perm.can_manage_tenants, PLATFORM_ONLY)


def test_can_edit_tenant_basics() -> None:
    _check(lambda p: perm.can_edit_tenant_basics(p, TENANT), ADMINS_OF_TENANT)


def test_can_update_tenant() -> None:
    """Domains and forwarding route the whole platform's traffic: platform admins only."""
    _check(lambda p: perm.can_update_tenant(p, TENANT, routing=False), ADMINS_OF_TENANT)
    _check(lambda p: perm.can_update_tenant(p, TENANT, routing=True), PLATFORM_ONLY)


def test_is_signed_in_user() -> None:
    _check(perm.is_signed_in_user, {"self", "other_user", "stray_user"})


def test_can_manage_users() -> None:
    _check(lambda p: perm.can_manage_users(p, TENANT), ADMINS_OF_TENANT)


def test_can_write_status() -> None:
    _check(lambda p: perm.can_write_status(p, TENANT, USER), ADMINS_OF_TENANT | {"self"})
    # The same user id in another tenant is a different person.
    _check(lambda p: perm.can_write_status(p, 2, USER),
           PLATFORM_ONLY | {"other_tenant_admin", "stray_user"})


def test_can_see_hidden() -> None:
    _check(lambda p: perm.can_see_hidden(p, TENANT), ADMINS_OF_TENANT)


@pytest.mark.parametrize("scope", [TokenScope.USER, TokenScope.TENANT])
def test_can_create_tenant_and_user_tokens(scope: TokenScope) -> None:
    _check(lambda p: perm.can_create_token(p, scope, TENANT), ADMINS_OF_TENANT)
    _check(lambda p: perm.can_create_token(p, scope, None), set())


def test_can_create_platform_tokens() -> None:
    _check(lambda p: perm.can_create_token(p, TokenScope.PLATFORM, None), PLATFORM_ONLY)
    _check(lambda p: perm.can_create_token(p, TokenScope.PLATFORM, TENANT), PLATFORM_ONLY)


def test_can_manage_tokens() -> None:
    _check(lambda p: perm.can_manage_tokens(p, TENANT), ADMINS_OF_TENANT)
    _check(lambda p: perm.can_manage_tokens(p, None), PLATFORM_ONLY)


def test_can_manage_admins() -> None:
    _check(perm.can_manage_admins, PLATFORM_ONLY)


def test_can_read_audit() -> None:
    _check(lambda p: perm.can_read_audit(p, TENANT), ADMINS_OF_TENANT)
    _check(lambda p: perm.can_read_audit(p, None), PLATFORM_ONLY)


def test_every_rule_is_covered() -> None:
    """A rule added to permissions.py without a test here fails this test."""
    tested = {
        "is_platform_admin", "is_admin_of", "can_manage_tenants", "can_edit_tenant_basics",
        "can_manage_users", "can_write_status", "can_see_hidden", "can_create_token",
        "can_manage_tokens", "can_manage_admins", "can_read_audit", "can_update_tenant",
        "is_signed_in_user",
    }
    public = {
        name for name in dir(perm)
        if not name.startswith("_") and callable(getattr(perm, name))
        and getattr(getattr(perm, name), "__module__", "") == perm.__name__
    }
    assert public == tested
