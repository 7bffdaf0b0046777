"""Churn on a 5-node ring, the way routers live: helpers killed (-9) or stopped and started,
bmx7 restarted alone or together with the helper, configs reloaded, keys rotated, in a fixed
pseudo-random order with random pauses. Afterwards no helper has crashed, every pair of nodes
handshakes again, and a quiet mesh makes no `wg set` at all."""

import os
import random
import signal
import time

import pytest

from labtools import wait_until, wg_dump, state

from bmx7wg.api import helper_alive
from bmx7wg.lab import mesh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

HOLD = 8
EMU = {"hop_delay": 0.05, "purge_timeout": 40, "refill_delay": 3}
ROUNDS = 25


def meshed(lab):
    keys = {n: state(lab, n).get("public_key") for n in lab.names}
    for n in lab.names:
        dump = wg_dump(lab, n)
        if None in keys.values() or set(dump) != {keys[m] for m in lab.names if m != n} \
                or not all(v[2] for v in dump.values()):
            return False
    return True


def tracebacks(lab):
    found = {}
    for n in lab.names:
        with open(os.path.join(lab.node(n)["dir"], "log", "helper.log")) as f:
            text = f.read()
        if "Traceback" in text:
            found[n] = text[text.index("Traceback"):][:2000]
    return found


def log_tail(lab, name, lines=25):
    with open(os.path.join(lab.node(name)["dir"], "log", "helper.log")) as f:
        return "".join(f.readlines()[-lines:])


def churn(lab, rnd, name):
    op = rnd.choice(["kill-9", "stop", "bmx7", "both", "reload", "rotate", "pause"])
    if op == "kill-9":
        lab.stop_helper(name, signal.SIGKILL)
        time.sleep(rnd.random())
        lab.start_helper(name)
    elif op == "stop":
        lab.stop_helper(name, signal.SIGTERM)
        time.sleep(rnd.random() * 3)
        lab.start_helper(name)
    elif op == "bmx7":
        lab.restart_bmx7(name)
    elif op == "both":
        lab.stop_helper(name, signal.SIGKILL)
        lab.restart_bmx7(name)
        lab.start_helper(name)
    elif op == "reload":
        lab.set_option(name, "announce", rnd.choice([None, ["10.77.0.0/24"]]))
        lab.reload_helper(name)
    elif op == "rotate":                # as `bmx7wg rotate_key` does: the pid its state file names
        pid = state(lab, name).get("pid")
        if helper_alive(pid):
            os.kill(pid, signal.SIGUSR1)
    return op


def test_churn_leaves_a_whole_mesh_and_no_crash():
    lab = mesh.up(nodes=5, topology="ring", prefix="bmc", workdir="/tmp/bmx7wg-test-churn",
                  emulator_options=EMU, uci_options={"hold_down": str(HOLD)})
    try:
        wait_until(lambda: meshed(lab), 60, "5-node ring to converge")
        rnd = random.Random(7)
        done = []
        for _ in range(ROUNDS):
            name = rnd.choice(lab.names)
            done.append((name, churn(lab, rnd, name)))
            time.sleep(rnd.random() * 2)
            assert not tracebacks(lab), f"a helper crashed after {done}: {tracebacks(lab)}"
        wait_until(lambda: meshed(lab), 90, f"every pair to handshake again after {done}")
        time.sleep(HOLD + 2)               # a helper restarted last may still wait for bmx7's refill
        wait_until(lambda: meshed(lab), 30, "every pair to handshake")
        assert all(helper_alive(state(lab, n).get("pid")) for n in lab.names)
        writes = {n: state(lab, n)["wg_writes"] for n in lab.names}
        time.sleep(HOLD + 2)               # past every hold-down: nothing left to settle
        moved = [n for n in lab.names if state(lab, n)["wg_writes"] != writes[n]]
        assert not moved, f"a quiet mesh rewrote peers on {moved} after {done}: " + "".join(
            f"\n--- {n}:\n" + log_tail(lab, n) for n in moved)
        assert not tracebacks(lab)
    finally:
        lab.down()
