"""The public HTML pages: the tenant directory and each user's page.

Thin views: the tenant comes from routing, the data from the service's public
reads (which already treat hidden users as absent), the markup from templates
with autoescaping on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from fingerplat.adapters.web.kept_pages import KeptPage, open_door, render_kept
from fingerplat.adapters.web.keys import BASE, SERVICE, TENANT
from fingerplat.adapters.web.principals import remote_addr
from fingerplat.adapters.web.templating import PUBLIC_TEMPLATES, TEMPLATE_GENERATION
from fingerplat.adapters.web.tenancy import (
    PREFIX_VAR,
    add_routed,
    check_listing,
    tenant_routed,
)
from fingerplat.domain import rules
from fingerplat.domain.errors import NotFound, PermissionDenied
from fingerplat.domain.model import User
from fingerplat.service.cached_reads import deadline_of
from fingerplat.service.kept_answers import Fill, KeptAnswers

DIRECTORY_PAGE = 50
RECENT_HISTORY = 6

# First path segments that are never a user name, so /<user> leaves them alone.
RESERVED = frozenset({
    "admin", "api", "static", "t", "healthz", "metrics", "rpc2", ".well-known",
    "favicon.ico", "robots.txt",
    "login", "logout", "me",  # the self-service page (self_service.py)
})


def _render(request: web.Request, template: str, context: dict[str, Any],
            status: int = 200) -> web.Response:
    base_context = {
        "tenant": request[TENANT],
        "base": request[BASE],
        "now": datetime.now(UTC),
    }
    return aiohttp_jinja2.render_template(
        template, request, {**base_context, **context}, status=status, app_key=PUBLIC_TEMPLATES
    )


class LoggedPage:
    """A kept page of a user whose lookups are recorded (the finger log, issue 16).

    Never handed to the front door, which answers before any handler and so
    could not record the lookup; a hit here records it without a query.
    """

    __slots__ = ("page", "tenant_id", "user_id")

    def __init__(self, page: KeptPage, tenant_id: int, user_id: int) -> None:
        self.page = page
        self.tenant_id = tenant_id
        self.user_id = user_id


def _no_such_user(name: str) -> NotFound:
    """Unknown and hidden users get the same words (SPEC: hidden looks absent)."""
    return NotFound(f"No such user: {name[:40]}")


@tenant_routed
async def directory(request: web.Request) -> web.StreamResponse:
    """``/``: the user list, or a polite page when the tenant keeps it private."""
    base = request[BASE]
    lookup = request.query.get("user")
    if lookup is not None:
        name = lookup.strip().lstrip("~").lower()
        if not rules.USERNAME_RE.fullmatch(name):
            raise _no_such_user(lookup)
        raise web.HTTPFound(f"{base}/~{name}")
    cursor = request.query.get("cursor") or None
    search = (request.query.get("q") or "").strip() or None
    check_listing(request, request[TENANT])
    try:
        page = await request.config_dict[SERVICE].users.directory(
            request[TENANT], limit=DIRECTORY_PAGE, cursor=cursor, search=search
        )
    except PermissionDenied:
        return _render(request, "closed.html", {})
    return _render(request, "directory.html", {"page": page, "cursor": cursor, "search": search})


@tenant_routed
async def user_page(request: web.Request) -> web.StreamResponse:
    """``/~<user>``: status (with when), plan, project, recent history.

    The rendered page is kept (``service.kept_answers``, kept_pages.py), so a page
    asked for again before the user or tenant changes is only the relative
    times filled into kept bytes.
    """
    name = request.match_info["user"]
    app = request.app  # the main application (pages are its routes): its keys, no ChainMap
    service = app[SERVICE]
    tenant = request[TENANT]
    now = datetime.now(UTC)
    kept = service.kept_answers
    generation = app[TEMPLATE_GENERATION].value
    key = ("web:user", generation, tenant.id, request[BASE], name)
    fill = None
    if kept is not None:
        answer = _kept_answer(request, kept, key, generation, now)
        if answer is not None:
            return answer
        fill = kept.begin()  # before the reads the page is made from
    if not rules.USERNAME_RE.fullmatch(name.lower()):
        raise _no_such_user(name)
    pseudo = await service.pseudo_users.pseudo_answer(tenant, name.lower())
    if pseudo is not None:  # a pseudo-user (issue 16): its kind's lines, escaped as any text
        if name != name.lower():
            raise web.HTTPMovedPermanently(f"{request[BASE]}/~{name.lower()}")
        return _render(request, "pseudo.html", {"name": name, "lines": pseudo})
    user = await service.public.public_user(tenant, name)
    if user is None:
        raise _no_such_user(name)
    if user.username != name:  # canonical, lower-case address
        raise web.HTTPMovedPermanently(f"{request[BASE]}/~{user.username}")
    history = await service.public.public_history(tenant, user.username, limit=RECENT_HISTORY)
    context = {"tenant": tenant, "base": request[BASE], "user": user, "history": history}
    page, keepable = render_kept(request, "user.html", context, now=now,
                                 deadline=deadline_of(user))
    logged = bool(user.finger_log and tenant.finger_log)
    if logged:
        service.finger_log.note_lookup(tenant, user, "web", remote_addr(request))
    if fill is not None and keepable:
        _keep(request, fill, key, generation, page, user, logged=logged)
    return page.response(now)


def _kept_answer(request: web.Request, answers: KeptAnswers, key: tuple[Any, ...],
                 generation: int, now: datetime) -> web.StreamResponse | None:
    """The kept page for ``key`` (noting the lookup when the user asked for a log), or None."""
    kept = answers.get(key)
    if isinstance(kept, KeptPage):
        tenant = request[TENANT]
        open_door(answers.begin(), request, generation, kept,
                  user=(tenant.id, request.match_info["user"]))
        return kept.response(now)
    if type(kept) is LoggedPage:
        recorder = request.app[SERVICE].finger_log.finger_log_recorder
        if recorder is not None:
            recorder.record(kept.tenant_id, kept.user_id, "web", remote_addr(request))
        return kept.page.response(now)
    return None


def _keep(request: web.Request, fill: Fill, key: tuple[Any, ...], generation: int,
          page: KeptPage, user: User, *, logged: bool) -> None:
    """Keep a freshly rendered page; the front door may serve it only if no lookup is logged."""
    tenant_id = request[TENANT].id
    tag = (tenant_id, user.username)
    if logged:
        fill.keep(key, LoggedPage(page, tenant_id, user.id), user=tag, deadline=page.deadline)
        return
    fill.keep(key, page, user=tag, deadline=page.deadline)
    open_door(fill, request, generation, page, user=tag)


@tenant_routed
async def tutorial_redirect(request: web.Request) -> web.StreamResponse:
    """``/<user>`` (the tutorial's address) moves to ``/~<user>``."""
    name = request.match_info["name"]
    if name.lower() in RESERVED or not rules.USERNAME_RE.fullmatch(name.lower()):
        raise web.HTTPNotFound()
    raise web.HTTPMovedPermanently(f"{request[BASE]}/~{name.lower()}")


async def prefix_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(f"/t/{request.match_info[PREFIX_VAR]}/")


async def admin_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/admin/")


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the pages; call last, since ``/<user>`` catches any single segment."""
    add_routed(router, "GET", "/", directory, name="directory")
    add_routed(router, "GET", "/~{user}", user_page, name="user")
    router.add_get(f"/t/{{{PREFIX_VAR}}}", prefix_slash)
    router.add_get("/admin", admin_slash)
    add_routed(router, "GET", "/{name}", tutorial_redirect)
