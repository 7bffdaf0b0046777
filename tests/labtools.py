"""Shared helpers for the lab tests (waiting on a live mesh, reading WireGuard directly)."""

import time


def wait_until(pred, timeout, what, interval=0.3):
    """pred()'s first truthy value within `timeout` seconds, else an AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def state(lab, name):
    """The node's helper state file, {} until there is one."""
    return lab.helper_state(name) or {}


def wg_dump(lab, name):
    """{public key: (endpoint, allowed ips, handshake, rx, tx)} straight from WireGuard."""
    out = lab.exec(name, ["wg", "show", lab.ifname(name), "dump"]).stdout.splitlines()[1:]
    peers = {}
    for line in out:
        f = line.split("\t")
        peers[f[0]] = (f[2], f[3], int(f[4]), int(f[5]), int(f[6]))
    return peers
