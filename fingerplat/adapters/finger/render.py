"""Building finger answers: plain lines in, CRLF-terminated UTF-8 bytes out.

Pure functions, so the wire format has unit and property tests without a
socket. Every line goes through :func:`encode`, the single exit to the wire,
which neutralises control characters with
:func:`fingerplat.domain.text.printable` (RFC 1288 section 3.3) and ends each
line with CRLF. No other code path writes finger bytes, so stored text can
never smuggle an escape sequence or a bare CR/LF to a client's terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from fingerplat.domain.model import StatusChange, User
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


def when(moment: datetime | None) -> str:
    """A status time as UTC minutes: short, unambiguous, the same on every node."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    m = moment.astimezone(UTC)
    # strftime("%Y-%m-%d %H:%M UTC"), at a third of its cost (warming renders every user)
    return f"{m.year}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d} UTC"


def _pair(left_label: str, left: str, right_label: str, right: str) -> str:
    first = f"{left_label}: {left}"
    if not right:
        return first
    return f"{first:<{_FIELD_COLUMN - 1}} {right_label}: {right}"


def _status_line(user: User) -> str:
    if user.status is None:
        return "Status: (none)"
    since = when(user.status_set_at)
    return f"Status: {user.status}" + (f" (since {since})" if since else "")


def user_entry(user: User, *, verbose: bool = False,
               history: Sequence[StatusChange] = ()) -> list[str]:
    """One user's entry: login, name, status and time, plan; verbose adds the rest."""
    lines = [_pair("Login", user.username, "Name", user.full_name)]
    if verbose:
        if user.office or user.phone:
            lines.append(_pair("Office", user.office or "-", "Phone", user.phone))
        if user.project:
            lines.append(f"Project: {user.project}")
    lines.append(_status_line(user))
    if verbose and history:
        lines.append("Recent statuses:")
        for change in history:
            text = change.text if change.text is not None else "(cleared)"
            lines.append(f"  {when(change.set_at)}  {text}")
    if user.plan:
        lines.append("Plan:")
        lines.extend(printable_lines(user.plan))
    else:
        lines.append("No Plan.")
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def user_list(users: Sequence[User], total: int) -> list[str]:
    """The directory: one line per user, then how many more a capped list left out."""
    if not users:
        return ["No users."]
    login_width = max(5, *(len(u.username) for u in users))
    name_width = min(_LIST_NAME_WIDTH, max(4, *(len(u.full_name) for u in users)))
    lines = [f"{'Login':<{login_width}}  {'Name':<{name_width}}  {'Since':<20}  Status"]
    for u in users:
        since = when(u.status_set_at) if u.status is not None else ""
        status = u.status if u.status is not None else ""
        lines.append(
            f"{u.username:<{login_width}}  {_cut(u.full_name, name_width):<{name_width}}  "
            f"{since:<20}  {status}".rstrip()
        )
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
