"""What an importer hands to the service, and the report it gets back.

Readers (the users file, the password database, the web source, a JSON
export) turn their input into :class:`ImportRecord` values, one per input
line, so a report can always name the line a problem came from. ``None`` in a
field means "this source says nothing about it, leave it alone"; an empty
``status`` means "no status" and clears it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class ImportRecord:
    line: int
    username: str
    status: str | None = None
    full_name: str | None = None
    office: str | None = None
    phone: str | None = None
    project: str | None = None
    plan: str | None = None
    hidden: bool | None = None
    # False: only update the user if they exist (``~/.nofinger`` hides an
    # imported account but must not create one); never created, never an error.
    create: bool = True
    # A problem the reader already found (a line that is not UTF-8, no colon):
    # the service reports it with the line number like any other rejection.
    error: str | None = None


class StoredUser(NamedTuple):
    """A user as an import compares it with a record: what a source can set.

    A tuple rather than a :class:`~fingerplat.domain.model.User`: an import
    reads every user of the tenant, and building 100,000 full users (with
    timestamps the import never looks at) was a good part of its time.
    """

    id: int
    username: str
    full_name: str
    office: str
    phone: str
    project: str
    hidden: bool
    status: str | None
    plan: str | None  # None: the user has no plan row


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    reason: str
    username: str | None = None


@dataclass(slots=True)
class ImportReport:
    """Counts per outcome; every input record is in exactly one of them."""

    tenant: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.rejected)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        return (f"tenant {self.tenant}: {self.total} records: {self.created} created, "
                f"{self.updated} updated, {self.unchanged} unchanged, "
                f"{len(self.rejected)} rejected")

    def as_dict(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": [
                {"line": r.line, "username": r.username, "reason": r.reason}
                for r in sorted(self.rejected, key=lambda r: r.line)
            ],
        }
