"""Issue 2 end to end: virtual routers in network namespaces, the bmx7 file-interface emulator,
the real helper in every node, real WireGuard (wireguard-go here)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from labtools import wait_until, wg_dump, state

from bmx7wg.lab import mesh

HOLD = 8          # hold_down for the lab's helpers (s)
EMU = {"hop_delay": 0.05, "purge_timeout": 40, "refill_delay": 3}


def config_of(dump):
    """What a helper configured (not the traffic counters)."""
    return {k: (v[0], v[1]) for k, v in dump.items()}


def fully_meshed(lab):
    names = lab.names
    keys = {n: state(lab, n).get("public_key") for n in names}
    for n in names:
        dump = wg_dump(lab, n)
        want = {keys[m] for m in names if m != n}
        if None in want or set(dump) != want or not all(v[2] for v in dump.values()):
            return False
    return True


def ping_all_pairs(lab, involving=None):
    """Every node pings every other node's tunnel address (or only those pairs `involving` one
    node); WireGuard's own counters must move."""
    addr = {n: state(lab, n)["addresses"][0].split("/")[0] for n in lab.names}
    key = {n: state(lab, n)["public_key"] for n in lab.names}
    for src in lab.names:
        for dst in lab.names:
            if src == dst or involving not in (None, src, dst):
                continue
            before = wg_dump(lab, src)[key[dst]]
            r = lab.exec(src, ["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", addr[dst]], timeout=15)
            assert r.returncode == 0, f"{src} -> {dst} ({addr[dst]}): {r.stdout}{r.stderr}"
            after = wg_dump(lab, src)[key[dst]]
            assert after[4] > before[4] and after[3] > before[3], f"{src}->{dst}: no WireGuard traffic counted"
            route = lab.exec(src, ["ip", "-6", "route", "get", addr[dst]]).stdout
            assert f"dev {lab.ifname(src)}" in route


@pytest.fixture(scope="module")
def ring():
    lab = mesh.up(nodes=5, topology="ring", prefix="bmm", workdir="/tmp/bmx7wg-test-ring",
                  emulator_options=EMU, uci_options={"hold_down": str(HOLD)})
    try:
        wait_until(lambda: fully_meshed(lab), 60, "5-node ring to converge")
        yield lab
    finally:
        lab.down()


def test_line3_converges_and_pings_through_wireguard():
    lab = mesh.up(nodes=3, topology="line", prefix="bml", workdir="/tmp/bmx7wg-test-line",
                  emulator_options=EMU, uci_options={"hold_down": str(HOLD)})
    try:
        wait_until(lambda: fully_meshed(lab), 60, "3-node line to converge")
        ping_all_pairs(lab)
    finally:
        lab.down()


def test_ring5_converges_and_pings_through_wireguard(ring):
    ping_all_pairs(ring)
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "bmx7wg", "lab", "status", "--json", "--workdir", ring.workdir],
        capture_output=True, text=True, check=True).stdout)
    for node in status["nodes"]:
        assert len(node["peers"]) == 4
        assert {p["state"] for p in node["peers"]} <= {"active", "pending"}


def _configs(lab):
    return {n: config_of(wg_dump(lab, n)) for n in lab.names}


def _writes(lab):
    """Every node's `wg set` count as of now: from state files written after this call (a
    file is rewritten within a second of a change, so an older one may lag behind)."""
    t0 = time.time()
    wait_until(lambda: all(state(lab, n).get("updated", 0) > t0 for n in lab.names), 15, "fresh state files")
    return {n: state(lab, n).get("wg_writes") for n in lab.names}


def _assert_only_own_writes(lab, before, writes, node, own_writes):
    """WireGuard as `before` everywhere; `node` made `own_writes` writes, every other node none."""
    assert _configs(lab) == before
    after = _writes(lab)
    assert after[node] == own_writes, f"{node}'s new helper made {after[node]} writes, not {own_writes}"
    moved = [n for n in lab.names if n != node and after[n] != writes[n]]
    assert not moved, f"{moved} rewrote peers because {node}'s helper restarted"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["clean", "kill-9"])
def test_helper_restart_changes_nothing_anywhere(ring, sig):
    before = _configs(ring)
    writes = _writes(ring)
    ring.stop_helper("n3", sig)
    time.sleep(2)
    ring.start_helper("n3")
    wait_until(lambda: (state(ring, "n3").get("pid") or 0) > 0 and state(ring, "n3").get("bmx7", {}).get("published"),
               20, "n3 helper back")
    time.sleep(HOLD + 3)          # past the hold-down: a withdrawal would have been acted on by now
    _assert_only_own_writes(ring, before, writes, "n3", 0)


