"""The lab's bmx7 emulator on a real 3-node line of network namespaces (prefix bwl).

Each expectation is a fact recorded from a real bmx7 mesh (../shared/bmx7/README.md),
checked through the same files and `bmx7 -c` commands the helper uses on a router.
"""

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from bmx7wg.lab import emulator, mesh, netns
from bmx7wg.lab.cli import lab as lab_cli

HOP = 0.2
EMU = dict(hop_delay=HOP, ogm_interval=0.3, refill_delay=1.5, purge_timeout=4, link_timeout=2,
           json_interval=1, restart_gap=0.5)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


@pytest.fixture(scope="module")
def line3(tmp_path_factory):
    lab = mesh.up(nodes=3, topology="line", prefix="bwl", workdir=str(tmp_path_factory.mktemp("lab") / "w"),
                  helper=False, emulator_options=EMU, node_options={"n1": {"ref_sms": 0}}, sync_sms=["wgtun"])
    yield lab
    lab.down()


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=mesh.SRC_ROOT)
    return subprocess.run([sys.executable, "-m", "bmx7wg.lab.cli", *args], capture_output=True, text=True, env=env)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def rcvd_path(lab, node, sender, name):
    return os.path.join(lab.runtime_dir(node), "sms", "rcvdSms", f"{lab.node_id(sender)}:{name}")


