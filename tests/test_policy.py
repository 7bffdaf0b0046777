import ipaddress
import itertools

import pytest

from bmx7wg import advert, config, policy
from bmx7wg.model import Advert
from policy_world import (ME, PORT, advert as mk_advert, allowed_map, auto, context, key, node_id,
                          node_id_starting, originator, route_for, rules)

A = node_id_starting("1", "a")     # A < B < C as strings: "lowest nodeId" is A
B = node_id_starting("5", "b")
C = node_id_starting("9", "c")


def reasons(decision) -> dict[str, str]:
    return dict(decision.rejected)


# ---------------------------------------------------------------------------- parse_rules

def test_rule_defaults_follow_bmx7_tunout():
    (rule,) = rules({"network": "10.0.0.0/8"})
    assert rule.network == ipaddress.ip_network("10.0.0.0/8")
    assert (rule.min_prefix_len, rule.max_prefix_len) == (8, 32)
    assert (rule.hysteresis, rule.rating, rule.table, rule.metric) == (20, 100, None, None)
    assert rule.allow_overlapping_prefix and rule.break_overlapping_prefix
    (rule6,) = rules({"network": "2000::/3"})
    assert (rule6.min_prefix_len, rule6.max_prefix_len) == (3, 128)


def test_rule_every_option():
    (rule,) = rules({"_name": "defroute", "interface": "wgmesh", "network": "0.0.0.0/0",
                     "min_prefix_len": "0", "max_prefix_len": "0", "gw_name": ["gw1", "gw2"],
                     "gw_id": A[:8].lower(), "hysteresis": "30", "rating": "150", "table": "main",
                     "metric": "2048", "allow_overlapping_prefix": "0", "break_overlapping_prefix": "no"})
    assert rule.name == "defroute" and rule.interface == "wgmesh"
    assert (rule.min_prefix_len, rule.max_prefix_len) == (0, 0)
    assert rule.gw_names == ("gw1", "gw2") and rule.gw_ids == (A[:8],)
    assert (rule.hysteresis, rule.rating, rule.table, rule.metric) == (30, 150, 254, 2048)
    assert not rule.allow_overlapping_prefix and not rule.break_overlapping_prefix


def test_rules_are_kept_per_interface_and_in_file_order():
    sections = [("mine", "bmx7wg_out", {"interface": "wgmesh", "network": "10.0.0.0/8"}),
                ("other", "bmx7wg_out", {"interface": "wgother", "network": "this is not validated"}),
                ("any", "bmx7wg_out", {"network": "2000::/3"}),
                ("off", "bmx7wg_out", {"network": "10.9.0.0/16", "disabled": "1"}),
                ("lan", "interface", {"proto": "static"})]
    assert [r.name for r in policy.parse_rules(sections, "wgmesh")] == ["mine", "any"]
    assert [r.name for r in policy.parse_rules(sections[2:], "wgother")] == ["any"]


