"""The lab and our helper over the REAL bmx7 daemon (opt-in).

bmx7 is not packaged anywhere reachable, so this runs only when BMX7WG_REAL_BMX7 names a
bmx7 binary built from upstream bmx-routing/bmx7 (BMX7-0.2); bmx7_sms.so and bmx7_json.so
must be in BMX7_LIB_PATH or in <bmx7>/../../lib (e.g. .../inst/sbin/bmx7 + .../inst/lib/).
CI never has it: the module is skipped there.
"""

import json
import os
import signal
import time

import pytest

from labtools import wait_until, wg_dump

from bmx7wg.lab import mesh, netns

REAL_BMX7 = os.environ.get("BMX7WG_REAL_BMX7")
SMS = "wgtun"

pytestmark = [
    pytest.mark.skipif(not REAL_BMX7, reason="BMX7WG_REAL_BMX7 not set: no real bmx7 binary "
                       "(bmx7 is not packaged; build upstream bmx-routing/bmx7 and point this at it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


def helper(lab, name):
    return lab.helper_state(name) or {}


def wg_peers(lab, name):
    """{public key: latest handshake} straight from WireGuard."""
    lines = lab.exec(name, ["wg", "show", lab.ifname(name), "dump"]).stdout.splitlines()[1:]
    return {f[0]: int(f[4]) for f in (line.split("\t") for line in lines)}


def all_peers_handshaked(lab):
    keys = {n: helper(lab, n).get("public_key") for n in lab.names}
    for n in lab.names:
        peers = wg_peers(lab, n)
        want = {keys[m] for m in lab.names if m != n}
        if None in want or set(peers) != want or not all(peers.values()):
            return False
    return True


def all_active(lab):
    return all(len(helper(lab, n).get("peers", [])) == len(lab.names) - 1
               and all(p["state"] == "active" for p in helper(lab, n)["peers"]) for n in lab.names)


def registered_sms(lab, name):
    """syncSms names the running bmx7 reports (`bmx7 -c parameters`, the real client)."""
    r = lab.exec(name, ["bmx7", f"runtimeDir={lab.runtime_dir(name)}", "-c", "parameters"])
    return [ln.split()[1] for ln in r.stdout.splitlines() if ln.split()[:1] == ["syncSms"]]


def tunnel_address(lab, name):
    return helper(lab, name)["addresses"][0].split("/")[0]


def pings_through_tunnel(lab, src, dst):
    addr = tunnel_address(lab, dst)
    assert f"dev {lab.ifname(src)}" in lab.exec(src, ["ip", "-6", "route", "get", addr]).stdout
    return lab.exec(src, ["ping", "-6", "-c", "1", "-W", "1", addr], timeout=15).returncode == 0


@pytest.fixture(scope="module")
def line3(tmp_path_factory):
    lab = mesh.up(nodes=3, topology="line", prefix="brxt", bmx7=REAL_BMX7,
                  workdir=str(tmp_path_factory.mktemp("real") / "lab"))
    try:
        yield lab
    finally:
        lab.down()


def test_line3_converges_over_real_bmx7(line3):
    lab = line3
    # every node meets the other two (n1-n3 only through n2's routing) within bmx7's cold-start time
    wait_until(lambda: all_peers_handshaked(lab), 45, "every pair of nodes to handshake")
    wait_until(lambda: all_active(lab), 10, "every peer active in the state files")
    ids = {n: lab.node_id(n) for n in lab.names}
    for n in lab.names:
        with open(os.path.join(lab.runtime_dir(n), "json", "status")) as f:
            assert json.load(f)["status"]["nodeId"] == ids[n] == helper(lab, n)["node_id"]
        assert {p["node_id"] for p in helper(lab, n)["peers"]} == {ids[m] for m in lab.names if m != n}
        # bmx7 was started without syncSms: the registration came from the helper's `bmx7 -c`
        assert "syncSms=" not in netns.cmdline(lab.node(n)["bmx7_pid"])
        assert registered_sms(lab, n) == [SMS]
    assert pings_through_tunnel(lab, "n1", "n3") and pings_through_tunnel(lab, "n3", "n1")


def test_middle_bmx7_restart_reregisters_and_keeps_tunnels(line3):
    lab = line3
    wait_until(lambda: all_active(lab), 90, "a converged mesh")
    before = {n: set(wg_peers(lab, n)) for n in lab.names}
    advert = open(os.path.join(lab.runtime_dir("n2"), "sms", "sendSms", SMS), "rb").read()
    old_pid = lab.node("n2")["bmx7_pid"]
    assert lab.restart_bmx7("n2") != old_pid
    restarted = time.time()

    def peers_kept():
        for n in lab.names:
            assert set(wg_peers(lab, n)) == before[n], f"{n}: WireGuard peers changed during the restart"
        return True

    def recovered():
        peers_kept()
        rcvd = os.path.join(lab.runtime_dir("n1"), "sms", "rcvdSms", f"{lab.node_id('n2')}:{SMS}")
        try:
            back = open(rcvd, "rb").read() == advert
        except FileNotFoundError:
            back = False
        # n1 reaches n3 only through n2: the tunnel works again once bmx7 has rerouted
        return (back and registered_sms(lab, "n2") == [SMS] and pings_through_tunnel(lab, "n1", "n3")
                and all_active(lab))

    # The restarted daemon forgot the runtime registration; the helper redoes it. Real bmx7's
    # neighbours drop n2 and n3 (behind it) from rcvdSms and json/originators for ~7 s meanwhile:
    # inside the hold-down, so no WireGuard peer may go.
    wait_until(recovered, 45, "n2's advert re-registered, tunnel n1-n3 working, every peer active")
    wait_until(lambda: peers_kept() and time.time() - restarted > 15, 20, "the outage window to pass")
    assert all_active(lab) and pings_through_tunnel(lab, "n3", "n1")


def test_helper_kill9_restart_changes_nothing_over_real_bmx7(line3):
    lab = line3
    wait_until(lambda: all_active(lab), 90, "a converged mesh")
    configured = {n: {k: v[:2] for k, v in wg_dump(lab, n).items()} for n in lab.names}
    writes = {n: helper(lab, n)["wg_writes"] for n in lab.names}
    lab.stop_helper("n2", signal.SIGKILL)
    pid = lab.start_helper("n2")
    wait_until(lambda: helper(lab, "n2").get("pid") == pid and helper(lab, "n2")["bmx7"]["published"],
               20, "n2's helper back")
    time.sleep(5)
    assert {n: {k: v[:2] for k, v in wg_dump(lab, n).items()} for n in lab.names} == configured
    assert helper(lab, "n2")["wg_writes"] == 0
    assert all(helper(lab, n)["wg_writes"] == writes[n] for n in ("n1", "n3"))
    assert registered_sms(lab, "n2") == [SMS]


def test_helper_and_bmx7_restarting_together_keep_every_peer(line3):
    """Real bmx7 wipes rcvdSms when it restarts and refills it over ~10 s: a helper started
    meanwhile keeps its previous run's peers (hold-down) and rewrites nothing once they are back."""
    lab = line3
    wait_until(lambda: all_active(lab), 90, "a converged mesh")
    wait_until(lambda: len(helper(lab, "n2")["owned"]) == 2, 10, "n2's state file to list its peers")
    before = set(wg_peers(lab, "n2"))
    lab.stop_helper("n2", signal.SIGKILL)
    lab.restart_bmx7("n2")
    pid = lab.start_helper("n2")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        assert set(wg_peers(lab, "n2")) == before, f"n2 dropped a peer {time.monotonic() - t0:.1f} s after the restart"
        time.sleep(0.5)
    wait_until(lambda: all_active(lab), 30, "every peer active again")
    assert helper(lab, "n2")["pid"] == pid and helper(lab, "n2")["wg_writes"] == 0


def test_link_recreated_after_helper_kill9_keeps_port_over_real_bmx7(line3):
    """As netifd does after a helper crash: kill -9, delete the link, start a new helper. The new
    link listens on the previous port again: n1 and n3 rewrite nothing and handshake again."""
    lab = line3
    wait_until(lambda: all_active(lab), 90, "a converged mesh")
    port = helper(lab, "n2")["listen_port"]
    writes = {n: helper(lab, n)["wg_writes"] for n in ("n1", "n3")}
    lab.stop_helper("n2", signal.SIGKILL)
    lab.delete_link("n2")
    pid = lab.start_helper("n2")
    wait_until(lambda: helper(lab, "n2").get("pid") == pid and len(wg_peers(lab, "n2")) == 2, 30,
               "n2's peers on the new link")
    assert helper(lab, "n2")["listen_port"] == port
    wait_until(lambda: pings_through_tunnel(lab, "n1", "n2") and pings_through_tunnel(lab, "n3", "n2"), 30,
               "tunnels to n2 working again")
    assert {n: helper(lab, n)["wg_writes"] for n in ("n1", "n3")} == writes