def read_rcvd(lab, node, sender, name):
    try:
        with open(rcvd_path(lab, node, sender, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def publish(lab, node, name, data: bytes):
    """As the helper must: temp name in the same directory, then rename."""
    d = os.path.join(lab.runtime_dir(node), "sms", "sendSms")
    with open(os.path.join(d, f".{name}.tmp"), "wb") as f:
        f.write(data)
    os.replace(os.path.join(d, f".{name}.tmp"), os.path.join(d, name))


def unpublish(lab, node, name):
    os.unlink(os.path.join(lab.runtime_dir(node), "sms", "sendSms", name))


def bmx7(lab, node, *args):
    return lab.exec(node, ["bmx7", "-c", *args])


def originator(lab, node, of, missing_ok=False):
    """json files are rewritten in place: a reader can catch half a file, so retry.
    A node's rcvdSms files are written before its json file (as bmx7 does, the json
    plugin writes on its own turn): a caller waiting for a just-learned node passes
    missing_ok and gets {} until the file is there."""
    path = os.path.join(lab.runtime_dir(node), "json", "originators", lab.node_id(of))
    for _ in range(50):
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            if missing_ok:
                return {}
            raise
        try:
            return json.loads(text)
        except ValueError:
            time.sleep(0.01)
    raise AssertionError(f"{path} never parsed")


def others_files(lab, node):
    own = lab.node_id(node)
    return sorted(f for f in os.listdir(os.path.join(lab.runtime_dir(node), "sms", "rcvdSms"))
                  if not f.startswith(own))


def test_identity_follows_bmx7_rules_and_survives_restarts(tmp_path):
    # The nodeA line of fixtures/nodes.txt: nodeId -> primaryIp.
    assert emulator.primary_ip_of("EAD40A7766B30932298102810C08D48C4F24C92585CCC0B88D951EE5") == \
        "fd70:ead4:a77:66b3:932:2981:281:c08"
    key = tmp_path / "k"
    first = emulator.identity(str(key))
    assert first == emulator.identity(str(key))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(first[0]) == 56 and first[0] == first[0].upper()
    assert first != emulator.identity(str(tmp_path / "other"))


def test_topologies_and_shortest_path_next_hops():
    assert mesh.edges_for(4, "ring") == [(1, 2), (2, 3), (3, 4), (1, 4)]
    assert len(mesh.edges_for(4, "full")) == 6 and mesh.edges_for(3, "line") == [(1, 2), (2, 3)]
    with pytest.raises(netns.LabError, match="topology 'star'"):
        mesh.edges_for(3, "star")
    hops = mesh.next_hops(["n1", "n2", "n3", "n4", "n5"],
                          [("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5"), ("n1", "n5")])
    assert hops["n1"] == {"n2": "n2", "n3": "n2", "n4": "n5", "n5": "n5"}
    assert hops["n3"] == {"n2": "n2", "n1": "n2", "n4": "n4", "n5": "n4"}


def test_real_bmx7_command_line_keeps_the_facts_option_order():
    node = {"name": "n1", "runtime_dir": "/w/n1/run/bmx7", "key_file": "/w/n1/etc/bmx7/rsa.der",
            "desc_sqn_path": "/w/n1/etc/bmx7/descSqn", "devs": ["v1-2", "v1-3"]}
    lab = mesh.Lab("/w", {"bmx7": "/opt/bmx7/sbin/bmx7", "sync_sms": ["wgtun"], "nodes": [node]})
    assert lab._bmx7_argv(node) == [
        "/opt/bmx7/sbin/bmx7", "runtimeDir=/w/n1/run/bmx7", "plugin=bmx7_sms.so", "plugin=bmx7_json.so",
        "nodeRsaKey=6", "/keyPath=/w/n1/etc/bmx7/rsa.der", "hostname=n1", "descSqnPath=/w/n1/etc/bmx7/descSqn",
        "syncSms=wgtun", "dev=v1-2", "dev=v1-3", "debug=0"]


def test_sms_reaches_every_node_byte_exact_with_per_hop_delay(line3):
    data = bytes(range(256)) * 4 + b"\0\xff end"
    t0 = time.monotonic()
    publish(line3, "n3", "wgtun", data)
    seen = {}
    while len(seen) < 3 and time.monotonic() - t0 < 10:
        for node in ("n1", "n2", "n3"):
            if node not in seen and read_rcvd(line3, node, "n3", "wgtun") == data:
                seen[node] = time.monotonic() - t0
        time.sleep(0.005)
    assert set(seen) == {"n1", "n2", "n3"}, seen
    assert seen["n3"] < HOP                       # the sender's own copy comes first
    assert HOP * 0.9 <= seen["n2"] < HOP + 3
    assert 2 * HOP * 0.9 <= seen["n1"] < 2 * HOP + 3
    for node in ("n1", "n2", "n3"):
        assert stat.S_IMODE(os.stat(rcvd_path(line3, node, "n3", "wgtun")).st_mode) == 0o644


def test_originators_status_and_shim_output_for_a_line(line3):
    ids = {n: line3.node_id(n) for n in line3.names}
    for node in ("n1", "n2"):
        wait_for(lambda: len(os.listdir(os.path.join(line3.runtime_dir(node), "json", "originators"))) == 3,
                 5, f"three originators on {node}")
    own, nb, far = originator(line3, "n1", "n1"), originator(line3, "n1", "n2"), originator(line3, "n1", "n3")
    assert (own["dev"], own["hops"], own["metric"], own["nbName"]) == ("---", 0, "257G", "---")
    assert (nb["dev"], nb["hops"], nb["metric"], nb["nbNodeId"]) == ("v1-2", 1, "999M", ids["n2"])
    assert (far["dev"], far["hops"], far["metric"], far["nbName"]) == ("v1-2", 2, "706M", "n2")
    assert far["primaryIp"] == line3.primary_ip("n3") and far["nodeId"] == ids["n3"]
    assert far["shortId"] == ids["n3"][:8] and 0 <= far["lastRef"] < 20
    assert originator(line3, "n2", "n1")["dev"] == "v2-1" and originator(line3, "n2", "n3")["dev"] == "v2-3"
    with open(os.path.join(line3.runtime_dir("n1"), "json", "status")) as f:
        text = f.read()
    assert "\\/" in text                                  # json-c escapes slashes, like the real files
    status = json.loads(text)["status"]
    assert (status["nodeId"], status["name"], status["primaryIp"]) == (ids["n1"], "n1", line3.primary_ip("n1"))
    shown = json.loads(bmx7(line3, "n1", "jshow=originators").stdout)["originators"]
    assert {o["nodeId"]: o["hops"] for o in shown} == {ids["n1"]: 0, ids["n2"]: 1, ids["n3"]: 2}
    table = bmx7(line3, "n1", "show=originators").stdout.splitlines()
    assert table[0] == "ORIGINATORS:" and table[1].split()[:2] == ["shortId", "name"] and len(table) == 5


def test_far_primary_ip_answers_ping_through_the_middle_node(line3):
    out = line3.exec("n1", ["ping", "-c", "1", "-W", "3", line3.primary_ip("n3")])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ttl=63" in out.stdout                          # forwarded once, by n2


def test_new_description_rewrites_all_of_the_senders_files(line3):
    publish(line3, "n3", "wgtun", b"a-1")
    publish(line3, "n3", "extra", b"b-unchanged")
    assert bmx7(line3, "n3", "syncSms=extra").returncode == 0
    for node in ("n1", "n3"):
        wait_for(lambda: read_rcvd(line3, node, "n3", "extra") == b"b-unchanged"
                 and read_rcvd(line3, node, "n3", "wgtun") == b"a-1", 5, f"both sms on {node}")
    before = {n: os.stat(rcvd_path(line3, n, "n3", "extra")) for n in ("n1", "n3")}
    publish(line3, "n3", "wgtun", b"a-2")
    for node in ("n1", "n3"):
        wait_for(lambda: read_rcvd(line3, node, "n3", "wgtun") == b"a-2", 5, f"update on {node}")
        after = wait_for(lambda: os.path.exists(rcvd_path(line3, node, "n3", "extra"))
                         and os.stat(rcvd_path(line3, node, "n3", "extra")), 2, "extra back")
        assert (after.st_ino, after.st_mtime_ns) != (before[node].st_ino, before[node].st_mtime_ns)
        assert read_rcvd(line3, node, "n3", "extra") == b"b-unchanged"


def test_withdrawal_by_delete_and_by_unregister(line3):
    publish(line3, "n3", "wgtun", b"stays")
    publish(line3, "n3", "extra", b"to be withdrawn")
    assert bmx7(line3, "n3", "syncSms=extra").returncode == 0      # duplicate registration: no-op
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "extra") == b"to be withdrawn", 5, "extra on n1")
    unpublish(line3, "n3", "extra")
    for node in ("n1", "n2", "n3"):
        wait_for(lambda: read_rcvd(line3, node, "n3", "extra") is None, 5, f"deletion seen on {node}")
    publish(line3, "n3", "extra", b"back")
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "extra") == b"back", 5, "extra back on n1")
    assert bmx7(line3, "n3", "syncSms=-extra").returncode == 0
    for node in ("n1", "n2", "n3"):
        wait_for(lambda: read_rcvd(line3, node, "n3", "extra") is None, 5, f"unregister seen on {node}")
    assert os.path.exists(os.path.join(line3.runtime_dir("n3"), "sms", "sendSms", "extra"))
    # the other sms stays (after the brief delete-and-rewrite gap every new description causes)
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "wgtun") == b"stays", 2, "wgtun still on n1")