@pytest.mark.parametrize("options,message", [
    ({"network": "10.0.0.0/8", "max_prefix_len": "99"},
     "option 'max_prefix_len' in bmx7wg_out 'defroute': invalid value '99' (must be 0..32)"),
    ({"network": "::/0", "max_prefix_len": "129"},
     "option 'max_prefix_len' in bmx7wg_out 'defroute': invalid value '129' (must be 0..128)"),
    ({"network": "10.0.0.0/8", "min_prefix_len": "x"},
     "option 'min_prefix_len' in bmx7wg_out 'defroute': invalid value 'x' (not a number)"),
    ({"network": "10.0.0.0/8", "min_prefix_len": "24", "max_prefix_len": "16"},
     "option 'min_prefix_len' in bmx7wg_out 'defroute': invalid value '24' (above max_prefix_len 16)"),
    ({"network": "10.0.0.0/16", "max_prefix_len": "8"},
     "option 'max_prefix_len' in bmx7wg_out 'defroute': invalid value '8' (below the length of network 10.0.0.0/16)"),
    ({}, "option 'network' in bmx7wg_out 'defroute': missing"),
    ({"network": "10.0.0.1/8"}, "option 'network' in bmx7wg_out 'defroute': invalid value '10.0.0.1/8' (10.0.0.1/8 has host bits set)"),
    ({"network": ["10.0.0.0/8", "10.1.0.0/16"]},
     "option 'network' in bmx7wg_out 'defroute': invalid value '10.0.0.0/8 10.1.0.0/16' (expected a single value, not a list)"),
    ({"network": "10.0.0.0/8", "gw_id": "nodeA"},
     "option 'gw_id' in bmx7wg_out 'defroute': invalid value 'nodeA' (want a nodeId or its first 8+ hex digits)"),
    ({"network": "10.0.0.0/8", "hysteresis": "-1"}, "option 'hysteresis' in bmx7wg_out 'defroute': invalid value '-1' (must be 0..1000)"),
    ({"network": "10.0.0.0/8", "rating": "lots"}, "option 'rating' in bmx7wg_out 'defroute': invalid value 'lots' (not a number)"),
    ({"network": "10.0.0.0/8", "table": "255"}, "option 'table' in bmx7wg_out 'defroute': invalid value '255' (255 is the kernel's local table)"),
    ({"network": "10.0.0.0/8", "table": "0"}, "option 'table' in bmx7wg_out 'defroute': invalid value '0' (must be 1..4294967295)"),
    ({"network": "10.0.0.0/8", "metric": "-5"}, "option 'metric' in bmx7wg_out 'defroute': invalid value '-5' (must be 0..4294967295)"),
    ({"network": "10.0.0.0/8", "allow_overlapping_prefix": "maybe"}, 
     "option 'allow_overlapping_prefix' in bmx7wg_out 'defroute': invalid value 'maybe' (expected 0 or 1)"),
    ({"network": "10.0.0.0/8", "max_prefixlen": "24"}, "option 'max_prefixlen' in bmx7wg_out 'defroute': unknown option"),
    ({"network": "10.0.0.0/8", "interface": ""}, "option 'interface' in bmx7wg_out 'defroute': invalid value '' (empty"),
])
def test_rule_errors_are_one_line_naming_option_section_and_value(options, message):
    with pytest.raises(config.ConfigError) as err:
        policy.parse_rules([("defroute", "bmx7wg_out", options)], "wgmesh")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


class _Store:
    """The UciStore contract config.load() uses, over plain dicts."""

    def __init__(self, sections):
        self._sections = sections

    def section_type(self, config_name, name):
        return next((t for n, t, _ in self._sections if n == name), None)

    def get_all(self, config_name, name):
        return next(o for n, _, o in self._sections if n == name)

    def sections(self, config_name, stype=None):
        return [s for s in self._sections if stype is None or s[1] == stype]


def test_config_load_validates_rules_through_policy():
    store = _Store([("wgmesh", "interface", {"proto": "bmx7wg"}),
                    ("defroute", "bmx7wg_out", {"interface": "wgmesh", "network": "0.0.0.0/0",
                                                "max_prefix_len": "0"})])
    cfg = config.load(store, "wgmesh")
    assert [(r.name, str(r.network)) for r in cfg.rules] == [("defroute", "0.0.0.0/0")]
    store._sections[1][2]["max_prefix_len"] = "99"
    with pytest.raises(config.ConfigError, match="option 'max_prefix_len' in bmx7wg_out 'defroute'"):
        config.load(store, "wgmesh")


# ---------------------------------------------------------------------------- defaults

def test_default_policy_accepts_verified_tunnel_addresses_and_nothing_else():
    ads = {A: mk_advert(A, networks=["10.1.0.0/24"], addresses=["10.66.0.1/32"]),
           B: mk_advert(B)}
    sel = policy.select(context([originator(A), originator(B)]), ads)
    a = sel.peers[A]
    assert a.status == "accepted" and a.reason is None
    assert a.allowed_ips == (auto(A),) and a.addresses == (auto(A),) and a.accepted_networks == ()
    assert a.endpoint == f"[{originator(A).primary_ip}]:{PORT}"
    assert reasons(a) == {"10.1.0.0/24": "outside every rule",
                          "10.66.0.1/32": "address not derived from the advertiser's nodeId"}
    assert a.routes == (policy.Route(auto(A), None, None),)
    assert allowed_map(sel) == {key(A): {auto(A)}, key(B): {auto(B)}}


def test_own_advert_is_ignored():
    sel = policy.select(context([originator(A)]), {ME: mk_advert(ME), A: mk_advert(A)})
    assert set(sel.peers) == {A}


