"""Reconciler.proven_keys: a key belongs to the node WireGuard holds a live session with at
that node's primaryIp (issue 5, key theft). The lab side is in test_mesh_policy.py."""

import time

from bmx7wg import advert, config
from bmx7wg.sessions import STALE_HANDSHAKE
from bmx7wg.model import DeviceState, NodeInfo, PeerState
from bmx7wg.reconcile import Reconciler
from policy_world import ME, advert as mk_advert, key, node_id_starting, originator

THIEF = node_id_starting("1", "thief")      # the lower nodeId: wins a tie without proof
VICTIM = node_id_starting("9", "victim")
STOLEN = key("victim")


class DumpOnly:
    """Backend double: `dump` returns what a test says WireGuard reports; writes are counted."""

    def __init__(self, peers):
        self.peers = peers
        self.writes = 0

    def dump(self, ifname, reuse=None):
        return DeviceState(public_key=key("me"), listen_port=51820, peers=dict(self.peers))

    def apply(self, ifname, args):
        self.writes += 1
        return 1


def session(endpoint, age):
    return PeerState(public_key=STOLEN, endpoint=endpoint, allowed_ips=(),
                     latest_handshake=int(time.time() - age) if age is not None else None, rx=1, tx=1)


def victim_endpoint():
    return f"[{originator(VICTIM).primary_ip}]:51820"


def reconciler(peer):
    rec = Reconciler(config.parse("wgmesh", {}), DumpOnly({STOLEN: peer} if peer else {}))
    rec.refresh_device()
    return rec


def run_step(rec):
    adverts = {nid: advert.encode(mk_advert(nid, public_key=STOLEN)) for nid in (THIEF, VICTIM)}
    origs = {nid: originator(nid) for nid in (THIEF, VICTIM)}
    rec.step(1000.0, NodeInfo(ME, "me", originator(ME).primary_ip), adverts, origs)
    return rec.selection


def test_live_session_at_the_nodes_primary_ip_proves_its_key():
    rec = reconciler(session(victim_endpoint(), age=30))
    rec.known_originators = {nid: originator(nid) for nid in (THIEF, VICTIM)}
    assert rec.proven_keys() == {STOLEN: VICTIM}


def test_no_proof_from_a_stale_session_an_unknown_endpoint_or_no_handshake():
    cases = [session(victim_endpoint(), age=STALE_HANDSHAKE + 5),
             session("[fd70:dead::1]:51820", age=30),
             session(victim_endpoint(), age=None),
             session(None, age=30)]
    for peer in cases:
        rec = reconciler(peer)
        rec.known_originators = {nid: originator(nid) for nid in (THIEF, VICTIM)}
        assert rec.proven_keys() == {}, peer


def test_the_cached_endpoint_we_asked_for_proves_nothing():
    """_update_cache writes the endpoint we configured into the cached device even when `plan`
    left the kernel's roamed endpoint alone: only WireGuard's own report counts."""
    rec = reconciler(session(victim_endpoint(), age=30))
    rec.known_originators = {nid: originator(nid) for nid in (THIEF, VICTIM)}
    thief_ep = f"[{originator(THIEF).primary_ip}]:51820"
    rec.peers_to_patch()[STOLEN] = PeerState(STOLEN, thief_ep, (), int(time.time()), 0, 0)
    assert rec.device.peers[STOLEN].endpoint == thief_ep
    assert rec.proven_keys() == {STOLEN: VICTIM}


def test_fresh_observer_gives_the_key_to_the_proven_node_not_the_lower_id():
    sel = run_step(reconciler(session(victim_endpoint(), age=30)))
    assert sel.peers[VICTIM].status == "accepted"
    assert sel.peers[THIEF].reason == f"key already used by node {VICTIM[:8]}"
    (conflict,) = [c for c in sel.conflicts if c.kind == "key"]
    assert (conflict.winner, conflict.decided_by) == (VICTIM, "proven by handshake")


def test_without_a_live_session_the_lower_id_wins_the_tie():
    sel = run_step(reconciler(session(victim_endpoint(), age=STALE_HANDSHAKE + 5)))
    assert sel.peers[THIEF].status == "accepted"
    assert sel.peers[VICTIM].reason == f"key already used by node {THIEF[:8]}"


