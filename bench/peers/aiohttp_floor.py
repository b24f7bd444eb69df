#!/usr/bin/env python3
"""The web floor: a bare aiohttp application answering a fixed 2,439-byte page.

No middleware, no template, no database, no response signal: what aiohttp
itself costs per request on uvloop, to compare with fingerplat's ``/~user``
and the Twisted resource (bench/README.md, "Web ... second round").

    taskset -c 0 .venv/bin/python bench/peers/aiohttp_floor.py 8941 &
    taskset -c 1 wrk -t1 -c64 -d10s -s users.lua http://127.0.0.1:8941/ -- 1000 1
    taskset -c 1 wrk -t1 -c64 -d10s -s users.lua -H 'Connection: close' \
        http://127.0.0.1:8941/ -- 1000 1

(``users.lua``: the Lua script bench/web.py writes; CPU per request from
``/proc/PID/stat`` before and after, as web.py does.)
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

BODY = b"x" * 2439  # the size of fingerplat's /~user page in bench/web.py


async def page(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="text/html", charset="utf-8")


def main() -> None:
    app = web.Application()
    app.router.add_get("/~{user}", page)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
