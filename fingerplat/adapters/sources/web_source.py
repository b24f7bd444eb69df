"""The web source: each user's status fetched from a URL template (the tutorial's
"read status from the web"), with aiohttp.

How a response becomes a status:

* ``200`` with a JSON body (``Content-Type: application/json``): the
  ``"status"`` member, a string or null (null clears);
* ``200`` otherwise: the first non-blank line of the body, cut to the status
  limit (280 characters); an empty body clears the status;
* ``204``, ``404`` and ``410``: the user has no status there, which clears it;
* anything else, a timeout, a refused connection or a body over
  :data:`MAX_BODY_BYTES`: a failed fetch, and the user keeps the status they
  have (one failing page never wipes statuses).

A successful answer is cached for ``cache_ttl`` seconds; at most
``concurrency`` requests run at once so a big tenant does not hammer the
status server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from urllib.parse import quote

import aiohttp

from fingerplat.domain.rules import STATUS_MAX_CHARS

log = logging.getLogger("fingerplat.sources.web")

MAX_BODY_BYTES = 64 * 1024
CLEARED_STATUSES = frozenset({204, 404, 410})


class FetchFailed(Exception):
    """One user's status could not be fetched; the old status stays."""


def status_from_body(body: bytes, content_type: str) -> str:
    """The status a successful response carries ("" for none)."""
    text = body.decode("utf-8", errors="replace")
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FetchFailed(f"invalid JSON: {exc.msg}") from None
        value = document.get("status") if isinstance(document, dict) else None
        if value is not None and not isinstance(value, str):
            raise FetchFailed("JSON member \"status\" is not a string")
        text = value or ""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:STATUS_MAX_CHARS]
    return ""


class WebStatusFetcher:
    def __init__(self, url_template: str, *, timeout: float, cache_ttl: float,
                 concurrency: int = 8) -> None:
        self.url_template = url_template
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cache_ttl = cache_ttl
        self._slots = asyncio.Semaphore(concurrency)
        self._cache: dict[str, tuple[float, str]] = {}
        self._session: aiohttp.ClientSession | None = None

    def url_for(self, username: str) -> str:
        return self.url_template.format(user=quote(username, safe=""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, username: str) -> str:
        """The user's status from the web (or the cache); raises FetchFailed."""
        cached = self._cache.get(username)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        url = self.url_for(username)
        async with self._slots:
            try:
                async with self._session.get(url) as response:
                    if response.status in CLEARED_STATUSES:
                        status = ""
                    elif response.status != 200:
                        raise FetchFailed(f"HTTP {response.status}")
                    else:
                        body = await response.content.read(MAX_BODY_BYTES + 1)
                        if len(body) > MAX_BODY_BYTES:
                            raise FetchFailed(f"body larger than {MAX_BODY_BYTES} bytes")
                        status = status_from_body(body, response.content_type)
            except (aiohttp.ClientError, TimeoutError, UnicodeError, ValueError) as exc:
                raise FetchFailed(str(exc) or type(exc).__name__) from None
        self._cache[username] = (time.monotonic() + self.cache_ttl, status)
        return status

    async def fetch_all(self, usernames: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
        """(statuses fetched, failures) by username; failures never raise."""
        async def one(name: str) -> tuple[str, str | None, str | None]:
            try:
                return name, await self.fetch(name), None
            except FetchFailed as exc:
                return name, None, str(exc)

        results = await asyncio.gather(*(one(name) for name in usernames))
        fetched = {name: status for name, status, _ in results if status is not None}
        failed = {name: error for name, _, error in results if error is not None}
        return fetched, failed
