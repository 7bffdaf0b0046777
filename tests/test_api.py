"""api.py on real state files (written with state.write) and real processes for signals."""

import json
import os
import subprocess
import sys
import time

import pytest

from bmx7wg import api, state

# A stand-in helper: records the signals it receives, one line each, then keeps running.
# Its argv names bmx7wg like the real `bmx7wg run IFACE`.
HELPER_SCRIPT = r"""
import signal, sys, time
out = sys.argv[1]
def note(signum, _frame):
    with open(out, "a") as fh:
        fh.write(signal.Signals(signum).name + "\n")
signal.signal(signal.SIGHUP, note)
signal.signal(signal.SIGUSR1, note)
open(out + ".ready", "w").close()
while True:
    time.sleep(0.05)
"""


def wg(*args, data=None):
    return subprocess.run(["wg", *args], input=data, capture_output=True, check=True).stdout.decode().strip()


@pytest.fixture(scope="module")
def keypair():
    private = wg("genkey")
    return private, wg("pubkey", data=private.encode())


@pytest.fixture
def helper(tmp_path):
    """A running process whose cmdline looks like `bmx7wg run IFACE`; yields (proc, signal log)."""
    log = tmp_path / "signals.log"
    proc = subprocess.Popen([sys.executable, "-c", HELPER_SCRIPT, str(log), "bmx7wg", "run", "wgapi0"])
    deadline = time.time() + 10
    while not (tmp_path / "signals.log.ready").exists():
        assert time.time() < deadline, "stand-in helper did not start"
        time.sleep(0.02)
    yield proc, log
    proc.kill()
    proc.wait()


def peer_entry(name, state_name, **extra):
    node_id = (name.encode().hex() * 56)[:56]
    key = wg("pubkey", data=wg("genkey").encode())
    entry = {
        "node_id": node_id, "short_id": node_id[:8], "name": name, "public_key": key, "fingerprint": key[:8],
        "endpoint": "[fd70::2]:51820", "addresses": ["fd77::2/128"], "allowed_ips": ["fd77::2/128", "10.2.0.0/24"],
        "networks_accepted": ["10.2.0.0/24"], "networks_rejected": [], "state": state_name, "reason": None,
        "latest_handshake": 1732550000, "rx": 1234, "tx": 5678,
    }
    entry.update(extra)
    return entry


def make_state(iface, pid, public_key, peers=(), **extra):
    st = {
        "interface": iface, "ifname": iface, "pid": pid, "updated": 1732550000.75,
        "public_key": public_key, "listen_port": 51820, "key_mode": "persist", "backend": "userspace",
        "node_id": "ab" * 28, "name": "nodeA", "addresses": ["fd77:ead4::1/128"], "announce": ["10.1.0.0/24"],
        "bmx7": {"dir": "/var/run/bmx7", "running": True, "sms_name": "wgtun", "published": True},
        "owned": [], "peers": list(peers),
    }
    st.update(extra)
    return st


def floats_in(value):
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats_in(v)]
    return []