def test_claims_on_other_nodes_tunnel_addresses_are_refused():
    hostile = mk_advert(B, addresses=[auto(A)], networks=["fd77::/16", "fd76::/15", "fd77:1::/32"])
    sel = policy.select(context([originator(A), originator(B)], rules({"network": "fc00::/6"})),
                        {A: mk_advert(A), B: hostile})
    assert sel.peers[A].allowed_ips == (auto(A),)
    assert reasons(sel.peers[B]) == {
        auto(A): "address not derived from the advertiser's nodeId",
        "fd77::/16": "address not derived from the advertiser's nodeId",
        "fd77:1::/32": "address not derived from the advertiser's nodeId",
        "fd76::/15": "overlaps the tunnel address prefix fd77::/16"}
    assert sel.peers[B].allowed_ips == (auto(B),)


# ---------------------------------------------------------------------------- whole-advert rejections

def _rejected(ads, origs=None, **kw):
    origs = origs or [originator(n) for n in ads]
    return policy.select(context(origs, **kw), ads)


def test_bad_version_and_oversized_adverts_from_decode():
    raw = bytearray(advert.encode(mk_advert(A)))
    raw[2] = 0x20
    results = {}
    for nid, data in ((A, bytes(raw)), (B, b"\xb7\x77\x10" + bytes(300))):
        try:
            results[nid] = advert.decode(data)
        except advert.AdvertError as exc:
            results[nid] = exc
    sel = _rejected(results)
    assert sel.peers[A].status == "rejected" and sel.peers[A].reason == "unsupported advert version 2.0"
    assert sel.peers[B].reason == "advert is 303 bytes, limit 300"
    assert allowed_map(sel) == {}
    assert sel.peers[A].public_key is None


@pytest.mark.parametrize("bad,reason", [
    (Advert(public_key=key("x"), port=PORT, version=2), "unsupported advert version 2"),
    (Advert(public_key="not-a-key", port=PORT), "bad key: not a WireGuard public key"),
    (Advert(public_key="A" * 43 + "=", port=PORT), "bad key: not a WireGuard public key"),
    (Advert(public_key=key("x"), port=0), "bad port 0"),
    # entries are canonical CIDR text (model.Advert): anything else is malformed
    (Advert(public_key=key("x"), port=PORT, networks=("10.0.0.1/8",)), "malformed advert"),
    (Advert(public_key=key("x"), port=PORT, networks=("bogus",)), "malformed advert"),
    (Advert(public_key=key("x"), port=PORT, addresses=(42,)), "malformed advert"),
    ("garbage", "malformed advert"),
])
def test_malformed_advert_objects(bad, reason):
    sel = _rejected({A: bad, B: mk_advert(B)})
    assert (sel.peers[A].status, sel.peers[A].reason, sel.peers[A].allowed_ips) == ("rejected", reason, ())
    assert sel.peers[B].allowed_ips == (auto(B),)


def test_bad_node_id():
    sel = _rejected({"nodeX": mk_advert(A)}, origs=[originator(A)])
    assert sel.peers["nodeX"].reason == "bad node id" and allowed_map(sel) == {}


def test_own_key_is_refused():
    sel = _rejected({A: mk_advert(A, public_key=key("mine"))}, own_public_key=key("mine"))
    assert sel.peers[A].reason == "key is this node's own key"


def test_duplicate_key_fresh_observer_lowest_node_id_keeps_it():
    sel = _rejected({A: mk_advert(A, public_key=key("k")), C: mk_advert(C, public_key=key("k"))})
    assert sel.peers[A].status == "accepted"
    assert sel.peers[C].reason == f"key already used by node {A[:8]}" and sel.peers[C].allowed_ips == ()
    (conflict,) = sel.new_conflicts
    assert (conflict.kind, conflict.winner, conflict.losers, conflict.decided_by) == ("key", A, (C,), "lower nodeId")


def test_duplicate_key_older_claim_keeps_it():
    origs = [originator(A), originator(C)]
    first = policy.select(context(origs, now=10), {C: mk_advert(C, public_key=key("k"))})
    sel = policy.select(context(origs, previous=first, now=20),
                        {A: mk_advert(A, public_key=key("k")), C: mk_advert(C, public_key=key("k"))})
    assert sel.peers[C].allowed_ips == (auto(C),)
    assert sel.peers[A].reason == f"key already used by node {C[:8]}"
    assert sel.new_conflicts[0].decided_by == "older claim"


def test_duplicate_key_proven_by_handshake_beats_everything():
    ads = {A: mk_advert(A, public_key=key("k")), C: mk_advert(C, public_key=key("k"))}
    sel = _rejected(ads, proven_keys={key("k"): C})
    assert sel.peers[C].status == "accepted" and sel.peers[A].status == "rejected"
    assert sel.new_conflicts[0].decided_by == "proven by handshake"


