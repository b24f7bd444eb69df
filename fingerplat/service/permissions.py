"""Who may do what: pure functions of the principal and the target.

Kept free of I/O so every rule has a fast unit test. The service calls these
and turns a ``False`` into an audited :class:`PermissionDenied`.

Rules (also in the README):

* platform admins (and the CLI operator) may do everything;
* tenant admins manage their own tenant: its users, statuses, plans, user and
  tenant tokens, its display name and ``list_users``; not its domains or
  ``forwarding`` (they affect routing and outbound traffic of the whole
  platform), not other tenants, not admin accounts;
* a user (via a user token) may change only their own status and plan.
"""

from __future__ import annotations

from fingerplat.domain.model import Principal, Role, TokenScope


def is_platform_admin(p: Principal) -> bool:
    return p.role is Role.PLATFORM_ADMIN


def is_admin_of(p: Principal, tenant_id: int) -> bool:
    return is_platform_admin(p) or (p.role is Role.TENANT_ADMIN and p.tenant_id == tenant_id)


def is_signed_in_user(p: Principal) -> bool:
    """A user acting for themself (a self-service session or a user token)."""
    return p.role is Role.USER and p.user_id is not None and p.tenant_id is not None


def can_manage_tenants(p: Principal) -> bool:
    """Create or remove tenants, change domains and forwarding."""
    return is_platform_admin(p)


def can_edit_tenant_basics(p: Principal, tenant_id: int) -> bool:
    """Display name and ``list_users``."""
    return is_admin_of(p, tenant_id)


def can_update_tenant(p: Principal, tenant_id: int, *, routing: bool) -> bool:
    """A change of tenant settings; ``routing``: it touches domains or forwarding."""
    return can_manage_tenants(p) if routing else can_edit_tenant_basics(p, tenant_id)


def can_manage_users(p: Principal, tenant_id: int) -> bool:
    return is_admin_of(p, tenant_id)


def can_write_status(p: Principal, tenant_id: int, user_id: int) -> bool:
    """Status and plan: an admin of the tenant, or the user themself."""
    if is_admin_of(p, tenant_id):
        return True
    return p.role is Role.USER and p.tenant_id == tenant_id and p.user_id == user_id


def can_see_hidden(p: Principal, tenant_id: int) -> bool:
    return is_admin_of(p, tenant_id)


def can_create_token(p: Principal, scope: TokenScope, tenant_id: int | None) -> bool:
    if scope is TokenScope.PLATFORM:
        return is_platform_admin(p)
    return tenant_id is not None and is_admin_of(p, tenant_id)


def can_manage_tokens(p: Principal, tenant_id: int | None) -> bool:
    if tenant_id is None:
        return is_platform_admin(p)
    return is_admin_of(p, tenant_id)


def can_manage_admins(p: Principal) -> bool:
    return is_platform_admin(p)


def can_read_audit(p: Principal, tenant_id: int | None) -> bool:
    if tenant_id is None:
        return is_platform_admin(p)
    return is_admin_of(p, tenant_id)
