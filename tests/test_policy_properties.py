"""Random and hostile advert sets against the policy: invariants of the resulting WireGuard state."""

import ipaddress
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmx7wg import address, advert, policy, record
from bmx7wg.model import Advert
from policy_world import ME, auto, key, node_id, originator

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

POOL = [node_id(f"pool{i}") for i in range(7)]
UNDERLAY = node_id("underlay")                   # a node bmx7 reaches over IPv4 (endpoint outside fd70)
UNDERLAY_IP = "10.200.0.7"
LOCAL_NETWORKS = (ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("fd12:3456::/48"))
LOCAL_ADDRESSES = ("10.99.0.1",)
AUTO_PREFIX = ipaddress.ip_network("fd77::/16")

FIXED_HOSTILE = [
    "0.0.0.0/0", "::/0", "fd70::/16", "fd70::/17", "fd00::/8", "fc00::/7", "fd70:1234::/32",
    "fd77::/16", "fd76::/15", "fd77:1::/32", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24",
    "10.1.2.128/25", "10.200.0.0/16", "10.200.0.7/32", "10.99.0.0/16", "192.168.1.0/24",
    "192.168.1.0/25", "192.168.0.0/16", "fd12:3456::/48", "fd12:3456:0:1::/64", "fd12::/16",
    "2001:db8::/32", "2000::/3", "127.0.0.0/8", "fe80::/64", "224.0.0.0/4", "::1/128", "ff02::/16",
]

# Offers several nodes make at once: arbitration, hysteresis and overlaps get exercised.
CONTESTED = ["10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "0.0.0.0/0", "192.168.0.0/16", "2001:db8::/32"]

RULE_POOL = [
    {"network": "0.0.0.0/0"},
    {"network": "10.0.0.0/8"},
    {"network": "::/0"},
    {"network": "fc00::/7", "max_prefix_len": "128"},
    {"network": "10.0.0.0/8", "min_prefix_len": "16", "max_prefix_len": "24"},
    {"network": "192.168.0.0/16"},
    {"network": "2000::/3", "rating": "200"},
    {"network": "fd00::/8"},
]


def per_node_hostile(nid):
    """Prefixes aimed at one node: its tunnel address, its endpoint and prefixes covering it."""
    primary = address.primary_ip(nid)
    return [auto(nid), f"{primary}/128", str(ipaddress.ip_network(f"{primary}/64", strict=False)),
            str(ipaddress.ip_network(f"{address.auto_address(nid)}/64", strict=False))]


random_v4 = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                      st.integers(0, 2**32 - 1), st.integers(0, 32))
random_v6 = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                      st.one_of(st.integers(0, 2**128 - 1),
                                st.integers(0xFD00 << 112, (0xFE00 << 112) - 1)),
                      st.integers(0, 128))


@dataclass
class World:
    ctx: policy.PolicyContext
    adverts: dict
    good: set            # nodes whose advert is honest: unique key, own tunnel address


@st.composite
def worlds(draw, now=100.0):
    nodes = draw(st.lists(st.sampled_from(POOL), min_size=2, max_size=6, unique=True))
    hostile_pool = FIXED_HOSTILE + [p for n in POOL for p in per_node_hostile(n)]
    origs = {ME: originator(ME, name="me"), UNDERLAY: originator(UNDERLAY, primary_ip=UNDERLAY_IP)}
    adverts, keys, good = {}, {}, set()
    for nid in nodes:
        if draw(st.integers(0, 9)) < 9:       # mostly known to bmx7
            origs[nid] = originator(nid, metric=draw(st.sampled_from([0, 1, 100, 110, 120, 121, 10**9])),
                                    name=draw(st.sampled_from(["pepe", "paula", "x"])),
                                    reachable=draw(st.booleans()))
        kind = draw(st.sampled_from(["good", "good", "hostile", "copykey", "error"]))
        if kind == "error":
            adverts[nid] = advert.AdvertError(draw(st.sampled_from(
                ["unsupported advert version 2.0", "advert is 301 bytes, limit 300", "bad magic"])))
            continue
        public_key = key(nid)
        if kind == "copykey" and keys:
            public_key = draw(st.sampled_from(sorted(keys.values())))
        addresses = [auto(nid)] if kind != "hostile" or draw(st.booleans()) else []
        networks = draw(st.lists(st.sampled_from(CONTESTED), min_size=1, max_size=3, unique=True))
        networks += draw(st.lists(st.one_of(st.sampled_from(hostile_pool), random_v4, random_v6),
                                  max_size=20 if kind == "hostile" else 3, unique=True))
        if kind == "hostile":
            addresses += draw(st.lists(st.sampled_from(hostile_pool), max_size=3, unique=True))
        keys[nid] = public_key
        adverts[nid] = Advert(public_key=public_key, port=draw(st.integers(1, 65535)),
                              addresses=tuple(ipaddress.ip_network(a) for a in dict.fromkeys(addresses)),
                              networks=tuple(ipaddress.ip_network(n) for n in dict.fromkeys(networks)))
        if kind == "good":
            good.add(nid)
    # a good node stays good only if nobody else advertises its key
    good = {n for n in good if list(keys.values()).count(keys[n]) == 1}
    rule_sections = []
    no_rules = draw(st.integers(0, 9)) == 9          # the default policy, sometimes
    for i, opts in enumerate([] if no_rules else draw(st.lists(st.sampled_from(RULE_POOL), min_size=1, max_size=4))):
        opts = dict(opts, hysteresis=str(draw(st.sampled_from([0, 20, 50]))),
                    allow_overlapping_prefix=draw(st.sampled_from(["0", "1", "1"])),
                    break_overlapping_prefix=draw(st.sampled_from(["0", "1", "1"])))
        if draw(st.integers(0, 3)) == 0:
            opts["gw_id"] = draw(st.sampled_from(nodes))
        if draw(st.integers(0, 3)) == 0:
            opts["gw_name"] = "pepe"
        rule_sections.append((f"r{i}", "bmx7wg_out", opts))
    bmx7_prefix = ipaddress.ip_network(draw(st.sampled_from(["fd70::/16", "fd71::/16"])))
    ctx = policy.PolicyContext(
        own_node_id=ME, auto_prefix=AUTO_PREFIX, rules=policy.parse_rules(rule_sections, "wgmesh"),
        local_networks=LOCAL_NETWORKS, local_addresses=LOCAL_ADDRESSES, originators=origs,
        now=now, bmx7_prefix=bmx7_prefix,
        allow_nodes=tuple(draw(st.sampled_from([(), (), tuple(nodes[:2]), ("pepe",)]))))
    return World(ctx, adverts, good)


