"""A small browser-like client for the admin UI tests: cookies, CSRF tokens, forms.

It behaves as a browser would: it keeps the session cookie, reads the CSRF
token from the last page it fetched and sends it back with forms. Tests can
also leave the token out or send a wrong one on purpose.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from yarl import URL

from fingerplat.domain.model import AuditEvent, AuditQuery, Context
from fingerplat.service import FingerplatService
from tests.integration.web.conftest import RunningWeb

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class Page:
    status: int
    text: str
    headers: dict[str, str]
    location: str | None
    set_cookie: list[str]


class AdminClient:
    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        # unsafe=True: keep cookies from an IP-address host (127.0.0.1), like a browser.
        self.jar = aiohttp.CookieJar(unsafe=True)
        self.session = aiohttp.ClientSession(
            cookie_jar=self.jar, timeout=aiohttp.ClientTimeout(total=20)
        )
        self.csrf: str | None = None

    async def close(self) -> None:
        await self.session.close()

    def cookie(self, name: str = "fingerplat_admin") -> str | None:
        for c in self.jar:
            if c.key == name:
                return c.value
        return None

    async def _page(self, response: aiohttp.ClientResponse) -> Page:
        body = await response.read()
        text = body.decode("utf-8", "replace")
        found = CSRF_RE.search(text)
        if found:
            self.csrf = found.group(1)
        return Page(
            status=response.status, text=text, headers=dict(response.headers),
            location=response.headers.get("Location"),
            set_cookie=response.headers.getall("Set-Cookie", []),
        )

    async def get(self, path: str, *, follow: bool = True) -> Page:
        async with self.session.get(self.base + path, allow_redirects=follow) as r:
            return await self._page(r)

    async def post(self, path: str, data: dict[str, str] | None = None, *,
                   csrf: str | bool | None = True, follow: bool = False) -> Page:
        """POST a form; ``csrf=True`` sends the current token, a string sends that, None none."""
        form = dict(data or {})
        if csrf is True:
            assert self.csrf, "fetch a page with a form first"
            form["csrf_token"] = self.csrf
        elif isinstance(csrf, str):
            form["csrf_token"] = csrf
        async with self.session.post(self.base + path, data=form, allow_redirects=follow) as r:
            return await self._page(r)

    async def login(self, name: str, password: str) -> Page:
        await self.get("/admin/login")
        page = await self.post("/admin/login", {"name": name, "password": password})
        if page.status == 303:
            assert page.location is not None
            return await self.get(str(URL(page.location).path_qs))
        return page


def text_of(html: str) -> str:
    """The visible text of a page, roughly: tags dropped, blanks collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


ROOT_NAME = "root"
ROOT_PASSWORD = "correct-horse-battery"


@asynccontextmanager
async def admin_client(web_server: RunningWeb, operator: Context) -> AsyncIterator[AdminClient]:
    """A client for the real web server, with platform admin ``root`` in the database."""
    await web_server.service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    client = AdminClient(web_server.url)
    yield client
    await client.close()


async def web_audit(service: FingerplatService, operator: Context,
                    action: str) -> list[AuditEvent]:
    """Audit events of one action that came through the web channel."""
    events = await service.audit.audit_log(operator, AuditQuery(action=action, limit=100),
                                     all_tenants=True)
    return [e for e in events if e.channel == "web"]
