"""XML-RPC through the standard library's ServerProxy against the running server."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from typing import Any

import aiohttp
import pytest

from fingerplat.adapters.web import xmlrpc as rpc
from fingerplat.domain.model import Context
from tests.integration.web.conftest import RunningWeb, Seeded, WebFactory


def proxy(url: str, token: str | None = None, path: str = "/RPC2") -> xmlrpc.client.ServerProxy:
    if token is not None:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://script:{token}@{rest}"
    return xmlrpc.client.ServerProxy(f"{url}{path}", allow_none=False)


async def in_thread(fn: Any, *args: Any) -> Any:
    """ServerProxy blocks: run it off the event loop that serves it, with a bound."""
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout=20)


async def fault_of(fn: Any, *args: Any) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        await in_thread(fn, *args)
    return info.value


async def test_tutorial_methods(web_server: RunningWeb, seeded: Seeded) -> None:
    server = proxy(web_server.url)
    assert await in_thread(server.getUser, "alice") == "reading"
    assert await in_thread(server.getUser, "ALICE") == "reading"
    assert await in_thread(server.getUser, "bob") == ""
    assert await in_thread(server.getUser, "ghost") == "No such user"  # hidden
    assert await in_thread(server.getUser, "nobody") == "No such user"
    assert await in_thread(server.getUser, "<bad name>") == "No such user"
    assert await in_thread(server.getUsers) == ["alice", "bob"]
    info = await in_thread(server.getUserInfo, "alice")
    assert info["username"] == "alice" and info["full_name"] == "Alice Liddell"
    assert info["status"] == "reading" and info["status_set_at"].endswith("Z")
    assert info["plan"] == ""


async def test_tenant_by_prefix_and_by_host(
    web_server: RunningWeb, seeded: Seeded, operator: Context
) -> None:
    acme = proxy(web_server.url, path="/t/acme/RPC2")
    assert await in_thread(acme.getUsers) == ["carol"]
    assert await in_thread(acme.getUser, "carol") == "at the anvil factory"
    assert await in_thread(acme.getUser, "alice") == "No such user"
    fault = await fault_of(proxy(web_server.url, path="/t/nope/RPC2").getUsers)
    assert fault.faultCode == rpc.FAULT_NOT_FOUND
    await web_server.service.tenants.update_tenant(operator, "acme", list_users=False)
    fault = await fault_of(acme.getUsers)
    assert fault.faultCode == rpc.FAULT_FORBIDDEN and "does not publish" in fault.faultString
    assert await in_thread(acme.getUser, "carol") == "at the anvil factory"
    body = xmlrpc.client.dumps(("carol",), "getUser").encode()
    async with aiohttp.ClientSession() as http, http.post(
        f"{web_server.url}/RPC2", data=body,
        headers={"Host": "acme.example", "Content-Type": "text/xml"},
    ) as resp:
        result, _ = xmlrpc.client.loads(await resp.read())
    assert result == ("at the anvil factory",)


async def test_set_user_needs_a_token_with_the_right(
    web_server: RunningWeb, seeded: Seeded, operator: Context
) -> None:
    fault = await fault_of(proxy(web_server.url).setUser, "alice", "hacked")
    assert fault.faultCode == rpc.FAULT_UNAUTHENTICATED
    fault = await fault_of(proxy(web_server.url, "fp_9_wrong").setUser, "alice", "hacked")
    assert fault.faultCode == rpc.FAULT_UNAUTHENTICATED and "invalid token" in fault.faultString
    fault = await fault_of(proxy(web_server.url, seeded.bob_token).setUser, "alice", "hacked")
    assert fault.faultCode == rpc.FAULT_FORBIDDEN
    fault = await fault_of(proxy(web_server.url, seeded.acme_admin_token).setUser, "alice", "x")
    assert fault.faultCode == rpc.FAULT_FORBIDDEN  # another tenant's admin
    own = proxy(web_server.url, seeded.alice_token)
    fault = await fault_of(own.setUser, "alice", "x" * 300)
    assert fault.faultCode == rpc.FAULT_INVALID and "280" in fault.faultString
    admin = proxy(web_server.url, seeded.default_admin_token)
    fault = await fault_of(admin.setUser, "nobody", "x")
    assert fault.faultCode == rpc.FAULT_NOT_FOUND
    assert await in_thread(proxy(web_server.url).getUser, "alice") == "reading"
    assert await in_thread(own.setUser, "alice", "in <b>Wonderland</b>") is True
    assert await in_thread(proxy(web_server.url).getUser, "alice") == "in <b>Wonderland</b>"
    history = await web_server.service.users.history(operator, None, "alice", 1)
    assert history[0].channel == "xmlrpc" and history[0].actor.startswith("token:")
    assert await in_thread(own.setUser, "alice", "") is True  # empty clears
    assert await in_thread(proxy(web_server.url).getUser, "alice") == ""


async def test_introspection_and_bad_calls(web_server: RunningWeb, seeded: Seeded) -> None:
    server = proxy(web_server.url)
    methods = await in_thread(server.system.listMethods)
    assert {"getUser", "getUsers", "getUserInfo", "setUser", "system.multicall"} <= set(methods)
    assert "token" in await in_thread(server.system.methodHelp, "setUser")
    fault = await fault_of(server.system.methodHelp, "nope")
    assert fault.faultCode == rpc.FAULT_NO_METHOD
    fault = await fault_of(server.noSuchMethod)
    assert fault.faultCode == rpc.FAULT_NO_METHOD
    fault = await fault_of(server.getUser)
    assert fault.faultCode == rpc.FAULT_BAD_PARAMS and "1 parameter" in fault.faultString
    fault = await fault_of(server.getUser, 42)
    assert fault.faultCode == rpc.FAULT_BAD_PARAMS
    fault = await fault_of(server.getUserInfo, "ghost")
    assert fault.faultCode == rpc.FAULT_NOT_FOUND and fault.faultString == "No such user"


async def test_multicall(web_server: RunningWeb, seeded: Seeded) -> None:
    multi = xmlrpc.client.MultiCall(proxy(web_server.url, seeded.alice_token))
    multi.getUser("alice")
    multi.setUser("alice", "multi")
    multi.getUser("alice")
    multi.setUser("bob", "not mine")
    multi.getUsers()

    raw = await in_thread(multi)
    outcomes: list[Any] = []
    for index in range(5):
        try:
            outcomes.append(raw[index])
        except xmlrpc.client.Fault as fault:
            outcomes.append(fault.faultCode)
    assert outcomes == ["reading", True, "multi", rpc.FAULT_FORBIDDEN, ["alice", "bob"]]
    nested = {"methodName": "system.multicall", "params": [[]]}
    raw = await in_thread(proxy(web_server.url).system.multicall, [nested])
    assert raw[0]["faultCode"] == rpc.FAULT_BAD_REQUEST


async def post_raw(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
        f"{url}/RPC2", data=body, headers={"Content-Type": "text/xml", **(headers or {})}
    ) as resp:
        assert resp.status == 200
        return await resp.read()


def fault_code(answer: bytes) -> int:
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(answer)
    return info.value.faultCode


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<methodCall><methodName>getUser</methodName>
<params><param><value><string>&lol9;</string></value></param></params></methodCall>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>getUser</methodName>
<params><param><value><string>&xxe;</string></value></param></params></methodCall>"""


