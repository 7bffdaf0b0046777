"""Stand-in for a running `bmx7wg run IFACE`, for the browser tests that need every peer
state and rejection kind at once, and a private key planted in the state file (the
test_lab_* tests use the REAL helper in a virtual mesh).

It does what the helper does as far as LuCI can see: writes `<rundir>/<iface>.json` in the
documented shape (docs/architecture.md) with its own pid, keeps the private key in a 0600
key file, re-reads its peers on SIGHUP (reload) and makes a new key pair on SIGUSR1
(rotate_key). Peers come from a JSON file the test writes; `handshake_ago` is turned
into `latest_handshake` relative to now.

    python3 bmx7wg_standin.py RUNDIR IFACE KEY_FILE PEERS_JSON [--plant-private-key]

--plant-private-key also writes the private key into the state file (top level, bmx7
block and each peer), which the real helper never does: api.py must drop it.
"""

import json
import os
import signal
import subprocess
import sys
import time

from bmx7wg import keys, state

pending: list[str] = []


def wg(args, data=None) -> str:
    return subprocess.run(["wg", *args], input=data, capture_output=True, check=True).stdout.decode().strip()


def new_key(key_file: str) -> None:
    keys.write_secret(key_file, wg(["genkey"]).encode() + b"\n")


def snapshot(iface: str, key_file: str, peers_file: str, plant: bool) -> dict:
    with open(key_file, "rb") as fh:
        private = fh.read().decode().strip()
    with open(peers_file) as fh:
        spec = json.load(fh)
    now = int(time.time())
    peers = []
    for p in spec.get("peers", []):
        entry = dict(p)
        ago = entry.pop("handshake_ago", None)
        entry["latest_handshake"] = now - ago if ago is not None else None
        if plant:
            entry["private_key"] = private
        peers.append(entry)
    st = {
        "interface": iface, "ifname": iface, "pid": os.getpid(), "updated": time.time(),
        "public_key": wg(["pubkey"], private.encode()), "listen_port": spec.get("listen_port", 51820),
        "key_mode": "persist", "backend": "userspace",
        "node_id": spec.get("node_id"), "name": spec.get("name"),
        "addresses": spec.get("addresses", []), "announce": spec.get("announce", []),
        "bmx7": {"dir": "/var/run/bmx7", "running": spec.get("bmx7_running", True), "sms_name": "wgtun",
                 "published": spec.get("bmx7_running", True)},
        "owned": [p.get("public_key") for p in peers if p.get("public_key")],
        "peers": peers,
    }
    if plant:
        st["private_key"] = private
        st["bmx7"]["private_key"] = private
    return st


def main() -> None:
    rundir, iface, key_file, peers_file = sys.argv[1:5]
    plant = "--plant-private-key" in sys.argv[5:]
    if not os.path.exists(key_file):
        new_key(key_file)
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: pending.append(signal.Signals(s).name))
    state.write(rundir, iface, snapshot(iface, key_file, peers_file, plant))
    while True:
        time.sleep(0.05)
        while pending:
            name = pending.pop(0)
            if name == "SIGTERM":
                return
            if name == "SIGUSR1":
                new_key(key_file)
            state.write(rundir, iface, snapshot(iface, key_file, peers_file, plant))


if __name__ == "__main__":
    main()
