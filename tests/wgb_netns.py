"""Test helpers for wg/routes tests: real network namespaces named wgb-*, entered in-process.

The helper runs under `ip netns exec` in the lab; here the test process enters the
namespace with setns(2) around each call, so every `ip`, `wg` and `wireguard-go` it
starts lives there too (one test, `test_under_ip_netns_exec`, uses ip netns exec itself).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

from bmx7wg.lab.netns import inside  # noqa: F401  (re-exported for the wg tests)



def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


def _netns_inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def pids_in(ns: str) -> list[int]:
    """Processes living in namespace `ns` (the wireguard-go daemons tests started)."""
    want = f"net:[{_netns_inode(ns)}]"
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == want:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


class Netns:
    def __init__(self, name: str):
        self.name = name
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "-n", self.name, *args, check=check)

    def wg(self, *args: str) -> subprocess.CompletedProcess:
        with inside(self.name):
            return sh("wg", *args)

    def close(self) -> None:
        from bmx7wg.wg import Backend
        backend = Backend()
        links = self.ip("-j", "link", "show", check=False).stdout
        with inside(self.name):
            for link in json.loads(links or "[]"):
                if link["ifname"].startswith("wgb"):
                    with contextlib.suppress(Exception):
                        backend.delete_link(link["ifname"])
        for pid in pids_in(self.name):          # anything a failed test left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while pids_in(self.name) and time.monotonic() < deadline:
            time.sleep(0.02)
        sh("ip", "netns", "del", self.name, check=False)


def make_key(directory) -> tuple[str, str]:
    """(private key file 0600, public key) made with wg genkey/pubkey."""
    path = os.path.join(directory, f"key{time.monotonic_ns()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(sh("wg", "genkey").stdout)
    with open(path) as f:
        public = sh("wg", "pubkey", stdin=f).stdout.strip()
    return path, public


def logging_wrapper(directory, real: str) -> tuple[str, str]:
    """A script that logs its argv to a file and then runs `real`; (script, log)."""
    log = os.path.join(directory, f"{real}.log")
    script = os.path.join(directory, f"{real}-logged")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    os.chmod(script, 0o755)
    open(log, "w").close()
    return script, log
