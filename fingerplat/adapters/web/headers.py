"""The one set of security headers on every web answer: public, self-service, API, admin.

The public pages and the admin UI used to carry two sets with different
Content-Security-Policies; this is the strictest one both work with. No page
has a script, an inline style, a font or a ``data:`` image; styles and the
SVG icon come from this site and forms post only to it:

* ``default-src 'none'``: nothing else may load, scripts included;
* ``style-src 'self'`` (``/static/site.css``, ``/admin/static/admin.css``),
  ``img-src 'self'`` (``/static/favicon.svg``);
* ``form-action 'self'``, ``frame-ancestors 'none'``, ``base-uri 'none'``;
* ``Referrer-Policy: no-referrer`` (nothing here reads a Referer), framing
  refused, no sniffing, a browsing context of our own, and
  ``Strict-Transport-Security`` when the listener speaks TLS.

Pages that hold private data (admin, self-service) add ``Cache-Control:
no-store`` themselves (:data:`NO_STORE`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
NO_STORE = ("Cache-Control", "no-store")


def security_header_items(*, secure: bool) -> list[tuple[str, str]]:
    """The headers every answer carries; ``Strict-Transport-Security`` only over TLS.

    One list for both writers of answers: :func:`security_headers` below and
    the front door, which writes kept pages itself (front_door.py).
    """
    items = [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if secure:
        items.append(("Strict-Transport-Security", "max-age=31536000"))
    return items


def add_missing(response: web.StreamResponse, items: list[tuple[str, str]]) -> None:
    """Set each header the response does not carry yet (a handler's own value wins)."""
    own = response.headers
    for name, value in items:
        if name not in own:
            own[name] = value


def security_headers(*, secure: bool) -> Callable[[web.Request, web.StreamResponse],
                                                  Awaitable[None]]:
    """The ``on_response_prepare`` hook adding the headers every answer carries."""
    items = security_header_items(secure=secure)

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        add_missing(response, items)

    return add
