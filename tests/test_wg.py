"""wg.py against real WireGuard (wireguard-go here) in network namespaces wgb-*."""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import resource
import secrets
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmx7wg import routes
from bmx7wg.model import DeviceState, PeerSpec, PeerState, cidrs
from bmx7wg.sessions import STALE_HANDSHAKE, wall_live
from bmx7wg.wg import (Backend, DumpReader, WgError, _peer_boundary, canonical_endpoint,
                       parse_dump, plan, plan_changed, same_endpoint)
from wgb_netns import Netns, inside, make_key, pids_in, sh

SOCK = "/var/run/wireguard/{}.sock"


def synthetic_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def spec(key, ips=(), endpoint=None) -> PeerSpec:
    return PeerSpec(key, endpoint, cidrs(ips))


@pytest.fixture
def ns_a():
    ns = Netns("wgb-a")
    yield ns
    ns.close()


@pytest.fixture
def ns_b():
    ns = Netns("wgb-b")
    yield ns
    ns.close()


@pytest.fixture
def dev(ns_a):
    """A WireGuard link wgb0 in wgb-a; yields (backend, ifname), test code runs inside."""
    backend = Backend()
    with inside(ns_a.name):
        backend.ensure_link("wgb0", 1420)
        yield backend, "wgb0"


def link_json(ns: Netns, ifname: str) -> dict:
    return json.loads(ns.ip("-d", "-j", "link", "show", "dev", ifname).stdout)[0]


def wait_gone(path: str, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(path)


# ---------------------------------------------------------------- links

def kernel_has_wireguard(ns: Netns) -> bool:
    probe = ns.ip("link", "add", "wgbprobe", "type", "wireguard", check=False)
    ns.ip("link", "del", "wgbprobe", check=False)
    return probe.returncode == 0


def test_ensure_link_falls_back_to_wireguard_go_and_reuses(ns_a):
    expected = "kernel" if kernel_has_wireguard(ns_a) else "userspace"
    backend = Backend()
    with inside(ns_a.name):
        assert backend.ensure_link("wgb0", 1380) == expected
        assert backend.link_exists("wgb0")
        first_pids = pids_in(ns_a.name)
        # a second backend (helper restart) reuses the link and the process
        assert Backend().ensure_link("wgb0", 1380) == expected
        assert pids_in(ns_a.name) == first_pids
    info = link_json(ns_a, "wgb0")
    assert info["mtu"] == 1380 and "UP" in info["flags"]
    if expected == "userspace":
        assert len(first_pids) == 1 and os.path.exists(SOCK.format("wgb0"))
    with inside(ns_a.name):
        backend.delete_link("wgb0")
        assert not backend.link_exists("wgb0")
    assert pids_in(ns_a.name) == []
    assert not os.path.exists(SOCK.format("wgb0"))


def test_kernel_backend_reported_when_ip_link_add_succeeds(ns_a, tmp_path):
    """`ip link add type wireguard` succeeding (here: an ip whose `link add` brings up
    a real wireguard-go, standing in for the module) selects the kernel ops."""
    fake_ip = tmp_path / "ip"
    fake_ip.write_text(
        '#!/bin/sh\n'
        'if [ "$1 $2" = "link add" ] && [ "$5 $6" = "type wireguard" ]; then\n'
        '  exec wireguard-go "$4" 2>/dev/null\nfi\nexec ip "$@"\n')
    fake_ip.chmod(0o755)
    backend = Backend(ip=str(fake_ip))
    with inside(ns_a.name):
        assert backend.ensure_link("wgb1", 1400) == "kernel"
        assert backend.dump("wgb1") is not None       # it is a working WireGuard link
        assert Backend().ensure_link("wgb1", 1400) == "userspace"   # truthfully detected
        backend.delete_link("wgb1")
        assert not backend.link_exists("wgb1")
    assert wait_gone(SOCK.format("wgb1"))


def test_ensure_link_refuses_a_link_that_is_not_wireguard(ns_a):
    ns_a.ip("link", "add", "wgb5", "type", "veth", "peer", "name", "wgb6")
    with inside(ns_a.name), pytest.raises(WgError) as err:
        Backend().ensure_link("wgb5", 1420)
    assert "wgb5" in str(err.value) and "\n" not in str(err.value)
    assert ns_a.ip("link", "show", "wgb5").returncode == 0    # left alone


def test_stale_socket_is_replaced_and_removed(ns_a):
    path = SOCK.format("wgb3")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)                     # closed without listen: a dead socket file
    backend = Backend()
    with inside(ns_a.name):
        backend.ensure_link("wgb3", 1420)
        assert backend.dump("wgb3") is not None
        backend.delete_link("wgb3")
    assert not os.path.exists(path)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
    with inside(ns_a.name):
        Backend().delete_link("wgb3")   # no link at all: still clears the leftover
    assert not os.path.exists(path)


