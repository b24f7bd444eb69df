#!/usr/bin/env python3
"""The web peer fingerplat's ``/~user`` page is measured against: a Twisted web resource.

This is the web step of Twisted's finger tutorial ("The Evolution of Finger":
``FingerResource``, a ``twisted.web.resource.Resource`` whose ``getChild``
looks the user up in a dict and returns a ``static.Data`` page with the
message HTML-escaped), with two changes so it serves *the same page* as
``fingerplat serve``: the address is ``/~<user>`` and the page is a full HTML
document with the fields fingerplat shows (name, login, status and when it
was set, project, office, phone, plan) and the same response headers, so both
servers write about the same bytes per request. Every user-supplied value is
escaped with ``html.escape``. Unknown users get a 404 page.

The dict holds the same users ``bench/seed.py`` puts in fingerplat's
database (``bench{:06d}``, same statuses, every fifth with the same plan). It
is rendered per request, as the tutorial does; there is no database, no
template engine and no middleware, which is what people would run.

Twisted is never a dependency of fingerplat: ``bench/web.py`` runs this file
with ``bench/.venv-peers``'s interpreter. It prints ``web listening on
http://HOST:PORT`` like ``fingerplat serve`` and stops on SIGTERM/SIGINT.

    bench/.venv-peers/bin/python bench/peers/twisted_web.py --port 0 --users 1000
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from dataclasses import dataclass

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import endpoints, reactor  # noqa: E402
from twisted.web import resource, server, static  # noqa: E402

# The same data as bench/seed.py (copied: that module imports fingerplat,
# which this environment must not need).
STATUSES = (
    "in a meeting until 3",
    "working from home",
    "on the benchmark",
    "lunch",
    "away: back monday",
    "reviewing pull requests",
)
PLAN = "Plan:\n- finish the benchmark\n- write it up"

# The headers fingerplat's web adapter sends with every page.
HEADERS = {
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"X-Frame-Options": b"DENY",
    b"Content-Security-Policy": (
        b"default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    b"Cross-Origin-Opener-Policy": b"same-origin",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="/static/site.css">
</head>
<body>
  <header class="site-header">
    <div class="wrap">
      <a class="brand" href="/"><span class="brand-mark" aria-hidden="true">&#9758;</span>
        <span class="brand-name">Default</span></a>
      <form class="lookup" action="/" method="get" role="search">
        <label class="visually-hidden" for="lookup-user">Finger a user</label>
        <input id="lookup-user" name="user" type="search" placeholder="finger user&#8230;"
               autocomplete="off" spellcheck="false" maxlength="32">
        <button type="submit">Finger</button>
      </form>
    </div>
  </header>
  <main class="wrap">
{content}
  </main>
  <footer class="site-footer">
    <div class="wrap">Served by Twisted's FingerResource (the finger tutorial)</div>
  </footer>
</body>
</html>
"""

USER = """<article class="card profile">
  <header class="profile-head">
    <span class="avatar large" aria-hidden="true">{initial}</span>
    <div>
      <h1>{full_name}</h1>
      <p class="muted login">~{username}</p>
    </div>
  </header>
  <section class="status" aria-label="Status">
    <p class="status-text">{status}</p>
    <p class="status-when muted">
      set <time datetime="{iso}">{ago}</time> &#183; {absolute}
    </p>
  </section>
  <dl class="facts">
    <dt>Project</dt><dd>{project}</dd><dt>Office</dt><dd>{office}</dd><dt>Phone</dt><dd>{phone}</dd>
  </dl>
  <section aria-label="Plan">
    <h2>Plan</h2>
    {plan}
  </section>
</article>
<p class="back"><a href="/">&#171; Directory</a></p>"""


@dataclass(frozen=True)
class User:
    username: str
    full_name: str
    office: str
    phone: str
    project: str
    status: str
    status_set_at: float
    plan: str | None