def test_a_proof_outlives_a_clock_step_and_ends_when_the_session_goes_stale():
    """NTP steps the router's clock a day forward after the handshake: by the wall clock
    WireGuard's stamp is a day old, yet the session is as live as before (sessions.py)."""
    wall, mono = [time.time()], [100.0]
    rec = Reconciler(config.parse("wgmesh", {}), DumpOnly({STOLEN: session(victim_endpoint(), age=30)}),
                     wall=lambda: wall[0], mono=lambda: mono[0])
    rec.refresh_device()
    wall[0] += 86400 + 10
    mono[0] += 10
    rec.refresh_device()                        # a later dump: the same handshake
    sel = run_step(rec)
    (conflict,) = [c for c in sel.conflicts if c.kind == "key"]
    assert (conflict.winner, conflict.decided_by) == (VICTIM, "proven by handshake")
    mono[0] += STALE_HANDSHAKE - 30 - 10
    rec.refresh_device()
    assert rec.proven_keys() == {}


def test_proofs_follow_an_originator_moving_onto_and_off_a_sessions_endpoint():
    """Proofs are worked out again only when their inputs move; an originator taking (or
    leaving) the address of a live session's endpoint is one, without a new dump."""
    rec = reconciler(session("[fd70:dead::1]:51820", age=30))
    adverts = {nid: advert.encode(mk_advert(nid, public_key=STOLEN)) for nid in (THIEF, VICTIM)}
    own = NodeInfo(ME, "me", originator(ME).primary_ip)

    def step(t, victim_ip=None):
        origs = {THIEF: originator(THIEF), VICTIM: originator(VICTIM, primary_ip=victim_ip)}
        rec.step(t, own, adverts, origs)
        return rec.selection.peers

    assert step(1000.0)[THIEF].status == "accepted"           # no proof: the lower nodeId
    peers = step(1001.0, victim_ip="fd70:dead::1")             # the victim now lives there
    assert peers[VICTIM].status == "accepted" and peers[THIEF].status == "rejected"
    assert step(1002.0)[THIEF].status == "accepted"           # and moved away again


def test_proofs_follow_sessions_a_dump_changes_in_place_and_are_not_rebuilt_without_cause():
    """A dump changes a known peer's handshake in place (same object): a session coming
    alive or ending that way must move the proofs all the same; a live session renewing its
    handshake must not rebuild them."""
    peer = session(victim_endpoint(), age=None)            # no handshake yet
    rec = reconciler(peer)
    winner = key_winner_after_a_dump(rec)

    assert winner() == (THIEF, "lower nodeId")
    peer.latest_handshake = int(time.time() - 5)            # the session comes alive
    assert winner() == (VICTIM, "proven by handshake")
    hosts = rec._proofs.hosts
    peer.latest_handshake += 1                              # renewed while live
    assert winner() == (VICTIM, "proven by handshake")
    assert rec._proofs.hosts is hosts                       # nothing worked out again
    peer.latest_handshake = None                            # WireGuard dropped the session
    assert winner() == (THIEF, "lower nodeId")


def test_proofs_follow_a_live_sessions_endpoint_to_a_new_peer_object():
    rec = reconciler(session(victim_endpoint(), age=30))
    winner = key_winner_after_a_dump(rec)
    assert winner() == (VICTIM, "proven by handshake")
    rec.backend.peers[STOLEN] = session("[fd70:dead::1]:51820", age=20)    # roamed elsewhere
    assert winner() == (THIEF, "lower nodeId")


def key_winner_after_a_dump(rec):
    """A function: a new dump, then a step over the same adverts and originator objects (as
    bmx7.py gives them while their files stay); (winner, why) of the key conflict."""
    adverts = {nid: advert.encode(mk_advert(nid, public_key=STOLEN)) for nid in (THIEF, VICTIM)}
    origs = {nid: originator(nid) for nid in (THIEF, VICTIM)}
    own = NodeInfo(ME, "me", originator(ME).primary_ip)

    def winner():
        rec.refresh_device()
        rec.step(1000.0, own, adverts, origs)
        (conflict,) = [c for c in rec.selection.conflicts if c.kind == "key"]
        return conflict.winner, conflict.decided_by
    return winner