def test_size_limits_refsms0_300_bytes_refsms2_larger(line3):
    publish(line3, "n1", "wgtun", b"x" * 300)                         # n1 runs with refSms=0
    wait_for(lambda: read_rcvd(line3, "n3", "n1", "wgtun") == b"x" * 300, 5, "300 B on n3")
    publish(line3, "n1", "wgtun", b"y" * 301)
    for node in ("n1", "n3"):
        wait_for(lambda: read_rcvd(line3, node, "n1", "wgtun") is None, 5, f"301 B copy dropped on {node}")
    time.sleep(3 * HOP)
    assert read_rcvd(line3, "n3", "n1", "wgtun") is None
    big = os.urandom(20_000)                                          # n3 runs with the default refSms=2
    publish(line3, "n3", "wgtun", big)
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "wgtun") == big, 5, "20 kB on n1")
    publish(line3, "n3", "wgtun", b"z" * (emulator.REF_SMS_MAX + 1))
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "wgtun") is None, 5, "oversize refused")
    publish(line3, "n1", "wgtun", b"n1")
    publish(line3, "n3", "wgtun", b"n3")


def test_sms_name_rules_of_the_shim(line3):
    for bad in (".lead", "trail.", "sixteen-chars-xx", "sl/ash", "sp ace", ""):
        out = bmx7(line3, "n2", f"syncSms={bad}")
        assert out.returncode == 1, bad
        assert "invalid" in out.stderr
    for good in ("fifteen-chars.x", "a", "A_b-c.d"):
        assert bmx7(line3, "n2", f"syncSms={good}").returncode == 0
        assert bmx7(line3, "n2", f"syncSms={good}").returncode == 0   # duplicate: no-op
        assert bmx7(line3, "n2", f"syncSms=-{good}").returncode == 0
    assert bmx7(line3, "n2", "noSuchOption=1").returncode == 1


