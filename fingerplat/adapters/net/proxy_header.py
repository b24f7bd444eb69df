"""The PROXY protocol header (v1 text and v2 binary), parsed strictly from bytes.

A load balancer in front of fingerplat (HAProxy ``send-proxy`` /
``send-proxy-v2``) opens each connection with one header naming the real
client; the listener (``proxy_protocol = true``) reads it first and treats
the connection as coming from that client (SPEC section 12). The spec is
haproxy's ``doc/proxy-protocol.txt``.

:func:`parse` works on whatever bytes were received so far, so the finger
listener can use it on a raw socket and the setter and web listeners on
their buffers alike: it answers "not complete yet" (``None``), or the
header with how many bytes it took (the rest is the client's first data),
or raises :class:`BadProxyHeader`. It is strict, because what it accepts
decides which address is audited and throttled: exact signatures, ASCII
decimal ports without signs, spaces or leading zeros, addresses as
:mod:`ipaddress` reads them without IPv6 zone ids, v1 lines of at most 107
bytes ended by CRLF, v2 versions and commands that exist, stream transport
only, and v2 payloads of at most :data:`MAX_V2_PAYLOAD` bytes (TLVs are
skipped, not interpreted).

The PyPI package ``proxy-protocol`` (0.11.3) was evaluated first: its
``unpack`` needs the header's exact bytes (it cannot say where a header
ends in a buffer that holds the query too, which is what the finger
listener's first read returns), it lets ``struct.error`` escape on short v2
address blocks, and ``int()`` accepts ports like ``+80`` or ``8_0``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from fingerplat.domain.addresses import unmapped

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest v1 line, CRLF included (the spec's own bound).
V1_MAX_BYTES = 107
V2_FIXED_BYTES = 16
#: v2 address blocks plus TLVs; HAProxy sends far less. Longer: refused.
MAX_V2_PAYLOAD = 2048
#: The most a complete header can take: what a listener buffers at most.
MAX_HEADER_BYTES = V2_FIXED_BYTES + MAX_V2_PAYLOAD

_V2_LENGTH = struct.Struct("!H")
_PORT = struct.Struct("!H")
_DIGITS = frozenset(b"0123456789")


class BadProxyHeader(ValueError):
    """Not a PROXY protocol header, or one this parser refuses; close the connection."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header: who the client is, and how many bytes the header took.

    ``source`` is None for a v2 ``LOCAL`` command (the proxy's own health
    check) and for ``UNKNOWN`` / unspecified families: then the connection's
    own peer address stands.
    """

    source: str | None
    source_port: int | None
    consumed: int


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``; None while it is incomplete.

    Raises :class:`BadProxyHeader` as soon as ``data`` cannot be the start of
    a valid header.
    """
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    if not data:
        return None
    raise BadProxyHeader("no PROXY protocol signature")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    if len(data) < len(V1_PREFIX) and V1_PREFIX.startswith(data):
        return None
    if not data.startswith(V1_PREFIX):
        raise BadProxyHeader("no PROXY protocol signature")
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES or b"\n" in data:
            raise BadProxyHeader("v1 header without CRLF within 107 bytes")
        return None
    line = data[len(V1_PREFIX):end]
    consumed = end + 2
    if b"\r" in line or b"\n" in line:
        raise BadProxyHeader("v1 header with a stray line break")
    parts = line.split(b" ")
    family = parts[0]
    if family == b"UNKNOWN":
        return ProxyHeader(None, None, consumed)  # the rest of the line is to be ignored
    if family not in (b"TCP4", b"TCP6") or len(parts) != 5:
        raise BadProxyHeader("v1 header is not 'TCP4|TCP6 SRC DST SPORT DPORT'")
    source = _v1_address(parts[1], family)
    _v1_address(parts[2], family)
    source_port = _v1_port(parts[3])
    _v1_port(parts[4])
    return ProxyHeader(source, source_port, consumed)


def _v1_address(raw: bytes, family: bytes) -> str:
    try:
        text = raw.decode("ascii")
        if "%" in text:
            raise ValueError("zone id")
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = (
            ipaddress.IPv4Address(text) if family == b"TCP4" else ipaddress.IPv6Address(text))
    except ValueError:
        raise BadProxyHeader(f"v1 header: bad {family.decode()} address") from None
    return _plain(address)


def _v1_port(raw: bytes) -> int:
    if (not raw or len(raw) > 5 or not _DIGITS.issuperset(raw)
            or (len(raw) > 1 and raw[:1] == b"0") or int(raw) > 65535):
        raise BadProxyHeader("v1 header: bad port")
    return int(raw)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if not _v2_fixed_part_complete(data):
        return None
    command = _v2_version_command(data[12])
    family, transport = data[13] >> 4, data[13] & 0x0F
    (length,) = _V2_LENGTH.unpack_from(data, 14)
    if length > MAX_V2_PAYLOAD:
        raise BadProxyHeader(f"v2 header: payload of {length} bytes (at most {MAX_V2_PAYLOAD})")
    consumed = V2_FIXED_BYTES + length
    if len(data) < consumed:
        return None
    if family > 3 or transport > 2:
        raise BadProxyHeader("v2 header: unknown address family or transport")
    if command == 0 or family == 0:
        # LOCAL: the proxy speaks for itself (health checks); UNSPEC: the
        # connection's own endpoints stand.
        return ProxyHeader(None, None, consumed)
    if transport != 1:
        raise BadProxyHeader("v2 header: only stream (TCP) connections are proxied here")
    source = _v2_source(family, data[V2_FIXED_BYTES:consumed])
    if source is None:
        return ProxyHeader(None, None, consumed)
    return ProxyHeader(source[0], source[1], consumed)


def _v2_fixed_part_complete(data: bytes) -> bool:
    """Whether the 16 fixed bytes are all here; raises as soon as they cannot be a v2 header."""
    if not data.startswith(V2_SIGNATURE):
        if len(data) < len(V2_SIGNATURE) and V2_SIGNATURE.startswith(data):
            return False
        raise BadProxyHeader("no PROXY protocol signature")
    if len(data) < V2_FIXED_BYTES:
        if len(data) > len(V2_SIGNATURE):
            _v2_version_command(data[12])
        return False
    return True


#: Per v2 address family: the address block's size, and the address's length
#: and the source port's offset in it (AF_UNIX has no client IP address).
_V2_BLOCKS = {1: ("IPv4", 12, 4, 8), 2: ("IPv6", 36, 16, 32), 3: ("UNIX", 216, 0, 0)}


def _v2_source(family: int, payload: bytes) -> tuple[str, int] | None:
    """The client's (address, port) from a PROXY command's address block; None for AF_UNIX."""
    name, size, address_length, port_at = _V2_BLOCKS[family]
    if len(payload) < size:
        raise BadProxyHeader(f"v2 header: {name} address block too short")
    if not address_length:
        return None
    raw = payload[0:address_length]
    address = ipaddress.IPv4Address(raw) if family == 1 else ipaddress.IPv6Address(raw)
    (port,) = _PORT.unpack_from(payload, port_at)
    return _plain(address), port


def _v2_version_command(byte: int) -> int:
    if byte >> 4 != 2:
        raise BadProxyHeader("v2 header: version is not 2")
    if byte & 0x0F > 1:
        raise BadProxyHeader("v2 header: command is neither LOCAL nor PROXY")
    return byte & 0x0F


def _plain(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The address as the kernel would name the peer: IPv4-mapped IPv6 as IPv4."""
    return str(unmapped(address))
