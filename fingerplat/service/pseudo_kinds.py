"""Pseudo-user kinds: the code that answers ``finger help``, ``finger recent``...

A kind is named code that turns a :class:`PseudoQuery` into answer lines.
Three are built in (``recent``, ``help``, ``time``); operators add more by
installing a Python package that registers an object under the entry-point
group ``fingerplat.pseudo_users`` (the entry point's name is the kind's
name). Code only ever comes from installed packages: the database stores a
kind's *name*, never code, and a name that is neither built in nor installed
is refused when the pseudo-user is added (and answered with a short error if
the package was uninstalled since).

The object registered is either a callable ``answer(query)`` or an object with
an ``answer`` method; it may be a plain or an ``async`` function and returns a
string (split into lines) or an iterable of strings. Optional attributes:

* ``cache_seconds`` (default 0: never kept): how long an answer may be kept.
  A kept answer is also dropped the moment any status of the tenant changes,
  so an answer built from :attr:`PseudoQuery.recent` is never stale;
* ``wants_recent`` (default False): fill :attr:`PseudoQuery.recent` with the
  tenant's recent status changes (one query, only for kinds that ask);
* ``description``: one line for ``pseudo list``.

Every answer is run under a deadline (:data:`ANSWER_TIMEOUT`): an ``async``
kind is cancelled, a plain one runs on a small thread pool of its own (so a
kind that hangs blocks neither the event loop nor the default executor).
A kind that raises, hangs or returns something else gets a short error
answer instead; its lines are capped (:data:`MAX_LINES`, :data:`MAX_LINE_CHARS`)
and, as every answer, neutralised by the adapters before they reach a client.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fingerplat.domain.model import RecentStatus
from fingerplat.domain.text import printable

log = logging.getLogger("fingerplat.pseudo")

ENTRY_POINT_GROUP = "fingerplat.pseudo_users"
ANSWER_TIMEOUT = 2.0
MAX_LINES = 200
MAX_LINE_CHARS = 1000
RECENT_WINDOW = timedelta(hours=24)
RECENT_LIMIT = 50

FAILED = "this pseudo-user could not answer just now, please try again later"
TIMED_OUT = "this pseudo-user took too long to answer, please try again later"
UNKNOWN_KIND = "this pseudo-user's kind is not installed on this server"

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fingerplat-pseudo")


@dataclass(frozen=True, slots=True)
class Places:
    """Where this deployment answers, for the ``help`` kind (set by the composition root)."""

    finger: tuple[str, ...] = ()  # "host:port" of the finger listeners
    web: tuple[str, ...] = ()  # base URLs of the web listener(s)


@dataclass(frozen=True, slots=True)
class PseudoQuery:
    """What a kind is told about the question; read-only, no database handle."""

    name: str
    kind: str
    tenant_slug: str
    tenant_name: str
    tenant_domains: tuple[str, ...]
    timezone: str
    now: datetime  # aware, UTC
    verbose: bool = False
    places: Places = field(default_factory=Places)
    recent: tuple[RecentStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class Kind:
    """A loaded kind: its answer function and what the service may do with it."""

    name: str
    answer: Callable[[PseudoQuery], Any]
    cache_seconds: float = 0.0
    wants_recent: bool = False
    description: str = ""
    builtin: bool = False


# -- the built-in kinds ------------------------------------------------------------


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def answer_recent(query: PseudoQuery) -> list[str]:
    lines = [f"Recent status changes at {query.tenant_name} (last 24 hours, newest first):"]
    if not query.recent:
        return [*lines, "  (none)"]
    width = max(5, *(len(r.username) for r in query.recent))
    for r in query.recent:
        status = r.status if r.status is not None else "(cleared)"
        lines.append(f"  {r.username:<{width}}  {_when(r.changed_at)}  {status}")
    return lines


def answer_help(query: PseudoQuery) -> list[str]:
    hosts = query.tenant_domains or (query.tenant_slug,)
    lines = [f"{query.tenant_name}: a finger service.", "", "Finger:"]
    if query.places.finger:
        for address in query.places.finger:
            lines.append(f"  finger server {address}")
    lines.append(f"  finger USER@{hosts[0]}     one user (status, plan)")
    lines.append(f"  finger /W USER@{hosts[0]}  the long form (project, office, history)")
    lines.append(f"  finger @{hosts[0]}         the user list (when the tenant publishes it)")
    if query.places.web:
        lines.append("")
        lines.append("Web:")
        for base in query.places.web:
            prefix = f"{base.rstrip('/')}/t/{query.tenant_slug}"
            lines.append(f"  {prefix}/          the directory")
            lines.append(f"  {prefix}/~USER     a user's page")
            lines.append(f"  {base.rstrip('/')}/api/v1/openapi.json  the JSON API")
    lines.append("")
    lines.append("Status set with the setter protocol, the JSON API, XML-RPC or the admin pages.")
    return lines


def answer_time(query: PseudoQuery) -> list[str]:
    try:
        zone: Any = ZoneInfo(query.timezone)
        label = query.timezone
    except (ZoneInfoNotFoundError, ValueError):
        zone, label = UTC, "UTC"
    local = query.now.astimezone(zone)
    return [f"It is {local.strftime('%Y-%m-%d %H:%M:%S')} {local.strftime('%Z') or label} "
            f"({label}) at {query.tenant_name}."]


BUILTIN: dict[str, Kind] = {
    "recent": Kind("recent", answer_recent, cache_seconds=60.0, wants_recent=True,
                   description="visible users whose status changed in the last 24 hours",
                   builtin=True),
    "help": Kind("help", answer_help, cache_seconds=300.0,
                 description="what this tenant answers and where", builtin=True),
    "time": Kind("time", answer_time, description="the current time in the tenant's time zone",
                 builtin=True),
}


# -- installed kinds ---------------------------------------------------------------


def _from_entry_point(name: str, obj: Any) -> Kind:
    answer = obj if not hasattr(obj, "answer") else obj.answer
    if not callable(answer):
        raise TypeError(f"entry point {name!r} of {ENTRY_POINT_GROUP} is not callable")
    cache_seconds = float(getattr(obj, "cache_seconds", 0.0) or 0.0)
    return Kind(name=name, answer=answer, cache_seconds=max(0.0, cache_seconds),
                wants_recent=bool(getattr(obj, "wants_recent", False)),
                description=str(getattr(obj, "description", "") or "")[:200])


def discover() -> dict[str, Kind]:
    """Built-in kinds plus those installed under :data:`ENTRY_POINT_GROUP`.

    A package that fails to load is logged and left out; it cannot shadow a
    built-in kind.
    """
    kinds = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            log.warning("pseudo-user kind %r from %s ignored: a built-in kind has that name",
                        ep.name, ep.value)
            continue
        try:
            kinds[ep.name] = _from_entry_point(ep.name, ep.load())
        except Exception:
            log.exception("pseudo-user kind %r (%s) could not be loaded", ep.name, ep.value)
    return kinds


class KindRegistry:
    """The kinds this process knows, discovered once (installing a package needs a restart)."""

    def __init__(self, kinds: Mapping[str, Kind] | None = None) -> None:
        self._kinds: dict[str, Kind] | None = dict(kinds) if kinds is not None else None

    @property
    def kinds(self) -> dict[str, Kind]:
        if self._kinds is None:
            self._kinds = discover()
        return self._kinds

    def get(self, name: str) -> Kind | None:
        return self.kinds.get(name)

    def names(self) -> list[str]:
        return sorted(self.kinds)


def _lines(result: Any) -> list[str]:
    if isinstance(result, str):
        text = result.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
    elif isinstance(result, Iterable) and not isinstance(result, bytes | bytearray):
        lines = []
        for item in result:
            if not isinstance(item, str):
                raise TypeError("a pseudo-user answer must be text")
            lines.extend(item.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
            if len(lines) > MAX_LINES:
                break
    else:
        raise TypeError("a pseudo-user answer must be text or lines of text")
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], "(answer cut)"]
    return [printable(line[:MAX_LINE_CHARS]) for line in lines]


async def run(kind: Kind, query: PseudoQuery, *, timeout: float = ANSWER_TIMEOUT) -> list[str]:
    """The kind's answer lines, or one short error line; never raises (but cancellation)."""
    try:
        if kind.builtin:  # our own code: fast and trusted, no thread hop
            return _lines(kind.answer(query))
        if inspect.iscoroutinefunction(kind.answer):
            result = await asyncio.wait_for(kind.answer(query), timeout)
        else:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(_POOL, kind.answer, query)
            result = await asyncio.wait_for(future, timeout)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, timeout)
        return _lines(result)
    except TimeoutError:
        log.warning("pseudo-user kind %r timed out after %.1f s", kind.name, timeout)
        return [TIMED_OUT]
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("pseudo-user kind %r failed", kind.name)
        return [FAILED]


def cutoff(now: datetime) -> datetime:
    return now - RECENT_WINDOW
