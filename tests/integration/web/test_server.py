"""The listener itself: binding, health, metrics, HTTPS, shutdown."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from fingerplat.adapters.web import payloads
from fingerplat.adapters.web import server as server_module
from fingerplat.adapters.web.server import start_web_server
from fingerplat.config import Config, WebConfig
from fingerplat.domain.errors import CannotListen, InvalidInput
from fingerplat.metrics import Metrics
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.integration.web.conftest import RunningWeb, Seeded, WebFactory
from tests.support.engines import dispose
from tests.support.polling import until
from tests.support.scrape import sample


async def test_healthz_answers_ok(web_server: RunningWeb, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{web_server.url}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["database"] == "ok"


async def test_two_listeners_both_answer(
    web_server_factory: WebFactory, http: aiohttp.ClientSession
) -> None:
    running = await web_server_factory(listen=["127.0.0.1:0", "127.0.0.1:0", "[::1]:0"])
    addresses = running.server.addresses
    assert len(set(addresses)) == 3
    assert addresses[2].startswith("http://[::1]:")
    for address in addresses:
        assert not address.endswith(":0")
        async with http.get(f"{address}/healthz") as resp:
            assert resp.status == 200


async def test_https_with_a_certificate_made_by_the_test(
    web_server_factory: WebFactory, tmp_path: Path, seeded: Seeded
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    running = await web_server_factory(tls_cert=str(cert_file), tls_key=str(key_file))
    assert running.url.startswith("https://127.0.0.1:")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    connector = aiohttp.TCPConnector(ssl=client_context)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{running.url}/~alice") as resp:
            assert resp.status == 200 and "reading" in await resp.text()
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
        async with http.get(f"{running.url}/api/v1/tenants/default/users/alice") as resp:
            assert (await resp.json())["status"] == "reading"
    # Plain HTTP on the TLS port gets nowhere, and a client that does not trust the CA refuses.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.get(f"{running.url}/healthz")


async def test_bad_tls_files_are_a_clear_error(
    web_server_factory: WebFactory, tmp_path: Path
) -> None:
    (tmp_path / "c.pem").write_text("not a certificate")
    with pytest.raises(InvalidInput, match="cannot load web TLS certificate"):
        await web_server_factory(tls_cert=str(tmp_path / "c.pem"),
                                 tls_key=str(tmp_path / "c.pem"))


async def test_port_in_use_is_a_clear_error(
    web_server: RunningWeb, web_server_factory: WebFactory
) -> None:
    port = web_server.url.rsplit(":", 1)[1]
    with pytest.raises(CannotListen, match=f"cannot listen on 127.0.0.1:{port}"):
        await web_server_factory(listen=[f"127.0.0.1:{port}"])


async def test_healthz_is_503_when_the_database_is_down(
    backend: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # SQLite cannot open a directory; nothing listens on port 9 for PostgreSQL.
    (tmp_path / "db").mkdir()
    dead_url = (f"sqlite+aiosqlite:///{tmp_path}/db" if backend == "sqlite"
                else "postgresql+asyncpg://postgres@127.0.0.1:9/fingerplat")
    engine = create_engine(dead_url, connect_timeout=2)
    server = await start_web_server(FingerplatService(engine), WebConfig(listen=["127.0.0.1:0"]),
                                    metrics=Metrics())
    try:
        async with http.get(f"{server.url}/healthz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["database"] == "down" and "Traceback" not in body["error"]
        async with http.get(f"{server.url}/~alice") as resp:
            assert resp.status == 503
            text = await resp.text()
            assert "Temporarily unavailable" in text and "Traceback" not in text
        async with http.get(f"{server.url}/api/v1/tenants/default/users") as resp:
            assert resp.status == 503 and "error" in await resp.json()
    finally:
        await server.drain(5)
        await dispose(engine)  # waits for aiosqlite's threads


async def test_metrics_count_requests_per_adapter(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    for path in ("/", "/~alice", "/~nobody", "/api/v1/tenants/default/users"):
        async with http.get(f"{web_server.url}{path}") as resp:
            await resp.read()
    async with http.post(f"{web_server.url}/RPC2", data=b"<methodCall><methodName>getUsers"
                         b"</methodName></methodCall>") as resp:
        await resp.read()
    async with http.get(f"{web_server.url}/metrics") as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        text = await resp.text()
    assert 'fingerplat_requests_total{adapter="web"} 3.0' in text
    assert 'fingerplat_requests_total{adapter="api"} 1.0' in text
    assert 'fingerplat_requests_total{adapter="xmlrpc"} 1.0' in text
    assert 'fingerplat_errors_total{adapter="web",kind="404"} 1.0' in text
    assert 'fingerplat_request_seconds_bucket{adapter="api",le="+Inf"} 1.0' in text
    assert 'fingerplat_open_connections{adapter="web"}' in text


async def test_close_stops_accepting_and_drain_finishes(
    web_server_factory: WebFactory, http: aiohttp.ClientSession
) -> None:
    running = await web_server_factory()
    await running.server.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{running.url}/healthz") as resp:
            await resp.read()
    await running.server.drain(2)


async def test_drain_lets_an_in_flight_request_finish(
    web_server_factory: WebFactory, seeded: Seeded
) -> None:
    running = await web_server_factory()
    release = asyncio.Event()
    url = f"{running.url}/api/v1/tenants/default/users/alice/status"

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"status": '
        await release.wait()
        yield b'"finished during shutdown"}'

    async def put() -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as http, http.put(
            url, data=slow_body(), headers={"Authorization": f"Bearer {seeded.alice_token}"}
        ) as resp:
            return resp.status, await resp.json()

    request = asyncio.create_task(put())
    # Accepted, and handed from the front door to aiohttp, which waits for the body.
    await until(lambda: not running.server.door.connections and sample(
        running.metrics, "fingerplat_open_connections", adapter="web") == 1,
        "the request is in flight, waiting for its body")
    await running.server.close()
    drained = asyncio.create_task(running.server.drain(5))
    release.set()
    status, body = await asyncio.wait_for(request, 10)
    await asyncio.wait_for(drained, 10)
    assert status == 200 and body["status"] == "finished during shutdown"


async def test_a_body_dripped_too_slowly_is_dropped(
    web_server: RunningWeb, seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
    http: aiohttp.ClientSession,
) -> None:
    monkeypatch.setattr(payloads, "BODY_TIMEOUT", 0.5)

    async def drip() -> AsyncIterator[bytes]:
        yield b'{"status": '
        await asyncio.sleep(5)
        yield b'"late"}'

    url = f"{web_server.url}/api/v1/tenants/default/users/alice/status"
    async with http.put(url, data=drip(), headers={
        "Authorization": f"Bearer {seeded.alice_token}"}) as resp:
        assert resp.status == 408
        assert "not received within" in (await resp.json())["error"]
    async with http.get(f"{web_server.url}/api/v1/tenants/default/users/alice") as resp:
        assert (await resp.json())["status"] == "reading"


async def test_sighup_reconfigure_renews_the_certificate_and_templates(
    web_server_factory: WebFactory, tmp_path: Path, seeded: Seeded
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"

    def install(ca: trustme.CA) -> None:
        issued = ca.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(cert_file))
        issued.private_key_pem.write_to_path(str(key_file))

    async def fetch(ca: trustme.CA, path: str = "/healthz") -> str:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http, \
                http.get(f"{running.url}{path}") as resp:
            return await resp.text()

    install(old_ca)
    running = await web_server_factory(tls_cert=str(cert_file), tls_key=str(key_file))
    assert "ok" in await fetch(old_ca)
    install(new_ca)
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "user.html").write_text("renewed {{ user.username }}", encoding="utf-8")
    config = Config(web=running.settings.model_copy(update={"templates": str(overrides)}))
    running.server.reconfigure(config)
    assert await fetch(new_ca, "/~alice") == "renewed alice"
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await fetch(old_ca)
    # A broken pair is refused and the running certificate stays.
    key_file.write_text("garbage")
    running.server.reconfigure(config)
    assert "ok" in await fetch(new_ca)


async def test_a_client_dripping_headers_is_dropped(
    web_server_factory: WebFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT", 1.0)
    running = await web_server_factory()
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    with pytest.raises((ConnectionError, OSError)):
        for _ in range(40):
            writer.write(b"X-Drip: 1\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
    writer.close()
    # Others are still served.
    async with aiohttp.ClientSession() as http, http.get(f"{running.url}/healthz") as resp:
        assert resp.status == 200
