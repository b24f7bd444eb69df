"""Building finger answers: plain lines in, CRLF-terminated UTF-8 bytes out.

Pure functions, so the wire format has unit and property tests without a
socket. Every line goes through :func:`encode`, the single exit to the wire,
which neutralises control characters with
:func:`fingerplat.domain.text.printable` (RFC 1288 section 3.3) and ends each
line with CRLF. No other code path writes finger bytes, so stored text can
never smuggle an escape sequence or a bare CR/LF to a client's terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, tzinfo

from fingerplat.adapters.times import minutes as when
from fingerplat.domain import expiry, visibility
from fingerplat.domain.model import StatusChange, Tenant, User
from fingerplat.domain.text import printable, printable_lines

NO_SUCH_USER = "No such user"
UNAVAILABLE = "finger: service temporarily unavailable, please try again later"
INTERNAL_ERROR = "finger: internal error, please try again later"

# Columns of the user list. Names and statuses longer than this are cut so
# one user stays on one line of an 80-column terminal as far as possible.
_LIST_NAME_WIDTH = 24
_FIELD_COLUMN = 40


def encode(lines: Iterable[str]) -> bytes:
    """The wire form of an answer: each line neutralised, CRLF after each, UTF-8."""
    return "".join(printable(line) + "\r\n" for line in lines).encode("utf-8", "replace")


def _clock(local: datetime) -> str:
    return f"{local.hour:02d}:{local.minute:02d} {local.tzname() or 'UTC'}"


def _zone_of(tenant: Tenant | None) -> tzinfo:
    if tenant is None or tenant.timezone == "UTC":
        return UTC
    try:
        return expiry.zone(tenant.timezone)
    except Exception:  # a zone this machine lacks: UTC rather than no answer
        return UTC


def _pair(left_label: str, left: str, right_label: str, right: str) -> str:
    first = f"{left_label}: {left}"
    if not right:
        return first
    return f"{first:<{_FIELD_COLUMN - 1}} {right_label}: {right}"


def status_times(set_at: datetime | None, until: datetime | None, zone: tzinfo = UTC) -> str:
    """``since 12:01 UTC, until 13:00 UTC``; dates appear when the two days differ."""
    if until is None:
        since = when(set_at, zone)
        return f"since {since}" if since else ""
    end = (until if until.tzinfo else until.replace(tzinfo=UTC)).astimezone(zone)
    if set_at is None:
        return f"until {when(end, zone)}"
    start = (set_at if set_at.tzinfo else set_at.replace(tzinfo=UTC)).astimezone(zone)
    if start.date() == end.date():
        return f"since {_clock(start)}, until {_clock(end)}"
    return f"since {when(start, zone)}, until {when(end, zone)}"


def _status_line(user: User, zone: tzinfo = UTC) -> str:
    if user.status is None:
        return "Status: (none)"
    times = status_times(user.status_set_at, user.status_expires_at, zone)
    return f"Status: {user.status}" + (f" ({times})" if times else "")


def user_entry(user: User, *, verbose: bool = False,
               history: Sequence[StatusChange] = (), tenant: Tenant | None = None) -> list[str]:
    """One user's entry: login, name, status and time, plan; verbose adds the rest.

    With ``tenant``, fields it does not publish are left out (no line at all)
    and times are in its time zone.
    """
    def shows(name: str) -> bool:
        return tenant is None or tenant.shows(name)

    zone = _zone_of(tenant)
    lines = [_pair("Login", user.username, "Name", user.full_name if shows("full_name") else "")]
    if verbose:
        lines.extend(_contact_lines(user, shows))
    if shows("status"):
        lines.append(_status_line(user, zone))
    if verbose and history and (tenant is None or visibility.shows_history(tenant.public_fields)):
        lines.extend(_history_lines(history, zone))
    if shows("plan"):
        lines.extend(_plan_lines(user.plan))
    return lines


def _contact_lines(user: User, shows: Callable[[str], bool]) -> list[str]:
    """Office and phone on one line, then the project: the long form's extra lines."""
    lines = []
    office = user.office if shows("office") else ""
    phone = user.phone if shows("phone") else ""
    if office or phone:
        lines.append(_pair("Office", office or "-", "Phone", phone))
    if user.project and shows("project"):
        lines.append(f"Project: {user.project}")
    return lines


def _history_lines(history: Sequence[StatusChange], zone: tzinfo) -> list[str]:
    lines = ["Recent statuses:"]
    for change in history:
        text = change.text if change.text is not None else "(cleared)"
        until = f"  (until {when(change.expires_at, zone)})" if change.expires_at else ""
        lines.append(f"  {when(change.set_at, zone)}  {text}{until}")
    return lines


def _plan_lines(plan: str) -> list[str]:
    return ["Plan:", *printable_lines(plan)] if plan else ["No Plan."]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def user_list(users: Sequence[User], total: int, tenant: Tenant | None = None) -> list[str]:
    """The directory: one line per user, then how many more a capped list left out.

    Columns of fields the tenant does not publish are left out.
    """
    if not users:
        return ["No users."]
    zone = _zone_of(tenant)
    show_name = tenant is None or tenant.shows("full_name")
    show_status = tenant is None or tenant.shows("status")
    login_width = max(5, *(len(u.username) for u in users))
    name_width = min(_LIST_NAME_WIDTH, max(4, *(len(u.full_name) for u in users)))
    head = f"{'Login':<{login_width}}"
    if show_name:
        head += f"  {'Name':<{name_width}}"
    if show_status:
        head += f"  {'Since':<20}  Status"
    lines = [head.rstrip()]
    for u in users:
        line = f"{u.username:<{login_width}}"
        if show_name:
            line += f"  {_cut(u.full_name, name_width):<{name_width}}"
        if show_status:
            since = when(u.status_set_at, zone) if u.status is not None else ""
            status = u.status if u.status is not None else ""
            line += f"  {since:<20}  {status}"
        lines.append(line.rstrip())
    more = total - len(users)
    if more > 0:
        lines.append(f"...and {more} more user{'s' if more != 1 else ''} not listed")
    return lines


def no_such_user(username: str) -> list[str]:
    """The one answer for unknown *and* hidden users, so the two cannot be told apart."""
    return [f"{NO_SUCH_USER}: {username}"]


def refusal(message: str) -> list[str]:
    """A one-line answer for every refusal and error; messages come from the domain."""
    return [f"finger: {message}"]
