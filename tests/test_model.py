"""model.py: Originator keeps a primaryIp only when bmx7 did not derive it from the nodeId."""

from __future__ import annotations

import random

import pytest

from bmx7wg import address, cidr
from bmx7wg.model import Originator
from bmx7wg.record import FrozenInstanceError

NODE = "0CF21AD93A0CD49B23ECE94021DF9AF9FCB211036881FB7D2EC16DB2"


def test_the_fast_primary_ip_text_is_bmx7s_spelling():
    rng = random.Random(7)
    ids = [NODE, "0" * 56, "F" * 56, "FD70" + "0" * 52, "00010000" + "0" * 48]
    ids += ["".join(rng.choice("0123456789ABCDEF") for _ in range(56)) for _ in range(300)]
    for node_id in ids:
        assert address.primary_ip_text(node_id) == str(address.primary_ip(node_id)), node_id


def test_a_derived_primary_ip_is_not_stored_yet_reads_the_same():
    derived = str(address.primary_ip(NODE))
    orig = Originator(NODE, "n1", derived, dev="wlan0", metric=999_000_000, hops=2, last_ref=3)
    assert orig._primary_ip is None and orig.primary_ip == derived
    assert orig == Originator(NODE, "n1", derived, "wlan0", 999_000_000, 2, 3)
    assert hash(orig) == hash(Originator(NODE, "n1", derived, "wlan0", 999_000_000, 2, 3))
    assert repr(orig) == (f"Originator(node_id={NODE!r}, name='n1', primary_ip={derived!r}, dev='wlan0', "
                          "metric=999000000, hops=2, last_ref=3)")
    assert orig.reachable


@pytest.mark.parametrize("ip", ["10.200.0.7", "fd71::1", "FD70:CF2:1AD9:3A0C:D49B:23EC:E940:21DF", ""])
def test_any_other_primary_ip_is_kept_as_written(ip):
    orig = Originator(NODE, "n1", ip)
    assert orig.primary_ip == ip and orig._primary_ip == ip
    assert orig != Originator(NODE, "n1", str(address.primary_ip(NODE)))
    assert not orig.reachable                                  # dev "---": no route


def test_an_originator_is_frozen_and_a_bad_node_id_keeps_its_ip():
    orig = Originator("not-a-node-id", "x", "fd70::1")
    assert orig.primary_ip == "fd70::1"
    with pytest.raises(FrozenInstanceError):
        orig.name = "y"
    with pytest.raises(FrozenInstanceError):
        del orig.dev


@pytest.mark.parametrize("ip", [None, "10.200.0.7", "fd71::1", "", "not an address"])
def test_the_primary_ip_key_is_the_address_key_of_the_primary_ip(ip):
    orig = Originator(NODE, "n1", str(address.primary_ip(NODE)) if ip is None else ip)
    assert orig.primary_ip_key() == cidr.address_key(orig.primary_ip)
