"""``fingerplat finger`` (the client) and forwarding through a real ``fingerplat serve``.

The remote finger server (tests/support/finger_remote.py) runs in the test's
event loop on 127.0.0.2, so the command is started with asyncio's subprocess
API: a blocking call would stop the remote from answering.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import CLI_TIMEOUT, Fingerplat, Result, finger, fingerplat_executable
from tests.support.finger_remote import remote_finger

REMOTE = "127.0.0.2"


async def run_cli(env: dict[str, str], *args: str) -> Result:
    process = await asyncio.create_subprocess_exec(
        fingerplat_executable(), *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise
    result = Result(args, process.returncode or 0, out.decode(), err.decode())
    assert "Traceback" not in result.stderr, result
    return result


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


async def test_client_asks_the_host_named_in_the_query(bare_cli: Fingerplat) -> None:
    answer = b"Login: alice\r\nStatus: \x1b[2J\x1b[31mred\x07 alert\r\n"
    async with remote_finger(answer=answer) as remote:
        result = await run_cli(bare_cli.env, "finger", f"alice@{REMOTE}",
                               "--port", str(remote.port))
        chained = await run_cli(bare_cli.env, "finger", "/W bob@far.example", "--host", REMOTE,
                                "--port", str(remote.port))
    assert result.returncode == 0, result
    assert result.stdout == "Login: alice\nStatus: ^[[2J^[[31mred^G alert\n"
    assert chained.returncode == 0, chained
    assert remote.queries == ["alice", "/W bob@far.example"]


async def test_client_errors_are_one_line(bare_cli: Fingerplat) -> None:
    port = free_port(REMOTE)
    refused = await run_cli(bare_cli.env, "finger", f"alice@{REMOTE}", "--port", str(port))
    assert (refused.returncode, refused.stdout) == (6, "")
    assert refused.stderr == (f"fingerplat: connection refused by {REMOTE}:{port} "
                              "(no finger server there?)\n")
    async with remote_finger(mode="silent") as remote:
        slow = await run_cli(bare_cli.env, "finger", "alice", "--host", REMOTE, "--port",
                             str(remote.port), "--timeout", "0.5")
    assert slow.returncode == 6
    assert slow.stderr == (f"fingerplat: {REMOTE}:{remote.port} did not answer within "
                           "0.5 s\n")


async def test_serve_forwards_to_an_allowlisted_remote(
    cli: Fingerplat, tmp_path: Path, serve_factory, service: FingerplatService,  # type: ignore[no-untyped-def]
    operator: Context,
) -> None:
    await service.users.add_user(operator, None, "carol", full_name="Carol C")
    await service.users.set_status(operator, None, "carol", "local and fine")
    await service.tenants.update_tenant(operator, None, forwarding=True)
    async with remote_finger(answer=b"Login: bob\r\nStatus: remote \x1b[1mbold\r\n") as remote:
        config = tmp_path / "fingerplat.toml"
        config.write_text(
            '[finger]\nlisten = ["127.0.0.1:0"]\n[setter]\nlisten = []\n[web]\nlisten = []\n'
            f'[forwarding]\nport = {remote.port}\ntimeout = 2\nmax_hops = 2\n'
            f'allow = ["{REMOTE}/32"]\n'
        )
        server = await serve_factory({**cli.env, "FINGERPLAT_CONFIG": str(config)})
        host, port = server.address("finger")

        local = await run_cli(cli.env, "finger", "carol", "--host", host, "--port", str(port))
        assert local.returncode == 0, local
        assert "local and fine" in local.stdout and "Carol C" in local.stdout

        forwarded = await run_cli(cli.env, "finger", f"bob@{REMOTE}", "--host", host,
                                  "--port", str(port))
        assert forwarded.returncode == 0, forwarded
        assert forwarded.stdout.splitlines() == [
            f"[{REMOTE}] Login: bob", f"[{REMOTE}] Status: remote ^[[1mbold"]
        assert remote.queries == ["bob"]

        # Not in the allowlist: refused before any connection is made.
        refused = await finger(host, port, "bob@127.0.0.3")
        assert refused.splitlines()[0].startswith("[127.0.0.3] forwarding failed: 127.0.0.3 "
                                                  "resolves to a loopback address")
        too_far = await finger(host, port, f"bob@a.example@b.example@{REMOTE}")
        assert "too many hops (3); at most 2 are allowed" in too_far
        assert remote.queries == ["bob"]

        # SIGHUP with the allowlist emptied: the remote is refused from now on.
        config.write_text(config.read_text().replace(f'allow = ["{REMOTE}/32"]', "allow = []"))
        server.process.send_signal(signal.SIGHUP)
        assert server.process.stdout is not None
        line = await asyncio.wait_for(server.process.stdout.readline(), 20)
        assert line.decode().startswith("reload: applied forwarding.allow"), line
        after = await finger(host, port, f"bob@{REMOTE}")
        assert after.startswith(f"[{REMOTE}] forwarding failed: {REMOTE} resolves to a "
                                "loopback address")
        assert remote.queries == ["bob"]

        code, _, err = await server.stop()
    assert code == 0, err


async def test_client_without_a_host_asks_the_local_server_it_is_configured_for(
    cli: Fingerplat, tmp_path: Path, serve_factory, service: FingerplatService,  # type: ignore[no-untyped-def]
    operator: Context,
) -> None:
    await service.users.add_user(operator, None, "carol", full_name="Carol C")
    await service.users.set_status(operator, None, "carol", "right here")
    port = free_port("127.0.0.1")
    config = tmp_path / "fingerplat.toml"
    config.write_text(f'[finger]\nlisten = ["127.0.0.1:{port}"]\n[setter]\nlisten = []\n'
                      '[web]\nlisten = []\n')
    env = {**cli.env, "FINGERPLAT_CONFIG": str(config)}
    await serve_factory(env)

    result = await run_cli(env, "finger", "carol")
    assert result.returncode == 0, result
    assert "Carol C" in result.stdout and "right here" in result.stdout

    # A wildcard listen address is asked on loopback.
    config.write_text(f'[finger]\nlisten = ["0.0.0.0:{port}"]\n')
    wildcard = await run_cli(env, "finger", "carol")
    assert wildcard.returncode == 0 and "right here" in wildcard.stdout, wildcard