def _ago(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def render_user(user: User) -> bytes:
    """The user page, every value escaped for HTML."""
    e = html.escape
    now = time.time()
    plan = (f'<pre class="plan">{e(user.plan)}</pre>' if user.plan
            else '<p class="muted">No plan.</p>')
    content = USER.format(
        initial=e(user.full_name[:1].upper()), full_name=e(user.full_name),
        username=e(user.username), status=e(user.status),
        iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(user.status_set_at)),
        ago=_ago(now - user.status_set_at),
        absolute=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(user.status_set_at)),
        project=e(user.project), office=e(user.office), phone=e(user.phone), plan=plan,
    )
    title = f"{e(user.full_name)} (~{e(user.username)}) &#183; Default"
    return PAGE.format(title=title, content=content).encode("utf-8")


def render_missing(name: str) -> bytes:
    content = f'<article class="card"><h1>No such user: {html.escape(name[:40])}</h1></article>'
    return PAGE.format(title="Not found &#183; Default", content=content).encode("utf-8")


class Page(static.Data):
    """``static.Data`` (the tutorial's return value) with a status and fingerplat's headers."""

    def __init__(self, data: bytes, code: int = 200) -> None:
        super().__init__(data, "text/html; charset=utf-8")
        self.code = code

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(self.code)
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        return super().render_GET(request)


class FingerResource(resource.Resource):
    """The tutorial's resource: ``getChild`` looks the user up and returns a page."""

    def __init__(self, users: dict[str, User]) -> None:
        super().__init__()
        self.users = users

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        name = path.decode("utf-8", "replace")
        if not name.startswith("~"):
            return resource.NoResource()
        user = self.users.get(name[1:])
        if user is None:
            return Page(render_missing(name[1:]), 404)
        return Page(render_user(user))


class TutorialResource(FingerResource):
    """The tutorial's page exactly: ``<h1>user</h1><p>status</p>``, no headers.

    Not the same page as fingerplat's (about 40 bytes instead of 2 KB, no
    security headers): it shows what the bare tutorial costs, the figure the
    issue quotes, next to the same-page comparison.
    """

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        name = path.decode("utf-8", "replace")
        if not name.startswith("~"):
            return resource.NoResource()
        user = self.users.get(name[1:])
        message = html.escape(user.status) if user is not None else "No such user"
        text = f"<h1>{html.escape(name[1:])}</h1><p>{message}</p>".encode()
        if user is None:
            return resource.NoResource(message)
        return static.Data(text, "text/html")


class QuietSite(server.Site):
    """No access log (as fingerplat is run by bench/web.py unless --access-log)."""

    def log(self, request: server.Request) -> None:
        pass


def bench_users(count: int, pattern: str) -> dict[str, User]:
    """The users bench/seed.py creates (ids start at 1 on a fresh database)."""
    now = time.time()
    return {
        pattern.format(i): User(
            username=pattern.format(i), full_name=f"Bench User {i}", office=f"Room {i % 500}",
            phone=f"+1 555 {i % 10000:04d}", project="fingerplat benchmark",
            status=STATUSES[i % len(STATUSES)], status_set_at=now - i % 86400,
            plan=PLAN if (i + 1) % 5 == 0 else None,
        )
        for i in range(count)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--pattern", default="bench{:06d}")
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--page", choices=("full", "tutorial"), default="full",
                        help="full: the same page as fingerplat's; tutorial: the tutorial's "
                             "<h1>user</h1><p>status</p>")
    parser.add_argument("--access-log", action="store_true",
                        help="keep twisted.web's access log (to the Twisted log)")
    args = parser.parse_args()
    kind = FingerResource if args.page == "full" else TutorialResource
    root = kind(bench_users(args.users, args.pattern))
    site = server.Site(root) if args.access_log else QuietSite(root)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, backlog=args.backlog,
                                            interface=args.host)

    def listening(port: object) -> None:
        address = port.getHost()  # type: ignore[attr-defined]
        print(f"web listening on http://{address.host}:{address.port}", flush=True)

    def failed(err: object) -> None:
        print(f"twisted_web: cannot listen: {err}", file=sys.stderr, flush=True)
        reactor.stop()  # type: ignore[attr-defined]

    endpoint.listen(site).addCallbacks(listening, failed)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
