"""Rules of the self-service page: which profile fields a user may edit themselves."""

from __future__ import annotations

from collections.abc import Iterable

from fingerplat.domain.errors import InvalidInput

# The profile fields there are; a tenant chooses which of them its users may edit.
PROFILE_FIELDS = ("full_name", "office", "phone", "project")
# A tenant that never chose lets its users edit all of them.
DEFAULT_SELF_EDIT_FIELDS = PROFILE_FIELDS


def self_edit_fields(value: str | Iterable[str]) -> tuple[str, ...]:
    """A comma list (or names) of editable fields, checked, in the canonical order.

    ``""`` or ``"none"`` means no field at all; an unknown name is an input
    error naming it and the names allowed.
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    wanted = {n.strip().lower().replace("-", "_") for n in names if n.strip()}
    if wanted == {"none"}:
        return ()
    unknown = sorted(wanted - set(PROFILE_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown profile field {unknown[0][:40]!r}: choose from "
                           f"{','.join(PROFILE_FIELDS)} (or none)")
    return tuple(f for f in PROFILE_FIELDS if f in wanted)


def stored_self_edit_fields(stored: object) -> tuple[str, ...]:
    """The tenant's stored setting (JSON list, or null for the default), never failing."""
    if not isinstance(stored, list):
        return DEFAULT_SELF_EDIT_FIELDS
    return tuple(f for f in PROFILE_FIELDS if f in stored)