def test_allow_node_by_id_short_id_and_name():
    origs = [originator(A), originator(B, name="paula"), originator(C)]
    ads = {n: mk_advert(n) for n in (A, B, C)}
    sel = policy.select(context(origs, allow_nodes=(A, "paula")), ads)
    assert [sel.peers[n].status for n in (A, B, C)] == ["accepted", "accepted", "rejected"]
    assert sel.peers[C].reason == "node not in allow_node"
    sel = policy.select(context(origs, allow_nodes=(C[:8].lower(),)), ads)
    assert [sel.peers[n].status for n in (A, B, C)] == ["rejected", "rejected", "accepted"]


def test_node_unknown_to_bmx7_is_pending_and_not_configured():
    sel = policy.select(context([originator(A)]), {A: mk_advert(A), B: mk_advert(B)})
    b = sel.peers[B]
    assert (b.status, b.reason, b.endpoint, b.allowed_ips) == ("pending", "unknown to bmx7 (no originator yet)", None, ())
    assert b.public_key == key(B)
    assert allowed_map(sel) == {key(A): {auto(A)}}


def test_a_peer_that_wins_its_whole_advert_shares_the_adverts_tuple():
    plain, more = mk_advert(A), mk_advert(B, networks=["10.7.0.0/24"], addresses=["fd00:b::1/128"])
    sel = policy.select(context([originator(A), originator(B)], rules({"network": "10.0.0.0/8"},
                                                                      {"network": "fd00::/8"})),
                        {A: plain, B: more})
    assert sel.peers[A].allowed_ips is plain.addresses          # one tuple, not a copy per peer
    assert sel.peers[B].allowed_ips == tuple(sorted((auto(B), "fd00:b::1/128", "10.7.0.0/24"),
                                                    key=lambda t: (":" in t, t)))


def test_a_nodes_own_accepted_address_is_kept_as_its_text_and_read_back_as_an_entry():
    pol = policy.Policy()
    pol.select(context([originator(A), originator(B)], rules({"network": "10.0.0.0/8"})),
               {A: mk_advert(A), B: mk_advert(B, networks=["10.7.0.0/24"])})
    assert pol.nodes[A]._judged == auto(A)                   # no _Entry held for it
    (own,) = pol.nodes[A].judged
    assert (own.text, own.prefix, own.source, own.rule, own.reason) == (auto(A), auto(A), "address", None, None)
    kept = policy._as_tuple(pol.nodes[B]._judged)
    assert kept[0] == auto(B) and isinstance(kept[1], policy._Entry) and kept[1].rule is not None
    assert [(e.text, e.source) for e in pol.nodes[B].judged] == [(auto(B), "address"), ("10.7.0.0/24", "network")]


# ---------------------------------------------------------------------------- per-entry rejections

def test_safety_reasons():
    underlay = originator(B, primary_ip="10.200.0.7")   # a bmx7 with ipAutoPrefix outside fd70
    ads = {A: mk_advert(A, networks=[
        "::/0", "fd70::/16", "fd70:1:2::/48", "fc00::/7",
        "10.200.0.0/16", "10.99.0.0/16", "192.168.1.0/24", "192.168.1.128/25",
        "127.0.0.0/8", "224.0.0.0/24", "fe80::/64", "192.168.0.0/16", "2001:db8::/32"])}
    sel = policy.select(context([originator(A), underlay],
                                rules({"network": "0.0.0.0/0"}, {"network": "::/0"}),
                                local_networks=(ipaddress.ip_network("192.168.1.0/24"),),
                                local_addresses=("10.99.0.1",)), ads)
    assert reasons(sel.peers[A]) == {
        "::/0": "overlaps the bmx7 prefix fd70::/16",
        "fd70::/16": "overlaps the bmx7 prefix fd70::/16",
        "fd70:1:2::/48": "overlaps the bmx7 prefix fd70::/16",
        "fc00::/7": "overlaps the bmx7 prefix fd70::/16",
        "10.200.0.0/16": "covers peer endpoint 10.200.0.7",
        "10.99.0.0/16": "covers local address 10.99.0.1",
        "192.168.1.0/24": "inside local network 192.168.1.0/24",
        "192.168.1.128/25": "inside local network 192.168.1.0/24",
        "127.0.0.0/8": "reserved range 127.0.0.0/8",
        "224.0.0.0/24": "reserved range 224.0.0.0/4",
        "fe80::/64": "reserved range fe80::/10"}
    # A covering prefix does not take a local network away (longest prefix stays local).
    assert sel.peers[A].accepted_networks == ("192.168.0.0/16", "2001:db8::/32")