def test_restart_wipes_rcvdsms_refills_later_and_forgets_runtime_registration(line3):
    publish(line3, "n1", "wgtun", b"n1")
    publish(line3, "n2", "wgtun", b"n2")
    publish(line3, "n3", "wgtun", b"persistent")
    publish(line3, "n3", "extra", b"runtime only")
    assert bmx7(line3, "n3", "syncSms=extra").returncode == 0
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "extra") == b"runtime only"
             and read_rcvd(line3, "n1", "n3", "wgtun") == b"persistent", 5, "n3's sms on n1")
    wait_for(lambda: len(others_files(line3, "n3")) == 2, 5, "n1 and n2 sms on n3")
    seen_on_n1 = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen_on_n1.append(read_rcvd(line3, "n1", "n3", "wgtun"))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0 = time.monotonic()
    try:
        line3.restart_bmx7("n3")
        assert others_files(line3, "n3") == []                       # wiped at start
        assert read_rcvd(line3, "n3", "n3", "wgtun") == b"persistent"  # own copy at once
        wait_for(lambda: len(others_files(line3, "n3")) == 2, 6, "refill on n3")
        assert time.monotonic() - t0 >= EMU["refill_delay"] * 0.9
        wait_for(lambda: read_rcvd(line3, "n1", "n3", "extra") is None, 5, "lost registration withdrawn on n1")
        wait_for(lambda: seen_on_n1[-1:] == [b"persistent"], 5, "wgtun back on n1")
    finally:
        stop.set()
        watcher.join()
    # The restarted sender's new description: its file was briefly missing on n1, then identical.
    assert None in seen_on_n1 and seen_on_n1[-1] == b"persistent"
    params = bmx7(line3, "n3", "parameters").stdout
    assert "wgtun" in params and "extra" not in params


def test_cut_link_isolates_and_reconnect_recovers(line3):
    publish(line3, "n1", "wgtun", b"n1")
    publish(line3, "n3", "wgtun", b"n3")
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "wgtun") is not None, 5, "n3 known on n1")
    line3.set_link("n1", "n2", up=False)
    try:
        time.sleep(EMU["purge_timeout"] - 1.5)
        assert read_rcvd(line3, "n1", "n3", "wgtun") is not None     # kept until the purge
        wait_for(lambda: others_files(line3, "n1") == [], EMU["purge_timeout"] + 3, "n1 forgets everyone")
        assert read_rcvd(line3, "n2", "n3", "wgtun") is not None     # n2 and n3 still talk
    finally:
        line3.set_link("n1", "n2", up=True)
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "wgtun") is not None, 8, "n3 relearned on n1")
    wait_for(lambda: read_rcvd(line3, "n3", "n1", "wgtun") is not None, 8, "n1 relearned on n3")
    wait_for(lambda: originator(line3, "n1", "n3", missing_ok=True).get("hops") == 2, 5, "route back")
    assert line3.exec("n1", ["ping", "-c1", "-W3", line3.primary_ip("n3")]).returncode == 0


def test_killed_sender_keeps_its_files_until_purge_and_leaves_stale_runtime(line3):
    publish(line3, "n1", "wgtun", b"n1")
    publish(line3, "n3", "wgtun", b"n3")
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "wgtun") is not None
             and read_rcvd(line3, "n2", "n3", "wgtun") is not None
             and read_rcvd(line3, "n3", "n1", "wgtun") is not None, 8, "n1 and n3 known everywhere")
    line3.kill_bmx7("n3")
    t0 = time.monotonic()
    rt = line3.runtime_dir("n3")
    for stale in ("pid", "sock", "json/status", f"json/originators/{line3.node_id('n3')}"):
        assert os.path.exists(os.path.join(rt, stale)), stale
    assert others_files(line3, "n3") != []
    refused = bmx7(line3, "n3", "show=status")
    assert refused.returncode == 1 and "Connection refused" in refused.stderr
    wait_for(lambda: originator(line3, "n2", "n3")["dev"] == "---", EMU["link_timeout"] + 2,
             "direct neighbour loses the link")
    # n1 heard n3 last a hop after n2 did, and rewrites its json once a second: lastRef
    # may still read 0 when n2 drops the link, and grows on n1's next write.
    far = wait_for(lambda: (o := originator(line3, "n1", "n3"))["lastRef"] >= 1 and o, 2, "lastRef grows on n1")
    assert (far["dev"], far["hops"], far["metric"]) == ("v1-2", 2, "706M")   # >1 hop away: unchanged
    assert read_rcvd(line3, "n1", "n3", "wgtun") is not None
    wait_for(lambda: read_rcvd(line3, "n1", "n3", "wgtun") is None, EMU["purge_timeout"] + 3, "purge on n1")
    assert time.monotonic() - t0 >= EMU["purge_timeout"] * 0.8
    wait_for(lambda: read_rcvd(line3, "n2", "n3", "wgtun") is None, 3, "purge on n2")
    assert not os.path.exists(os.path.join(line3.runtime_dir("n1"), "json", "originators", line3.node_id("n3")))


