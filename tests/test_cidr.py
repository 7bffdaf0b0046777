"""cidr.py: the text and integers it gives agree with ipaddress, which it stands in for."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmx7wg import cidr

_V6 = st.one_of(st.integers(0, 2**128 - 1), st.integers(0, 2**32 - 1).map(lambda v: v | 0xFFFF << 32),
                st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xABC]), min_size=8, max_size=8).map(
                    lambda g: sum(x << (16 * i) for i, x in enumerate(g))))


@given(_V6)
def test_address_text_is_ipaddress_text(value):
    assert cidr.ip_text(6, value) == str(ipaddress.IPv6Address(value))
    assert cidr.ip_text(4, value & 0xFFFFFFFF) == str(ipaddress.IPv4Address(value & 0xFFFFFFFF))


@given(_V6, st.integers(0, 128), st.booleans())
def test_parse_agrees_with_ipaddress(value, plen, v4):
    version, bits = (4, 32) if v4 else (6, 128)
    plen = min(plen, bits)
    value &= (1 << bits) - 1
    net_value = value >> (bits - plen) << (bits - plen)
    net = (ipaddress.IPv4Network if v4 else ipaddress.IPv6Network)((net_value, plen))
    text = str(net)
    parsed = cidr.parse(text)
    assert parsed == (version, plen, net_value, text)
    assert parsed[3] is text                         # canonical: the caller's own string
    assert cidr.net_text(version, net_value, plen) == text
    if net_value != value:                           # host bits set: ipaddress refuses it too
        host = (ipaddress.IPv4Address if v4 else ipaddress.IPv6Address)(value)
        assert cidr.parse(f"{host}/{plen}") is None


@pytest.mark.parametrize("text,canonical", [
    ("FD77::1/128", "fd77::1/128"),
    ("fd77:0:0:0:0:0:0:1/128", "fd77::1/128"),
    ("10.0.0.0/08", "10.0.0.0/8"),
])
def test_parse_gives_the_canonical_text(text, canonical):
    assert cidr.parse(text)[3] == canonical == str(ipaddress.ip_network(text))


@pytest.mark.parametrize("bad", [
    None, 42, b"10.0.0.0/8", "", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "fd77::/129", "10.0.0.1/8",
    "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/８", "10.0.0.0/255.0.0.0", "fe80::1%eth0/128",
    "bogus/8", "1.2.3/24", "fd77::1/0128",
])
def test_parse_refuses_what_is_no_network(bad):
    assert cidr.parse(bad) is None


@pytest.mark.parametrize("text,found", [
    ("10.1.2.3", (4, 0x0A010203)), ("fd70::1", (6, 0xFD70 << 112 | 1)), ("::ffff:10.1.2.3", (6, 0xFFFF0A010203)),
    ("fe80::1%eth0", None), ("10.1.2", None), ("", None), ("10.1.2.3/32", None),
])
def test_address_is_inet_pton_spelling(text, found):
    assert cidr.address(text) == found
    if found is not None:
        assert int(ipaddress.ip_address(text)) == found[1]


@pytest.mark.parametrize("text", ["10.1.2.3", "0.0.0.0", "255.255.255.255", "fd70::1", "::", "::ffff:10.1.2.3",
                                  "::10.1.2.3", "FD70:0::1"])
def test_address_key_is_one_int_per_address_and_ipv4_never_meets_ipv6(text):
    ip = ipaddress.ip_address(text)
    key = cidr.address_key(text)
    assert key == (int(ip) if ip.version == 6 else int(ip) | 1 << 128)
    assert cidr.address_key(str(ip)) == key
    assert key >= 1 << 128 if ip.version == 4 else key < 1 << 128


@pytest.mark.parametrize("bad", ["fe80::1%eth0", "10.1.2", "", "10.1.2.3/32", None, 42])
def test_address_key_refuses_what_is_no_address(bad):
    assert cidr.address_key(bad) is None
