"""Raw WireGuard baselines, so `make bench` can print helper ÷ raw ratios.

    raw_syncconf_cold(ifname, peers, key)  one `wg syncconf` adding all peers to an empty device
    raw_single_set(ifname)                 one `wg set` changing one peer's allowed IPs (median)
    helper_cold / helper_single            the same two jobs through bmx7wg.wg (dump+plan+apply)

Every function takes `netns=`: the commands then run inside that namespace (entered
with setns, so no `ip netns exec` start-up cost lands in the numbers). Importing does
nothing. Standalone: `python3 bench/bench_wg.py [N ...]` (default 100 1000 5000) makes
namespace wgb-bench with link wgbbench0, prints the table, and removes both.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from bmx7wg.model import PeerSpec, cidrs  # noqa: E402
from bmx7wg.lab.netns import inside  # noqa: E402
from bmx7wg.wg import Backend, plan  # noqa: E402



def _wg(*args: str, stdin=None) -> str:
    return subprocess.run(["wg", *args], check=True, capture_output=True, text=True,
                          stdin=stdin).stdout


KEEPALIVE = 25      # the helper's default: every synthetic peer's persistent keepalive


def synthetic_peers(n: int) -> dict[str, PeerSpec]:
    """n peers shaped like the mesh's: one /128, one /24, an endpoint (keepalive: KEEPALIVE)."""
    keys = (base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(n))
    return {k: PeerSpec(k, f"[fd70::{i + 1:x}]:51820",
                        cidrs((f"fd77:{i >> 16:x}:{i & 0xffff:x}::1/128",
                               f"10.{i >> 8 & 255}.{i & 255}.0/24")))
            for i, k in enumerate(keys)}


def _conf(peers: dict[str, PeerSpec], private_key_path: str | None) -> str:
    lines = ["[Interface]"]
    if private_key_path:     # syncconf drops the key when absent; keep the device's
        with open(private_key_path) as f:
            lines.append(f"PrivateKey = {f.read().strip()}")
    for p in peers.values():
        lines += ["", "[Peer]", f"PublicKey = {p.public_key}",
                  f"AllowedIPs = {', '.join(sorted(p.allowed_ips))}"]
        if p.endpoint:
            lines.append(f"Endpoint = {p.endpoint}")
        lines.append(f"PersistentKeepalive = {KEEPALIVE}")
    return "\n".join(lines) + "\n"


def _syncconf(ifname: str, peers: dict[str, PeerSpec], private_key_path: str | None) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:   # 0600 by mkstemp
        f.write(_conf(peers, private_key_path))
        f.flush()
        t = time.perf_counter()
        _wg("syncconf", ifname, f.name)
        return time.perf_counter() - t


def raw_syncconf_cold(ifname: str, peers: dict[str, PeerSpec] | int,
                      private_key_path: str | None = None, netns: str | None = None) -> float:
    """Seconds for one `wg syncconf` bringing an emptied device to `peers` (or N synthetic)."""
    peers = synthetic_peers(peers) if isinstance(peers, int) else peers
    with inside(netns):
        _syncconf(ifname, {}, private_key_path)
        return _syncconf(ifname, peers, private_key_path)


def raw_single_set(ifname: str, repeat: int = 20, netns: str | None = None) -> float:
    """Median seconds of one `wg set` that really changes one peer's allowed IPs."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    times = []
    with inside(netns):
        for i in range(repeat):
            t = time.perf_counter()
            _wg("set", ifname, "peer", key, "allowed-ips", f"10.255.{i % 2}.0/24")
            times.append(time.perf_counter() - t)
        _wg("set", ifname, "peer", key, "remove")
    return statistics.median(times)


def helper_cold(backend: Backend, ifname: str, peers: dict[str, PeerSpec],
                private_key_path: str | None = None, netns: str | None = None) -> float:
    """Seconds for dump + plan + apply bringing an emptied device to `peers`."""
    with inside(netns):
        _syncconf(ifname, {}, private_key_path)
        t = time.perf_counter()
        backend.apply(ifname, plan(backend.dump(ifname), peers, set(), keepalive=KEEPALIVE))
        return time.perf_counter() - t


def helper_single(backend: Backend, ifname: str, peers: dict[str, PeerSpec],
                  repeat: int = 20, netns: str | None = None) -> float:
    """Median seconds for dump + plan + apply of one changed peer among `peers` (configured)."""
    key = next(iter(peers))
    base = peers[key]
    times = []
    with inside(netns):
        for i in range(repeat):
            want = dict(peers)
            want[key] = PeerSpec(key, base.endpoint, (f"10.255.{i % 2}.0/24",))
            t = time.perf_counter()
            backend.apply(ifname, plan(backend.dump(ifname), want, set(want), keepalive=KEEPALIVE))
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(sizes: list[int]) -> None:
    netns, ifname = "wgb-bench", "wgbbench0"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    backend = Backend()
    tmp = tempfile.mkdtemp(prefix="wgb-bench-")
    key_path = os.path.join(tmp, "key")
    try:
        with inside(netns):
            kind = backend.ensure_link(ifname, 1420)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_wg("genkey"))
            backend.configure_device(ifname, key_path, 51999)
        print(f"backend: {kind}")
        print(f"{'N':>6} {'raw cold':>10} {'helper cold':>12} {'ratio':>6}"
              f" {'raw single':>11} {'helper single':>14} {'ratio':>6}")
        for n in sizes:
            peers = synthetic_peers(n)
            raw_c = raw_syncconf_cold(ifname, peers, key_path, netns=netns)
            hlp_c = helper_cold(backend, ifname, peers, key_path, netns=netns)
            raw_s = raw_single_set(ifname, netns=netns)
            hlp_s = helper_single(backend, ifname, peers, netns=netns)
            print(f"{n:>6} {raw_c:>9.3f}s {hlp_c:>11.3f}s {hlp_c / raw_c:>6.2f}"
                  f" {raw_s * 1000:>9.1f}ms {hlp_s * 1000:>12.1f}ms {hlp_s / raw_s:>6.2f}")
    finally:
        with inside(netns):
            backend.delete_link(ifname)
        subprocess.run(["ip", "netns", "del", netns], check=False)
        with contextlib.suppress(OSError):
            os.unlink(key_path)
            os.rmdir(tmp)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 5000])
