"""A real ``fingerplat serve`` process with an ``[[irc]]`` section, against a real ngircd.

Proves the configuration file path end to end: the TOML keys, the printed
address, answers from what another process wrote to the database, and QUIT on
SIGTERM.
Changes made by another process (the CLI) are announced on PostgreSQL, where
they reach ``serve`` as a NOTIFY; on SQLite only in-process changes are
announced (covered in test_bot.py), but answers are always current.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, base_env, run_serve_to_exit, start_serve
from tests.integration.irc.ircd import IrcPeer, Ngircd
from tests.integration.irc.test_bot import bot_in_channel, is_privmsg, joined_peer

pytestmark = pytest.mark.slow


async def test_serve_with_an_irc_section(
    backend: str, database_url: str, service: FingerplatService, operator: Context,
    tmp_path: Path,
    ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    env = {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": database_url}
    await service.tenants.create_tenant(operator, "acme")
    await service.users.add_user(operator, "acme", "alice")
    await service.users.set_status(operator, "acme", "alice", "writing docs")
    config = tmp_path / "fingerplat.toml"
    config.write_text(
        '[finger]\nlisten = ["127.0.0.1:0"]\n'
        '[setter]\nlisten = []\n'
        '[web]\nlisten = []\n'
        "[[irc]]\n"
        'server = "127.0.0.1"\n'
        f"port = {ngircd.port}\n"
        "tls = false\n"
        'nick = "fingerbot"\n'
        'channels = ["#acme"]\n'
        'tenant = "acme"\n'
    )
    server = await start_serve(env, "--config", str(config))
    try:
        assert f"irc listening on irc://127.0.0.1:{ngircd.port} as fingerbot in #acme" \
            in server.lines
        peer = await joined_peer(peers, ngircd)
        await bot_in_channel(peer)
        await peer.privmsg("#acme", "!finger alice")
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice: writing docs"))
        # Changed by another process, the CLI: the bot's answer follows.
        mark = len(peer.lines)
        Fingerplat(env, tmp_path)("user", "set", "alice", "done with docs", "--tenant", "acme",
                                  ok=True)
        if backend == "postgresql":
            # Across processes the change arrives as a NOTIFY, and is announced.
            await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice is now: done with docs"),
                                start=mark)
        await peer.privmsg("fingerbot", "finger alice")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "alice: done with docs"))
    finally:
        code, _out, err = await server.stop()
    assert code == 0, err
    assert "Traceback" not in err
    await peer.wait_for(lambda line: line.startswith(":fingerbot!") and " QUIT " in line)


async def test_serve_refuses_an_irc_section_the_protocol_cannot_carry(
    database_url: str, tmp_path: Path
) -> None:
    env = {**base_env(tmp_path), "FINGERPLAT_DATABASE_URL": database_url}
    config = tmp_path / "fingerplat.toml"
    config.write_text(
        '[finger]\nlisten = ["127.0.0.1:0"]\n[setter]\nlisten = []\n[web]\nlisten = []\n'
        '[[irc]]\nserver = "127.0.0.1"\nport = 6667\nchannels = ["#ok", "no hash"]\n'
    )
    code, _out, err = await run_serve_to_exit(env, "--config", str(config))
    assert code != 0
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("fingerplat: ")]
    assert len(errors) == 1, err
    assert "irc[0].channels" in errors[0] and "'no hash'" in errors[0], err
