"""Status expiry: parsing durations and times, and the clock rule every read applies.

Pure functions (no I/O, the clock is an argument), so every adapter parses
``45m`` or ``14:00`` the same way and the parsers can be fuzzed.

A status with an expiry is the user's status only while ``now`` is before
its ``status_expires_at``; :func:`live` gives the user as every read must
show it. That is what makes reads right without any write when the time
comes: the sweeper that later clears the row (and writes the audit event)
only tidies up what every read already shows.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import User

#: The longest expiry accepted: a status that ends later is not expiring.
MAX_EXPIRY = timedelta(days=366)
MAX_TIMEZONE_CHARS = 64

_DURATION_RE = re.compile(r"(?:([0-9]{1,6})d)?(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m)?"
                          r"(?:([0-9]{1,8})s)?")
_CLOCK_RE = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_ZONE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,3}")

DURATION_HELP = "a duration like 90s, 45m, 2h, 1h30m or 1d"
TIME_HELP = "a time like 14:00 (the next one in the tenant's time zone) or 2026-12-07T14:00:00Z"


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "...'"


def parse_duration(text: str) -> timedelta:
    """``90s``, ``45m``, ``2h``, ``1h30m``, ``1d``: a positive span of at most a year."""
    value = (text or "").strip().lower()
    match = _DURATION_RE.fullmatch(value)
    if not value or match is None:
        raise InvalidInput(f"invalid duration {_shown(text)}: expected {DURATION_HELP}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    span = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if span <= timedelta(0):
        raise InvalidInput(f"invalid duration {_shown(text)}: it must be longer than 0 seconds")
    if span > MAX_EXPIRY:
        raise InvalidInput(f"duration {_shown(text)} is too long: at most 366 days")
    return span


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``); an unknown name is an input error."""
    return _zone(timezone_name(name))


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"unknown time zone {_shown(name)}: use an IANA name like UTC or Europe/Paris"
        ) from None


def timezone_name(value: str) -> str:
    """A validated time zone name, as stored on the tenant."""
    name = (value or "").strip()
    if not name or len(name) > MAX_TIMEZONE_CHARS or not _ZONE_RE.fullmatch(name):
        raise InvalidInput(
            f"unknown time zone {_shown(value)}: use an IANA name like UTC or Europe/Paris"
        )
    _zone(name)
    return name


def parse_until(text: str, now: datetime, timezone: str = "UTC") -> datetime:
    """An RFC 3339 time, or ``HH:MM``: the next such time in ``timezone``; in UTC.

    The moment must lie after ``now`` and at most a year ahead.
    """
    value = (text or "").strip()
    clock = _CLOCK_RE.fullmatch(value)
    if clock is not None:
        tz = zone(timezone)
        local_now = now.astimezone(tz)
        hour, minute = int(clock.group(1)), int(clock.group(2))
        candidate = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if candidate <= local_now:
            day = (local_now + timedelta(days=1)).date()
            candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
        # Round-trip through UTC: a wall time in a DST gap becomes a real instant.
        moment = candidate.astimezone(UTC)
        if moment <= now:  # the wall time fell into a gap that moved it back
            moment += timedelta(hours=1)
        return moment
    moment = _rfc3339(value)
    if moment is None:
        raise InvalidInput(f"invalid time {_shown(text)}: expected {TIME_HELP}")
    moment = moment.astimezone(UTC)
    _check_future(moment, now, text)
    return moment


def _rfc3339(value: str) -> datetime | None:
    if len(value) > 40 or "T" not in value.upper():
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _check_future(moment: datetime, now: datetime, text: str) -> None:
    if moment <= now:
        raise InvalidInput(f"time {_shown(text)} is in the past: an expiry must be in the future")
    if moment - now > MAX_EXPIRY:
        raise InvalidInput(f"time {_shown(text)} is too far ahead: at most 366 days")


