"""Every action the audit trail records, by name.

A ``str`` enum: a member *is* its stored text (``AuditAction.USER_CREATE ==
"user.create"``), so rows written before this enum existed read the same and
no migration was needed. The service audits only members of it, and the admin
UI's action filter offers exactly these (``fingerplat/adapters/web/admin``).
Stored rows are read back as plain strings (:class:`~fingerplat.domain.model.
AuditEvent.action`): an old release's name stays readable even if it is
renamed here one day.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # Authentication and sessions.
    AUTH_LOGIN = "auth.login"  # an admin's or a self-service user's password
    AUTH_TOKEN = "auth.token"  # a token presented, or a request without usable credentials
    AUTH_SESSION = "auth.session"  # a long-lived session whose credentials stopped holding
    AUTH_LOCAL = "auth.local"  # a local OS user (UNIX socket) without an account
    AUTH_FAILURES = "auth.failures"  # a summary row of counted, unwritten refusals
    # Refusals the admin web app decides by itself (before any use case runs).
    WEB_FORM = "web.form"
    WEB_CSRF = "web.csrf"
    # Tenants.
    TENANT_CREATE = "tenant.create"
    TENANT_UPDATE = "tenant.update"
    TENANT_REMOVE = "tenant.remove"
    TENANT_READ = "tenant.read"
    # Users, statuses, plans.
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_REMOVE = "user.remove"
    USER_PASSWORD = "user.password"
    ACCOUNT_READ = "account.read"  # one's own self-service page
    STATUS_SET = "status.set"
    STATUS_CLEAR = "status.clear"
    STATUS_EXPIRY = "status.expiry"  # an expiry given to (or taken from) a status
    STATUS_EXPIRE = "status.expire"  # a status cleared by the clock (actor ``system``)
    PLAN_SET = "plan.set"
    PSEUDO_CREATE = "pseudo.create"
    PSEUDO_READ = "pseudo.read"
    PSEUDO_REMOVE = "pseudo.remove"
    FINGER_LOG_READ = "finger_log.read"
    # Credentials.
    TOKEN_CREATE = "token.create"
    TOKEN_LIST = "token.list"
    TOKEN_REVOKE = "token.revoke"
    ADMIN_CREATE = "admin.create"
    ADMIN_LIST = "admin.list"
    ADMIN_REMOVE = "admin.remove"
    # Reading the trail and the activity it summarises.
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    ACTIVITY_READ = "activity.read"
    # Bulk data in and out.
    IMPORT_RUN = "import.run"
    IMPORT_CREATE = "import.create"
    IMPORT_UPDATE = "import.update"
    EXPORT = "export"