def test_endpoint_covering_prefix_with_another_bmx7_prefix():
    ads = {A: mk_advert(A, networks=[f"{originator(B).primary_ip[:9]}::/32", "fd71::/16"])}
    sel = policy.select(context([originator(A), originator(B)], rules({"network": "fc00::/7", "max_prefix_len": "64"}),
                                bmx7_prefix=ipaddress.ip_network("fd71::/16")), ads)
    assert reasons(sel.peers[A]) == {
        f"{originator(B).primary_ip[:9]}::/32": f"covers peer endpoint {originator(B).primary_ip}",
        "fd71::/16": "overlaps the bmx7 prefix fd71::/16"}


def test_too_many_networks_keeps_the_first_and_the_tunnel_address():
    nets = [f"10.{i}.0.0/16" for i in range(policy.MAX_NETWORKS + 4)]
    sel = policy.select(context([originator(A)], rules({"network": "10.0.0.0/8"})),
                        {A: mk_advert(A, networks=nets)})
    a = sel.peers[A]
    assert a.accepted_networks == tuple(sorted(nets[:16], key=lambda n: ipaddress.ip_network(n)))
    assert auto(A) in a.allowed_ips
    assert reasons(a) == {n: "too many networks (limit 16)" for n in nets[16:]}


@pytest.mark.parametrize("net,accepted", [
    ("10.1.0.0/16", True), ("10.1.2.0/24", True), ("10.0.0.0/8", False),
    ("10.1.2.128/25", False), ("11.0.0.0/16", False)])
def test_rule_matches_min_and_max_prefix_len(net, accepted):
    sel = policy.select(context([originator(A)], rules({"network": "10.0.0.0/8", "min_prefix_len": "16",
                                                         "max_prefix_len": "24"})),
                        {A: mk_advert(A, networks=[net])})
    assert (net in sel.peers[A].accepted_networks) is accepted
    if not accepted:
        assert reasons(sel.peers[A])[net] == "outside every rule"


def test_rule_gw_name_and_gw_id():
    origs = [originator(A, name="pepe"), originator(B, name="paula"), originator(C, name="pepe")]
    ads = {n: mk_advert(n, networks=[f"10.{i}.0.0/16"]) for i, n in enumerate((A, B, C))}
    sel = policy.select(context(origs, rules({"network": "10.0.0.0/8", "gw_name": "pepe", "gw_id": [A[:8], B]})), ads)
    assert sel.peers[A].accepted_networks == ("10.0.0.0/16",)
    assert reasons(sel.peers[B]) == {"10.1.0.0/16": "no rule accepts it from this node (gw_id/gw_name)"}
    assert reasons(sel.peers[C]) == {"10.2.0.0/16": "no rule accepts it from this node (gw_id/gw_name)"}


def test_manual_addresses_need_a_rule():
    sel = policy.select(context([originator(A)], rules({"network": "10.66.0.0/16"})),
                        {A: mk_advert(A, addresses=["10.66.0.1/32", "10.67.0.1/32"])})
    assert sel.peers[A].addresses == ("10.66.0.1/32", auto(A))
    assert reasons(sel.peers[A]) == {"10.67.0.1/32": "address not derived from the advertiser's nodeId"}


def test_default_route_only_from_allowed_node():
    origs = [originator(A, metric=10_000_000), originator(B, metric=900_000_000)]
    ads = {A: mk_advert(A, networks=["0.0.0.0/0"]), B: mk_advert(B, networks=["0.0.0.0/0", "10.0.0.0/8"])}
    sel = policy.select(context(origs, rules({"network": "0.0.0.0/0", "max_prefix_len": "0", "gw_id": A,
                                              "table": "150", "metric": "10"}),
                                local_networks=(ipaddress.ip_network("192.168.1.0/24"),)), ads)
    assert sel.peers[A].accepted_networks == ("0.0.0.0/0",)
    assert policy.Route("0.0.0.0/0", 150, 10) in sel.peers[A].routes
    assert reasons(sel.peers[B]) == {"0.0.0.0/0": "no rule accepts it from this node (gw_id/gw_name)",
                                     "10.0.0.0/8": "outside every rule"}
    assert route_for(sel, "8.8.8.8") == A


# ---------------------------------------------------------------------------- selection

OPEN = {"network": "10.0.0.0/8"}


