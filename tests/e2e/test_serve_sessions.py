"""Admin sessions on real ``serve`` processes: workers and restarts act as one.

Every request goes over a new connection, so the kernel hands it to whichever
worker accepts first: a session kept in one process's memory would be lost
on about half of them. Two nodes sharing a session (a login on one, a logout
on the other) need no process of their own: tests/integration/web/
test_admin_sessions.py shows it with two web listeners on one database.
"""

from __future__ import annotations

import aiohttp

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat
from tests.integration.web.admin_client import AdminClient, text_of

PAGE_LOADS = 20
ADMIN, PASSWORD = "root", "correct horse battery"


async def new_client(base_url: str) -> AdminClient:
    client = AdminClient(base_url)
    await client.session.close()
    client.session = aiohttp.ClientSession(
        cookie_jar=client.jar, timeout=aiohttp.ClientTimeout(total=20),
        connector=aiohttp.TCPConnector(force_close=True),
    )
    return client


def web_url(address: tuple[str, int]) -> str:
    return f"http://{address[0]}:{address[1]}"


async def test_logins_and_pages_work_whichever_worker_answers_and_survive_a_restart(
    cli: Fingerplat, serve_factory, service: FingerplatService, operator: Context
) -> None:
    await service.credentials.add_admin(operator, ADMIN, PASSWORD)
    args = ("--workers", "2", "--finger", "127.0.0.1:0", "--setter", "", "--web", "127.0.0.1:0")
    server = await serve_factory(cli.env, *args)
    url = web_url(server.address("web"))
    clients = [await new_client(url) for _ in range(6)]
    try:
        for client in clients:  # form from one worker, post to the other: all accepted
            page = await client.login(ADMIN, PASSWORD)
            assert page.status == 200 and "Tenants" in page.text, text_of(page.text)
        client = clients[0]
        for _ in range(PAGE_LOADS):
            page = await client.get("/admin/tenants", follow=False)
            assert page.status == 200 and "admin:root" in page.text
        # A form posted through any worker, its flash shown by any worker.
        await client.get("/admin/tenants/default/new-user")
        assert (await client.post("/admin/tenants/default/users",
                                  {"username": "walter"})).status == 303
        assert "walter" in text_of((await client.get("/admin/tenants/default/users")).text)

        # A restart logs nobody out.
        code, _out, err = await server.stop()
        assert code == 0, err
        server = await serve_factory(cli.env, *args)
        restarted = await new_client(web_url(server.address("web")))
        try:
            restarted.jar.update_cookies({"fingerplat_admin": client.cookie()})
            for _ in range(PAGE_LOADS):
                page = await restarted.get("/admin/tenants", follow=False)
                assert page.status == 200 and "admin:root" in page.text
        finally:
            await restarted.close()
    finally:
        for c in clients:
            await c.close()
    code, _out, err = await server.stop()
    assert code == 0, err
