"""Issue 12 item 8: the public history of a user names no actor.

Before the fix ``GET /api/v1/tenants/T/users/U/history`` without credentials
listed ``admin:root``, ``cli:<os user>`` and ``token:5(platform)``, handing
admin names to anyone. Public answers (JSON without a token or with someone
else's, finger ``/W``, the web page) now say what changed and when; the
tenant's admins and the user's own token still see who.
"""

from __future__ import annotations

import asyncio

import aiohttp

from fingerplat.adapters.finger.server import start_finger_server
from fingerplat.config import FingerConfig
from fingerplat.domain.model import Channel, Context, Principal
from fingerplat.metrics import Metrics
from tests.integration.web.conftest import RunningWeb, Seeded, bearer

ACTORS = ("cli:secret-operator", "token:")


async def _history(http: aiohttp.ClientSession, url: str, token: str | None) -> list[dict]:
    headers = bearer(token) if token else {}
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200
        return (await resp.json())["history"]


async def test_public_history_names_no_actor_on_any_adapter(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    svc = web_server.service
    secret_operator = Context(Principal.operator("secret-operator"), Channel.CLI)
    await svc.users.set_status(secret_operator, None, "alice", "set by the operator")
    token_ctx = await svc.credentials.authenticate_token(seeded.alice_token, Channel.API)
    await svc.users.set_status(Context(token_ctx, Channel.API), None, "alice", "set by alice")
    url = f"{web_server.url}/api/v1/tenants/default/users/alice/history"

    # Anonymous, and another user's token: what and when only.
    for token in (None, seeded.bob_token, seeded.acme_admin_token):
        history = await _history(http, url, token)
        assert [h["status"] for h in history][:2] == ["set by alice", "set by the operator"]
        assert all(set(h) == {"status", "set_at", "expires_at"} for h in history), history
    # The tenant's admin and alice's own token see who changed it.
    for token in (seeded.default_admin_token, seeded.alice_token, seeded.platform_token):
        history = await _history(http, url, token)
        assert history[1]["actor"] == "cli:secret-operator"
        assert history[0]["actor"].startswith("token:") and history[0]["channel"] == "api"

    # The web page.
    async with http.get(f"{web_server.url}/~alice") as resp:
        page = await resp.text()
    assert "set by the operator" in page
    assert not any(actor in page for actor in ACTORS)

    # finger /W on a real listener.
    finger = await start_finger_server(svc, "127.0.0.1", 0, tenant=None,
                                       settings=FingerConfig(), metrics=Metrics())
    try:
        host, port = finger.addresses[0].split(" ")[0].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"/W alice\r\n")
        answer = (await asyncio.wait_for(reader.read(), 10)).decode()
        writer.close()
    finally:
        await finger.close()
        await finger.drain(1)
    assert "set by the operator" in answer
    assert not any(actor in answer for actor in ACTORS)