def test_same_name_in_another_namespace_is_refused(ns_a, ns_b):
    with inside(ns_b.name):
        Backend().ensure_link("wgb4", 1420)
    other = pids_in(ns_b.name)
    with inside(ns_a.name), pytest.raises(WgError, match="wgb4.*outside this network namespace"):
        Backend().ensure_link("wgb4", 1420)
    assert pids_in(ns_b.name) == other and os.path.exists(SOCK.format("wgb4"))


def test_under_ip_netns_exec(ns_a):
    """The lab runs the helper with `ip netns exec`; the same calls work there."""
    code = ("from bmx7wg.wg import Backend; b = Backend(); k = b.ensure_link('wgb7', 1300);"
            "d = b.dump('wgb7'); print(k, d.listen_port > 0); b.delete_link('wgb7');"
            "print(b.link_exists('wgb7'))")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    out = sh("ip", "netns", "exec", ns_a.name, "python3", "-c", code, env=env).stdout.split()
    assert out[1:] == ["True", "False"] and out[0] in ("kernel", "userspace")
    assert pids_in(ns_a.name) == [] and not os.path.exists(SOCK.format("wgb7"))


# ---------------------------------------------------------------- dump and device

def test_parse_dump_fields_and_dropped_secrets():
    priv, psk, k1, k2 = (synthetic_key() for _ in range(4))
    text = (f"{priv}\t(none)\t51820\t0x1f\n"
            f"{k1}\t{psk}\t[fd00::1]:51820\tfd77::1/128,10.0.0.0/24\t1732550000\t10\t20\t25\n"
            f"{k2}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n")
    state = parse_dump(text)
    assert state.public_key is None and state.listen_port == 51820 and state.fwmark == 0x1f
    p1, p2 = state.peers[k1], state.peers[k2]
    assert (p1.endpoint, p1.allowed_ips, p1.latest_handshake, p1.rx, p1.tx, p1.keepalive) == \
        ("[fd00::1]:51820", ("10.0.0.0/24", "fd77::1/128"), 1732550000, 10, 20, 25)   # sorted
    assert (p2.endpoint, p2.allowed_ips, p2.latest_handshake, p2.keepalive) == \
        (None, (), None, 0)
    assert priv not in repr(state) and psk not in repr(state)