def test_link_deleted_after_helper_crash_comes_back_on_the_same_port(ring):
    """netifd's teardown deletes the link even after the helper died (kill -9, OOM) and starts
    a new helper on a new link: it listens on the previous run's random port again, so no other
    node rewrites anything and the tunnels come back with a handshake."""
    wait_until(lambda: len(state(ring, "n2")["owned"]) == 4, 10, "n2's state file to list its peers")
    before = _configs(ring)
    writes = _writes(ring)
    port = state(ring, "n2")["listen_port"]
    ring.stop_helper("n2", signal.SIGKILL)
    ring.delete_link("n2")
    ring.start_helper("n2")
    wait_until(lambda: fully_meshed(ring), 40, "ring whole again after n2's new link")
    assert state(ring, "n2")["listen_port"] == port
    ping_all_pairs(ring, involving="n2")          # the new link has its routes again
    _assert_only_own_writes(ring, before, writes, "n2", 2)    # new link: key and port, then all peers


def test_bmx7_restart_keeps_tunnels_and_republishes(ring):
    before = _configs(ring)
    n2_id = ring.node_id("n2")
    ring.restart_bmx7("n2")
    # the restarted bmx7 forgot the runtime sms registration: the helper must notice and redo it
    def republished():
        for n in ring.names:
            rcvd = os.path.join(ring.runtime_dir(n), "sms", "rcvdSms", f"{n2_id}:wgtun")
            if not os.path.exists(rcvd):
                return False
        return True
    wait_until(republished, 30, "n2's advert back on every node")
    time.sleep(2)
    assert _configs(ring) == before
    wait_until(lambda: fully_meshed(ring), 30, "handshakes after bmx7 restart")


def test_malformed_and_oversized_adverts_are_rejected_others_untouched(ring):
    before = _configs(ring)
    ring.stop_helper("n4", signal.SIGKILL)       # n4 now publishes garbage by hand
    n4 = ring.node_id("n4")
    send = os.path.join(ring.runtime_dir("n4"), "sms", "sendSms")
    for payload, needle in ((b"\xb7\x77\x10" + b"\x01\x05abc", "truncated"), (os.urandom(400), "limit 300")):
        tmp = os.path.join(send, ".wgtun.tmp")
        with open(tmp, "wb") as fh:
            fh.write(payload)
        os.rename(tmp, os.path.join(send, "wgtun"))

        def shown_rejected():
            for n in ("n1", "n2", "n3", "n5"):
                peer = next((p for p in state(ring, n).get("peers", []) if p["node_id"] == n4), None)
                if not peer or peer["state"] != "rejected" or needle not in (peer.get("reason") or ""):
                    return False
            return True
        wait_until(shown_rejected, 20, f"advert with '{needle}' shown as rejected")
        assert _configs(ring) == before, "a broken advert changed WireGuard peers"
    ring.start_helper("n4")
    wait_until(lambda: all(p["state"] != "rejected" for n in ring.names for p in state(ring, n).get("peers", [])),
               20, "n4 good again")


def test_session_key_node_is_relearnt_with_new_key(ring):
    ring.stop_helper("n5", signal.SIGTERM)
    old_key = state(ring, "n5")["public_key"]
    ring.set_option("n5", "key_mode", "session")
    ring.exec("n5", ["ip", "link", "del", ring.ifname("n5")])      # interface down, as netifd would
    ring.start_helper("n5")
    new_key = wait_until(lambda: state(ring, "n5").get("pid") and state(ring, "n5").get("public_key") != old_key
                         and state(ring, "n5")["public_key"], 20, "n5 with a new session key")

    def relearnt():
        return all(new_key in wg_dump(ring, n) and old_key not in wg_dump(ring, n) and wg_dump(ring, n)[new_key][2]
                   for n in ring.names if n != "n5")
    wait_until(relearnt, 40, "others to replace n5's key and handshake")


def test_key_file_0600_and_private_key_in_no_output(ring):
    for n in ring.names:
        cfg_key = os.path.join(ring.node(n)["dir"], "etc", "bmx7wg")
        st = state(ring, n)
        key_path = st.get("key_file")
        paths = [p for p in (key_path,) if p] or []
        for root, _dirs, files in os.walk(ring.node(n)["dir"]):
            paths += [os.path.join(root, f) for f in files if f.endswith(".key") and "node.key" not in f]
        assert paths, f"{n}: no key file found under {cfg_key}"
        secrets = []
        for p in set(paths):
            assert os.stat(p).st_mode & 0o777 == 0o600, f"{p} is not 0600"
            secrets.append(open(p).read().strip())
        env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
        base = [sys.executable, "-m", "bmx7wg", "--rundir", ring.rundir(n)]
        outputs = [subprocess.run(base + args, capture_output=True, text=True, env=env).stdout
                   for args in (["status"], ["status", "--json"], ["peers"], ["peers", "--json"])]
        outputs.append(open(os.path.join(ring.rundir(n), "wgmesh.json")).read())
        outputs.append(open(os.path.join(ring.node(n)["dir"], "log", "helper.log")).read())
        assert "public key" in outputs[0]
        for secret in secrets:
            for out in outputs:
                assert secret not in out


