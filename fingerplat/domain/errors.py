"""Domain errors: every adapter maps these to its own protocol.

Each error carries a message written for the person who will read it (a
finger client, a CLI user, an API caller), so adapters can pass ``str(err)``
through after escaping it for their medium. ``code`` is stable and
machine-readable; adapters use it to pick an exit code, HTTP status or fault.
"""

from __future__ import annotations


class FingerplatError(Exception):
    """Base of every error a user may see."""

    code = "error"


class InvalidInput(FingerplatError):
    """Input breaks a rule of the domain (a name, a length, a format)."""

    code = "invalid"


class NotFound(FingerplatError):
    """The tenant, user, token or admin named does not exist (or is hidden)."""

    code = "not_found"


class Conflict(FingerplatError):
    """The change collides with existing data (a duplicate name or domain)."""

    code = "conflict"


class AuthenticationFailed(FingerplatError):
    """Credentials are missing, wrong, expired or revoked."""

    code = "unauthenticated"
    # Seconds until this client may try again (0: at once); set when this
    # failure put it over a throttle limit (fingerplat/service/throttle.py).
    retry_after: int = 0


class PermissionDenied(FingerplatError):
    """The principal is known but may not do this."""

    code = "forbidden"


class Unavailable(FingerplatError):
    """A dependency (the database) cannot be reached right now.

    ``detail`` is what the database said (a role that does not exist): for the
    operator's CLI and log only, never in an answer to a client.
    """

    code = "unavailable"

    def __init__(self, message: str = "", *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class CannotListen(FingerplatError):
    """A listener could not take its address (in use by another server, not permitted)."""

    code = "cannot_listen"

    def __init__(self, adapter: str, address: str, reason: str, *, in_use: bool = False,
                 hint: str = "") -> None:
        super().__init__(f"{adapter}: cannot listen on {address}: {reason}{hint}")
        self.adapter = adapter
        self.address = address
        self.reason = reason
        self.in_use = in_use


class SchemaOutOfDate(Unavailable):
    """The database schema is older than this release needs."""

    code = "schema_out_of_date"


class UserNotFound(NotFound):
    """A named user does not exist in a tenant (adapters may suggest adding one)."""

    def __init__(self, username: str, tenant_slug: str) -> None:
        super().__init__(f"no such user {username!r} in tenant {tenant_slug!r}")
        self.username = username
        self.tenant_slug = tenant_slug


class TooManyAttempts(AuthenticationFailed):
    """Too many failed authentications from this address (or for this account from it).

    A kind of :class:`AuthenticationFailed`, so every adapter refuses it at
    least as firmly; those that can say "come back later" (HTTP 429 with
    ``Retry-After``) use ``retry_after``, in whole seconds.
    """

    code = "throttled"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class NetworkRejected(PermissionDenied):
    """The client's network is one its tenant rejects: refused on every read surface."""

    def __init__(self, tenant_slug: str) -> None:
        super().__init__(f"your network is not allowed to use tenant {tenant_slug!r}")
        self.tenant_slug = tenant_slug
