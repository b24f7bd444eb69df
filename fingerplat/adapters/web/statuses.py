"""The one table from domain errors to HTTP statuses, for every web answer.

The JSON API, the public pages, self-service, the admin UI and XML-RPC's
fault codes all answer the same error with the same status: the API's, as
SPEC and docs/web.md (and the OpenAPI document) give them. A rule broken by
the input is 422 everywhere, the admin forms included (they used to say 400);
400 stays for a request that cannot be read at all (``MalformedRequest``).
"""

from __future__ import annotations

from fingerplat.adapters.web.payloads import BodyTimeout, MalformedRequest, PayloadTooLarge
from fingerplat.domain.errors import (
    AuthenticationFailed,
    Conflict,
    FingerplatError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unavailable,
)

# Domain error -> HTTP status. Order matters: subclasses before their bases.
STATUS_FOR_ERROR: tuple[tuple[type[FingerplatError], int], ...] = (
    (MalformedRequest, 400),
    (PayloadTooLarge, 413),
    (BodyTimeout, 408),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (TooManyAttempts, 429),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (Unavailable, 503),
)

#: The heading of an error page for each status.
TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def status_for(error: FingerplatError, default: int = 400) -> int:
    """The HTTP status of ``error`` (``default`` for an error the table does not name)."""
    for kind, status in STATUS_FOR_ERROR:
        if isinstance(error, kind):
            return status
    return default


def title_for(status: int) -> str:
    return TITLES.get(status, "Error")
