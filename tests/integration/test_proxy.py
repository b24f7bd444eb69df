"""The forwarding proxy against a remote finger server on another loopback address.

The remote (tests/support/finger_remote.py) plays a host on the internet: it
listens on 127.0.0.2, which the proxy must refuse unless ``[forwarding]
allow`` names it. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from fingerplat.adapters.proxy.client import finger
from fingerplat.adapters.proxy.forwarder import Forwarder, blocked_reason, parse_host
from fingerplat.config import ForwardingConfig
from fingerplat.domain.errors import InvalidInput, Unavailable
from fingerplat.metrics import Metrics
from tests.support.finger_remote import remote_finger

REMOTE = "127.0.0.2"


def forwarder(port: int, *, allow: tuple[str, ...] = (f"{REMOTE}/32",), timeout: float = 2,
              max_bytes: int = 65536, max_hops: int = 3) -> Forwarder:
    settings = ForwardingConfig(port=port, allow=list(allow), timeout=timeout,
                                max_bytes=max_bytes, max_hops=max_hops)
    return Forwarder(settings, metrics=Metrics())


async def test_allowlisted_remote_answers_with_host_prefix() -> None:
    async with remote_finger() as remote:
        lines = await asyncio.wait_for(forwarder(remote.port)("alice", [REMOTE], False), 10)
    assert lines == [f"[{REMOTE}] Login: alice", f"[{REMOTE}] Status: hello from far away"]
    assert remote.queries == ["alice"]


async def test_without_allowlist_loopback_is_refused_and_never_contacted() -> None:
    async with remote_finger() as remote:
        lines = await asyncio.wait_for(forwarder(remote.port, allow=())("alice", [REMOTE], False),
                                       10)
        assert remote.queries == []
    assert len(lines) == 1
    assert lines[0].startswith(f"[{REMOTE}] forwarding failed:")
    assert "loopback" in lines[0] and "not allowed" in lines[0]


async def test_names_are_checked_after_resolution() -> None:
    # "localhost" is a name, but it resolves to loopback: refused even though
    # 127.0.0.2 is allowed, because 127.0.0.1 is not in the allowlist.
    async with remote_finger() as remote:
        lines = await forwarder(remote.port)("alice", ["localhost"], False)
        assert remote.queries == []
    assert lines == ["[localhost] forwarding failed: localhost resolves to a loopback address, "
                     "which is not allowed"]


async def test_chain_sends_the_rest_of_the_chain_to_the_last_host() -> None:
    async with remote_finger() as remote:
        lines = await forwarder(remote.port)("bob", ["far.example", REMOTE], True)
    assert remote.queries == ["/W bob@far.example"]
    assert lines[0].startswith(f"[{REMOTE}] ")


async def test_hop_limit() -> None:
    async with remote_finger() as remote:
        lines = await forwarder(remote.port, max_hops=2)("bob", ["a.example", "b.example", REMOTE],
                                                          False)
        assert remote.queries == []
    assert lines == [f"[{REMOTE}] forwarding failed: too many hops (3); at most 2 are allowed"]


async def test_silent_remote_times_out_with_one_line() -> None:
    async with remote_finger(mode="silent") as remote:
        lines = await asyncio.wait_for(
            forwarder(remote.port, timeout=0.5)("alice", [REMOTE], False), 10
        )
    assert lines == [f"[{REMOTE}] forwarding failed: {REMOTE}:{remote.port} did not answer "
                     "within 0.5 s"]


async def test_flooding_remote_is_capped() -> None:
    async with remote_finger(mode="flood", flood_bytes=2_000_000) as remote:
        lines = await asyncio.wait_for(
            forwarder(remote.port, max_bytes=1000)("alice", [REMOTE], False), 10
        )
    assert lines[-1] == f"[{REMOTE}] ... answer truncated at 1000 bytes"
    body = "".join(line.removeprefix(f"[{REMOTE}] ") for line in lines[:-1])
    assert len(body) <= 1000
    assert len(lines) == 11  # ten full 100-byte lines, then the marker


async def test_remote_control_characters_are_neutralised() -> None:
    answer = b"\x1b[2J\x1b[31mred\x07\r\nbare\rcr\r\n\xff\xfe\r\n"
    async with remote_finger(answer=answer) as remote:
        lines = await forwarder(remote.port)("alice", [REMOTE], False)
    assert lines == [f"[{REMOTE}] ^[[2J^[[31mred^G", f"[{REMOTE}] bare", f"[{REMOTE}] cr",
                     f"[{REMOTE}] \ufffd\ufffd"]
    assert all("\x1b" not in line and "\r" not in line for line in lines)


async def test_refused_connection_is_one_line() -> None:
    with socket.socket() as probe:  # a port on 127.0.0.2 where nobody listens
        probe.bind((REMOTE, 0))
        port = probe.getsockname()[1]
    lines = await forwarder(port)("alice", [REMOTE], False)
    assert lines == [f"[{REMOTE}] forwarding failed: connection refused by {REMOTE}:{port} "
                     "(no finger server there?)"]


async def test_bad_host_and_unknown_name_are_polite() -> None:
    lines = await forwarder(79)("alice", ["bad host!"], False)
    assert lines[0].endswith("invalid host name 'bad host!'")
    lines = await forwarder(79, timeout=3)("alice", ["no-such-host.invalid"], False)
    assert lines == ["[no-such-host.invalid] forwarding failed: cannot resolve host "
                     "'no-such-host.invalid'"]


def test_address_rules() -> None:
    import ipaddress

    def reason(text: str) -> str | None:
        return blocked_reason(ipaddress.ip_address(text))

    assert reason("127.0.0.1") == "loopback"
    assert reason("::1") == "loopback"
    assert reason("::ffff:127.0.0.1") == "loopback"
    assert reason("10.1.2.3") == "private"
    assert reason("192.168.0.1") == "private"
    assert reason("169.254.169.254") == "link-local"
    assert reason("fe80::1") == "link-local"
    assert reason("224.0.0.1") == "multicast"
    assert reason("0.0.0.0") == "unspecified"
    assert reason("100.64.0.1") == "non-public"
    assert reason("93.184.215.14") is None
    assert reason("2606:4700::1111") is None
    assert parse_host("[::1]") == "::1"
    assert parse_host("Example.ORG.") == "example.org"
    with pytest.raises(InvalidInput):
        parse_host("exa mple")


async def test_client_errors_are_domain_errors() -> None:
    with socket.socket() as probe:
        probe.bind((REMOTE, 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unavailable, match="connection refused"):
        await finger("alice", REMOTE, port, timeout=2, max_bytes=1000)
    with pytest.raises(InvalidInput, match="single line"):
        await finger("alice\r\nbob", REMOTE, port, timeout=2, max_bytes=1000)
    with pytest.raises(InvalidInput, match="at most 512"):
        await finger("a" * 600, REMOTE, port, timeout=2, max_bytes=1000)


async def test_reconfigure_applies_to_the_next_query() -> None:
    async with remote_finger() as remote:
        proxy = forwarder(remote.port, allow=())
        refused = await proxy("alice", [REMOTE], False)
        proxy.reconfigure(ForwardingConfig(port=remote.port, allow=[f"{REMOTE}/32"]))
        allowed = await proxy("alice", [REMOTE], False)
    assert "not allowed" in refused[0]
    assert allowed[0] == f"[{REMOTE}] Login: alice"
