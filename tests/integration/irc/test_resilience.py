"""Nick collisions, a restarting server and TLS, against a real ngircd (both databases)."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from pathlib import Path

import pytest
import trustme

from fingerplat.adapters.irc import start_irc_bots
from fingerplat.config import IrcConfig
from fingerplat.domain.model import Context
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService
from tests.integration.irc.conftest import FAST
from tests.integration.irc.ircd import IrcPeer, Ngircd, free_port
from tests.integration.irc.test_bot import (
    bot_config,
    bot_in_channel,
    is_privmsg,
    joined_peer,
    make_acme,
)


async def wait_until(condition, timeout: float = 20.0, what: str = "condition") -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {timeout} s") from None


def failed_connections(caplog: pytest.LogCaptureFixture) -> int:
    """Connection attempts the bots logged as failed so far."""
    return sum(1 for r in caplog.records
               if r.name == "fingerplat.irc" and "connection failed" in r.getMessage())


async def test_nick_collision_uses_a_fallback_and_wins_the_nick_back(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    await make_acme(service, operator)
    squatter = IrcPeer("fingerbot")  # holds the bot's nick before the bot arrives
    peers.append(squatter)
    await squatter.connect(ngircd.port)
    peer = await joined_peer(peers, ngircd)
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=Metrics(), timing=FAST)
    try:
        # ngircd allows 9 characters, so "fingerbot_" is refused too; "fingerbo_" fits.
        await peer.wait_for(lambda line: line.startswith(":fingerbo_!")
                            and line.endswith("JOIN :#acme"))
        await wait_until(lambda: bots.addresses == [
            f"irc://127.0.0.1:{ngircd.port} as fingerbo_ in #acme"], what="fallback nick shown")
        mark = len(peer.lines)
        await peer.privmsg("#acme", "!finger alice")
        await peer.wait_for(is_privmsg("fingerbo_", "#acme", "alice: in the lab"), start=mark)

        await squatter.close()
        await peer.wait_for(lambda line: line.startswith(":fingerbo_!")
                            and line.endswith("NICK :fingerbot"))
        await wait_until(lambda: bots.addresses[0].endswith("as fingerbot in #acme"),
                         what="nick regained")
        await peer.privmsg("fingerbot", "alice")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "alice: in the lab"))
    finally:
        await bots.close()
        await bots.drain(5)


async def test_bot_comes_back_after_the_server_restarts(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="fingerplat.irc")
    await make_acme(service, operator)
    peer = await joined_peer(peers, ngircd)
    metrics = Metrics()
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=metrics, timing=FAST)
    try:
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and line.endswith("JOIN :#acme"))
        await wait_until(lambda: metrics.registry.get_sample_value(
            "fingerplat_open_connections", {"adapter": "irc"}) == 1, what="gauge at 1")

        ngircd.kill()
        await peer.wait_for(lambda line: line == "<closed>")
        await wait_until(lambda: not bots.bots[0].connected, what="bot notices the loss")
        await wait_until(lambda: metrics.registry.get_sample_value(
            "fingerplat_open_connections", {"adapter": "irc"}) == 0, what="gauge at 0")
        # Down for a while: several attempts fail (connection refused) and back off.
        failed = failed_connections(caplog)
        await wait_until(lambda: failed_connections(caplog) >= failed + 2,
                         what="two reconnection attempts refused")
        ngircd.start()

        await wait_until(lambda: bots.bots[0].connected, timeout=15, what="bot reconnected")
        again = IrcPeer("tester2")
        peers.append(again)
        await again.connect(ngircd.port)
        await again.join("#acme")
        # The bot is in #acme again: either it joined before us (NAMES) or after (JOIN).
        await bot_in_channel(again)
        await again.privmsg("fingerbot", "finger alice")
        await again.wait_for(is_privmsg("fingerbot", "tester2", "alice: in the lab"))
        mark = len(again.lines)
        await service.users.set_status(operator, "acme", "alice", "back online")
        await again.wait_for(is_privmsg("fingerbot", "#acme", "alice is now: back online"),
                             start=mark)
    finally:
        await bots.close()
        await bots.drain(5)


@pytest.fixture
def tls_ngircd(tmp_path: Path) -> tuple[Ngircd, trustme.CA]:
    workdir = tmp_path / "tls-ngircd"
    workdir.mkdir()
    workdir.chmod(0o755)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    with open(workdir / "cert.pem", "wb") as out:
        for pem in cert.cert_chain_pems:
            out.write(pem.bytes())
    server = Ngircd(workdir, tls_port=free_port(), cert_file=workdir / "cert.pem",
                    key_file=workdir / "key.pem")
    server.start()
    yield server, ca
    server.kill()


async def test_tls_with_verification(
    service: FingerplatService, operator: Context, tls_ngircd: tuple[Ngircd, trustme.CA],
    peers: list[IrcPeer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="fingerplat.irc")
    server, ca = tls_ngircd
    await make_acme(service, operator)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    peer = IrcPeer("tester")
    peers.append(peer)
    await peer.connect(server.tls_port, tls=client_ctx)
    await peer.join("#acme")
    config = bot_config(server, port=server.tls_port, tls=True, tls_verify=True)

    # Not trusted yet: verification refuses the certificate, the bot never gets in.
    untrusted = await start_irc_bots(service, [config], metrics=Metrics(), timing=FAST)
    try:
        await wait_until(lambda: any("CERTIFICATE_VERIFY_FAILED" in r.getMessage()
                                     for r in caplog.records), what="the certificate refused")
        assert not untrusted.bots[0].connected
        assert not any(line.startswith(":fingerbot!") for line in peer.lines)
    finally:
        await untrusted.close()
        await untrusted.drain(2)

    # Trust the test CA the standard way (SSL_CERT_FILE): now it connects, over TLS.
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    bots = await start_irc_bots(service, [config], metrics=Metrics(), timing=FAST)
    try:
        assert bots.addresses == [f"ircs://127.0.0.1:{server.tls_port} as fingerbot in #acme"]
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and line.endswith("JOIN :#acme"))
        await peer.privmsg("#acme", "!finger alice")
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice: in the lab"))
    finally:
        await bots.close()
        await bots.drain(5)


async def test_tls_without_verification_accepts_a_self_signed_server(
    service: FingerplatService, operator: Context, tls_ngircd: tuple[Ngircd, trustme.CA],
    peers: list[IrcPeer]
) -> None:
    server, _ca = tls_ngircd
    await make_acme(service, operator)
    config = bot_config(server, port=server.tls_port, tls=True, tls_verify=False)
    bots = await start_irc_bots(service, [config], metrics=Metrics(), timing=FAST)
    try:
        await wait_until(lambda: bots.bots[0].connected, what="TLS connection")
    finally:
        await bots.close()
        await bots.drain(5)


async def test_a_server_that_never_answers_is_given_up_on_and_retried(
    service: FingerplatService
) -> None:
    """A fake remote that accepts and then says nothing (a misbehaving outside host)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    timing = dataclasses.replace(FAST, connect_timeout=0.5)
    config = IrcConfig(server="127.0.0.1", port=port, tls=False, nick="fingerbot",
                       channels=["#acme"], tenant="acme")
    bots = await start_irc_bots(service, [config], metrics=Metrics(), timing=timing)
    try:
        await wait_until(lambda: len(accepted) >= 3, timeout=10, what="three attempts")
        assert not bots.bots[0].connected
    finally:
        await bots.close()
        await asyncio.wait_for(bots.drain(5), 6)
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_should_run_keeps_the_bot_off_irc_until_it_says_yes(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    """The seam for one-bot-per-deployment: a node that may not run the bot stays off."""
    await make_acme(service, operator)
    peer = await joined_peer(peers, ngircd)
    allowed = asyncio.Event()
    asked: list[str] = []

    async def should_run(cfg: IrcConfig) -> bool:
        asked.append(cfg.nick)
        return allowed.is_set()

    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=Metrics(), timing=FAST,
                                should_run=should_run)
    try:
        await wait_until(lambda: len(asked) >= 2, what="should_run asked twice")
        assert not bots.bots[0].connected
        assert not any(line.startswith(":fingerbot!") for line in peer.lines)

        allowed.set()  # this node won the lock
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and line.endswith("JOIN :#acme"))
        allowed.clear()  # ...and lost it: the bot leaves IRC
        await peer.wait_for(lambda line: line.startswith(":fingerbot!") and " QUIT " in line)
        await wait_until(lambda: not bots.bots[0].connected, what="bot off IRC")
    finally:
        await bots.close()
        await bots.drain(5)
