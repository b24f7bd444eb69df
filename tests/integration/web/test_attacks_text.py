"""Issue 12 item 17: bidi overrides (U+202E) passed through statuses and plans.

A status of ``invoice\u202efdp.exe`` displays as ``invoiceexe.pdf``: it was
accepted on input, replayed raw by finger and the CLI, and the web page
emitted raw control bytes from older rows. Now every input refuses bidi
controls like other control characters, and every output shows them (and
any control character of an older row) as visible text. Real sockets, both
databases.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import insert, update

from fingerplat.adapters.finger.server import start_finger_server
from fingerplat.adapters.setter.server import start_setter_server
from fingerplat.config import FingerConfig, SetterConfig
from fingerplat.domain.model import Context
from fingerplat.metrics import Metrics
from fingerplat.repository import schema
from fingerplat.service import FingerplatService
from tests.integration.web.admin_client import ROOT_NAME, ROOT_PASSWORD, admin_client
from tests.integration.web.conftest import RunningWeb, Seeded, bearer

BIDI = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]]
# Raw bytes no page or finger answer may carry (UTF-8 of the bidi controls, C0
# but TAB/LF/CR, DEL and C1).
RAW = re.compile("[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SPOOF = "invoice\u202efdp.exe"
LEGACY_STATUS = "gone \u202eeman\u202c \x1b[2J\x9b31m"
LEGACY_PLAN = "plan\n\u2067isolated\u2069\n\x07bell"


async def legacy_rows(service: FingerplatService, operator: Context) -> None:
    """A user whose rows an older release wrote, before the rules refused these characters."""
    user = await service.users.add_user(operator, None, "eve", full_name="Eve")
    now = datetime.now(UTC)
    async with service.engine.begin() as conn:
        await conn.execute(update(schema.users).where(schema.users.c.id == user.id).values(
            full_name="Eve \u202eevE", status=LEGACY_STATUS, status_set_at=now))
        await conn.execute(insert(schema.plans).values(user_id=user.id, text=LEGACY_PLAN,
                                                       updated_at=now))
        for text in ("older \u2066one", LEGACY_STATUS):
            await conn.execute(insert(schema.status_history).values(
                user_id=user.id, text=text, set_at=now, actor="cli:old", channel="cli"))
    if service.read_cache is not None:
        service.read_cache.clear()


@pytest.mark.parametrize("ch", BIDI)
async def test_bidi_controls_are_refused_on_the_api(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession, ch: str
) -> None:
    url = f"{web_server.url}/api/v1/tenants/default/users/alice"
    for path, body in (("status", {"status": f"invoice{ch}fdp.exe"}),
                       ("plan", {"plan": f"line\n{ch}reversed"})):
        async with http.put(f"{url}/{path}", json=body,
                            headers=bearer(seeded.alice_token)) as resp:
            assert resp.status == 422
            assert "bidirectional control" in (await resp.json())["error"]
    async with http.get(url) as resp:
        assert (await resp.json())["status"] == "reading"


async def test_bidi_controls_are_refused_on_the_setter(
    service: FingerplatService, seeded: Seeded
) -> None:
    server = await start_setter_server(service, "127.0.0.1", 0, settings=SetterConfig(),
                                       metrics=Metrics())
    try:
        host, port = server.addresses[0].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"AUTH {seeded.alice_token}\r\nSET alice {SPOOF}\r\n".encode())
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"+OK")
        reply = (await asyncio.wait_for(reader.readline(), 5)).decode()
        assert reply.startswith("-ERR status must not contain bidirectional control")
        assert not RAW.search(reply)
        writer.close()
    finally:
        await server.close()
        await server.drain(1)


async def test_older_rows_reach_finger_inert(
    service: FingerplatService, operator: Context
) -> None:
    await legacy_rows(service, operator)
    server = await start_finger_server(service, "127.0.0.1", 0, tenant=None,
                                       settings=FingerConfig(), metrics=Metrics())
    try:
        host, port = server.addresses[0].split(" ")[0].rsplit(":", 1)
        for query in (b"eve\r\n", b"/W eve\r\n"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(query)
            answer = (await asyncio.wait_for(reader.read(), 5)).decode()
            writer.close()
            assert not RAW.search(answer.replace("\r\n", "\n").replace("\t", " ")), answer
            assert "\\u202eeman\\u202c" in answer and "^[[2J" in answer
            assert "\\u2067isolated\\u2069" in answer
    finally:
        await server.close()


async def test_older_rows_reach_the_web_inert(
    web_server: RunningWeb, operator: Context, http: aiohttp.ClientSession
) -> None:
    await legacy_rows(web_server.service, operator)
    for attempt in range(2):  # rendered, then from the kept page at the front door
        async with http.get(f"{web_server.url}/~eve") as resp:
            assert resp.status == 200, attempt
            page = await resp.text()
        assert not RAW.search(page), RAW.findall(page)
        assert "gone \\u202eeman\\u202c ^[[2J\\u009b31m" in page
        assert "\\u2067isolated\\u2069" in page and "^Gbell" in page
        assert "Eve \\u202eevE" in page and "older \\u2066one" in page
    async with http.get(f"{web_server.url}/") as resp:
        assert not RAW.search(await resp.text())
    async with admin_client(web_server, operator) as admin:
        await admin.login(ROOT_NAME, ROOT_PASSWORD)
        for path in ("/admin/tenants/default/users", "/admin/tenants/default/users/eve"):
            page_ = await admin.get(path)
            assert page_.status == 200, path
            assert not RAW.search(page_.text), (path, RAW.findall(page_.text))
            assert "\\u202e" in page_.text, path
