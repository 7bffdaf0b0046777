"""Reconciler.step works on the nodes that changed only; on random mesh histories it must
leave WireGuard exactly as recomputing everything from its selection would: the same peers,
allowed-ips, endpoints and keepalive, the same routes, one `wg set` per step at most, no
write when nothing changed, and every peer added or removed reported once with its node."""

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmx7wg import advert, config, policy
from bmx7wg.model import NodeInfo, PeerState, cidrs
from bmx7wg.reconcile import Reconciler
from bmx7wg.wg import parse_dump
from policy_world import ME, advert as mk_advert, key, node_id, originator

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POOL = [node_id(f"rec{i}") for i in range(7)]
NETWORKS = ["10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "2001:db8::/32"]


class SimulatedWg:
    """`wg set` semantics on a dict: an allowed-ip given to a peer leaves every other peer."""

    def __init__(self):
        self.peers: dict[str, dict] = {}
        self.writes = 0

    def dump(self, ifname, reuse=None):
        """As `wg show dump` prints it (allowed-ips in no particular order), read by the real parser."""
        lines = [f"(hidden)\t{key('me')}\t51820\toff"]
        for k, p in self.peers.items():
            lines.append(f"{k}\t(none)\t{p['endpoint'] or '(none)'}\t{','.join(p['ips']) or '(none)'}"
                         f"\t{p.get('handshake', 0)}\t0\t0\t{p['keepalive'] or 'off'}")
        return parse_dump("\n".join(lines) + "\n", reuse)

    def apply(self, ifname, args):
        assert args and args[0] == "peer"
        i = 0
        while i < len(args):
            assert args[i] == "peer"
            k, i = args[i + 1], i + 2
            if i < len(args) and args[i] == "remove":
                del self.peers[k]
                i += 1
                continue
            peer = self.peers.setdefault(k, {"endpoint": None, "ips": set(), "keepalive": 0})
            while i < len(args) and args[i] != "peer":
                field, value = args[i], args[i + 1]
                i += 2
                if field == "endpoint":
                    peer["endpoint"] = value
                elif field == "allowed-ips":
                    ips = set(value.split(",")) if value else set()
                    for other in self.peers.values():
                        other["ips"] -= ips
                    peer["ips"] = ips
                elif field == "persistent-keepalive":
                    peer["keepalive"] = 0 if value == "off" else int(value)
        self.writes += 1
        return 1


def wanted(sel, keepalive):
    return {d.public_key: {"endpoint": d.endpoint, "ips": set(d.allowed_ips), "keepalive": keepalive}
            for d in sel.peers.values() if d.allowed_ips and d.public_key}


def wanted_routes(sel, cfg):
    """desired_routes as first written: parse every route."""
    want = {(str(cfg.auto_prefix), None, None)} if cfg.auto_address else set()
    for d in sel.peers.values():
        for r in d.routes:
            net = ipaddress.ip_network(r.network)
            if not (cfg.auto_address and net.version == 6 and net.subnet_of(cfg.auto_prefix)):
                want.add((str(net), r.table, r.metric))
    return frozenset(want)


def encoded(data, nid):
    kind = data.draw(st.sampled_from(["plain", "plain", "networks", "key", "copy", "junk"]))
    if kind == "junk":
        return b"\xb7\x77\x10junk"
    public_key = {"key": key(nid + "new"), "copy": key(data.draw(st.sampled_from(POOL)))}.get(kind, key(nid))
    nets = data.draw(st.lists(st.sampled_from(NETWORKS), max_size=2, unique=True)) if kind == "networks" else ()
    return advert.encode(mk_advert(nid, networks=nets, public_key=public_key,
                                   port=data.draw(st.sampled_from([51820, 51821]))))


@SETTINGS
@given(st.data())
def test_incremental_steps_leave_wireguard_as_a_full_recompute_would(data):
    cfg = config.parse("wgmesh", {"hold_down": "10"}, policy.parse_rules(
        [("r", "bmx7wg_out", {"network": "10.0.0.0/8", "max_prefix_len": "24"}),
         ("r6", "bmx7wg_out", {"network": "2000::/3"})], "wgmesh"))
    wg = SimulatedWg()
    rec = Reconciler(cfg, wg)
    own = NodeInfo(ME, "me", originator(ME).primary_ip)
    received, origs, now = {}, {ME: originator(ME)}, 1000.0
    configured: dict[str, str] = {}          # key -> node, from the step reports
    for _ in range(data.draw(st.integers(1, 20))):
        for _ in range(data.draw(st.integers(0, 3))):
            nid = data.draw(st.sampled_from(POOL))
            op = data.draw(st.sampled_from(["advert", "advert", "gone", "originator", "unreachable",
                                            "same bytes", "unknown"]))
            if op == "advert":
                received[nid] = encoded(data, nid)
                origs.setdefault(nid, originator(nid))
            elif op == "gone":
                received.pop(nid, None)
            elif op == "originator":
                origs[nid] = originator(nid, metric=data.draw(st.sampled_from([1, 100, 10**9])),
                                        name=data.draw(st.sampled_from(["a", "b"])))
            elif op == "unreachable" and nid in origs:
                origs[nid] = originator(nid, reachable=False)
            elif op == "same bytes" and nid in received:
                received[nid] = bytes(bytearray(received[nid]))     # reread: equal, not identical
            elif op == "unknown":
                origs.pop(nid, None)
        now += data.draw(st.sampled_from([0.0, 1.0, 4.0, 11.0]))
        before = {k: dict(p, ips=set(p["ips"])) for k, p in wg.peers.items()}
        writes = wg.writes
        result = rec.step(now, own, dict(received), dict(origs))
        sel = rec.selection
        want = wanted(sel, cfg.keepalive)
        assert wg.peers == want
        assert wg.writes - writes == result.writes <= 1
        assert (result.writes == 0) == (before == want)
        assert rec.routes == wanted_routes(sel, cfg)
        assert {k: (d.endpoint, cidrs(d.allowed_ips)) for k, d in rec.desired.items()} == \
            {k: (p["endpoint"], cidrs(p["ips"])) for k, p in want.items()}
        assert rec.node_of_keys() == {d.public_key: n for n, d in sel.peers.items() if d.allowed_ips}
        assert {k: (p.endpoint, p.allowed_ips) for k, p in rec.device.peers.items()} == \
            {k: (p["endpoint"], cidrs(p["ips"])) for k, p in want.items()}
        now_configured = {k: rec.node_of(k) for k in want}
        for nid in result.removed:       # a copied key changing hands: the old node's removal
            gone = [k for k, n in configured.items() if n == nid and now_configured.get(k) != nid]
            assert gone, nid
            del configured[gone[0]]
        for nid in result.added:
            (new_key,) = [k for k, n in now_configured.items() if n == nid and configured.get(k) != nid]
            configured[new_key] = nid
        assert configured == now_configured
        again = rec.step(now, own, dict(received), dict(origs))
        assert again.writes == 0 and not again.added and not again.removed


def _mesh_of(n: int, **clocks):
    cfg = config.parse("wgmesh", {"hold_down": "10"})
    wg = SimulatedWg()
    rec = Reconciler(cfg, wg, **clocks)
    own = NodeInfo(ME, "me", originator(ME).primary_ip)
    nodes = [node_id(f"dump{i}") for i in range(n)]
    origs = {ME: originator(ME), **{nid: originator(nid) for nid in nodes}}
    received = {nid: advert.encode(mk_advert(nid)) for nid in nodes}
    return rec, wg, own, nodes, origs, received


def test_a_dump_read_while_peers_were_written_keeps_the_cache_and_takes_only_counters():
    rec, wg, own, nodes, origs, received = _mesh_of(3)
    first = {nid: received[nid] for nid in nodes[:2]}
    assert rec.step(1000.0, own, first, origs).writes == 1
    stale = wg.dump("wgmesh")                    # begun before the third peer was written
    key0 = next(iter(stale.peers))
    stale.peers[key0] = PeerState(key0, stale.peers[key0].endpoint, stale.peers[key0].allowed_ips,
                                  1_700_000_000, 1234, 5678, stale.peers[key0].keepalive)
    assert rec.step(1001.0, own, received, origs).writes == 1
    rec.take_dump(stale, exact=False)
    assert len(rec.device.peers) == 3            # the third peer is not forgotten
    got = rec.device.peers[key0]
    assert (got.latest_handshake, got.rx, got.tx) == (1_700_000_000, 1234, 5678)
    assert rec.kernel_peers[key0].rx == 1234      # proofs read what the kernel said
    assert rec.step(1002.0, own, received, origs).writes == 0

    rec.take_dump(stale, exact=True)             # taken as the device: the next step repairs it
    assert rec.step(1003.0, own, received, origs).writes == 1


def test_a_roamed_endpoint_is_kept_while_its_session_lives_and_replaced_once_stale_across_a_clock_step():
    """NTP steps the clock back a day: by the wall clock alone a dead session would pass for
    live for a day, and the peer would keep a roamed endpoint nobody answers on any more."""
    wall, mono = [1_800_000_000.0], [500.0]
    rec, wg, own, nodes, origs, received = _mesh_of(1, wall=lambda: wall[0], mono=lambda: mono[0])
    assert rec.step(1000.0, own, received, origs).writes == 1
    (peer,) = wg.peers.values()
    advertised, peer["endpoint"] = peer["endpoint"], "[fd70::99]:40000"   # WireGuard roamed it
    peer["handshake"] = int(wall[0]) - 10
    rec.refresh_device()
    assert rec.step(1001.0, own, received, origs).writes == 0          # live: roaming is left alone
    wall[0] -= 86400 - 200
    mono[0] += 200                               # no handshake since: the session went stale
    rec.refresh_device()
    assert rec.step(1200.0, own, received, origs).writes == 1
    assert peer["endpoint"] == advertised


def test_an_unchanged_dump_reuses_the_cached_peer_objects():
    rec, wg, own, nodes, origs, received = _mesh_of(4)
    rec.step(1000.0, own, received, origs)
    rec.refresh_device()
    cached = dict(rec.device.peers)
    rec.refresh_device()                          # a new dump, every peer equal
    assert all(rec.device.peers[k] is cached[k] for k in cached)
    wg.peers[next(iter(cached))]["endpoint"] = "[fd70::9]:1"     # one moved behind our back
    rec.refresh_device()
    moved = next(iter(cached))
    assert rec.device.peers[moved] is not cached[moved]
    assert rec.device.peers[moved].allowed_ips is cached[moved].allowed_ips


def test_a_decision_that_changes_nothing_in_wireguard_still_marks_the_state_file_stale():
    rec, wg, own, nodes, origs, received = _mesh_of(3)
    assert rec.step(1000.0, own, received, origs).shown_changed          # first step: everything is new
    assert not rec.step(1001.0, own, received, origs).shown_changed      # nothing moved
    # a network no rule accepts: rejected, so WireGuard keeps what it had, but the peer's
    # decision (what `bmx7wg peers` and ubus show) is not the same any more
    received = dict(received, **{nodes[0]: advert.encode(mk_advert(nodes[0], networks=["10.77.0.0/24"]))})
    result = rec.step(1002.0, own, received, origs)
    assert result.writes == 0 and result.shown_changed
    assert any(net == "10.77.0.0/24" for net, _ in rec.selection.peers[nodes[0]].rejected)
    received = dict(received, **{nodes[1]: b"\xb7\x77\x10junk"})          # a broken advert: shown as such
    result = rec.step(1003.0, own, received, origs)
    assert result.shown_changed
    assert not rec.step(1004.0, own, received, origs).shown_changed
    gone = {k: v for k, v in received.items() if k != nodes[2]}            # leaves: hold-down starts
    assert rec.step(1005.0, own, gone, origs).shown_changed
    assert not rec.step(1006.0, own, gone, origs).shown_changed
    assert rec.step(1007.0, own, received, origs).shown_changed            # back inside it


LAN_CFG = config.parse("wgmesh", {"hold_down": "10"}, policy.parse_rules(
    [("lan", "bmx7wg_out", {"network": "10.0.0.0/8"})], "wgmesh"))


def _restarted(wg, owned):
    """A new Reconciler (a restarted helper) on the same device, owning `owned` as the state file said."""
    rec = Reconciler(LAN_CFG, wg)
    rec.refresh_device()
    rec.owned = dict.fromkeys(owned)
    return rec


def _lan_mesh():
    """gw and backup offer 10.1.0.0/16 with the same metric; backup (the lower nodeId) came
    later and lost on the older claim. Three plain nodes besides."""
    wg = SimulatedWg()
    rec = Reconciler(LAN_CFG, wg)
    own = NodeInfo(ME, "me", originator(ME).primary_ip)
    gw, backup = sorted([node_id("gw1"), node_id("gw2")], reverse=True)
    plain = [node_id(f"plain{i}") for i in range(3)]
    origs = {ME: originator(ME), **{n: originator(n) for n in (gw, backup, *plain)}}
    received = {n: advert.encode(mk_advert(n)) for n in plain}
    received[gw] = advert.encode(mk_advert(gw, networks=["10.1.0.0/16"]))
    rec.step(1000.0, own, dict(received), origs)
    received[backup] = advert.encode(mk_advert(backup, networks=["10.1.0.0/16"]))
    rec.step(1001.0, own, dict(received), origs)
    assert rec.selection.holders["10.1.0.0/16"] == gw
    return rec, wg, own, gw, backup, plain, origs, received


def _restart(rec, wg, hold=10.0):
    """What the daemon does with the state file it left."""
    from bmx7wg import history
    again = _restarted(wg, rec.owned)
    again.selection = history.seed(history.dump(rec.selection))
    again.await_previous(rec.node_of_keys(), hold, rec.routes)
    return again


def test_a_restart_waits_for_the_previous_runs_nodes_while_bmx7_refills():
    rec, wg, own, gw, backup, plain, origs, received = _lan_mesh()
    before = {k: dict(p, ips=set(p["ips"])) for k, p in wg.peers.items()}
    again = _restart(rec, wg)
    assert again.awaited == {gw, backup, *plain} and again.routes == rec.routes
    # bmx7 restarted as well: rcvdSms and json/originators refill node by node, the backup
    # gateway first (on its own it would take the LAN), then the others
    refill = [backup, plain[0], gw, plain[1], plain[2]]
    for i in range(len(refill)):
        back = {n: received[n] for n in refill[:i]}
        result = again.step(1000.0 + i, own, back, {n: origs[n] for n in (ME, *refill[:i])})
        assert (result.writes, result.removed, result.routes_changed) == (0, [], False)
    # everyone's files are there, but bmx7 has no route to gw yet (as real bmx7 right after a restart)
    no_route = dict(origs, **{gw: originator(gw, reachable=False)})
    assert again.step(1005.5, own, dict(received), no_route).writes == 0 and again.awaited
    result = again.step(1006.0, own, dict(received), origs)
    assert (result.writes, result.added, result.removed, result.routes_changed) == (0, [], [], False)
    assert not again.awaited and again.selection.holders["10.1.0.0/16"] == gw and wg.peers == before
    assert again.not_back == []


def test_a_node_that_never_comes_back_is_removed_after_the_hold_down_from_the_first_step():
    rec, wg, own, gw, backup, plain, origs, received = _lan_mesh()
    again = _restart(rec, wg)
    gone = {n: r for n, r in received.items() if n != plain[2]}
    assert again.step(1050.0, own, gone, origs).writes == 0          # the first step: 10 s from here
    assert again.step(1059.9, own, gone, origs).writes == 0
    result = again.step(1060.0, own, gone, origs)
    assert (result.writes, result.removed) == (1, [plain[2]]) and not again.awaited
    assert again.not_back == [plain[2]]
    assert again.step(1061.0, own, gone, origs).writes == 0


def test_a_previous_runs_peer_nobody_named_is_removed_by_key():
    rec, wg, own, gw, backup, plain, origs, received = _lan_mesh()
    stale = rec.selection.peers[plain[0]].public_key
    again = _restarted(wg, rec.owned)
    again.await_previous({}, hold=5.0)          # no state file peers: nothing to wait for
    result = again.step(1001.0, own, {n: r for n, r in received.items() if n != plain[0]}, origs)
    assert result.removed == [stale] and stale not in wg.peers


def test_two_readers_of_one_bmx7_both_see_every_change(tmp_path, monkeypatch):
    """bmx7.py forgets the changes its reader has seen; a second reconciler reading the same
    Bmx7, a step behind the first, must still see the advert that changed in between."""
    import json
    from bmx7wg.bmx7 import Bmx7

    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    rcvd, origs = tmp_path / "sms" / "rcvdSms", tmp_path / "json" / "originators"
    rcvd.mkdir(parents=True)
    origs.mkdir(parents=True)
    nodes = [node_id(f"two{i}") for i in range(3)]
    for nid in nodes:
        o = originator(nid)
        (origs / nid).write_text(json.dumps({"nodeId": nid, "name": o.name, "primaryIp": o.primary_ip,
                                             "dev": o.dev, "metric": "100M", "hops": 1, "lastRef": 0}))
        (rcvd / f"{nid}:wgtun").write_bytes(advert.encode(mk_advert(nid)))
    cfg = config.parse("wgmesh", {})
    bmx = Bmx7(tmp_path)
    own = NodeInfo(ME, "me", originator(ME).primary_ip)
    first, second = Reconciler(cfg, SimulatedWg()), Reconciler(cfg, SimulatedWg())
    for rec in (first, second):
        rec.step(1000.0, own, bmx.received("wgtun"), bmx.originators())
        assert rec.desired[key(nodes[1])].endpoint.endswith(":51820")
    (rcvd / f"{nodes[1]}:wgtun").write_bytes(advert.encode(mk_advert(nodes[1], port=51999)))
    for rec in (first, first, second):        # the first reader steps twice, then the second
        rec.step(1001.0, own, bmx.received("wgtun"), bmx.originators())
    for rec in (first, second):
        assert rec.desired[key(nodes[1])].endpoint.endswith(":51999")
