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
    assert t.error(A)
    assert isinstance(ads[B], advert.AdvertError)


def test_own_node_skipped():
    t = PeerTable(hold_down=10)
    t.update(0, {OWN: raw(pub())}, {}, OWN)
    assert t.adverts() == {}


# ---------------------------------------------------------------- incremental update

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NODES = ["%056X" % i for i in range(1, 6)]
KEYS = ["%s=" % (chr(65 + i) * 42 + "E") for i in range(3)]


class WholeTable:
    """The table as first written: every update walks every node (the reference)."""

    def __init__(self, hold_down):
        self.hold_down, self.nodes = hold_down, {}

    def update(self, now, received, originators, own_id):
        changed = False
        for entry in self.nodes.values():
            entry["present"] = False
        for node_id, data in received.items():
            if node_id == own_id:
                continue
            entry = self.nodes.setdefault(node_id, {"raw": b"", "good": None, "error": None,
                                                    "last_seen": 0.0, "present": False})
            if data != entry["raw"]:
                entry["raw"], changed = data, True
                try:
                    entry["good"], entry["error"] = advert.decode(data), None
                except advert.AdvertError as exc:
                    entry["error"] = str(exc)
            orig = originators.get(node_id)
            if orig is None or orig.reachable:
                entry["last_seen"], entry["present"] = now, True
        for node_id in list(self.nodes):
            if now - self.nodes[node_id]["last_seen"] > self.hold_down:
                del self.nodes[node_id]
                changed = True
        return changed


def view(table, now):
    ads = table.adverts()
    return {nid: (raw, table.good(nid), table.error(nid), table.present(nid), table.absent_since(now, nid),
                  ads[nid] if isinstance(ads[nid], Advert) else str(ads[nid]))
            for nid, raw in table.raws.items()}


def reference_view(ref, now):
    return {nid: (e["raw"], e["good"], e["error"], e["present"],
                  None if e["present"] else now - e["last_seen"],
                  e["good"] if e["good"] is not None else (e["error"] or "no advert"))
            for nid, e in ref.nodes.items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(
    st.lists(st.tuples(st.sampled_from(NODES + [OWN]),
                       st.sampled_from(["advert", "advert", "other port", "junk", "gone"])), max_size=3),
    st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from(["up", "down", "stale", "unknown"])), max_size=2),
    st.sampled_from([0.0, 0.5, 3.0, 7.0, 11.0])), min_size=1, max_size=25), st.booleans())
def test_incremental_update_equals_whole_table(steps, hinted):
    """Same adverts, presence and hold-down clocks whether the caller names the changed nodes,
    lets the table find them, or the table walks everything as it first did."""
    ref, table = WholeTable(10), PeerTable(hold_down=10)
    received, origs, now = {}, {}, 0.0
    for files, orig_changes, dt in steps:
        touched = set()
        for nid, what in files:
            touched.add(nid)
            if what == "gone":
                received.pop(nid, None)
            else:
                received[nid] = {"advert": raw(KEYS[0]), "other port": raw(KEYS[1], port=1),
                                 "junk": b"\xb7\x77\x10junk"}[what]
        for nid, what in orig_changes:
            touched.add(nid)
            if what == "unknown":
                origs.pop(nid, None)
            else:
                origs[nid] = orig(nid, last_ref=30 if what == "stale" else 0,
                                  dev="---" if what == "down" else "veth0")
        now += dt
        want = ref.update(now, dict(received), dict(origs), OWN)
        got = table.update(now, dict(received), dict(origs), OWN, changed=touched if hinted else None)
        assert view(table, now) == reference_view(ref, now)
        assert dict(table.adverts_view()) == table.adverts()
        if not hinted:
            assert got == want