def test_longest_prefix_wins_the_traffic_and_both_are_held():
    origs = [originator(A, metric=900_000_000), originator(B, metric=1_000_000)]
    ads = {A: mk_advert(A, networks=["10.1.0.0/16"]), B: mk_advert(B, networks=["10.1.2.0/24"])}
    sel = policy.select(context(origs, rules(OPEN)), ads)
    # holders: the arbitrated prefixes; derived tunnel addresses are not arbitrated
    assert sel.holders == {"10.1.0.0/16": A, "10.1.2.0/24": B}
    assert set(sel.peers[A].allowed_ips) == {auto(A), "10.1.0.0/16"} and auto(B) in sel.peers[B].allowed_ips
    assert route_for(sel, "10.1.2.3") == B and route_for(sel, "10.1.3.3") == A


def test_a_derived_address_two_nodeids_share_goes_to_the_lower_nodeid_whatever_their_standing():
    # nodeIds agreeing in their first 112 bits derive one fd77::/16 address. They are SHA-224
    # hashes, so that takes ~2^112 keys against a chosen node; still only one node may get it.
    low, high = "1" + "A" * 27 + "0" * 28, "1" + "A" * 27 + "F" * 28
    assert auto(low) == auto(high)
    origs = [originator(low, metric=1_000, primary_ip="fd70::1"),
             originator(high, metric=900_000_000, primary_ip="fd70::2")]
    ads = {low: mk_advert(low), high: mk_advert(high)}
    pol = policy.Policy()
    first = pol.select(context(origs), ads)
    assert first == policy.select(context(origs), ads)
    assert first.peers[low].allowed_ips == (auto(low),) and first.peers[high].allowed_ips == ()
    assert reasons(first.peers[high]) == {auto(high): f"held by node {low[:8]}: same derived address, lower nodeId"}
    assert [(c.kind, c.item, c.winner, c.losers, c.decided_by) for c in first.conflicts] == [
        ("prefix", auto(low), low, (high,), "lower nodeId")]
    assert first.holders == {} and first.claimed_since == {}     # no history: nothing to keep
    # the holder leaving hands it over at once, and the conflict is gone
    later = pol.select(context(origs, previous=first, now=101), {high: ads[high]})
    assert later == policy.select(context(origs, previous=first, now=101), {high: ads[high]})
    assert later.peers[high].allowed_ips == (auto(high),) and not later.conflicts and low not in later.peers
    # and it coming back takes it back, whoever held it longer
    again = pol.select(context(origs, previous=later, now=102), ads)
    assert again.peers[low].allowed_ips == (auto(low),) and again.peers[high].allowed_ips == ()


def test_best_metric_holds_the_prefix_and_conflict_is_logged_once():
    origs = [originator(A, metric=100_000_000), originator(B, metric=200_000_000)]
    ads = {A: mk_advert(A, networks=["10.1.0.0/16"]), B: mk_advert(B, networks=["10.1.0.0/16"])}
    first = policy.select(context(origs, rules(OPEN), now=1), ads)
    assert first.holders["10.1.0.0/16"] == B
    assert reasons(first.peers[A]) == {"10.1.0.0/16": f"held by node {B[:8]} with better standing"}
    assert [str(c) for c in first.new_conflicts] == [
        f"prefix 10.1.0.0/16 claimed by {A[:8]}, {B[:8]}: {B[:8]} keeps it (better metric)"]
    again = policy.select(context(origs, rules(OPEN), previous=first, now=2), ads)
    assert again.peers == first.peers and again.new_conflicts == () and again.conflicts == first.conflicts
    # the winner changes: a new conflict to log
    origs2 = [originator(A, metric=900_000_000), originator(B, metric=200_000_000)]
    third = policy.select(context(origs2, rules(OPEN), previous=again, now=3), ads)
    assert third.holders["10.1.0.0/16"] == A and len(third.new_conflicts) == 1


def test_rating_scales_the_metric():
    origs = [originator(A, metric=100_000_000), originator(B, metric=200_000_000)]
    ads = {A: mk_advert(A, networks=["10.1.0.0/16"]), B: mk_advert(B, networks=["10.1.0.0/16"])}
    rs = rules({"network": "10.0.0.0/8", "gw_id": A, "rating": "300", "table": "7"}, OPEN)
    sel = policy.select(context(origs, rs), ads)
    assert sel.holders["10.1.0.0/16"] == A
    assert policy.Route("10.1.0.0/16", 7, None) in sel.peers[A].routes