def parse_expiry(text: str, now: datetime, timezone: str = "UTC") -> datetime:
    """The setter's ``EXPIRE`` argument: a duration or a time, as an instant in UTC."""
    value = (text or "").strip()
    if _DURATION_RE.fullmatch(value.lower()) and value:
        return now.astimezone(UTC) + parse_duration(value)
    try:
        return parse_until(value, now, timezone)
    except InvalidInput as error:
        if "invalid time" in str(error):
            raise InvalidInput(
                f"invalid expiry {_shown(text)}: expected {DURATION_HELP}, or {TIME_HELP}"
            ) from None
        raise


def expires_in(seconds: object, now: datetime) -> datetime:
    """``expires_in`` of the API and XML-RPC: whole seconds from now, at most a year."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidInput("expires_in must be a number of seconds")
    if seconds != seconds or seconds <= 0:  # NaN too
        raise InvalidInput("expires_in must be more than 0 seconds")
    if seconds > MAX_EXPIRY.total_seconds():
        raise InvalidInput("expires_in is too long: at most 366 days (31622400 seconds)")
    return now.astimezone(UTC) + timedelta(seconds=seconds)


def expires_at(value: object, now: datetime) -> datetime:
    """``expires_at`` of the API: an RFC 3339 time with an offset, in the future."""
    if not isinstance(value, str):
        raise InvalidInput("expires_at must be an RFC 3339 time like 2026-12-07T14:00:00Z")
    moment = _rfc3339(value.strip())
    if moment is None:
        raise InvalidInput(f"invalid expires_at {_shown(value)}: expected an RFC 3339 time "
                           "like 2026-12-07T14:00:00Z")
    moment = moment.astimezone(UTC)
    _check_future(moment, now, value)
    return moment


def expired(user: User, now: datetime) -> bool:
    """Whether the user's status has an expiry that ``now`` has reached."""
    deadline = user.status_expires_at
    return deadline is not None and user.status is not None and _aware(deadline) <= now


def live(user: User, now: datetime) -> User:
    """The user as a read at ``now`` shows it: an expired status is no status."""
    if not expired(user, now):
        return user
    return dataclasses.replace(user, status=None, status_set_at=None, status_expires_at=None)


def deadline(user: User | None) -> datetime | None:
    """Until when an answer showing ``user`` stays right (None: until a change)."""
    if user is None or user.status is None:
        return None
    return user.status_expires_at


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Expiry:
    """An expiry as an adapter received it; the service resolves it in the tenant's zone.

    Adapters cannot resolve ``14:00`` themselves (they may not know the
    tenant's time zone yet), so they pass one of these and the service calls
    :meth:`resolve` with its clock before changing anything.
    """

    kind: str  # "at" (a datetime), "in" (seconds), "for" (duration text), "until", "any"
    value: object

    @classmethod
    def at(cls, moment: datetime) -> Expiry:
        return cls("at", moment)

    @classmethod
    def after(cls, seconds: object) -> Expiry:
        return cls("in", seconds)

    @classmethod
    def duration(cls, text: str) -> Expiry:
        parse_duration(text)  # refuse a bad duration before anything is looked up
        return cls("for", text)

    @classmethod
    def until(cls, text: str) -> Expiry:
        return cls("until", text)

    @classmethod
    def parse(cls, text: str) -> Expiry:
        """A duration or a time (the setter's ``EXPIRE``)."""
        return cls("any", text)

    def resolve(self, now: datetime, timezone: str = "UTC") -> datetime:
        if self.kind == "at":
            assert isinstance(self.value, datetime)
            moment = _aware(self.value).astimezone(UTC)
            _check_future(moment, now, moment.isoformat())
            return moment
        if self.kind == "in":
            return expires_in(self.value, now)
        if self.kind == "for":
            return now.astimezone(UTC) + parse_duration(str(self.value))
        if self.kind == "until":
            return parse_until(str(self.value), now, timezone)
        return parse_expiry(str(self.value), now, timezone)
