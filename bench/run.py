"""`make bench`: the helper's reconcile core and event path against raw `wg`, on real WireGuard.

For 100 / 1,000 / 5,000 synthetic advertisers (a bmx7 runtime dir written the way bmx7's sms
and json plugins write it) this prints: cold reconcile time, no-op reconcile time and `wg`
write count, one-change reconcile time and write count, latency from an rcvdSms file
appearing to the peer being configured (p50/p95, real helper process), the helper's RSS
(also under a 32-bit python3, as most routers run it: see py32.py), and the floor measured
in the same run: raw `wg syncconf` cold and a single raw `wg set`, with helper / raw ratios.

The helper runs from bytecode compiled beforehand, as the router package ships it (with
PYTHONDONTWRITEBYTECODE set, it would otherwise compile every module at each start), under
a python3 with no third-party site-packages (a bare venv), as on a router: this machine's
site-packages hold .pth hooks that load certifi into every python3 (+5 MB). Its RSS is
shown next to a bare python3 of that venv, and of this machine.

One change (helper and raw `wg set` alike) is the median of ONE_CHANGE_RUNS runs: a single
few-millisecond sample is mostly scheduling noise.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from bmx7wg import address, advert, config  # noqa: E402
from bmx7wg.daemon import STATS_EVERY  # noqa: E402
from bmx7wg.model import Advert, NodeInfo  # noqa: E402

import py32 as py32mod  # noqa: E402  (bench/, on sys.path as the script's directory)

NS = "bmx7wg-bench"
ONE_CHANGE_RUNS = 7
OWN_ID = "B0" * 28


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def in_ns():
    return []    # main() re-runs the bench inside the namespace: no `ip netns exec` per command


def node_id(i: int) -> str:
    # like bmx7: SHA-224 of the node key, so derived addresses differ in their leading bits
    return hashlib.sha224(str(i).encode()).hexdigest().upper()


def fake_key(i: int) -> str:
    return base64.b64encode(i.to_bytes(4, "big") * 8).decode()


class FakeBmx7Dir:
    """A runtime dir laid out as bmx7's sms + json plugins lay it out, plus a live `sock`."""

    def __init__(self, root: str, prefix):
        self.root = root
        self.prefix = prefix
        for sub in ("sms/rcvdSms", "sms/sendSms", "json/originators"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self.write_json("json/status", {"status": {"nodeId": OWN_ID, "shortId": OWN_ID[:8], "name": "bench",
                                                   "primaryIp": str(address.primary_ip(OWN_ID))}})
        with open(os.path.join(root, "pid"), "w") as fh:
            fh.write(f"{os.getpid()}\n")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(os.path.join(root, "sock"))
        self.sock.listen(64)

    def write_json(self, rel, obj):
        with open(os.path.join(self.root, rel), "w") as fh:
            json.dump(obj, fh)

    def add_node(self, i: int, port: int = 51820) -> None:
        nid = node_id(i)
        self.write_json(f"json/originators/{nid}", {
            "nodeId": nid, "shortId": nid[:8], "name": f"n{i}", "primaryIp": str(address.primary_ip(nid)),
            "dev": "veth0", "metric": "999M", "hops": 1, "lastRef": 0})
        self.write_sms(i, port)

    def write_sms(self, i: int, port: int = 51820) -> None:
        nid = node_id(i)
        data = advert.encode(Advert(public_key=fake_key(i), port=port, addresses=(
            ipaddress.ip_network(f"{address.auto_address(nid, str(self.prefix))}/128"),)))
        path = os.path.join(self.root, "sms/rcvdSms", f"{nid}:wgtun")
        with open(path, "wb") as fh:      # bmx7 writes rcvdSms files in place
            fh.write(data)

    def close(self):
        self.sock.close()


def fresh_link(ifname: str) -> None:
    sh(*in_ns(), "ip", "link", "del", ifname, check=False)
    env = dict(os.environ, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
    if sh(*in_ns(), "ip", "link", "add", ifname, "type", "wireguard", check=False).returncode:
        subprocess.run(in_ns() + ["wireguard-go", ifname], check=True, env=env, capture_output=True)
    key = sh("wg", "genkey").stdout
    with tempfile.NamedTemporaryFile("w", delete=False) as fh:
        fh.write(key)
    os.chmod(fh.name, 0o600)
    sh(*in_ns(), "wg", "set", ifname, "private-key", fh.name, "listen-port", "0")
    os.unlink(fh.name)
    sh(*in_ns(), "ip", "link", "set", ifname, "up")


def raw_floor(n: int, ifname: str) -> tuple[float, float]:
    """Raw `wg syncconf` to the same N peers, and one raw `wg set` changing one peer."""
    fresh_link(ifname)
    lines = ["[Interface]"]
    for i in range(1, n + 1):
        nid = node_id(i)
        lines += ["[Peer]", f"PublicKey = {fake_key(i)}",
                  f"AllowedIPs = {address.auto_address(nid, 'fd77::/16')}/128",
                  f"Endpoint = [{address.primary_ip(nid)}]:51820", "PersistentKeepalive = 25"]
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".conf") as fh:
        fh.write("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    sh(*in_ns(), "wg", "syncconf", ifname, fh.name)
    cold = time.perf_counter() - t0
    os.unlink(fh.name)
    nid = node_id(1)
    runs = []
    for k in range(ONE_CHANGE_RUNS):
        t0 = time.perf_counter()
        sh(*in_ns(), "wg", "set", ifname, "peer", fake_key(1), "endpoint", f"[{address.primary_ip(nid)}]:{51821 + k}")
        runs.append(time.perf_counter() - t0)
    one = statistics.median(runs)
    sh(*in_ns(), "ip", "link", "del", ifname, check=False)
    return cold, one


def core_bench(n: int, ifname: str, workdir: str) -> dict:
    """Reconciler.step in this process against a real link: cold, no-op, one change."""
    from bmx7wg import wg
    from bmx7wg.bmx7 import Bmx7
    from bmx7wg.reconcile import Reconciler

    bdir = os.path.join(workdir, f"core{n}")
    cfg = config.parse("bench", {"ifname": ifname, "bmx7_dir": bdir, "hold_down": "60"})
    fake = FakeBmx7Dir(bdir, cfg.auto_prefix)
    for i in range(1, n + 1):
        fake.add_node(i)
    fresh_link(ifname)
    bmx = Bmx7(bdir)
    own = NodeInfo(OWN_ID, "bench", str(address.primary_ip(OWN_ID)))
    backend = wg.Backend()
    rec = Reconciler(cfg, backend)

    def step():
        t0 = time.perf_counter()
        res = rec.step(time.time(), own, bmx.received("wgtun"), bmx.originators())
        return time.perf_counter() - t0, res.writes

    cold, cold_w = step()
    noop, noop_w = step()
    runs = []
    for k in range(ONE_CHANGE_RUNS):
        fake.write_sms(n // 2, port=51900 + k)
        runs.append(step())
    one = statistics.median(dt for dt, _ in runs)
    one_w = max(w for _, w in runs)       # every one of them: exactly one write
    dump = backend.dump(ifname)
    assert len(dump.peers) == n, f"expected {n} peers, wg has {len(dump.peers)}"
    fake.close()
    sh(*in_ns(), "ip", "link", "del", ifname, check=False)
    return {"cold": cold, "cold_writes": cold_w, "noop": noop, "noop_writes": noop_w,
            "one": one, "one_writes": one_w}


LIVE_WG = r"""#!/bin/sh
# `wg` as a mesh whose peers all have live sessions shows them: each peer's dump line gets a
# handshake of the last 2 minutes and rx/tx counters that move between dumps (digits glued
# as text: mawk prints big numbers as floats); the bench's peers have no WireGuard behind
# their endpoints. Any other command is the real wg's.
if [ "$1" = show ] && [ "$3" = dump ]; then
    out=$(REAL show "$2" dump) || exit $?
    printf '%s\n' "$out" | awk -F '\t' -v OFS='\t' -v now="$(date +%s)" \
        'NR > 1 { $5 = now - NR % 120; $6 = now NR; $7 = now NR NR } { print }'
else
    exec REAL "$@"
fi
"""


def live_wg_dir(workdir: str) -> str:
    """A directory holding LIVE_WG as `wg`, to put first in the helper's PATH."""
    path = os.path.join(workdir, "live-bin")
    if not os.path.exists(path):
        os.makedirs(path)
        with open(os.path.join(path, "wg"), "w") as fh:
            fh.write(LIVE_WG.replace("REAL", shutil.which("wg")))
        os.chmod(os.path.join(path, "wg"), 0o755)
    return path


def latency_bench(n: int, ifname: str, workdir: str, samples: int, python: str | None = None,
                  tag: str = "", live: bool = False) -> dict:
    """The real helper process: time from an rcvdSms file appearing to its peer being configured,
    and its RSS once steady. `python`: the interpreter to run it with (default: a bare venv).
    `live`: every peer shows a live session in the helper's dumps (see LIVE_WG), as in a mesh
    where they all talk: handshakes, moving counters, keys proven."""
    bdir = os.path.join(workdir, f"lat{n}{tag}")
    conf = os.path.join(workdir, f"conf{n}{tag}")
    rund = os.path.join(workdir, f"run{n}{tag}")
    os.makedirs(conf)
    fake = FakeBmx7Dir(bdir, ipaddress.ip_network("fd77::/16"))
    for i in range(1, n + 1):
        fake.add_node(i)
    with open(os.path.join(conf, "network"), "w") as fh:
        fh.write(f"config interface 'bench'\n\toption proto 'bmx7wg'\n\toption ifname '{ifname}'\n"
                 f"\toption bmx7_dir '{bdir}'\n\toption key_file '{workdir}/bench{n}{tag}.key'\n"
                 f"\toption hold_down '600'\n")
    env = dict(helper_env(workdir, python), WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1",
               PATH=f"{workdir}/bin:" + (live_wg_dir(workdir) + ":" if live else "") + os.environ["PATH"])
    os.makedirs(f"{workdir}/bin", exist_ok=True)
    with open(f"{workdir}/bin/bmx7", "w") as fh:      # registration answered like bmx7 -c does
        fh.write("#!/bin/sh\nexit 0\n")
    os.chmod(f"{workdir}/bin/bmx7", 0o755)
    sh(*in_ns(), "ip", "link", "del", ifname, check=False)
    proc = subprocess.Popen([python or router_python(workdir), "-m", "bmx7wg", "--confdir", conf, "--rundir", rund,
                                       "run", "bench"], env=env, stderr=subprocess.PIPE, text=True)
    started = time.perf_counter()
    added: dict[str, float] = {}
    ready = threading.Event()

    def reader():
        for line in proc.stderr:
            now = time.perf_counter()
            if " added" in line and "peer " in line:
                added[line.split("peer ")[1].split()[0]] = now
                if len(added) >= n:
                    ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(300):
        proc.kill()
        raise RuntimeError(f"helper configured only {len(added)} of {n} peers")
    lat = []
    for k in range(samples):
        i = n + 1 + k
        sid = node_id(i)[:8]
        fake.add_node(i)   # originator first, then the sms file: the order bmx7 produces
        t0 = time.perf_counter()
        deadline = t0 + 10
        while sid not in added and time.perf_counter() < deadline:
            time.sleep(0.0005)
        if sid in added:
            lat.append(added[sid] - t0)
        time.sleep(0.05)
    # steady state: after the helper's periodic work (stats dumps, state files) has run twice
    time.sleep(max(0.0, started + 2 * STATS_EVERY + 2 - time.perf_counter()))
    with open(f"/proc/{proc.pid}/status") as fh:
        status = dict(line.split(":", 1) for line in fh)
    rss_kb, peak_kb = (int(status[k].split()[0]) for k in ("VmRSS", "VmHWM"))
    if live:      # the helper must have seen the sessions, or this measured nothing new
        with open(os.path.join(rund, "bench.json")) as fh:
            active = sum(p.get("state") == "active" for p in json.load(fh).get("peers", []))
        if active < n:
            proc.kill()
            raise RuntimeError(f"live sessions: the helper shows {active} of {n} peers active")
    proc.terminate()
    proc.wait(30)
    fake.close()
    sh(*in_ns(), "ip", "link", "del", ifname, check=False)
    lat.sort()
    return {"p50": statistics.median(lat) if lat else float("nan"),
            "p95": lat[max(0, int(len(lat) * 0.95) - 1)] if lat else float("nan"),
            "samples": len(lat), "rss_mb": rss_kb / 1024, "peak_mb": peak_kb / 1024}


def helper_env(workdir: str, python: str | None = None) -> dict:
    """PYTHONPATH to the sources, their bytecode brought up to date in src/bmx7wg/__pycache__
    (git-ignored; compileall writes it even where imports may not), also for `python` when
    it is another python3 version (its own .pyc names)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    for compiler in (sys.executable, *([python] if python else [])):
        subprocess.run([compiler, "-m", "compileall", "-q", *(["-f"] if compiler == sys.executable else []),
                        os.path.join(ROOT, "src", "bmx7wg")], env=env, check=True, capture_output=True)
    return env


def router_python(workdir: str) -> str:
    """A python3 with site but no third-party packages or .pth hooks (a bare venv)."""
    python = os.path.join(workdir, "venv", "bin", "python3")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", os.path.join(workdir, "venv")], check=True)
    return python


def describe_python(path: str) -> str:
    """"python3 3.11.2 (x86_64-linux-musl)": version, and the target triplet (its libc)."""
    out = subprocess.run([path, "-c", "import sys, sysconfig; print('%d.%d.%d' % sys.version_info[:3], "
                          "sysconfig.get_config_var('MULTIARCH') or sysconfig.get_platform())"],
                         check=True, capture_output=True, text=True).stdout.split()
    return f"python3 {out[0]} ({out[1]})"


def bare_rss_mb(workdir: str, python: str) -> float:
    """RSS of a python3 that imports nothing of ours, for comparison."""
    out = subprocess.run([python, "-c", "print(next(l.split()[1] for l in open('/proc/self/status')"
                          " if l.startswith('VmRSS')))"], env=helper_env(workdir), check=True,
                         capture_output=True, text=True).stdout
    return int(out) / 1024


def rss_floor_mb(n: int, workdir: str, python: str, *how: str) -> float:
    """RSS of rss_floor.py holding the same N advertisers' peer data and nothing else
    (`how`: "--one-record" for the one-record estimate)."""
    path = os.path.join(workdir, f"floor-{n}.txt")
    with open(path, "w") as fh:
        for i in range(1, n + 1):
            nid = node_id(i)
            ip = address.primary_ip(nid)
            fh.write(f"{nid} n{i} {ip} {fake_key(i)} [{ip}]:51820 "
                     f"{address.auto_address(nid, str(config.DEFAULT_AUTO_PREFIX))}/128\n")
    out = subprocess.run([python, os.path.join(ROOT, "bench", "rss_floor.py"), *how, path],
                         env=helper_env(workdir), check=True, capture_output=True, text=True).stdout
    return int(out) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--python", action="append", default=os.environ.get("BMX7WG_BENCH_PYTHONS", "").split(),
                    metavar="PATH", help="also measure the helper's RSS under this python3 (repeatable; "
                    "default: $BMX7WG_BENCH_PYTHONS, space-separated), e.g. one built against musl")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (network namespace + WireGuard)", file=sys.stderr)
        return 2
    if os.environ.get("BMX7WG_BENCH_NS") != NS:
        py32mod.interpreter()        # fetched here: the bench's namespace has no way out
        sh("ip", "netns", "del", NS, check=False)
        sh("ip", "netns", "add", NS)
        try:
            env = dict(os.environ, BMX7WG_BENCH_NS=NS)
            return subprocess.run(["ip", "netns", "exec", NS, sys.executable, *sys.argv], env=env).returncode
        finally:
            for name in ("wgbraw0", "wgbcore0", "wgblat0"):   # wireguard-go outlives `netns del`
                sh("ip", "netns", "exec", NS, "ip", "link", "del", name, check=False)
            sh("ip", "netns", "del", NS, check=False)
    sh("ip", "link", "set", "lo", "up")
    workdir = tempfile.mkdtemp(prefix="bmx7wg-bench-")
    rows = []
    try:
        bare = bare_rss_mb(workdir, router_python(workdir))
        bare_here = bare_rss_mb(workdir, sys.executable)
        py32, no_py32 = py32mod.interpreter()
        bare32 = bare_rss_mb(workdir, py32) if py32 else None
        pythons = list(dict.fromkeys(args.python))
        labels = [describe_python(path) for path in pythons]
        # a label twice (the same version and libc) would mix their results: name the path then
        others = [(label if labels.count(label) == 1 else f"{label} at {path}", path, bare_rss_mb(workdir, path))
                  for label, path in zip(labels, pythons)]
        for n in (int(s) for s in args.sizes.split(",")):
            raw_cold, raw_one = raw_floor(n, "wgbraw0")
            core = core_bench(n, "wgbcore0", workdir)
            lat = latency_bench(n, "wgblat0", workdir, args.samples)
            floor = rss_floor_mb(n, workdir, router_python(workdir))
            one_record = rss_floor_mb(n, workdir, router_python(workdir), "--one-record")
            rows.append((n, raw_cold, raw_one, core, lat))
            print(f"N={n:5d}  cold {core['cold']*1000:8.1f} ms ({core['cold_writes']} write)  "
                  f"raw syncconf {raw_cold*1000:8.1f} ms  ratio {core['cold']/raw_cold:5.2f}", flush=True)
            print(f"         no-op {core['noop']*1000:7.1f} ms ({core['noop_writes']} writes)", flush=True)
            print(f"         one change {core['one']*1000:6.1f} ms ({core['one_writes']} write)  "
                  f"raw wg set {raw_one*1000:6.1f} ms  ratio {core['one']/raw_one:5.2f}", flush=True)
            print(f"         event->peer p50 {lat['p50']*1000:6.1f} ms  p95 {lat['p95']*1000:6.1f} ms "
                  f"(n={lat['samples']})  helper RSS {lat['rss_mb']:.1f} MB, peak {lat['peak_mb']:.1f} MB "
                  f"(bare python3 {bare:.1f} MB; with this machine's site-packages {bare_here:.1f} MB)",
                  flush=True)
            print(f"         RSS floor {floor:.1f} MB (the helper's imports + each peer's data held once)  "
                  f"ratio {lat['rss_mb']/floor:5.2f}", flush=True)
            print(f"         one-record estimate {one_record:.1f} MB (a record per peer with all it keeps, "
                  f"indexes by node, key, tunnel address and endpoint; no policy tables)", flush=True)
            if py32:
                lat["rss32"] = latency_bench(n, "wgblat0", workdir, 0, py32, tag="-32")
                floor32 = rss_floor_mb(n, workdir, py32)
                print(f"         32-bit python3: helper RSS {lat['rss32']['rss_mb']:.1f} MB, peak "
                      f"{lat['rss32']['peak_mb']:.1f} MB (bare {bare32:.1f} MB)  floor {floor32:.1f} MB  "
                      f"ratio {lat['rss32']['rss_mb']/floor32:5.2f}", flush=True)
            lat["live"] = latency_bench(n, "wgblat0", workdir, 0, tag="-live", live=True)
            if py32:
                lat["live32"] = latency_bench(n, "wgblat0", workdir, 0, py32, tag="-live32", live=True)
            print(f"         with live sessions (every peer hand-shaken, counters moving): helper RSS "
                  f"{lat['live']['rss_mb']:.1f} MB, peak {lat['live']['peak_mb']:.1f} MB"
                  + (f"; 32-bit {lat['live32']['rss_mb']:.1f} MB, peak {lat['live32']['peak_mb']:.1f} MB"
                     if py32 else ""), flush=True)
            for i, (label, path, bare_mb) in enumerate(others):
                idle = lat[label] = latency_bench(n, "wgblat0", workdir, 0, path, tag=f"-x{i}")
                live = lat[label + " with live sessions"] = latency_bench(n, "wgblat0", workdir, 0, path,
                                                                          tag=f"-xl{i}", live=True)
                print(f"         {label}: helper RSS {idle['rss_mb']:.1f} MB, peak {idle['peak_mb']:.1f} MB; "
                      f"with live sessions {live['rss_mb']:.1f} MB, peak {live['peak_mb']:.1f} MB "
                      f"(bare {bare_mb:.1f} MB)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if len(rows) >= 2:
        (n1, *_, lat1), (n2, *_, lat2) = sorted(rows)[-2:]
        print()
        for label, run, bare_mb in (("RSS", None, bare), ("32-bit: RSS", "rss32", bare32),
                                    ("with live sessions: RSS", "live", bare),
                                    ("32-bit with live sessions: RSS", "live32", bare32),
                                    *((f"{label}: RSS", label, bare_mb) for label, _, bare_mb in others),
                                    *((f"{label} with live sessions: RSS", label + " with live sessions", bare_mb)
                                      for label, _, bare_mb in others)):
            if run is not None and run not in lat2:
                continue
            a, b = ((lat1[run] if run else lat1)["rss_mb"], (lat2[run] if run else lat2)["rss_mb"])
            per = (b - a) * 1024 / (n2 - n1)
            print(f"{label} = {b - per * n2 / 1024:.1f} MB + {per:.2f} KB per advertiser "
                  f"(from N={n1} and N={n2}; bare python3 {bare_mb:.1f} MB)")
    if not py32:
        print(f"\n32-bit RSS not measured: {no_py32}")
    print("\ntargets: no-op 0 writes; one change 1 write; cold and one-change ratio <= 2; "
          "event->peer p95 <= 50 ms; RSS <= 20 MB")
    main_label = describe_python(sys.executable) + ", this machine's"
    label32 = describe_python(py32) + ", 32-bit" if py32 else "32-bit python3"
    for line in verdict(rows, main_label, label32, [label for label, _, _ in others]):
        print(line)
    return 0


RSS_TARGET_MB = 20.0


def verdict(rows, main_label: str, label32: str, other_labels) -> list[str]:
    """Each target met or missed, over every size; RSS per python3, peaks and live sessions
    included (what a router must hold at its worst, not only when idle). RSS is judged under
    musl, OpenWrt's C library (README, "Choices made where the issues were silent"); a glibc
    python3's RSS is shown beside it, for comparison, and judged on nothing."""
    def judged(name, values, ok, shown, unit=""):
        worst = [(n, v) for n, v in values if not ok(v)]
        return (f"  {name}: " + (f"met at every size ({shown})" if not worst else
                "MISSED at " + ", ".join(f"N={n} ({v}{unit})" for n, v in worst)))
    core = [(n, c) for n, _, _, c, _ in rows]
    lines = ["verdict:",
             judged("no-op 0 writes", [(n, c["noop_writes"]) for n, c in core], lambda v: v == 0, "0"),
             judged("one change 1 write", [(n, c["one_writes"]) for n, c in core], lambda v: v == 1, "1"),
             judged("cold ratio <= 2", [(n, round(c["cold"] / rc, 2)) for n, rc, _, c, _ in rows],
                    lambda v: v <= 2, f"largest {max(c['cold'] / rc for _, rc, _, c, _ in rows):.2f}"),
             judged("one-change ratio <= 2", [(n, round(c["one"] / ro, 2)) for n, _, ro, c, _ in rows],
                    lambda v: v <= 2, f"largest {max(c['one'] / ro for _, _, ro, c, _ in rows):.2f}"),
             judged("event->peer p95 <= 50 ms", [(n, round(lat["p95"] * 1000, 1)) for n, *_, lat in rows],
                    lambda v: v <= 50, f"largest {max(lat['p95'] for *_, lat in rows) * 1000:.1f} ms", " ms")]
    runs = [(main_label, None, "live"), (label32, "rss32", "live32"),
            *((label, label, label + " with live sessions") for label in other_labels)]
    musl_met = []
    for label, idle_key, live_key in runs:
        worst = []
        for n, *_, lat in rows:
            runs_n = [lat if key is None else lat.get(key) for key in (idle_key, live_key)]
            if any(run is not None for run in runs_n):
                worst.append((n, round(max(max(run["rss_mb"], run["peak_mb"]) for run in runs_n
                                           if run is not None), 1)))
        if not worst:
            continue
        n, largest = max(worst, key=lambda nv: nv[1])
        if not on_musl(label):   # glibc is no router's C library
            lines.append(f"  RSS, {label}: largest {largest} MB (N={n}); glibc: shown, not judged")
            continue
        musl_met.append(largest <= RSS_TARGET_MB)
        lines.append(judged(f"RSS <= {RSS_TARGET_MB:.0f} MB, {label}", worst, lambda v: v <= RSS_TARGET_MB,
                            f"largest {largest} MB", " MB"))
    target = f"  RSS <= {RSS_TARGET_MB:.0f} MB, judged under musl (OpenWrt's C library): "
    if not musl_met:
        lines.append(target + "NOT MEASURED in this run: give python3s built against musl in "
                     "$BMX7WG_BENCH_PYTHONS (Debian packages none)")
    else:
        lines.append(target + (f"met under all {len(musl_met)} musl python3s measured" if all(musl_met)
                               else "MISSED"))
    return lines


def on_musl(label: str) -> bool:
    """Whether describe_python's label names a musl target triplet."""
    return "-musl" in label


if __name__ == "__main__":
    sys.exit(main())