def _hysteresis_run(challenger_metric, hysteresis="20"):
    """A holds 10.1.0.0/16 alone at t=1, B offers it from t=2 with challenger_metric vs A's 100."""
    rs = rules({"network": "10.0.0.0/8", "hysteresis": hysteresis})
    ads_a = {A: mk_advert(A, networks=["10.1.0.0/16"])}
    first = policy.select(context([originator(A, metric=100)], rs, now=1), ads_a)
    ads = {**ads_a, C: mk_advert(C, networks=["10.1.0.0/16"])}
    origs = [originator(A, metric=100), originator(C, metric=challenger_metric)]
    return policy.select(context(origs, rs, previous=first, now=2), ads)


@pytest.mark.parametrize("metric,holder,why", [
    (110, "A", "hysteresis"), (119, "A", "hysteresis"),
    (120, "A", "older claim"),           # exactly +20 %: equal standing, the older claim stays
    (121, "C", "better metric"), (300, "C", "better metric")])
def test_hysteresis_keeps_the_incumbent_unless_challenger_is_better_by_more(metric, holder, why):
    sel = _hysteresis_run(metric)
    assert sel.holders["10.1.0.0/16"] == {"A": A, "C": C}[holder]
    assert sel.new_conflicts[0].decided_by == why


def test_hysteresis_zero_switches_on_any_improvement():
    assert _hysteresis_run(101, hysteresis="0").holders["10.1.0.0/16"] == C


def test_no_hysteresis_between_offers_seen_at_the_same_time():
    rs = rules(OPEN)
    origs = [originator(A, metric=100), originator(C, metric=110)]
    ads = {A: mk_advert(A, networks=["10.1.0.0/16"]), C: mk_advert(C, networks=["10.1.0.0/16"])}
    step = policy.select(context(origs, rs, now=5), {A: ads[A]})
    step = policy.select(context(origs, rs, previous=step, now=5), ads)
    assert step.peers == policy.select(context(origs, rs, now=5), ads).peers
    assert step.holders["10.1.0.0/16"] == C


def test_unreachable_holder_loses_to_reachable_challenger():
    rs = rules(OPEN)
    ads = {A: mk_advert(A, networks=["10.1.0.0/16"]), C: mk_advert(C, networks=["10.1.0.0/16"])}
    first = policy.select(context([originator(A, metric=900), originator(C, metric=100)], rs, now=1), ads)
    assert first.holders["10.1.0.0/16"] == A
    later = policy.select(context([originator(A, metric=900, reachable=False), originator(C, metric=100)], rs,
                                  previous=first, now=2), ads)
    assert later.holders["10.1.0.0/16"] == C


def test_equal_standing_older_claim_then_lowest_node_id():
    rs = rules(OPEN)
    origs = [originator(n, metric=100) for n in (A, B, C)]
    ads = {n: mk_advert(n, networks=["10.1.0.0/16"]) for n in (A, B, C)}
    fresh = policy.select(context(origs, rs, now=1), ads)
    assert fresh.holders["10.1.0.0/16"] == A
    assert fresh.new_conflicts[0].decided_by == "lower nodeId"
    assert fresh.new_conflicts[0].losers == (B, C)
    older_c = policy.select(context(origs, rs, now=1), {C: ads[C]})
    sel = policy.select(context(origs, rs, previous=older_c, now=2), ads)
    assert sel.holders["10.1.0.0/16"] == C
    assert sel.claimed_since[("10.1.0.0/16", C)] == 1 and sel.claimed_since[("10.1.0.0/16", A)] == 2


def test_arbitration_does_not_depend_on_dict_order():
    rs = rules(OPEN, {"network": "0.0.0.0/0", "max_prefix_len": "0"})
    origs = [originator(A, metric=5), originator(B, metric=5), originator(C, metric=7)]
    ads = {A: mk_advert(A, networks=["10.1.0.0/16", "0.0.0.0/0"], public_key=key("k")),
           B: mk_advert(B, networks=["10.1.0.0/16", "10.2.0.0/16"]),
           C: mk_advert(C, networks=["10.2.0.0/16", "0.0.0.0/0"], public_key=key("k"))}
    results = [policy.select(context(origs, rs), dict(order)) for order in itertools.permutations(ads.items())]
    assert all(r == results[0] for r in results[1:])
    assert results[0].holders["10.1.0.0/16"] == A and results[0].peers[C].status == "rejected"