def test_node_that_leaves_is_removed_after_hold_down_only(ring):
    gone = ring.state["nodes"][-1]["name"]
    key = state(ring, gone)["public_key"]
    others = [n for n in ring.names if n != gone]
    ring.stop_helper(gone, signal.SIGTERM)          # withdraws its advert mesh-wide
    rcvd = os.path.join(ring.runtime_dir(others[0]), "sms", "rcvdSms", f"{ring.node_id(gone)}:wgtun")
    wait_until(lambda: not os.path.exists(rcvd), 15, "withdrawal to propagate")
    t0 = time.time()
    time.sleep(max(0, HOLD - 3))
    assert all(key in wg_dump(ring, n) for n in others), "peer removed before the hold-down ran out"
    wait_until(lambda: all(key not in wg_dump(ring, n) for n in others), 15, "peer removed after hold-down")
    assert time.time() - t0 >= HOLD - 3
    ring.start_helper(gone)                         # leave the ring as it was for later tests
    wait_until(lambda: fully_meshed(ring), 40, "ring whole again")


def test_helper_restarting_with_bmx7_keeps_peers_until_their_hold_down(ring):
    """n4's helper (kill -9) and bmx7 restart together while n5 leaves: rcvdSms starts empty
    and refills over seconds. The new helper keeps every peer of its previous run like a node
    gone missing, untouched when its advert comes back, removed after the hold-down if not."""
    keys = {n: state(ring, n)["public_key"] for n in ring.names}
    wait_until(lambda: len(state(ring, "n4")["owned"]) == 4, 10, "n4's state file to list its peers")
    ring.stop_helper("n4", signal.SIGKILL)
    ring.stop_helper("n5", signal.SIGTERM)          # withdraws its advert mesh-wide
    ring.restart_bmx7("n4")                         # rcvdSms wiped, refilled ~3 s later
    pid = ring.start_helper("n4")
    t0 = time.monotonic()
    while time.monotonic() - t0 < HOLD - 1:
        assert set(wg_dump(ring, "n4")) == {keys[n] for n in ring.names if n != "n4"}, \
            f"n4 dropped a peer {time.monotonic() - t0:.1f} s after its restart"
        time.sleep(0.3)
    wait_until(lambda: keys["n5"] not in wg_dump(ring, "n4"), 6, "n5 removed after the hold-down")
    assert state(ring, "n4")["pid"] == pid and state(ring, "n4")["wg_writes"] == 1
    with open(os.path.join(ring.node("n4")["dir"], "log", "helper.log")) as f:
        assert f"peer {ring.node_id('n5')[:8]} removed" in f.read()
    ring.start_helper("n5")
    wait_until(lambda: fully_meshed(ring), 40, "ring whole again")


def test_helper_started_long_before_bmx7_keeps_its_peers_until_bmx7_refills(ring):
    """The kept peers' hold-down runs from the first step (bmx7 answering), not from the start."""
    before = set(wg_dump(ring, "n3"))
    wait_until(lambda: len(state(ring, "n3")["owned"]) == 4, 10, "n3's state file to list its peers")
    ring.stop_helper("n3", signal.SIGKILL)
    ring.stop_bmx7("n3")
    pid = ring.start_helper("n3")
    time.sleep(HOLD + 2)                            # longer than the hold-down, bmx7 still down
    assert set(wg_dump(ring, "n3")) == before, "peers removed while bmx7 was down"
    ring.start_bmx7("n3")                           # rcvdSms refills ~3 s later
    t0 = time.monotonic()
    while time.monotonic() - t0 < HOLD - 1:
        assert set(wg_dump(ring, "n3")) == before, f"n3 dropped a peer {time.monotonic() - t0:.1f} s after bmx7 started"
        time.sleep(0.3)
    assert state(ring, "n3")["pid"] == pid and state(ring, "n3")["wg_writes"] == 0
    wait_until(lambda: fully_meshed(ring), 40, "ring whole again")


