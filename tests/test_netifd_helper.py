"""The real helper in netifd mode (`run --netifd`, as the proto script starts it) inside a lab
node: every `ubus call` it makes is recorded by a `ubus` command on its PATH and checked against
the recorded schemas — what netifd and procd would receive."""

import json
import os
import signal
import sys

import pytest

from labtools import wait_until

from bmx7wg.lab import mesh, netns
from schema_check import check

EMU = {"hop_delay": 0.05, "purge_timeout": 40, "refill_delay": 3}

RECORDER = """#!/bin/sh
# stand-in for OpenWrt's ubus CLI: record the call, answer like ubusd would
printf '%s\\n' "$*" >> "{log}"
exit 0
"""


def recorded(log):
    calls = []
    try:
        lines = open(log).read().splitlines()
    except FileNotFoundError:
        return calls
    for line in lines:
        parts = line.split(" ", 5)     # -t N call OBJ METHOD JSON
        if len(parts) == 6 and parts[2] == "call":
            calls.append((parts[3], parts[4], json.loads(parts[5])))
    return calls


@pytest.fixture
def lab():
    lab = mesh.up(nodes=2, topology="line", prefix="bmn", workdir="/tmp/bmx7wg-test-netifd",
                  emulator_options=EMU, helper=False, uci_options={"hold_down": "8"})
    try:
        yield lab
    finally:
        lab.down()


def test_netifd_mode_pushes_schema_valid_updates(lab):
    node = lab.node("n1")
    log = os.path.join(node["dir"], "ubus-calls.log")
    with open(os.path.join(node["bin"], "ubus"), "w") as fh:
        fh.write(RECORDER.format(log=log))
    os.chmod(os.path.join(node["bin"], "ubus"), 0o755)
    argv = [sys.executable, "-m", "bmx7wg", "--confdir", node["confdir"], "--savedir", node["savedir"],
            "--rundir", node["rundir"], "run", "--netifd", "wgmesh"]
    pid = netns.spawn(node["ns"], argv, lab.env("n1"), os.path.join(node["dir"], "log", "helper.log"))
    lab.start_helper("n2")
    try:
        st = wait_until(lambda: (lab.helper_state("n1") or {}).get("node_id") and lab.helper_state("n1"),
                        30, "n1 state")
        own = next(a for a in st["addresses"] if a.startswith("fd77:"))

        def full_update():      # netifd takes each update as the complete set: check the latest
            updates = [d for o, m, d in recorded(log) if (o, m) == ("network.interface", "notify_proto")]
            return updates and updates[-1].get("ip6addr") and updates[-1].get("routes6") and updates[-1]
        update = wait_until(full_update, 30, "notify_proto with addresses")
        check("notify_proto.json", update)
        assert update["action"] == 0 and update["link-up"] is True
        assert update["interface"] == "wgmesh" and update["ifname"] == lab.ifname("n1")
        assert {"ipaddr": own.split("/")[0], "mask": "128"} in update["ip6addr"]
        assert {"target": "fd77::", "netmask": "16"} in [
            {k: r[k] for k in ("target", "netmask")} for r in update["routes6"]]
        # nothing pushed ever routes bmx7's own fd70::/16 into the tunnel
        assert not any(r["target"].startswith("fd70") or r["netmask"] == "0" for r in update.get("routes6", []))

        services = [d for o, m, d in recorded(log) if (o, m) == ("service", "set")]
        assert services, "firewall port not published"
        check("service-set.json", services[-1])
        rule = services[-1]["data"]["firewall"][0]
        assert rule["dest_port"] == st["listen_port"] and rule["proto"] == "udp"

        # the tunnel itself works in netifd mode: n2 is a WireGuard peer with a handshake
        n2_key = wait_until(lambda: (lab.helper_state("n2") or {}).get("public_key"), 30, "n2 key")
        wait_until(lambda: n2_key in lab.exec("n1", ["wg", "show", lab.ifname("n1"), "latest-handshakes"]).stdout
                   and "\t0" not in lab.exec("n1", ["wg", "show", lab.ifname("n1"), "latest-handshakes"]).stdout,
                   40, "handshake n1-n2")
        private = open(os.path.join(node["dir"], "etc", "bmx7wg", "wgmesh.key")).read().strip()
        assert private not in open(log).read()
    finally:
        netns.stop(pid, node["rundir"], signal.SIGTERM, timeout=10)
    # clean stop: the firewall rule is withdrawn (procd data emptied)
    last_service = [d for o, m, d in recorded(log) if o == "service"][-1]
    assert last_service.get("data", {}).get("firewall", []) == [] or "firewall" not in last_service.get("data", {})
