"""Every rule sees a client's address the same way (fingerplat/domain/addresses.py)."""

from __future__ import annotations

import ipaddress

import pytest

from fingerplat.domain.addresses import client_ip, unmapped


@pytest.mark.parametrize(("given", "seen"), [
    ("192.0.2.7", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack socket's IPv4 peer
    ("2001:db8::1", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1"),  # the zone is not part of the address
])
def test_an_ip_address_is_parsed_and_unmapped(given: str, seen: str) -> None:
    assert str(client_ip(given)) == seen


@pytest.mark.parametrize("given", [None, "", "unix:uid=1000", "irc.example.org", "1.2.3"])
def test_anything_else_is_no_address(given: str | None) -> None:
    assert client_ip(given) is None


def test_unmapped_leaves_other_addresses_alone() -> None:
    v6 = ipaddress.ip_address("2001:db8::2")
    assert unmapped(v6) is v6
    assert unmapped(ipaddress.ip_address("::ffff:10.0.0.1")) == ipaddress.ip_address("10.0.0.1")
