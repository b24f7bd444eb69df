"""The PROXY protocol parser (fingerplat/adapters/net/proxy_header.py) and the forwarded-for walk.

Both decide which address is audited, throttled and logged, so both are
fuzzed (hypothesis): headers built from any address and port parse back to
them whatever follows, every prefix of a header asks for more, and no input
raises anything but ``BadProxyHeader``.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from multidict import CIMultiDict

from fingerplat.adapters.net import proxy_header
from fingerplat.adapters.net.proxy_header import BadProxyHeader, ProxyHeader, parse
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.web.client_address import client_address

SIG = proxy_header.V2_SIGNATURE
ports = st.integers(0, 65535)
v4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
v6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))


def v1(source: ipaddress._BaseAddress, dest: ipaddress._BaseAddress, sport: int,
       dport: int) -> bytes:
    family = "TCP4" if source.version == 4 else "TCP6"
    return f"PROXY {family} {source} {dest} {sport} {dport}\r\n".encode()


def v2(source: ipaddress._BaseAddress, dest: ipaddress._BaseAddress, sport: int, dport: int,
       *, command: int = 1, tlvs: bytes = b"") -> bytes:
    family = 0x10 if source.version == 4 else 0x20
    block = source.packed + dest.packed + struct.pack("!HH", sport, dport) + tlvs
    return SIG + bytes([0x20 | command, family | 0x01]) + struct.pack("!H", len(block)) + block


def expected(source: ipaddress._BaseAddress) -> str:
    if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
        return str(source.ipv4_mapped)
    return str(source)


@given(st.one_of(st.tuples(v4, v4), st.tuples(v6, v6)), ports, ports, st.binary(max_size=64),
       st.sampled_from([v1, v2]))
def test_a_header_parses_back_whatever_follows(
    addresses: tuple, sport: int, dport: int, rest: bytes, build
) -> None:
    source, dest = addresses
    header = build(source, dest, sport, dport)
    assert parse(header + rest) == ProxyHeader(expected(source), sport, len(header))


@given(st.one_of(st.tuples(v4, v4), st.tuples(v6, v6)), ports, ports, st.sampled_from([v1, v2]),
       st.data())
def test_every_prefix_of_a_header_asks_for_more(addresses: tuple, sport: int, dport: int,
                                                build, data: st.DataObject) -> None:
    header = build(*addresses, sport, dport)
    cut = data.draw(st.integers(0, len(header) - 1))
    assert parse(header[:cut]) is None


@given(st.binary(max_size=300))
@example(SIG + b"\x21\x11\x00\x04abcd")  # an IPv4 block too short
@example(SIG + b"\x21\x11\xff\xff")
@example(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")
def test_no_input_raises_anything_but_bad_header(data: bytes) -> None:
    try:
        found = parse(data)
    except BadProxyHeader:
        return
    if found is not None:
        assert 0 < found.consumed <= min(len(data), proxy_header.MAX_HEADER_BYTES)
        if found.source is not None:
            ipaddress.ip_address(found.source)


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b[:1] not in (b"P", b"\r")))
def test_anything_that_is_no_header_is_refused_at_once(data: bytes) -> None:
    with pytest.raises(BadProxyHeader):
        parse(data)


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 79\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 080 79\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 8_0 79\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 79\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8  80 79\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80 79 \r\n",
    b"PROXY TCP4 127.000.0.1 5.6.7.8 80 79\r\n",
    b"PROXY TCP4 ::1 ::1 80 79\r\n",
    b"PROXY TCP6 1.2.3.4 5.6.7.8 80 79\r\n",
    b"PROXY TCP6 fe80::1%eth0 ::1 80 79\r\n",
    b"PROXY UDP4 1.2.3.4 5.6.7.8 80 79\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80 79\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
    b"proxy TCP4 1.2.3.4 5.6.7.8 80 79\r\n",
    b"PROXY TCP4 \xd9\xa3.2.3.4 5.6.7.8 80 79\r\n",
    b"PROXY " + b"x" * 120,
])
def test_v1_is_strict(line: bytes) -> None:
    with pytest.raises(BadProxyHeader):
        parse(line)


def test_v1_unknown_leaves_the_connection_peer() -> None:
    assert parse(b"PROXY UNKNOWN\r\nalice\r\n") == ProxyHeader(None, None, 15)
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == ProxyHeader(None, None, 35)


def test_v2_local_and_unspec_leave_the_connection_peer() -> None:
    local = SIG + b"\x20\x00\x00\x00"
    assert parse(local + b"rest") == ProxyHeader(None, None, 16)
    source = ipaddress.IPv4Address("127.0.0.9")
    assert parse(v2(source, source, 1, 2, command=0)).source is None
    assert parse(SIG + b"\x21\x00\x00\x00") == ProxyHeader(None, None, 16)


def test_v2_tlvs_are_skipped_and_mapped_addresses_are_ipv4() -> None:
    mapped = ipaddress.IPv6Address("::ffff:127.0.0.7")
    header = v2(mapped, mapped, 4000, 79, tlvs=b"\x04\x00\x03abc")
    assert parse(header) == ProxyHeader("127.0.0.7", 4000, len(header))


@pytest.mark.parametrize("header", [
    SIG + b"\x11\x11\x00\x0c" + bytes(12),  # version 1
    SIG + b"\x22\x11\x00\x0c" + bytes(12),  # command 2
    SIG + b"\x21\x12\x00\x0c" + bytes(12),  # datagram
    SIG + b"\x21\x41\x00\x0c" + bytes(12),  # family 4
    SIG + b"\x21\x11\x00\x08" + bytes(8),  # IPv4 block too short
    SIG + b"\x21\x21\x00\x0c" + bytes(12),  # IPv6 block too short
    SIG + b"\x21\x11" + struct.pack("!H", proxy_header.MAX_V2_PAYLOAD + 1),
    b"\r\n\r\n\x00\r\nQUIT\r",
])
def test_v2_is_strict(header: bytes) -> None:
    with pytest.raises(BadProxyHeader):
        parse(header)


# -- X-Forwarded-For / Forwarded ------------------------------------------------------

TRUSTED = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8"])


@pytest.mark.parametrize(("peer", "headers", "client"), [
    ("127.0.0.1", {"X-Forwarded-For": "127.0.0.5"}, "127.0.0.5"),
    ("127.0.0.1", {"X-Forwarded-For": "6.6.6.6, 127.0.0.5"}, "127.0.0.5"),  # spoof on the left
    ("127.0.0.1", {"X-Forwarded-For": "127.0.0.5, 10.1.2.3"}, "127.0.0.5"),  # two proxies
    ("127.0.0.1", {"X-Forwarded-For": "10.1.2.3"}, "10.1.2.3"),  # all trusted: the leftmost
    ("127.0.0.1", {"X-Forwarded-For": "garbage, 10.1.2.3"}, "10.1.2.3"),
    ("127.0.0.1", {"X-Forwarded-For": "127.0.0.5:1234"}, "127.0.0.5"),
    ("127.0.0.1", {"X-Forwarded-For": "nonsense"}, "127.0.0.1"),
    ("127.0.0.1", {}, "127.0.0.1"),
    ("127.0.0.2", {"X-Forwarded-For": "127.0.0.5"}, "127.0.0.2"),  # not a trusted proxy
    ("127.0.0.1", {"Forwarded": 'for="[::1]:80";proto=https, for=127.0.0.6'}, "127.0.0.6"),
    ("127.0.0.1", {"Forwarded": 'for="[2001:db8::7]:4711"'}, "2001:db8::7"),
    ("127.0.0.1", {"Forwarded": "for=_hidden", "X-Forwarded-For": "127.0.0.5"}, "127.0.0.1"),
    ("127.0.0.1", {"Forwarded": "by=127.0.0.1"}, "127.0.0.1"),
    (None, {"X-Forwarded-For": "127.0.0.5"}, None),
])
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    peer: str | None, headers: dict[str, str], client: str | None
) -> None:
    assert client_address(peer, CIMultiDict(headers), TRUSTED) == client


def test_headers_mean_nothing_without_trusted_proxies() -> None:
    headers = CIMultiDict({"X-Forwarded-For": "127.0.0.5"})
    assert client_address("127.0.0.1", headers, TrustedProxies()) == "127.0.0.1"


def test_several_header_lines_are_one_list() -> None:
    headers = CIMultiDict([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "127.0.0.5")])
    assert client_address("127.0.0.1", headers, TRUSTED) == "127.0.0.5"


@given(st.text(max_size=200), st.text(max_size=200))
def test_forwarded_headers_never_raise(xff: str, forwarded: str) -> None:
    headers = CIMultiDict({"X-Forwarded-For": xff, "Forwarded": forwarded})
    found = client_address("127.0.0.1", headers, TRUSTED)
    assert found is not None
    ipaddress.ip_address(found)


# -- configuration --------------------------------------------------------------------


def test_listener_keys_and_trusted_proxies_are_checked_at_start() -> None:
    from fingerplat.config import from_mapping, per_address_share
    from fingerplat.domain.errors import InvalidInput

    config = from_mapping({"network": {"trusted_proxies": ["127.0.0.1/32", "::1"]},
                           "finger": {"proxy_protocol": True},
                           "setter": {"auth_timeout": 5, "max_connections_per_address": 3},
                           "web": {"max_connections": 40}})
    assert config.finger.proxy_protocol and config.setter.auth_timeout == 5
    assert per_address_share(config.web.max_connections, None) == 16  # a quarter, at least 16
    assert per_address_share(1000, None) == 250 and per_address_share(8, None) == 8
    assert per_address_share(200, 3) == 3
    with pytest.raises(InvalidInput, match=r"network\.trusted_proxies"):
        from_mapping({"network": {"trusted_proxies": ["not-a-network"]}})
    with pytest.raises(InvalidInput, match="proxy_protocol cannot be combined"):
        from_mapping({"web": {"proxy_protocol": True, "tls_cert": "c.pem", "tls_key": "k.pem"}})
    with pytest.raises(InvalidInput, match=r"web\.max_connections"):
        from_mapping({"web": {"max_connections": 0}})