async def test_hostile_bodies_are_refused_and_the_server_still_answers(
    web_server_factory: WebFactory, seeded: Seeded
) -> None:
    running = await web_server_factory(max_body_bytes=4096)
    url = running.url
    assert fault_code(await post_raw(url, BILLION_LAUGHS)) == rpc.FAULT_PARSE
    assert fault_code(await post_raw(url, EXTERNAL_ENTITY)) == rpc.FAULT_PARSE
    assert fault_code(await post_raw(url, b"\x00\xff garbage <<<")) == rpc.FAULT_PARSE
    assert fault_code(await post_raw(url, b"<methodResponse/>")) == rpc.FAULT_BAD_REQUEST
    big = xmlrpc.client.dumps(("x" * 10_000,), "getUser").encode()
    assert fault_code(await post_raw(url, big)) == rpc.FAULT_BAD_REQUEST
    # The same oversized body sent chunked (no Content-Length) is refused too.

    async def chunks() -> Any:
        for _ in range(10):
            yield big[:1000]

    assert fault_code(await post_raw(url, chunks())) == rpc.FAULT_BAD_REQUEST  # type: ignore[arg-type]
    # ...and the server still answers, through the reference client.
    assert await in_thread(proxy(url).getUser, "alice") == "reading"
    metrics = running.metrics.render().decode()
    assert 'fingerplat_errors_total{adapter="xmlrpc",kind="fault_-32700"} 3.0' in metrics