def with_ctx(ctx, **changes):
    return record.replace(ctx, **changes)


# ---------------------------------------------------------------------------- invariants

def wireguard_apply(sel, order):
    """WireGuard semantics: setting an allowed-ip on a peer silently takes it from any other."""
    state: dict[str, set[str]] = {}
    decisions = [d for d in sel.peers.values() if d.allowed_ips]
    for d in sorted(decisions, key=lambda d: order.index(d.node_id)):
        for other in state.values():
            other.difference_update(d.allowed_ips)
        state.setdefault(d.public_key, set()).update(d.allowed_ips)
    return state


def rule_accepts(rule, net, nid, name):
    return (net.version == rule.network.version and net.subnet_of(rule.network)
            and rule.min_prefix_len <= net.prefixlen <= rule.max_prefix_len
            and (not rule.gw_ids or any(nid.startswith(g) for g in rule.gw_ids))
            and (not rule.gw_names or name in rule.gw_names))


def check_invariants(world: World, sel: policy.Selection):
    ctx = world.ctx
    configured = [d for d in sel.peers.values() if d.allowed_ips]
    # exactly one peer per allowed-ip and per public key; WireGuard keeps what we asked for
    cidrs = [c for d in configured for c in d.allowed_ips]
    assert len(cidrs) == len(set(cidrs))
    assert len({d.public_key for d in configured}) == len(configured)
    desired = {d.public_key: set(d.allowed_ips) for d in configured}
    assert wireguard_apply(sel, sorted(sel.peers)) == desired
    assert wireguard_apply(sel, sorted(sel.peers, reverse=True)) == desired
    endpoints = [ipaddress.ip_address(o.primary_ip) for o in ctx.originators.values()]
    locals_ = [ipaddress.ip_address(a) for a in ctx.local_addresses]
    for d in configured:
        assert d.status == "accepted" and d.endpoint and d.node_id in ctx.originators
        adv = world.adverts[d.node_id]
        offered = {str(n) for n in (*adv.addresses, *adv.networks)}
        assert set(d.allowed_ips) <= offered
        assert {r.network for r in d.routes} == set(d.allowed_ips)
        for cidr in d.allowed_ips:
            net = ipaddress.ip_network(cidr)
            assert not (net.version == 6 and net.overlaps(ctx.bmx7_prefix)), cidr
            assert not any(ip.version == net.version and ip in net for ip in endpoints + locals_), cidr
            assert not any(ln.version == net.version and net.subnet_of(ln) for ln in ctx.local_networks), cidr
            assert not any(r.version == net.version and net.subnet_of(r) for r in policy.RESERVED), cidr
            if net.version == 6 and net.overlaps(AUTO_PREFIX):
                assert cidr == auto(d.node_id)          # tunnel addresses only for their own node
            else:
                name = ctx.originators[d.node_id].name
                assert any(rule_accepts(r, net, d.node_id, name) for r in ctx.rules), cidr
    for nid in world.good:
        if nid in ctx.originators and sel.peers[nid].status != "rejected":
            assert auto(nid) in sel.peers[nid].allowed_ips
    for d in sel.peers.values():
        if d.status != "accepted":
            assert not d.allowed_ips and not d.routes


def comparable(sel):
    return sel.peers, sel.holders, sel.conflicts, sel.claimed_since, sel.key_since


# ---------------------------------------------------------------------------- properties

@SETTINGS
@given(worlds())
def test_invariants_on_random_and_hostile_adverts(world):
    sel = policy.select(world.ctx, world.adverts)
    check_invariants(world, sel)
    assert set(sel.peers) == set(world.adverts)


