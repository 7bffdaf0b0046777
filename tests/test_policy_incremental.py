"""policy.Policy (cached, incremental) against policy.select (from scratch) on random histories.

Every step changes a few inputs the way a mesh does (adverts appear, vanish, change key or
networks, hostile claims arrive, originators change metric, reachability, name or address,
keys get proven, time advances or not), then both are asked with the same previous
Selection, and everything they decide must be equal: decisions, holders, claim ages,
conflicts (with how they were decided) and the new-conflict log.
"""

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmx7wg import address, advert, policy
from bmx7wg.model import Advert
from policy_world import ME, auto, key, node_id, originator

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

POOL = [node_id(f"inc{i}") for i in range(8)]
BYSTANDER = node_id("bystander")            # known to bmx7, never advertises
CONTESTED = ["10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.0.0.0/8", "0.0.0.0/0",
             "192.168.0.0/16", "2001:db8::/32", "2001:db8:1::/48", "2000::/3"]
HOSTILE = ["::/0", "fd70::/16", "fd77::/16", "fd76::/15", "fd77:1::/32", "127.0.0.0/8", "fe80::/64",
           "10.99.0.0/16", "192.168.1.0/25", "10.200.0.7/32"]
# primaryIps an originator may move to: its own, or addresses inside contested networks
ENDPOINTS = ["10.1.2.5", "10.1.2.200", "10.200.0.7", "2001:db8::5", "2001:db8:1::9"]
RULE_POOL = [
    {"network": "0.0.0.0/0"},
    {"network": "10.0.0.0/8", "max_prefix_len": "25"},
    {"network": "10.0.0.0/8", "min_prefix_len": "16", "max_prefix_len": "24"},
    {"network": "::/0"},
    {"network": "2000::/3", "rating": "200"},
    {"network": "192.168.0.0/16"},
    {"network": "fd00::/8", "max_prefix_len": "128"},
]
LOCAL_NETWORKS = (ipaddress.ip_network("192.168.1.0/24"),)
LOCAL_ADDRESSES = ("10.99.0.1",)


def draw_rules(data):
    sections = []
    for i, opts in enumerate(data.draw(st.lists(st.sampled_from(RULE_POOL), max_size=4))):
        opts = dict(opts, hysteresis=str(data.draw(st.sampled_from([0, 20, 50]))),
                    rating=data.draw(st.sampled_from([opts.get("rating", "100"), "50", "300"])),
                    allow_overlapping_prefix=data.draw(st.sampled_from(["0", "1", "1"])),
                    break_overlapping_prefix=data.draw(st.sampled_from(["0", "1", "1"])))
        if data.draw(st.integers(0, 4)) == 0:
            opts["gw_id"] = data.draw(st.sampled_from(POOL))[:8]
        if data.draw(st.integers(0, 4)) == 0:
            opts["gw_name"] = "pepe"
        sections.append((f"r{i}", "bmx7wg_out", opts))
    return policy.parse_rules(sections, "wgmesh")


def draw_advert(data, nid):
    kind = data.draw(st.sampled_from(["good", "good", "networks", "hostile", "copykey", "error"]))
    if kind == "error":
        return advert.AdvertError(data.draw(st.sampled_from(["bad magic", "unsupported advert version 2.0"])))
    public_key = key(nid)
    if kind == "copykey":
        public_key = key(data.draw(st.sampled_from(POOL)))
    elif data.draw(st.integers(0, 5)) == 0:
        public_key = key(nid + "rotated")
    addresses = [auto(nid)] if kind != "hostile" or data.draw(st.booleans()) else []
    networks = []
    if kind in ("networks", "hostile", "copykey"):
        networks = data.draw(st.lists(st.sampled_from(CONTESTED), max_size=4, unique=True))
    if kind == "hostile":
        victims = [auto(n) for n in POOL]
        networks += data.draw(st.lists(st.sampled_from(HOSTILE + victims), max_size=4, unique=True))
        addresses += data.draw(st.lists(st.sampled_from(victims + ["10.1.2.5/32"]), max_size=2, unique=True))
        if data.draw(st.integers(0, 3)) == 0:
            networks += [f"10.{i}.0.0/16" for i in range(2, 20)]        # too many networks
    return Advert(public_key=public_key, port=data.draw(st.sampled_from([51820, 51821])),
                  addresses=tuple(ipaddress.ip_network(a) for a in dict.fromkeys(addresses)),
                  networks=tuple(ipaddress.ip_network(n) for n in dict.fromkeys(networks)))


