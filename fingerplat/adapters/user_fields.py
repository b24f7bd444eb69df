"""One user -> dict serialiser for every adapter that hands a user out as data.

The JSON API, XML-RPC's ``getUserInfo`` and ``fingerplat export --format
json`` all describe the same user with the same names; they used to build the
dict three times and drift. :func:`user_dict` is the one place: each adapter
picks the keys it documents (docs/web.md, the export format) and its
medium's spelling of "none" (JSON ``null``; XML-RPC has no nil, so ``""``).

Times are ISO 8601 in UTC with a ``Z`` (:func:`fingerplat.adapters.times.iso_utc`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fingerplat.adapters.times import iso_utc
from fingerplat.domain.model import User

#: Every key :func:`user_dict` knows and the public field (per tenant) it shows.
FIELD_OF_KEY = {
    "username": None, "full_name": "full_name", "office": "office", "phone": "phone",
    "project": "project", "status": "status", "status_set_at": "status",
    "expires_at": "status", "status_expires_at": "status", "hidden": None, "plan": "plan",
    "created_at": None,
}
#: The keys of the JSON API's user object, in its documented order.
API_KEYS = ("username", "full_name", "office", "phone", "project", "status", "status_set_at",
            "expires_at", "hidden", "plan")


def _value(user: User, key: str) -> Any:
    if key == "status_set_at":
        return iso_utc(user.status_set_at) or None
    if key in ("expires_at", "status_expires_at"):
        return iso_utc(user.status_expires_at) or None
    if key == "created_at":
        return iso_utc(user.created_at) or None
    return getattr(user, key)


def user_dict(user: User, keys: Collection[str] = API_KEYS, *,
              fields: Collection[str] | None = None,
              none: Any = None) -> dict[str, Any]:
    """``user`` as a dict of ``keys`` (in that order).

    With ``fields`` (a public answer: the fields the tenant publishes) keys
    that show another field are left out. ``none`` stands for a missing
    value (a time not set, a status ``None``).
    """
    data: dict[str, Any] = {}
    for key in keys:
        field = FIELD_OF_KEY[key]
        if fields is not None and field is not None and field not in fields:
            continue
        value = _value(user, key)
        data[key] = none if value is None else value
    return data