def test_parse_dump_builds_peers_from_the_known_ones():
    priv, k1, k2, k3 = (synthetic_key() for _ in range(4))
    head = f"{priv}\t(none)\t51820\toff\n"
    first = parse_dump(head + f"{k1}\t(none)\t[fd00::1]:51820\tfd77::1/128,10.0.0.0/24\t0\t0\t0\t25\n"
                       f"{k2}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n")
    known = first.peers
    same = parse_dump(head + f"{k1}\t(none)\t[fd00::1]:51820\t10.0.0.0/24,fd77::1/128\t0\t0\t0\t25\n"
                      f"{k2}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n", known)
    assert same.peers[k1] is known[k1] and same.peers[k2] is known[k2]   # any allowed-ips order
    moved = parse_dump(head + f"{k1}\t(none)\t[fd00::1]:51820\tfd77::1/128,10.0.0.0/24\t1732550000\t10\t20\t25\n"
                       f"{k2}\t(none)\t[fd00::2]:1\t10.9.0.0/16\t0\t0\t0\toff\n"
                       f"{k3}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n", known)
    p1, p2 = moved.peers[k1], moved.peers[k2]
    # new handshake and counters: the same object, brought up to date in place
    assert (p1.latest_handshake, p1.rx, p1.tx) == (1732550000, 10, 20) and p1 is known[k1]
    assert p2 is not known[k2] and known[k2].endpoint is None     # a new endpoint: a new object
    assert (p2.endpoint, p2.allowed_ips) == ("[fd00::2]:1", ("10.9.0.0/16",))
    assert moved.peers[k3].public_key == k3 and set(moved.peers) == {k1, k2, k3}
    assert parse_dump(head, known).peers == {}     # a peer gone from the kernel is gone


@pytest.mark.parametrize("size", [1, 7, 100, 1 << 18])
def test_a_dump_read_in_chunks_is_the_dump_parsed_whole(size):
    priv, psk, *keys = (synthetic_key() for _ in range(6))
    text = f"{priv}\t(none)\t51820\toff\n" + "".join(
        f"{k}\t{psk if i == 2 else '(none)'}\t[fd00::{i}]:51820\tfd77::{i}/128,10.{i}.0.0/16\t{1732550000 + i}\t{i}"
        f"\t{10 ** 12 + i}\t{'off' if i % 2 else 25}\n" for i, k in enumerate(keys))
    for body in (text, text[:-1]):                 # with and without the last line's end
        reader = DumpReader()
        for i in range(0, len(body), size):
            reader.feed(body[i:i + size].encode())
        assert reader.finish() == parse_dump(text)
    assert len(parse_dump(text).peers) == 4


def test_a_bad_line_fails_the_dump_at_its_end_without_quoting_it():
    priv, psk, k1 = (synthetic_key() for _ in range(3))
    reader = DumpReader()
    reader.feed(f"{priv}\t(none)\t51820\toff\n{k1}\t{psk}\tnonsense\n".encode())   # no raise here
    reader.feed(f"{k1}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n".encode())
    with pytest.raises(WgError, match="unexpected line 2$") as err:
        reader.finish()
    assert psk not in str(err.value) and priv not in str(err.value)
    with pytest.raises(WgError, match="empty output"):
        DumpReader().finish()
    for tail in (b"\xff\xfe\n", b"\xff\xfe"):           # not text, ended or not
        bad = DumpReader()
        bad.feed(tail)
        with pytest.raises(WgError, match="unexpected line 1$"):
            bad.finish()


def test_configure_device_writes_only_differences(dev, tmp_path):
    backend, ifname = dev
    key_path, public = make_key(tmp_path)
    assert backend.configure_device(ifname, key_path, 51555) == 1
    state = backend.dump(ifname)
    assert (state.public_key, state.listen_port, state.fwmark) == (public, 51555, 0)
    assert backend.configure_device(ifname, key_path, 51555) == 0
    assert backend.configure_device(ifname, key_path, 51556, fwmark=7, public_key=public) == 1
    state = backend.dump(ifname)
    assert (state.listen_port, state.fwmark) == (51556, 7)
    assert backend.writes == 2
    with open(key_path) as f:
        assert f.read().strip() not in repr(state)
    with pytest.raises(WgError, match="missing"):
        backend.configure_device(ifname, str(tmp_path / "missing"), 51556)


def test_dump_of_missing_device_is_none(dev):
    backend, _ = dev
    assert backend.dump("wgbnone") is None


# ---------------------------------------------------------------- plan / apply

