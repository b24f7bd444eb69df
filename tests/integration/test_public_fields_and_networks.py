"""Public fields and trusted/rejected networks per tenant, through real listeners.

One node (finger and web listeners, read cache on) on each database. Each
test first makes the node keep the old answer (a cached finger answer, a
kept page), then changes the tenant's settings and checks the very next
answer: a tenant change event must drop what was kept. Clients connect from
127.0.0.1 or ::1, which is what the networks are set against.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import AsyncIterator

import aiohttp
import pytest

from fingerplat.adapters.finger.server import FingerServer
from fingerplat.config import Config
from fingerplat.domain.errors import InvalidInput, NotFound
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import AuditQuery, Context, TokenScope
from fingerplat.repository.engine import create_engine
from fingerplat.server.runtime import Runtime
from fingerplat.service import FingerplatService
from tests.integration.test_membership import CountingNode
from tests.integration.test_read_cache import start_node
from tests.integration.test_status_expiry import until
from tests.support.finger_client import finger


class Node:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        assert runtime.service is not None
        self.service: FingerplatService = runtime.service
        self.finger_servers = [lst for lst in runtime.listeners if lst.name == "finger"]
        web = next(lst for lst in runtime.listeners if lst.name == "web")
        self.web_base = web.addresses[0].split(" ")[0]

    async def finger(self, query: str, *, ipv6: bool = False) -> str:
        server = self.finger_servers[1 if ipv6 else 0]
        assert isinstance(server, FingerServer)
        return await finger(server, query, timeout=5)

    async def get(self, path: str, **kwargs: object) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, \
                session.get(self.web_base + path, **kwargs) as response:  # type: ignore[arg-type]
            return response.status, await response.text()

    async def rpc(self, method: str, *params: object) -> tuple[int, str]:
        body = xmlrpc.client.dumps(params, method)
        async with aiohttp.ClientSession() as session, \
                session.post(self.web_base + "/RPC2", data=body,
                             headers={"Content-Type": "text/xml"}) as response:
            return response.status, await response.text()


@pytest.fixture
async def node(database_url: str, operator: Context) -> AsyncIterator[Node]:
    config = Config.model_validate({
        "finger": {"listen": ["127.0.0.1:0", "[::1]:0"], "rate_limit": 100000,
                   "access_log": False},
        "setter": {"listen": []},
        "web": {"listen": ["127.0.0.1:0"]},
    })
    runtime = Runtime(config, database_url, announce=lambda _line: None)
    await runtime.start()
    node = Node(runtime)
    service = node.service
    await service.tenants.update_tenant(operator, None, add_domains=["wonder.example"])
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell",
                           office="Room 7", phone="555-0100", project="rabbit hole")
    await service.users.set_status(operator, None, "alice", "down the hole")
    await service.users.set_plan(operator, None, "alice", "follow the white rabbit")
    try:
        yield node
    finally:
        await runtime.stop()


async def keep(node: Node, query: str) -> str:
    """Ask twice, so the answer is kept (the second one comes from the cache)."""
    cache = node.service.read_cache
    assert cache is not None
    await node.finger(query)
    hits = cache.hits
    answer = await node.finger(query)
    assert cache.hits > hits
    return answer


async def test_hidden_fields_leave_every_public_answer_at_once(node: Node,
                                                               operator: Context) -> None:
    service = node.service
    assert "follow the white rabbit" in await keep(node, "alice")
    verbose = await keep(node, "/W alice")
    assert "555-0100" in verbose and "Recent statuses" in verbose
    for _ in range(2):  # the second request is answered from the kept page
        status, page = await node.get("/~alice")
        assert status == 200 and "follow the white rabbit" in page

    await service.tenants.update_tenant(operator, None, public_fields="full_name,status")

    plain = await node.finger("alice")
    assert "Name: Alice Liddell" in plain and "Status: down the hole" in plain
    assert "rabbit" not in plain and "Plan" not in plain
    verbose = await node.finger("/W alice")
    assert "555-0100" not in verbose and "Room 7" not in verbose
    assert "Recent statuses" not in verbose and "rabbit" not in verbose
    status, page = await node.get("/~alice")
    assert status == 200 and "down the hole" in page and "white rabbit" not in page
    assert "555-0100" not in page
    status, text = await node.get("/api/v1/tenants/default/users/alice")
    assert status == 200 and '"plan"' not in text and '"phone"' not in text
    assert "down the hole" in text
    status, text = await node.get("/api/v1/tenants/default/users/alice/history")
    assert status == 200 and "down the hole" not in text
    status, text = await node.rpc("getUserInfo", "alice")
    assert "white rabbit" not in text and "Alice Liddell" in text
    status, text = await node.get("/.well-known/webfinger",
                                  params={"resource": "acct:alice@wonder.example"})
    assert status == 200 and "down the hole" in text

    # An administrator's token still sees everything through the API.
    issued = await service.credentials.create_token(
        operator, TokenScope.TENANT, tenant_name="default")
    status, text = await node.get("/api/v1/tenants/default/users/alice",
                                  headers={"Authorization": f"Bearer {issued.secret}"})
    assert status == 200 and "follow the white rabbit" in text and "555-0100" in text

    await service.tenants.update_tenant(operator, None, public_fields="plan")
    plain = await node.finger("alice")
    assert "Status:" not in plain and "follow the white rabbit" in plain
    assert "Alice Liddell" not in plain
    status, text = await node.rpc("getUser", "alice")
    assert "down the hole" not in text
    status, text = await node.get("/.well-known/webfinger",
                                  params={"resource": "acct:alice@wonder.example"})
    assert "down the hole" not in text and "Alice Liddell" not in text

    events = await service.audit.audit_log(operator, AuditQuery(action="tenant.update"))
    assert events[0].before is not None and events[0].after is not None
    assert events[0].before["public_fields"] == ["full_name", "status"]
    assert events[0].after["public_fields"] == ["plan"]
    with pytest.raises(InvalidInput, match="unknown public field"):
        await service.tenants.update_tenant(operator, None, public_fields="status,email")


async def test_rejected_networks_are_refused_everywhere_even_when_kept(
    node: Node, operator: Context
) -> None:
    service = node.service
    assert "down the hole" in await keep(node, "alice")
    for _ in range(2):
        assert (await node.get("/~alice"))[0] == 200

    await service.tenants.update_tenant(operator, None, add_rejected_networks=["127.0.0.0/8"])

    refused = await node.finger("alice")
    assert refused.count("\r\n") == 1 and "not allowed" in refused
    assert "not allowed" in await node.finger("")
    assert "down the hole" in await node.finger("alice", ipv6=True)  # ::1 is not rejected
    assert "not allowed" in await node.finger("alice")  # the kept answer checks the client
    assert (await node.get("/~alice"))[0] == 403
    assert (await node.get("/"))[0] == 403
    assert (await node.get("/api/v1/tenants/default/users/alice"))[0] == 403
    assert (await node.get("/api/v1/tenants/default/users"))[0] == 403
    status, text = await node.rpc("getUser", "alice")
    assert status == 403 and "not allowed" in text
    status, _ = await node.get("/.well-known/webfinger",
                               params={"resource": "acct:alice@wonder.example"})
    assert status == 403

    await service.tenants.update_tenant(operator, None, add_rejected_networks=["::1/128"],
                                remove_rejected_networks=["127.0.0.0/8"])
    assert "down the hole" in await node.finger("alice")
    assert "down the hole" in await keep(node, "alice")
    assert "not allowed" in await node.finger("alice", ipv6=True)
    tenant = await service.public.resolve_tenant(None)
    assert tenant.rejected_networks == ("::1/128",)
    with pytest.raises(NotFound):
        await service.tenants.update_tenant(operator, None, remove_rejected_networks=["10.0.0.0/8"])
    with pytest.raises(InvalidInput, match="invalid network"):
        await service.tenants.update_tenant(operator, None, add_rejected_networks=["10.0.0.0/33"])


async def test_trusted_networks_get_the_user_list_others_single_users(
    node: Node, operator: Context
) -> None:
    service = node.service
    assert "alice" in await node.finger("")
    await service.tenants.update_tenant(
        operator, None, add_trusted_networks=["2001:db8::/32", "::1"])

    listing = await node.finger("")
    assert listing.count("\r\n") == 1 and "trusted networks" in listing
    assert "down the hole" in await node.finger("alice")  # single users: everyone
    assert "alice" in await node.finger("", ipv6=True)  # ::1 is trusted
    assert (await node.get("/"))[0] == 403
    assert (await node.get("/~alice"))[0] == 200
    assert (await node.get("/api/v1/tenants/default/users"))[0] == 403
    status, text = await node.rpc("getUsers")
    assert status == 200 and "faultCode" in text and "trusted" in text

    await service.tenants.update_tenant(operator, None, add_trusted_networks=["127.0.0.1/32"])
    assert "alice" in (await node.get("/"))[1]
    tenant = await service.public.resolve_tenant(None)
    assert tenant.trusted_networks == ("127.0.0.1/32", "::1/128", "2001:db8::/32")


async def test_answers_warmed_at_start_follow_the_tenant_settings(
    database_url: str, operator: Context
) -> None:
    """``serve`` warms its cache with finger answers: they are public views too."""
    engine = create_engine(database_url)
    try:
        other = FingerplatService(engine)
        await other.users.add_user(operator, None, "alice", full_name="Alice Liddell")
        await other.users.set_status(operator, None, "alice", "coffee", expires=Expiry.after(2))
        await other.users.set_plan(operator, None, "alice", "a secret plan")
        await other.tenants.update_tenant(operator, None, public_fields="full_name,status",
                                  add_rejected_networks=["::1/128"])
    finally:
        await engine.dispose()
    runtime = await start_node(database_url)
    try:
        node = CountingNode(runtime)
        assert runtime._warming is not None
        await runtime._warming
        await node.finger("warm-up")  # the tenant
        answer, reads = await node.reads_for("alice")
        assert reads == 0  # warmed
        assert "Status: coffee (since " in answer and "until" in answer
        assert "secret plan" not in answer and "Plan" not in answer

        async def expired() -> bool:
            return "Status: (none)" in await node.finger("alice")

        await until(expired)  # the warmed entry carried its deadline
    finally:
        await runtime.stop()