def test_sigterm_clears_rcvdsms_but_leaves_sock_and_pid(line3):
    line3.stop_bmx7("n2")
    rt = line3.runtime_dir("n2")
    assert os.path.exists(os.path.join(rt, "sock")) and os.path.exists(os.path.join(rt, "pid"))
    assert os.listdir(os.path.join(rt, "sms", "rcvdSms")) == []
    assert os.listdir(os.path.join(rt, "json", "originators")) == []
    out = bmx7(line3, "n2", "syncSms=wgtun")
    assert out.returncode == 1 and "Connection refused" in out.stderr


def test_lab_cli_status_json_shape_and_exec(line3):
    state = {"interface": "wgmesh", "node_id": line3.node_id("n1"), "public_key": "k", "peers": [
        {"node_id": line3.node_id("n2"), "short_id": "x", "name": "n2", "public_key": "p", "state": "active",
         "latest_handshake": 1732550000, "rx": 10, "tx": 20, "endpoint": "[fd70::1]:51820"}]}
    with open(os.path.join(line3.rundir("n1"), "wgmesh.json"), "w") as f:
        json.dump(state, f)
    res = CliRunner().invoke(lab_cli, ["status", "--json", "--prefix", "bwl", "--workdir", line3.workdir])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["nodes"][0] == {"name": "n1", "node_id": line3.node_id("n1"), "peers": [
        {"node_id": line3.node_id("n2"), "name": "n2", "state": "active", "latest_handshake": 1732550000,
         "rx": 10, "tx": 20}]}
    assert [n["name"] for n in got["nodes"]] == ["n1", "n2", "n3"] and got["nodes"][1]["peers"] == []
    table = CliRunner().invoke(lab_cli, ["status", "--prefix", "bwl", "--workdir", line3.workdir]).output
    assert "active" in table and "n2" in table
    out = run_cli("exec", "--prefix", "bwl", "--workdir", line3.workdir, "n1", "bmx7", "-c", "show=status")
    assert out.returncode == 0 and out.stdout.startswith("STATUS:") and " n1 " in out.stdout


def test_set_option_edits_only_the_interface_section(line3):
    line3.set_option("n1", "listen_port", 51999)
    line3.set_option("n1", "announce", ["10.1.0.0/24", "10.2.0.0/24"])
    line3.set_option("n1", "key_file", None)
    with open(os.path.join(line3.node("n1")["confdir"], "network")) as f:
        text = f.read()
    assert "\toption listen_port '51999'\n" in text
    assert "\tlist announce '10.1.0.0/24'\n\tlist announce '10.2.0.0/24'\n" in text
    assert "key_file" not in text and "\toption proto 'bmx7wg'\n" in text
    assert f"\toption bmx7_dir '{line3.runtime_dir('n1')}'\n" in text


def test_ring_remove_node_reroutes_and_down_ends_everything(tmp_path):
    lab = mesh.up(nodes=4, topology="ring", prefix="bwlr", workdir=str(tmp_path / "ring"), helper=False,
                  emulator_options=EMU)
    try:
        sleeper = subprocess.Popen(["ip", "netns", "exec", lab.ns("n4"), "sleep", "300"])  # stands in for wireguard-go
        pids = [lab.node(n)["bmx7_pid"] for n in lab.names] + [sleeper.pid]
        assert lab.exec("n1", ["ping", "-c1", "-W3", lab.primary_ip("n3")]).returncode == 0
        lab.remove_node("n2")
        assert not netns.ns_exists("bwlrn2")
        out = lab.exec("n1", ["ping", "-c1", "-W3", lab.primary_ip("n3")])
        assert out.returncode == 0, out.stdout + out.stderr                     # now around via n4
        res = run_cli("down", "--prefix", "bwlr", "--workdir", lab.workdir)
        assert res.returncode == 0, res.stderr
        sleeper.wait(timeout=5)
        assert not any(netns.alive(p) for p in pids)
        assert not any(netns.ns_exists(f"bwlrn{i}") for i in range(1, 5))
        assert not os.path.exists(lab.workdir)
    finally:
        if os.path.exists(os.path.join(lab.workdir, mesh.STATE_FILE)):
            lab.down()