def test_clock_behind_advertises_session_key_until_it_catches_up(ring):
    """A router booting with its clock behind its last run must not use the persisted key
    (peers drop handshakes whose timestamp goes backwards); it returns to it afterwards."""
    node = "n2"
    persisted = state(ring, node)["public_key"]
    ring.stop_helper(node, signal.SIGTERM)
    ring.start_helper(node, env={"BMX7WG_CLOCK_OFFSET": "-15"})    # 15 s behind the recorded stop
    session = wait_until(lambda: state(ring, node).get("pid") and state(ring, node).get("clock_behind_until")
                         and state(ring, node)["public_key"], 20, "helper on a session key")
    assert session != persisted

    def others_use(key):
        return all(key in wg_dump(ring, n) and wg_dump(ring, n)[key][2] for n in ring.names if n != node)
    wait_until(lambda: others_use(session), 30, "peers to handshake with the session key")
    wait_until(lambda: state(ring, node).get("clock_behind_until") is None
               and state(ring, node)["public_key"] == persisted, 30, "return to the persisted key")
    wait_until(lambda: others_use(persisted) and all(session not in wg_dump(ring, n)
                                                     for n in ring.names if n != node),
               40, "peers back on the persisted key")
    ring.stop_helper(node, signal.SIGTERM)
    ring.start_helper(node)


@pytest.mark.parametrize("step", [-86400, 86400], ids=["back-a-day", "forward-a-day"])
def test_clock_step_neither_stalls_the_helper_nor_cuts_a_hold_down_short(ring, step):
    """NTP stepping a router's clock while the helper runs (by a day here, 6 s after its start):
    the helper goes on ticking, a node that left just before the step is removed after the
    hold-down, counted on the monotonic clock: not a day later, not at once; and sessions live
    before the step are still shown live after it (WireGuard's handshake stamps are wall clock)."""
    keys = {n: state(ring, n)["public_key"] for n in ring.names}
    ping_all_pairs(ring, involving="n3")            # fresh handshakes, on a link the restart keeps
    ring.stop_helper("n3", signal.SIGTERM)
    started = time.monotonic()
    pid = ring.start_helper("n3", env={"BMX7WG_CLOCK_STEP": f"6:{step}"})
    wait_until(lambda: state(ring, "n3").get("pid") == pid and state(ring, "n3")["bmx7"]["published"],
               20, "n3's helper back")
    ring.stop_helper("n5", signal.SIGTERM)          # withdraws its advert mesh-wide
    left = time.monotonic()
    assert left < started + 6, "n5 left after the clock step: the test proves nothing"
    while time.monotonic() - left < HOLD - 1.5:     # across the step
        assert keys["n5"] in wg_dump(ring, "n3"), \
            f"n3 removed n5 {time.monotonic() - left:.1f} s after it left: hold-down cut short by the step"
        time.sleep(0.3)
    wait_until(lambda: keys["n5"] not in wg_dump(ring, "n3"), 10, "n3 to remove n5 after the hold-down")
    # a state file written after the step: its `updated` is on the stepped clock
    after_step = wait_until(lambda: (s := state(ring, "n3")) and (s["updated"] - time.time()) / step > 0.5
                            and s, 10, "n3's state file after the step")
    shown = {p["name"]: p["state"] for p in after_step["peers"]}
    assert {shown[n] for n in ("n1", "n2", "n4")} == {"active"}, shown
    ring.start_helper("n5")
    ring.stop_helper("n3", signal.SIGTERM)
    ring.start_helper("n3")
    wait_until(lambda: fully_meshed(ring), 40, "ring whole again")


def test_sighup_reload_republishes_and_policy_rejects_unruled_network(ring):
    before = _configs(ring)
    ring.set_option("n1", "announce", ["10.77.0.0/24"])
    ring.reload_helper("n1")
    n1 = ring.node_id("n1")

    def rejected_everywhere():
        for n in ring.names[1:]:
            peer = next((p for p in state(ring, n).get("peers", []) if p["node_id"] == n1), None)
            if not peer or not any(r["network"] == "10.77.0.0/24" and "rule" in r["reason"]
                                   for r in peer.get("networks_rejected", [])):
                return False
        return True
    wait_until(rejected_everywhere, 20, "n1's new network shown as rejected (no rule accepts it)")
    # the state file follows within a TICK, as the other nodes' do: no order between them
    wait_until(lambda: state(ring, "n1")["announce"] == ["10.77.0.0/24"], 3, "n1's state shows the new network")
    assert _configs(ring) == before          # default policy: nothing but verified tunnel addresses
    ring.set_option("n1", "announce", None)
    ring.reload_helper("n1")
    wait_until(lambda: state(ring, "n1")["announce"] == [], 10, "announce removed")