def draw_originator(data, nid):
    primary = data.draw(st.sampled_from([None, None, None] + ENDPOINTS))
    return originator(nid, metric=data.draw(st.sampled_from([0, 100, 110, 120, 121, 150, 10**9])),
                      name=data.draw(st.sampled_from(["pepe", "paula"])),
                      reachable=data.draw(st.integers(0, 4)) > 0, primary_ip=primary)


def context(rules, origs, proven, previous, now, allow_nodes=()):
    return policy.PolicyContext(
        own_node_id=ME, rules=rules, originators=dict(origs), previous=previous, now=now,
        local_networks=LOCAL_NETWORKS, local_addresses=LOCAL_ADDRESSES, proven_keys=dict(proven),
        allow_nodes=allow_nodes)


def everything(sel):
    return (sel.now, sel.peers, sel.holders, sel.holder_since, sel.claimed_since, sel.key_since,
            sorted((c, c.decided_by) for c in sel.conflicts),
            [(c, c.decided_by) for c in sel.new_conflicts])


@SETTINGS
@given(st.data())
def test_incremental_select_equals_select_from_scratch(data):
    rules = draw_rules(data)
    allow_nodes = data.draw(st.sampled_from([(), (), ("pepe",), (POOL[0][:8],)]))
    hinted = data.draw(st.booleans())            # the caller names what changed, or not
    origs = {ME: originator(ME, name="me"), BYSTANDER: originator(BYSTANDER)}
    adverts, proven = {}, {}
    incremental = policy.Policy()
    sel, now = None, 0.0
    for _ in range(data.draw(st.integers(1, 25))):
        touched = set()
        for _ in range(data.draw(st.integers(0, 3))):
            op = data.draw(st.sampled_from(["advert", "advert", "advert", "withdraw", "originator",
                                            "metric", "unknown", "prove", "bystander", "rules"]))
            nid = data.draw(st.sampled_from(POOL))
            touched.add(nid)
            if op == "advert":
                adverts[nid] = draw_advert(data, nid)
                if nid not in origs and data.draw(st.integers(0, 4)):
                    origs[nid] = draw_originator(data, nid)
            elif op == "withdraw":
                adverts.pop(nid, None)
            elif op == "originator":
                origs[nid] = draw_originator(data, nid)
            elif op == "metric" and nid in origs:
                o = origs[nid]
                origs[nid] = originator(nid, metric=data.draw(st.sampled_from([0, 100, 121, 10**9])),
                                        name=o.name, primary_ip=o.primary_ip, reachable=o.reachable)
            elif op == "unknown":
                origs.pop(nid, None)
            elif op == "prove":
                if data.draw(st.booleans()):
                    proven[key(data.draw(st.sampled_from(POOL)))] = nid
                else:
                    proven.pop(key(nid), None)
            elif op == "bystander":
                touched.add(BYSTANDER)
                origs[BYSTANDER] = originator(BYSTANDER, primary_ip=data.draw(st.sampled_from(ENDPOINTS)))
            elif op == "rules":
                rules = draw_rules(data)          # a reload: the cache starts from scratch
        now += data.draw(st.sampled_from([0.0, 0.0, 1.0, 5.0]))
        ctx = context(rules, origs, proven, sel, now, allow_nodes)
        got = incremental.select(ctx, dict(adverts), changed=touched if hinted else None)
        want = policy.select(ctx, dict(adverts))
        assert everything(got) == everything(want)
        sel = got


@SETTINGS
@given(st.data())
def test_a_foreign_previous_selection_is_not_trusted(data):
    """Given a previous Selection it did not make itself, the cached policy starts afresh."""
    rules = draw_rules(data)
    origs = {ME: originator(ME, name="me"), **{n: originator(n) for n in POOL}}
    first = {n: draw_advert(data, n) for n in POOL[:4]}
    second = {n: draw_advert(data, n) for n in POOL[2:]}
    cached = policy.Policy()
    mine = cached.select(context(rules, origs, {}, None, 1.0), first)
    foreign = policy.select(context(rules, origs, {}, None, 1.0), second)
    for previous in (foreign, None, mine):
        ctx = context(rules, origs, {}, previous, 2.0)
        assert everything(cached.select(ctx, second)) == everything(policy.select(ctx, second))