def wait_for_lines(path, count, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(path.read_text().split()) >= count:
            return path.read_text().split()
        time.sleep(0.02)
    return path.read_text().split() if path.exists() else []


def test_methods_signature_matches_handlers():
    assert set(api.METHODS) == {"status", "peers", "reload", "rotate_key"}
    assert all(sig == {"interface": "string"} for sig in api.METHODS.values())


def test_status_reports_the_running_helper(tmp_path, helper, keypair):
    proc, _ = helper
    peers = [peer_entry("nodeB", "active"), peer_entry("nodeC", "pending"), peer_entry("nodeD", "rejected")]
    state.write(str(tmp_path), "wgapi0", make_state("wgapi0", proc.pid, keypair[1], peers))
    reply = api.handle("status", {"interface": "wgapi0"}, str(tmp_path))
    assert reply["interface"] == "wgapi0" and reply["ifname"] == "wgapi0"
    assert reply["running"] is True
    assert reply["public_key"] == keypair[1]
    assert reply["listen_port"] == 51820
    assert reply["addresses"] == ["fd77:ead4::1/128"] and reply["announce"] == ["10.1.0.0/24"]
    assert reply["key_mode"] == "persist"
    assert reply["bmx7"] == {"running": True, "dir": "/var/run/bmx7", "sms_name": "wgtun", "published": True}
    assert reply["peer_counts"] == {"pending": 1, "active": 1, "expired": 0, "rejected": 1, "total": 3}
    assert reply["updated"] == 1732550000 and not floats_in(reply)


def test_peers_lists_every_advertiser(tmp_path, helper, keypair):
    proc, _ = helper
    rejected = peer_entry("nodeR", "rejected", reason="advert: bad magic", networks_accepted=[],
                          networks_rejected=[{"network": "10.1.0.0/24", "reason": "overlaps own 10.1.0.0/24"}],
                          latest_handshake=None, rx=0, tx=0, endpoint=None)
    entries = [peer_entry("nodeB", "active"), rejected]
    state.write(str(tmp_path), "wgapi0", make_state("wgapi0", proc.pid, keypair[1], entries))
    reply = api.handle("peers", {}, str(tmp_path))  # the only interface: may be omitted
    assert reply["interface"] == "wgapi0" and reply["running"] is True
    by_name = {p["name"]: p for p in reply["peers"]}
    assert set(by_name) == {"nodeB", "nodeR"}
    b = by_name["nodeB"]
    assert b["state"] == "active" and b["public_key"] == entries[0]["public_key"]
    assert b["fingerprint"] == entries[0]["public_key"][:8]
    assert b["networks_accepted"] == ["10.2.0.0/24"] and b["rx"] == 1234 and b["tx"] == 5678
    assert b["latest_handshake"] == 1732550000
    r = by_name["nodeR"]
    assert r["state"] == "rejected" and r["reason"] == "advert: bad magic"
    assert r["networks_rejected"] == [{"network": "10.1.0.0/24", "reason": "overlaps own 10.1.0.0/24"}]
    assert r["latest_handshake"] is None and r["endpoint"] is None


def test_private_key_never_leaves_even_from_a_bad_state_file(tmp_path, helper, keypair):
    proc, _ = helper
    private, public = keypair
    bad_peer = peer_entry("nodeB", "active", private_key=private, preshared_key=private,
                          networks_rejected=[{"network": "10.9.0.0/24", "reason": "x", "private_key": private}])
    st = make_state("wgapi0", proc.pid, public, [bad_peer], private_key=private, secret={"private_key": private})
    st["bmx7"]["private_key"] = private
    state.write(str(tmp_path), "wgapi0", st)
    assert private in (tmp_path / "wgapi0.json").read_text()   # the file really holds it
    for method in ("status", "peers"):
        reply = api.handle(method, {"interface": "wgapi0"}, str(tmp_path))
        assert "error" not in reply
        text = json.dumps(reply)
        assert private not in text and "private_key" not in text and "preshared" not in text
        assert "secret" not in text
    # CLI output goes through the same handlers
    out = subprocess.run([sys.executable, "-m", "bmx7wg", "--rundir", str(tmp_path), "peers", "--json"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "src"})
    assert out.returncode == 0, out.stderr
    assert private not in out.stdout
    assert bad_peer["public_key"] in out.stdout


def test_status_reply_keys_are_exactly_the_contract(tmp_path, helper, keypair):
    proc, _ = helper
    st = make_state("wgapi0", proc.pid, keypair[1], [peer_entry("nodeB", "active", extra_field=1)], junk=[1, 2])
    state.write(str(tmp_path), "wgapi0", st)
    reply = api.handle("status", {"interface": "wgapi0"}, str(tmp_path))
    assert set(reply) == {"interface", "ifname", "running", "updated", "public_key", "listen_port", "key_mode",
                          "backend", "node_id", "name", "addresses", "announce", "bmx7", "peer_counts"}
    peer = api.handle("peers", {"interface": "wgapi0"}, str(tmp_path))["peers"][0]
    assert set(peer) == {"node_id", "short_id", "name", "public_key", "fingerprint", "endpoint", "addresses",
                         "allowed_ips", "networks_accepted", "networks_rejected", "state", "reason",
                         "latest_handshake", "rx", "tx"}


def test_wrong_types_in_state_are_dropped_not_passed_on(tmp_path, keypair):
    st = make_state("wgapi0", "123", {"nested": keypair[0]}, [
        {"name": ["x"], "state": "hacked", "rx": -5, "tx": "7", "addresses": "fd77::1/128",
         "latest_handshake": 17.5, "public_key": "not a key"}, "not a peer"],
        bmx7="nope", listen_port=51820.0)
    state.write(str(tmp_path), "wgapi0", st)
    reply = api.handle("status", {"interface": "wgapi0"}, str(tmp_path))
    assert reply["public_key"] is None and reply["running"] is False and reply["listen_port"] == 51820
    assert reply["bmx7"] == {"running": False, "dir": None, "sms_name": None, "published": False}
    peer, = api.handle("peers", {"interface": "wgapi0"}, str(tmp_path))["peers"]
    assert peer["name"] is None and peer["state"] == "pending" and peer["rx"] == 0 and peer["tx"] == 0
    assert peer["addresses"] == [] and peer["latest_handshake"] == 17 and peer["public_key"] is None
    assert keypair[0] not in json.dumps(reply)


def test_stale_state_file_says_not_running(tmp_path, keypair):
    gone = subprocess.Popen([sys.executable, "-c", "pass", "bmx7wg"])
    gone.wait()
    state.write(str(tmp_path), "wgapi0", make_state("wgapi0", gone.pid, keypair[1]))
    assert api.handle("status", {}, str(tmp_path))["running"] is False
    assert api.handle("peers", {}, str(tmp_path))["running"] is False
    err = api.handle("reload", {"interface": "wgapi0"}, str(tmp_path))
    assert err == {"error": "interface 'wgapi0': the bmx7wg helper is not running"}


def test_zombie_helper_is_not_running(tmp_path, keypair):
    proc = subprocess.Popen([sys.executable, "-c", "pass", "bmx7wg", "run", "wgapi0"])
    deadline = time.time() + 10
    while open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.time() < deadline
        time.sleep(0.02)
    try:
        state.write(str(tmp_path), "wgapi0", make_state("wgapi0", proc.pid, keypair[1]))
        assert api.handle("status", {}, str(tmp_path))["running"] is False
    finally:
        proc.wait()


def test_recycled_pid_of_another_program_is_never_signalled(tmp_path, keypair):
    other = subprocess.Popen(["sleep", "30"])
    try:
        state.write(str(tmp_path), "wgapi0", make_state("wgapi0", other.pid, keypair[1]))
        assert api.handle("status", {}, str(tmp_path))["running"] is False
        assert "not running" in api.handle("rotate_key", {}, str(tmp_path))["error"]
        time.sleep(0.2)
        assert other.poll() is None   # SIGUSR1 would have killed `sleep`
    finally:
        other.kill()
        other.wait()


def test_reload_sends_sighup_and_rotate_key_sigusr1(tmp_path, helper, keypair):
    proc, log = helper
    state.write(str(tmp_path), "wgapi0", make_state("wgapi0", proc.pid, keypair[1]))
    assert api.handle("reload", {"interface": "wgapi0"}, str(tmp_path)) == {"ok": True, "interface": "wgapi0"}
    assert wait_for_lines(log, 1) == ["SIGHUP"]
    assert api.handle("rotate_key", {}, str(tmp_path)) == {"ok": True, "interface": "wgapi0"}
    assert wait_for_lines(log, 2) == ["SIGHUP", "SIGUSR1"]
    assert proc.poll() is None


def test_interface_selection(tmp_path, helper, keypair):
    proc, _ = helper
    rundir = str(tmp_path / "run")
    assert "no bmx7wg interface is running" in api.handle("status", {}, rundir)["error"]
    state.write(rundir, "wgapi0", make_state("wgapi0", proc.pid, keypair[1]))
    state.write(rundir, "wgapi1", make_state("wgapi1", proc.pid, keypair[1]))
    both = api.handle("status", {}, rundir)
    assert [s["interface"] for s in both["interfaces"]] == ["wgapi0", "wgapi1"]
    for method in ("peers", "reload", "rotate_key"):
        err = api.handle(method, {}, rundir)["error"]
        assert "wgapi0, wgapi1" in err and "interface" in err
    assert api.handle("status", {"interface": "wgapi1"}, rundir)["interface"] == "wgapi1"


@pytest.mark.parametrize("method, args, expected", [
    ("status", {"interface": "nosuch"}, "interface 'nosuch': no bmx7wg helper state"),
    ("peers", {"interface": "../../etc/passwd"}, "argument 'interface': invalid value"),
    ("reload", {"interface": ".hidden"}, "argument 'interface': invalid value"),
    ("status", {"interface": 5}, "argument 'interface': invalid value '5'"),
    ("status", {"iface": "wgapi0"}, "unknown argument 'iface'"),
    ("status", ["wgapi0"], "arguments must be an object"),
    ("explode", {}, "unknown method 'explode'"),
])
def test_bad_requests_get_one_line_errors(tmp_path, keypair, method, args, expected):
    state.write(str(tmp_path), "wgapi0", make_state("wgapi0", None, keypair[1]))
    reply = api.handle(method, args, str(tmp_path))
    assert set(reply) == {"error"}
    assert reply["error"].startswith(expected) and "\n" not in reply["error"]


def test_corrupt_state_file_is_named(tmp_path):
    (tmp_path / "wgapi0.json").write_text('{"interface": "wgapi0", "pid": ')
    reply = api.handle("status", {"interface": "wgapi0"}, str(tmp_path))
    assert reply == {"error": f"state file {tmp_path}/wgapi0.json: unreadable (not JSON)"}
    (tmp_path / "wgapi0.json").write_text("[1, 2]")
    assert "not a JSON object" in api.handle("peers", {}, str(tmp_path))["error"]


def test_temp_and_hidden_files_are_not_interfaces(tmp_path, helper, keypair):
    proc, _ = helper
    state.write(str(tmp_path), "wgapi0", make_state("wgapi0", proc.pid, keypair[1]))
    (tmp_path / ".wgapi9.json").write_text("{}")
    (tmp_path / "wgapi0.json.tmp").write_text("{}")
    assert api.handle("status", {}, str(tmp_path))["interface"] == "wgapi0"