def test_unchanged_means_zero_writes(dev):
    backend, ifname = dev
    desired = {k: spec(k, [f"fd77:b::{i}/128", f"10.7.{i}.0/24"], f"[fd00:bb::{i}]:5182{i}")
               for i, k in enumerate((synthetic_key() for _ in range(3)), 1)}
    assert backend.apply(ifname, plan(backend.dump(ifname), desired, set(), keepalive=25)) == 1
    for _ in range(2):
        args = plan(backend.dump(ifname), desired, set(desired), keepalive=25)
        assert args == [] and backend.apply(ifname, args) == 0
    assert backend.writes == 1


def test_one_change_is_one_write_touching_one_peer(dev):
    backend, ifname = dev
    keys = [synthetic_key() for _ in range(3)]
    desired = {k: spec(k, [f"10.8.{i}.0/24"], f"10.99.0.{i}:51820") for i, k in enumerate(keys)}
    backend.apply(ifname, plan(backend.dump(ifname), desired, set()))
    desired[keys[1]] = spec(keys[1], ["10.8.1.0/24"], "10.99.0.1:51999")
    args = plan(backend.dump(ifname), desired, set(keys))
    assert args == ["peer", keys[1], "endpoint", "10.99.0.1:51999"]
    before = backend.writes
    assert backend.apply(ifname, args) == 1 and backend.writes == before + 1
    assert backend.dump(ifname).peers[keys[1]].endpoint == "10.99.0.1:51999"


def test_keepalive_is_the_interfaces_for_every_peer(dev):
    backend, ifname = dev
    keys = sorted(synthetic_key() for _ in range(2))
    desired = {k: spec(k, [f"10.6.{i}.0/24"], f"10.99.0.{i}:51820") for i, k in enumerate(keys)}
    backend.apply(ifname, plan(backend.dump(ifname), desired, set()))
    args = plan(backend.dump(ifname), desired, set(keys), keepalive=15)
    assert args == [a for k in keys for a in ("peer", k, "persistent-keepalive", "15")]
    assert backend.apply(ifname, args) == 1
    assert [p.keepalive for p in backend.dump(ifname).peers.values()] == [15, 15]
    assert plan(backend.dump(ifname), desired, set(keys), keepalive=15) == []
    assert plan(backend.dump(ifname), desired, set(keys)) == \
        [a for k in keys for a in ("peer", k, "persistent-keepalive", "off")]


def test_only_owned_peers_are_removed(dev, ns_a):
    backend, ifname = dev
    ours, foreign = synthetic_key(), synthetic_key()
    backend.apply(ifname, plan(None, {ours: spec(ours, ["10.9.0.0/24"])}, set()))
    sh("wg", "set", ifname, "peer", foreign, "allowed-ips", "10.9.1.0/24")   # an admin's peer
    args = plan(backend.dump(ifname), {}, {ours})
    assert args == ["peer", ours, "remove"]
    backend.apply(ifname, args)
    assert set(backend.dump(ifname).peers) == {foreign}
    assert plan(backend.dump(ifname), {}, {ours}) == []


def test_allowed_ips_are_replaced_as_a_whole(dev):
    """Measured semantics: `allowed-ips` on `wg set` replaces the peer's set."""
    backend, ifname = dev
    a, b = synthetic_key(), synthetic_key()
    desired = {a: spec(a, ["10.1.0.0/24", "fd77:1::/64"]), b: spec(b, ["10.2.0.0/24"])}
    backend.apply(ifname, plan(None, desired, set()))
    desired[a] = spec(a, ["fd77:1::/64", "10.3.0.5/24"])        # host bits: canonicalised
    args = plan(backend.dump(ifname), desired, {a, b})
    assert args == ["peer", a, "allowed-ips", "10.3.0.0/24,fd77:1::/64"]
    backend.apply(ifname, args)
    assert backend.dump(ifname).peers[a].allowed_ips == ("10.3.0.0/24", "fd77:1::/64")
    # moving a network from b to a: b's new set without it, a's with it, one write
    desired = {a: spec(a, ["10.2.0.0/24"]), b: spec(b, [])}
    backend.apply(ifname, plan(backend.dump(ifname), desired, {a, b}))
    peers = backend.dump(ifname).peers
    assert peers[a].allowed_ips == ("10.2.0.0/24",) and peers[b].allowed_ips == ()
    assert plan(backend.dump(ifname), desired, {a, b}) == []