def test_unchanged_inputs_reuse_every_decision():
    origs = {ME: originator(ME, name="me"), **{n: originator(n) for n in POOL}}
    adverts = {n: Advert(public_key=key(n), port=51820, addresses=(ipaddress.ip_network(auto(n)),))
               for n in POOL}
    cached = policy.Policy()
    first = cached.select(context((), origs, {}, None, 1.0), adverts)
    again = cached.select(context((), origs, {}, first, 2.0), adverts)
    assert again.peers == first.peers
    assert all(again.peers[n] is first.peers[n] for n in POOL)     # nothing was rebuilt
    assert again.new_conflicts == ()


@given(st.sampled_from(POOL + [node_id(f"x{i}") for i in range(20)]),
       st.sampled_from(["fd77::/16", "fd00::/8", "2001:db8::/32", "fd12:3456:789a::/48", "fd77:1:2:3::/64"]))
def test_own_address_arithmetic_matches_address_module(nid, prefix):
    env = policy._Env(policy.PolicyContext(own_node_id=ME, auto_prefix=prefix))
    assert env.own_address(nid) == int(address.auto_address(nid, prefix))




@given(st.one_of(st.ip_addresses().map(str), st.text("0123456789abcdefABCDEF:.%", max_size=45),
                 st.sampled_from(["fe80::1%eth0", "::ffff:1.2.3.4", "1.2.3.04", "01.2.3.4", " ::1", "::1 ",
                                  "1:2:3:4:5:6:7:8:9", "::1.2.3.4", "0::", "1.2.3.4\\x00", ""])))
def test_address_parsing_is_ipaddress_parsing(text):
    ip = policy._ip_or_none(text)
    assert policy._parse_ip(text) == (() if ip is None else (ip.version, int(ip), str(ip)))


def test_time_alone_gives_the_holder_its_bonus():
    """Nothing changes but time: the holder chosen at t=1 is the incumbent at t=2, so the
    conflict is now decided by hysteresis. The cached policy must notice without any input
    changing."""
    a, b = sorted(POOL[:2])
    rules = policy.parse_rules([("r", "bmx7wg_out", {"network": "10.0.0.0/8"})], "wgmesh")
    origs = {ME: originator(ME, name="me"), a: originator(a, metric=100), b: originator(b, metric=100)}
    adverts = {n: Advert(public_key=key(n), port=51820, addresses=(ipaddress.ip_network(auto(n)),),
                         networks=(ipaddress.ip_network("10.1.0.0/16"),)) for n in (a, b)}
    cached = policy.Policy()
    sel = None
    for now, why in ((1.0, "lower nodeId"), (1.0, "lower nodeId"), (2.0, "hysteresis"), (3.0, "hysteresis")):
        ctx = context(rules, origs, {}, sel, now)
        sel = cached.select(ctx, adverts)
        assert everything(sel) == everything(policy.select(ctx, adverts))
        (conflict,) = sel.conflicts
        assert (conflict.winner, conflict.decided_by) == (a, why)


def test_time_alone_lets_a_covering_holder_suppress_a_more_specific_prefix():
    """A's 10.1.0.0/16 forbids overlapping and gets 50 % hysteresis once it holds the prefix:
    from the next instant on it outweighs B's 10.1.2.0/24 (no hysteresis), which gives way."""
    a, b = POOL[:2]
    rules = policy.parse_rules([
        ("narrow", "bmx7wg_out", {"network": "10.1.2.0/24", "hysteresis": "0"}),
        ("wide", "bmx7wg_out", {"network": "10.0.0.0/8", "hysteresis": "50",
                                "allow_overlapping_prefix": "0"})], "wgmesh")
    origs = {ME: originator(ME, name="me"), a: originator(a, metric=100), b: originator(b, metric=120)}
    adverts = {a: Advert(public_key=key(a), port=51820, networks=(ipaddress.ip_network("10.1.0.0/16"),)),
               b: Advert(public_key=key(b), port=51820, networks=(ipaddress.ip_network("10.1.2.0/24"),))}
    cached = policy.Policy()
    sel = None
    for now, b_holds in ((1.0, True), (1.0, True), (2.0, False), (3.0, False)):
        ctx = context(rules, origs, {}, sel, now)
        sel = cached.select(ctx, adverts)
        assert everything(sel) == everything(policy.select(ctx, adverts))
        assert ("10.1.2.0/24" in sel.peers[b].allowed_ips) is b_holds
