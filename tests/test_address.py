import ipaddress
import json
import re

import pytest
from hypothesis import given, strategies as st

from conftest import SHARED
from bmx7wg import address
from bmx7wg.address import (AddressError, auto_address, is_node_id, primary_ip, short_id,
                            verify_auto_address)

FIXTURES = SHARED / "bmx7" / "fixtures"


def _nodes_txt():
    """(nodeId, shortId, primaryIp) of every node in the real mesh's nodes.txt."""
    text = (FIXTURES / "nodes.txt").read_text()
    ids = re.findall(r"nodeId\s*=\s*(\S+)", text)
    shorts = re.findall(r"shortId\s*=\s*(\S+)", text)
    ips = re.findall(r"primaryIp\s*=\s*(\S+)", text)
    assert len(ids) == len(shorts) == len(ips) == 4
    return list(zip(ids, shorts, ips))


def _json_originators():
    """(nodeId, shortId, primaryIp) from every real json/originators file, all snapshots."""
    seen = set()
    for f in FIXTURES.glob("*/runtime/json/originators/*"):
        o = json.loads(f.read_text())
        seen.add((o["nodeId"], o["shortId"], o["primaryIp"]))
    assert len(seen) == 4
    return sorted(seen)


node_ids = st.text(alphabet="0123456789ABCDEF", min_size=56, max_size=56)


@pytest.mark.parametrize("node_id,short,ip", _nodes_txt() + _json_originators())
def test_primary_ip_and_short_id_match_real_bmx7(node_id, short, ip):
    assert is_node_id(node_id)
    assert short_id(node_id) == short
    assert str(primary_ip(node_id)) == ip
    assert str(primary_ip(node_id, "fd70::/16")) == ip
    assert address.primary_ip_text(node_id) == ip             # what model.Originator derives


def test_primary_ip_is_prefix_then_first_28_hex_digits():
    node_id = _nodes_txt()[0][0]  # EAD40A77...
    expected = ipaddress.IPv6Address(int("fd70" + node_id[:28], 16))
    assert primary_ip(node_id) == expected


def test_auto_address_default_prefix_fd77():
    node_id = "EAD40A7766B30932298102810C08D48C4F24C92585CCC0B88D951EE5"
    addr = auto_address(node_id)
    assert isinstance(addr, ipaddress.IPv6Address)
    assert str(addr) == "fd77:ead4:a77:66b3:932:2981:281:c08"


@pytest.mark.parametrize("prefix,expected", [
    # /8: 120 host bits = first 30 hex digits
    ("fd00::/8", "fdea:d40a:7766:b309:3229:8102:810c:8d4"),
    # /48: first 20 hex digits after three prefix groups
    ("fd77:1:2::/48", "fd77:1:2:ead4:a77:66b3:932:2981"),
    # /64: first 16 hex digits
    ("2001:db8:0:1::/64", "2001:db8:0:1:ead4:a77:66b3:932"),
    # /20 (not on a nibble): the node's bits start mid-digit (0xEAD4... >> 4 = 0xEAD40...)
    ("fd70::/20", "fd70:0ead:40a7:766b:3093:2298:1028:10c0"),
])
def test_auto_address_other_prefix_lengths(prefix, expected):
    node_id = "EAD40A7766B30932298102810C08D48C4F24C92585CCC0B88D951EE5"
    assert auto_address(node_id, prefix) == ipaddress.IPv6Address(expected)


@given(node_ids, st.integers(min_value=8, max_value=64))
def test_derivation_bitwise(node_id, plen):
    net = ipaddress.IPv6Network((0xFD77_1234_5678_9ABC << 64, plen), strict=False)
    addr = auto_address(node_id, net)
    assert addr in net
    host_bits = 128 - plen
    assert int(addr) & ((1 << host_bits) - 1) == int(node_id, 16) >> (224 - host_bits)
    assert verify_auto_address(node_id, addr, net)
    assert verify_auto_address(node_id, f"{addr}/128", net)
    assert verify_auto_address(node_id, str(addr), net)


@given(node_ids, node_ids)
def test_different_nodes_different_addresses(a, b):
    # 112 host bits: two ids agreeing on their first 28 digits share an address (as in bmx7)
    assert (auto_address(a) == auto_address(b)) == (a[:28] == b[:28])


def test_verify_auto_address_rejects():
    node_id, _, _ = _nodes_txt()[3]
    other, _, _ = _nodes_txt()[2]
    good = auto_address(node_id)
    assert verify_auto_address(node_id, good)
    assert verify_auto_address(node_id, ipaddress.IPv6Network(f"{good}/128"))
    assert not verify_auto_address(other, good)
    assert not verify_auto_address(node_id, good + 1)
    assert not verify_auto_address(node_id, f"{good}/64")          # not a host prefix
    assert not verify_auto_address(node_id, primary_ip(node_id))  # other prefix
    assert not verify_auto_address(node_id, "10.0.0.1")
    assert not verify_auto_address(node_id, "garbage")
    assert not verify_auto_address(node_id, None)
    assert not verify_auto_address(node_id.lower(), good)
    assert verify_auto_address(node_id, primary_ip(node_id), "fd70::/16")


@pytest.mark.parametrize("s,ok", [
    ("1F114F89C5CB7F20FA40E7C014132E6B74BCC7D5CF8BF4405B6F16B1", True),
    ("1f114f89c5cb7f20fa40e7c014132e6b74bcc7d5cf8bf4405b6f16b1", False),  # lowercase
    ("1F114F89C5CB7F20FA40E7C014132E6B74BCC7D5CF8BF4405B6F16B", False),    # 55
    ("1F114F89C5CB7F20FA40E7C014132E6B74BCC7D5CF8BF4405B6F16B12", False),  # 57
    ("1F114F89C5CB7F20FA40E7C014132E6B74BCC7D5CF8BF4405B6F16BG", False),
    ("1F114F89C5CB7F20FA40E7C014132E6B74BCC7D5CF8BF4405B6F16B1\n", False),
    ("", False),
    (None, False),
    (12345, False),
])
def test_is_node_id(s, ok):
    assert is_node_id(s) is ok


@pytest.mark.parametrize("prefix,fragment", [
    ("10.0.0.0/8", "not IPv6"),
    ("fc00::/7", "8..64"),
    ("fd77::/65", "8..64"),
    ("fd77::/128", "8..64"),
    ("fd77::1/16", "bad prefix"),      # bits set after the prefix
    ("nonsense", "bad prefix"),
    ("", "bad prefix"),
])
def test_bad_prefix(prefix, fragment):
    node_id = _nodes_txt()[0][0]
    with pytest.raises(AddressError, match=re.escape(fragment)) as e:
        auto_address(node_id, prefix)
    assert "\n" not in str(e.value)
    with pytest.raises(AddressError):
        verify_auto_address(node_id, "fd77::1", prefix)


@pytest.mark.parametrize("bad", ["abc", "ead40a7766b30932298102810c08d48c4f24c92585ccc0b88d951ee5",
                                 None])
def test_bad_node_id_raises(bad):
    with pytest.raises(AddressError, match="bad nodeId"):
        primary_ip(bad)
    with pytest.raises(AddressError):
        short_id(bad)
    assert issubclass(AddressError, ValueError)


def test_prefix_bounds():
    node_id = _nodes_txt()[0][0]
    assert auto_address(node_id, "fd00::/8") in ipaddress.ip_network("fd00::/8")
    assert auto_address(node_id, "fd77::/64") in ipaddress.ip_network("fd77::/64")
    assert address.parse_prefix("fd77::/16") == ipaddress.ip_network("fd77::/16")