def test_endpoint_notation_does_not_cause_writes(dev):
    backend, ifname = dev
    k = synthetic_key()
    backend.apply(ifname, plan(None, {k: spec(k, endpoint="[FD00:0:0::0001]:51820")}, set()))
    assert backend.dump(ifname).peers[k].endpoint == "[fd00::1]:51820"
    assert plan(backend.dump(ifname), {k: spec(k, endpoint="[fd00::1]:51820")}, {k}) == []
    assert canonical_endpoint("[::ffff:10.0.0.1]:7") == "10.0.0.1:7"
    assert same_endpoint("[fe80::1%eth0]:5", "[fe80::1]:5")
    assert not same_endpoint("[fe80::1%eth0]:5", "[fe80::1%eth1]:5")
    # a changed endpoint with no live session is written
    assert plan(backend.dump(ifname), {k: spec(k, endpoint="[fd00::2]:51820")}, {k}) == \
        ["peer", k, "endpoint", "[fd00::2]:51820"]


def test_bad_allowed_ip_is_a_one_line_error():
    k = synthetic_key()
    with pytest.raises(WgError, match=rf"peer {re.escape(k[:8])}: bad allowed IP"):
        plan(None, {k: spec(k, ["10.0.0.0/33"])}, set())


POOL = [synthetic_key() for _ in range(6)]


def peer_at(i: int):
    return st.builds(
        lambda nets, ep: spec(POOL[i], [f"10.{i}.{n}.0/24" for n in nets],
                              f"[fd00:bb::{ep}]:51820" if ep else None),
        st.sets(st.integers(0, 3), max_size=3), st.integers(0, 2))
keepalives = st.sampled_from([0, 25])