@pytest.mark.parametrize("allow,brk,holders_b", [("1", "1", True), ("0", "1", False), ("1", "0", False)])
def test_overlapping_prefix_follows_bmx7(allow, brk, holders_b):
    origs = [originator(A, metric=900), originator(B, metric=100)]
    ads = {A: mk_advert(A, networks=["10.0.0.0/8"]), B: mk_advert(B, networks=["10.1.0.0/16"])}
    rs = rules({"network": "10.0.0.0/8", "allow_overlapping_prefix": allow, "break_overlapping_prefix": brk})
    sel = policy.select(context(origs, rs), ads)
    assert sel.holders["10.0.0.0/8"] == A
    assert (sel.holders.get("10.1.0.0/16") == B) is holders_b
    if not holders_b:
        assert reasons(sel.peers[B]) == {"10.1.0.0/16": f"overlaps 10.0.0.0/8 from node {A[:8]} with better standing"}
        # a more specific offer with the better metric keeps its prefix
        better_b = [originator(A, metric=100), originator(B, metric=900)]
        assert policy.select(context(better_b, rs), ads).holders["10.1.0.0/16"] == B


# ---------------------------------------------------------------------------- endpoint index

def test_endpoint_index_keeps_an_address_until_the_last_node_with_it_moves_away():
    idx, touched = policy._Endpoints(), []
    a, b = (6, 0xfd70 << 112 | 1), (4, 0x0a000001)
    idx.move(None, a, touched)
    idx.move(None, a, touched)                      # a second node copies the primaryIp
    idx.move(None, b, touched)
    assert touched == [a, b] and idx.by_version == {4: [b[1]], 6: [a[1]]} and idx.copies == {a: 1}
    touched.clear()
    idx.move(a, None, touched)                      # one of the two leaves: still there
    assert touched == [] and idx.by_version[6] == [a[1]] and idx.copies == {}
    idx.move(a, b, touched)                         # the other moves onto b
    assert touched == [a] and idx.by_version == {4: [b[1]], 6: []} and idx.copies == {b: 1}
    assert str(idx.inside((4, 0x0a000000, 0x0a0000ff))) == "10.0.0.1"


def test_a_key_judged_again_keeps_each_claims_age():
    """A step that judges a key again (a third claimant comes) ranks the standing claims by
    the ages the previous selection holds, not only the claims made in this step."""
    old, mid, new = node_id_starting("9", "age"), node_id_starting("1", "age"), node_id_starting("5", "age")
    origs = [originator(n) for n in (old, mid, new)]
    ads = {n: mk_advert(n, public_key=key("shared")) for n in (old, mid, new)}
    pol = policy.Policy()
    first = pol.select(context(origs, now=10), {old: ads[old]})
    second = pol.select(context(origs, previous=first, now=20), {old: ads[old], mid: ads[mid]}, changed={mid})
    third = pol.select(context(origs, previous=second, now=30), ads, changed={new})
    assert third.peers[old].status == "accepted"
    (conflict,) = [c for c in third.conflicts if c.kind == "key"]
    assert (conflict.winner, conflict.losers, conflict.decided_by) == (old, tuple(sorted((mid, new))), "older claim")
    assert {third.key_since[n] for n in (old, mid, new)} == {10, 20, 30}
    assert {third.claimed_key(n) for n in (old, mid, new)} == {key("shared")}


def test_a_node_that_switches_keys_claims_the_new_one_from_now_not_from_its_first_claim():
    """Claim ages are kept per node (a node claims one key at a time): one that moves onto
    another node's key must not bring its old claim's age along and win it as the older."""
    thief, victim = node_id_starting("1", "switch"), node_id_starting("9", "switch")
    origs = [originator(n) for n in (thief, victim)]
    own_key = {thief: mk_advert(thief, public_key=key("thief")), victim: mk_advert(victim, public_key=key("victim"))}
    pol = policy.Policy()
    first = pol.select(context(origs, now=10), {thief: own_key[thief]})
    second = pol.select(context(origs, previous=first, now=20), own_key, changed={victim})
    stolen = {thief: mk_advert(thief, public_key=key("victim")), victim: own_key[victim]}
    ctx = context(origs, previous=second, now=30)
    for third in (pol.select(ctx, stolen, changed={thief}), policy.Policy().select(ctx, stolen)):
        (conflict,) = [c for c in third.conflicts if c.kind == "key"]   # step by step, and from scratch
        assert (conflict.winner, conflict.decided_by) == (victim, "older claim")
        assert (third.key_since[thief], third.key_since[victim]) == (30, 20)
