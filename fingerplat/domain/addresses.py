"""Client addresses as every rule sees them: one parse, IPv4-mapped IPv6 as IPv4.

A peer reached through a dual-stack socket is ``::ffff:192.0.2.1``; trusted
proxies, networks, throttles, the finger log's /24 and the forwarder's block
list must all see ``192.0.2.1``, or a rule written for IPv4 misses it. They
once each parsed and unmapped addresses themselves (five copies).
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def unmapped(ip: IPAddress) -> IPAddress:
    """``ip``, or the IPv4 address an IPv4-mapped IPv6 address carries."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(address: str | None) -> IPAddress | None:
    """The IP address in ``address`` (a zone ``%eth0`` dropped), unmapped; None if none.

    Not an IP address (no address, a UNIX socket, an IRC host name): None.
    """
    if not address:
        return None
    try:
        return unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return None