@SETTINGS
@given(worlds(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_dict_order(world, rnd):
    items = list(world.adverts.items())
    rnd.shuffle(items)
    assert comparable(policy.select(world.ctx, dict(items))) == comparable(policy.select(world.ctx, world.adverts))


@SETTINGS
@given(worlds(), st.randoms(use_true_random=False))
def test_incremental_arrival_at_one_instant_equals_all_at_once(world, rnd):
    order = list(world.adverts)
    rnd.shuffle(order)
    sel = None
    for i in range(1, len(order) + 1):
        sel = policy.select(with_ctx(world.ctx, previous=sel), {n: world.adverts[n] for n in order[:i]})
    once = policy.select(world.ctx, world.adverts)
    assert comparable(sel) == comparable(once)


@SETTINGS
@given(worlds(now=0.0), st.randoms(use_true_random=False))
def test_arrival_over_time_keeps_invariants_and_settles(world, rnd):
    order = list(world.adverts)
    rnd.shuffle(order)
    sel, now = None, 0.0
    for i in range(1, len(order) + 1):
        now += 1
        seen = {n: world.adverts[n] for n in order[:i]}
        sel = policy.select(with_ctx(world.ctx, previous=sel, now=now), seen)
        check_invariants(World(world.ctx, seen, world.good & set(seen)), sel)
    # With no input change the result settles: hysteresis protects a holder only from the call
    # after it was chosen, so one later call may still tip an overlap its way; after that the
    # result must not move again (no flapping) and nothing new is logged.
    again = policy.select(with_ctx(world.ctx, previous=sel, now=now + 5), world.adverts)
    check_invariants(World(world.ctx, world.adverts, world.good), again)
    still = policy.select(with_ctx(world.ctx, previous=again, now=now + 10), world.adverts)
    assert still.peers == again.peers and still.holders == again.holders
    assert still.new_conflicts == ()       # nothing changed: nothing new to log


@SETTINGS
@given(worlds(now=0.0))
def test_good_peers_keep_their_address_and_key_against_later_hostile_adverts(world):
    """Honest nodes seen first keep everything when copycats of their keys show up later."""
    honest = {n: a for n, a in world.adverts.items() if isinstance(a, Advert)
              and a.public_key == key(n) and ipaddress.ip_network(auto(n)) in a.addresses}
    first = policy.select(with_ctx(world.ctx, now=1.0), honest)
    copycats = {}
    strangers = [n for n in POOL if n not in world.adverts] if honest else []
    for i, nid in enumerate(strangers):
        victim = sorted(honest)[i % len(honest)]
        copycats[nid] = Advert(public_key=key(victim), port=1,
                               addresses=(ipaddress.ip_network(auto(victim)),),
                               networks=(ipaddress.ip_network(auto(victim)), ipaddress.ip_network("::/0")))
    origs = {**world.ctx.originators, **{n: originator(n, metric=10**12) for n in copycats}}
    later = policy.select(with_ctx(world.ctx, previous=first, now=2.0, originators=origs),
                          {**world.adverts, **copycats})
    for nid in honest:
        if first.peers[nid].status == "accepted":
            assert auto(nid) in later.peers[nid].allowed_ips
            assert later.peers[nid].public_key == key(nid) and later.peers[nid].status == "accepted"
    for nid in copycats:
        assert later.peers[nid].allowed_ips == ()


@SETTINGS
@given(worlds())
def test_proven_keys_protect_good_peers_on_a_fresh_observer(world):
    proven = {key(n): n for n in world.good}
    sel = policy.select(with_ctx(world.ctx, proven_keys=proven), world.adverts)
    check_invariants(world, sel)
    for nid in world.good:
        if nid in world.ctx.originators and sel.peers[nid].status != "rejected":
            assert sel.peers[nid].public_key == key(nid)


ENDPOINT_POOL = [(6, 0xfd70 << 112 | 1), (6, 0xfd70 << 112 | 2), (4, 0x0a000001), (4, 0x0a000002)]


@SETTINGS
@given(moves=st.lists(st.tuples(st.integers(0, 5), st.sampled_from([None, *ENDPOINT_POOL])), max_size=40))
def test_endpoint_index_equals_the_set_of_addresses_nodes_have(moves):
    """_Endpoints after any sequence of nodes moving between a few shared addresses: each
    address any node has is listed once, in order; `touched` named every appearance and
    disappearance."""
    idx, have, touched, seen = policy._Endpoints(), {}, [], set()
    for node, ip in moves:
        idx.move(have.get(node), ip, touched)
        if ip is None:
            have.pop(node, None)
        else:
            have[node] = ip
        now = set(have.values())
        assert sorted(touched) == sorted(now ^ seen)
        touched.clear()
        seen = now
        assert idx.by_version == {v: sorted(a for ver, a in now if ver == v) for v in (4, 6)}
        counts = {}
        for ip in have.values():
            counts[ip] = counts.get(ip, 0) + 1
        assert idx.copies == {ip: n - 1 for ip, n in counts.items() if n > 1}