# peers drawn from a pool of six keys; each key owns its own networks, so no overlaps
peers_strategy = st.sets(st.integers(0, 5)).flatmap(
    lambda idx: st.tuples(*[peer_at(i) for i in sorted(idx)]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=peers_strategy, desired=peers_strategy, owned=st.sets(st.sampled_from(POOL)),
       ka_before=keepalives, ka=keepalives)
def test_plan_apply_converges_and_respects_ownership(dev, initial, desired, owned, ka_before, ka):
    backend, ifname = dev
    leftover = backend.dump(ifname).peers
    if leftover:
        sh("wg", "set", ifname, *[a for k in leftover for a in ("peer", k, "remove")])
    backend.apply(ifname, plan(None, {p.public_key: p for p in initial}, set(), keepalive=ka_before))
    want = {p.public_key: p for p in desired}
    before = backend.dump(ifname)
    args = plan(before, want, owned, keepalive=ka)
    writes = backend.writes
    assert backend.apply(ifname, args) == (1 if args else 0) == backend.writes - writes
    after = backend.dump(ifname)
    for key, p in want.items():
        got = after.peers[key]
        assert got.allowed_ips == p.allowed_ips and got.keepalive == ka
        assert got.endpoint == (p.endpoint or (before.peers[key].endpoint if key in before.peers else None))
    kept = {k for k in before.peers if k not in want and k not in owned}
    assert set(after.peers) == set(want) | kept
    assert plan(after, want, owned, keepalive=ka) == []


def as_device(specs, handshake=None, keepalive=0) -> DeviceState:
    """The device after these specs were applied (what reconcile patches into its cache)."""
    return DeviceState(public_key=None, listen_port=1, peers={
        p.public_key: PeerState(p.public_key, p.endpoint, p.allowed_ips, handshake, 0, 0, keepalive)
        for p in specs})


@settings(max_examples=200, deadline=None)
@given(before=peers_strategy, after=peers_strategy, owned=st.sets(st.sampled_from(POOL)),
       live=st.booleans())
def test_plan_changed_equals_plan_when_the_model_is_current(before, after, owned, live):
    """With the device model up to date, planning only the keys that changed gives the
    same `wg set` as planning everything."""
    now = 1_000_000
    current = as_device(before, handshake=now - 10 if live else None)
    live = functools.partial(wall_live, wall_now=now)
    want = {p.public_key: p for p in after}
    old = {p.public_key: p for p in before}
    changed = {k for k in old.keys() | want.keys() if old.get(k) != want.get(k)}
    assert plan_changed(current, want, owned, changed, live=live) == plan(current, want, owned, live=live)
    assert plan_changed(current, want, owned, set(POOL), live=live) == plan(current, want, owned, live=live)
    assert plan_changed(current, old, owned, (), live=live) == [] == plan(current, old, owned, live=live)
    # canonical text vouched for (the policy's): the same arguments, without parsing it again
    for device in (current, None):
        assert plan(device, want, owned, live=live, canonical=True) == plan(device, want, owned, live=live)
        assert plan_changed(device, want, owned, changed, live=live, canonical=True) == \
            plan_changed(device, want, owned, changed, live=live)


# ---------------------------------------------------------------- two nodes, real traffic

def node(ns: Netns, backend: Backend, ifname: str, port: int, tmp_path) -> str:
    key_path, public = make_key(tmp_path)
    with inside(ns.name):
        backend.ensure_link(ifname, 1420)
        backend.configure_device(ifname, key_path, port, public_key=public)
    return public


def test_handshake_ping_and_roaming(ns_a, ns_b, tmp_path):
    ns_a.ip("link", "add", "wgbva", "type", "veth", "peer", "name", "wgbvb", "netns", ns_b.name)
    for ns, dev, addr in ((ns_a, "wgbva", "fd00:bb::1/64"), (ns_b, "wgbvb", "fd00:bb::2/64")):
        ns.ip("addr", "add", addr, "dev", dev, "nodad")
        ns.ip("link", "set", dev, "up")
    ba, bb = Backend(), Backend()
    pub_a = node(ns_a, ba, "wgb0", 51001, tmp_path)
    pub_b = node(ns_b, bb, "wgb1", 51002, tmp_path)
    want_a = {pub_b: spec(pub_b, ["fd77:b::2/128"], "[fd00:bb::2]:51002")}
    want_b = {pub_a: spec(pub_a, ["fd77:b::1/128"], "[fd00:bb::1]:51001")}
    for ns, b, ifname, want, me, other in ((ns_a, ba, "wgb0", want_a, "fd77:b::1", "fd77:b::2"),
                                          (ns_b, bb, "wgb1", want_b, "fd77:b::2", "fd77:b::1")):
        with inside(ns.name):
            assert b.apply(ifname, plan(b.dump(ifname), want, set())) == 1
            routes.sync_addresses(ifname, {f"{me}/128"})
            routes.sync_routes(ifname, {f"{other}/128"})
    ping = sh("ip", "netns", "exec", ns_a.name, "ping", "-6", "-c", "3", "-i", "0.2", "-w", "10",
              "fd77:b::2", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    with inside(ns_a.name):
        seen = ba.dump("wgb0").peers[pub_b]
        assert seen.latest_handshake and seen.rx > 0 and seen.tx > 0
        assert seen.endpoint == "[fd00:bb::2]:51002"
        assert plan(ba.dump("wgb0"), want_a, {pub_b}) == []
        # a stale advert names a wrong endpoint while the session is live: not fought
        moved = {pub_b: spec(pub_b, ["fd77:b::2/128"], "[fd00:bb::99]:51002")}
        assert plan(ba.dump("wgb0"), moved, {pub_b}) == []
        later = seen.latest_handshake + STALE_HANDSHAKE + 1
        stale = functools.partial(wall_live, wall_now=later)
        assert plan(ba.dump("wgb0"), moved, {pub_b}, stale) == \
            ["peer", pub_b, "endpoint", "[fd00:bb::99]:51002"]
        ba.apply("wgb0", plan(ba.dump("wgb0"), moved, {pub_b}, stale))
        assert ba.dump("wgb0").peers[pub_b].endpoint == "[fd00:bb::99]:51002"
    # B talks to A; A learns B's real address again (roaming)
    sh("ip", "netns", "exec", ns_b.name, "ping", "-6", "-c", "2", "-i", "0.2", "-w", "10", "fd77:b::1")
    with inside(ns_a.name):
        assert ba.dump("wgb0").peers[pub_b].endpoint == "[fd00:bb::2]:51002"
        assert plan(ba.dump("wgb0"), moved, {pub_b}) == []    # live session keeps it


# ---------------------------------------------------------------- scale

def synthetic_peers(n: int) -> dict[str, PeerSpec]:
    return {k: spec(k, [f"fd77:{i >> 16:x}:{i & 0xffff:x}::1/128", f"10.{i >> 8 & 255}.{i & 255}.0/24"],
                    f"[fd70::{i + 1:x}]:51820")
            for i, k in enumerate(synthetic_key() for _ in range(n))}


def test_1000_peers_in_one_write(dev, capsys):
    backend, ifname = dev
    desired = synthetic_peers(1000)
    t0 = time.perf_counter()
    args = plan(backend.dump(ifname), desired, set())
    t1 = time.perf_counter()
    assert backend.apply(ifname, args) == 1
    t2 = time.perf_counter()
    state = backend.dump(ifname)
    t3 = time.perf_counter()
    assert len(state.peers) == 1000 and plan(state, desired, set(desired)) == []
    t4 = time.perf_counter()
    victim = sorted(desired)[500]
    desired[victim] = spec(victim, ["10.250.0.0/24"], desired[victim].endpoint)
    args = plan(backend.dump(ifname), desired, set(desired))
    assert args == ["peer", victim, "allowed-ips", "10.250.0.0/24"]
    t5 = time.perf_counter()
    assert backend.apply(ifname, args) == 1
    t6 = time.perf_counter()
    with capsys.disabled():
        print(f"\n[wg 1000 peers] plan {t1 - t0:.3f}s, cold apply {t2 - t1:.3f}s, dump {t3 - t2:.3f}s,"
              f" warm dump+plan {t5 - t4:.3f}s, single-peer apply {t6 - t5:.3f}s")


def test_batch_beyond_arg_max_is_split(dev):
    """With a 1 MiB stack limit ARG_MAX is 256 KiB: 2,000 peers (~400 KB) need two writes."""
    backend, ifname = dev
    desired = synthetic_peers(2000)
    args = plan(None, desired, set())
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, hard))
    try:
        writes = backend.apply(ifname, args)
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))
    assert writes >= 2 and backend.writes == writes
    state = backend.dump(ifname)
    assert len(state.peers) == 2000 and plan(state, desired, set(desired)) == []


def test_a_refused_batch_is_cut_at_the_peer_nearest_its_middle():
    a, b, c = ("peer", "A" * 43 + "=", "remove"), ("peer", "B" * 43 + "=", "remove"), ("peer", "C" * 43 + "=")
    assert _peer_boundary([*a, *b, *c]) == 3
    assert _peer_boundary(["listen-port", "51820", *a, *b]) == 5     # the device fields stay in front
    assert _peer_boundary(["listen-port", "51820", *c]) == 2
    assert _peer_boundary([*c, "endpoint", "10.0.0.1:51820"]) is None  # one block: nothing to split
    assert _peer_boundary(["listen-port", "51820"]) is None


def test_cidrs_sorts_once_and_keeps_a_sorted_tuple():
    already = ("10.0.0.0/24", "fd77::1/128")
    assert cidrs(already) is already                      # a decision's tuple is shared, not copied
    assert cidrs(["fd77::1/128", "10.0.0.0/24", "fd77::1/128"]) == already
    assert cidrs(("fd77::1/128", "10.0.0.0/24")) == already
    assert cidrs(()) == () and cidrs(("a",)) == ("a",)
