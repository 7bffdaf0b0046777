import ipaddress
import subprocess

from bmx7wg import advert
from bmx7wg.model import Advert, Originator
from bmx7wg.peers import PeerTable

A = "A" * 56
B = "B" * 56
OWN = "C" * 56


def pub():
    priv = subprocess.run(["wg", "genkey"], capture_output=True, check=True).stdout
    return subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, check=True).stdout.decode().strip()


def raw(key, port=51820):
    return advert.encode(Advert(public_key=key, port=port,
                                addresses=(ipaddress.ip_network("fd77:aaaa::1/128"),)))


def orig(nid, last_ref=0, dev="veth0"):
    return Originator(node_id=nid, name="n", primary_ip="fd70::1", dev=dev, metric=1000, hops=1, last_ref=last_ref)


def test_brief_absence_is_not_a_withdrawal():
    key = pub()
    t = PeerTable(hold_down=10)
    assert t.update(0, {A: raw(key)}, {A: orig(A)}, OWN)
    assert not t.update(5, {}, {A: orig(A)}, OWN)          # file missing while bmx7 rewrites it
    assert A in t.adverts() and t.absent_since(5, A) == 5
    assert not t.update(9, {A: raw(key)}, {A: orig(A)}, OWN)   # back inside hold-down: nothing changed
    assert t.absent_since(9, A) is None


def test_gone_after_hold_down_only():
    t = PeerTable(hold_down=10)
    t.update(0, {A: raw(pub())}, {}, OWN)
    t.update(10, {}, {}, OWN)
    assert A in t.adverts()
    assert t.update(10.5, {}, {}, OWN)
    assert A not in t.adverts()


def test_unreachable_node_with_stale_file_expires():
    # A dead node's files stay ~70 s on the others; bmx7's lastRef tells it is gone.
    t = PeerTable(hold_down=10)
    t.update(0, {A: raw(pub())}, {A: orig(A)}, OWN)
    t.update(30, {A: raw(pub())}, {A: orig(A, last_ref=30)}, OWN)
    assert A not in t.adverts()


def test_broken_advert_keeps_last_good_and_reports_reason():
    key = pub()
    t = PeerTable(hold_down=10)
    t.update(0, {A: raw(key), B: b"\x00garbage"}, {}, OWN)
    t.update(1, {A: b"\xb7\x77\x10junk", B: b"\x00garbage"}, {}, OWN)
    ads = t.adverts()
    assert isinstance(ads[A], Advert) and ads[A].public_key == key
    assert t.nodes[A].error
    assert isinstance(ads[B], advert.AdvertError)


def test_own_node_skipped():
    t = PeerTable(hold_down=10)
    t.update(0, {OWN: raw(pub())}, {}, OWN)
    assert t.adverts() == {}
