"""Rendered public pages kept as bytes, with their relative times left open.

A user's page is the same bytes for every visitor until that user or their
tenant changes, except for "set 5 minutes ago", which moves with the clock.
So the page is rendered once with a mark where each relative time goes,
split at the marks and kept through the service's kept answers, tagged with
the user it shows: the change events that drop the user's cached reads drop
the page at the same moment (fingerplat/service/kept_answers.py), exactly as
the finger adapter keeps its answer bytes. A request for a kept page only joins the
kept pieces with the relative times as of now; the template is not run.

Whether a page may be kept is decided by the template itself, not by a list:
it renders with a :class:`PageClock` as ``now``. The ``ago`` filter asks the
clock for a mark; any other use of ``now`` (an operator's template showing
the current year, say) reads the real time, and a page that read the time is
served but not kept.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from fingerplat.adapters.times import ago_words
from fingerplat.adapters.web.keys import BASE, TENANT
from fingerplat.adapters.web.templating import (
    PUBLIC_TEMPLATES,
    KeptMark,
    epoch_micros,
)
from fingerplat.service.kept_answers import Fill, UserTag

# A per-process secret in every mark, so no stored text can forge one.
_NONCE = secrets.token_hex(8)
_MARK_RE = re.compile(f"\x00{_NONCE}:([0-9]+)\x00")


class PageClock:
    """The ``now`` of a page rendered to be kept.

    ``relative_time`` calls :meth:`mark` instead of computing words; every
    other way a template can use the time goes through :meth:`_read`, which
    notes that the page depends on the clock.
    """

    def __init__(self, now: datetime) -> None:
        self._now = now
        self.moments: list[datetime | None] = []
        self.read = False

    def mark(self, moment: datetime | None) -> str:
        """A placeholder for "how long ago ``moment`` was", filled per request."""
        self.moments.append(moment)
        return KeptMark(f"\x00{_NONCE}:{len(self.moments) - 1}\x00")

    def _read(self) -> datetime:
        self.read = True
        return self._now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._read(), name)

    def __str__(self) -> str:
        return str(self._read())

    def __format__(self, spec: str) -> str:
        return format(self._read(), spec)

    def __eq__(self, other: object) -> bool:
        return self._read() == other

    def __hash__(self) -> int:
        return hash(self._read())

    def __lt__(self, other: Any) -> bool:
        return self._read() < other

    def __le__(self, other: Any) -> bool:
        return self._read() <= other

    def __gt__(self, other: Any) -> bool:
        return self._read() > other

    def __ge__(self, other: Any) -> bool:
        return self._read() >= other

    def __sub__(self, other: Any) -> Any:
        return self._read() - other

    def __rsub__(self, other: Any) -> Any:
        return other - self._read()


@dataclass(frozen=True, slots=True)
class KeptPage:
    """A rendered page: literal byte pieces with a relative time between each two.

    ``moments`` are kept as exact microseconds since 1970 (None: no time), so
    filling a page is integer arithmetic: the same whole seconds, and so the
    same words, as :func:`relative_time` computes from the datetimes.
    """

    pieces: tuple[bytes, ...]
    moments: tuple[int | None, ...]
    status: int = 200
    #: ``time.time()`` from which the page is wrong (a status expires): a miss then.
    deadline: float | None = None

    def body(self, now: datetime) -> bytes:
        if not self.moments:
            return self.pieces[0]
        now_micros = epoch_micros(now)
        parts = [self.pieces[0]]
        for moment, piece in zip(self.moments, self.pieces[1:], strict=True):
            # The words are plain ASCII ("5 minutes ago"): nothing to escape.
            if moment is not None:
                parts.append(ago_words(int((now_micros - moment) / 1_000_000)).encode())
            parts.append(piece)
        return b"".join(parts)

    def response(self, now: datetime) -> web.Response:
        return web.Response(body=self.body(now), status=self.status,
                            content_type="text/html", charset="utf-8")


def render_kept(request: web.Request, template: str, context: dict[str, Any], *,
                now: datetime, status: int = 200,
                deadline: float | None = None) -> tuple[KeptPage, bool]:
    """Render ``template`` with a :class:`PageClock`; the page, and whether it may be kept."""
    clock = PageClock(now)
    text = aiohttp_jinja2.render_string(
        template, request, {**context, "now": clock}, app_key=PUBLIC_TEMPLATES
    )
    parts = _MARK_RE.split(text)
    page = KeptPage(
        pieces=tuple(part.encode() for part in parts[0::2]),
        moments=tuple(None if (moment := clock.moments[int(index)]) is None
                      else epoch_micros(moment) for index in parts[1::2]),
        status=status,
        deadline=deadline,
    )
    return page, not clock.read


def door_key(generation: int, host: str | None, path: str) -> tuple[Any, ...]:
    """The name of a kept page as the front door sees a request: Host header and path.

    The front door (front_door.py) answers before any routing, so it cannot
    ask which tenant and user a request is for; but the page at one Host
    header and one raw path is the same page until the user or the tenants
    change (events drop it: it is tagged with its user, and a tenant change
    drops everything) or the templates are reloaded (``generation``).
    """
    return ("web:door", generation, host, path)


def open_door(fill: Fill, request: web.Request, generation: int, page: KeptPage, *,
              user: UserTag) -> None:
    """Let the front door answer ``page`` at this request's Host and path from now on.

    Only at the page's canonical address (``/~alice``, not ``/~%61lice``),
    so the entries a client can make by varying the address are bounded:
    each is a key pointing at the one kept page, never another rendering.
    The entry carries the page's deadline (a status that expires). Pages of
    a tenant that rejects networks are never opened to the door, which does
    not know the tenant: they go through the routing, which checks the client.
    """
    tenant = request.get(TENANT)
    if tenant is not None and tenant.networks is not None and tenant.networks.rejected:
        return
    path = request.rel_url.raw_path
    if path != f"{request[BASE]}/~{user[1]}":
        return
    fill.keep_new(door_key(generation, request.headers.get("Host"), path), page, user=user,
                  deadline=page.deadline)
