"""Profile Reconciler.step (Python cost only: a fake wg backend) on synthetic advertisers.

    python3 bench/prof_step.py --n 1000 [--top 25] [--what one]

Builds a bmx7 runtime dir with bench/run.py's FakeBmx7Dir, then times (and with --top
profiles) a cold step, a no-op step, one advert changing, one originator's metric
changing, and a new node appearing.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import run as B  # noqa: E402
from bmx7wg import address, config  # noqa: E402
from bmx7wg.bmx7 import Bmx7  # noqa: E402
from bmx7wg.model import DeviceState, NodeInfo  # noqa: E402
from bmx7wg.reconcile import Reconciler  # noqa: E402


class FakeBackend:
    """Counts writes; the device starts empty and is kept by the reconciler's cache."""

    def __init__(self):
        self.writes = 0

    def dump(self, ifname, reuse=None):
        return DeviceState(public_key=None, listen_port=1)

    def apply(self, ifname, args):
        self.writes += 1
        return 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--top", type=int, default=0, help="print the N most expensive functions")
    ap.add_argument("--what", default="one", help="phase to profile: cold, noop, one, metric, new")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="bmx7wg-prof-")
    cfg = config.parse("bench", {"ifname": "x", "bmx7_dir": d})
    fake = B.FakeBmx7Dir(d, cfg.auto_prefix)
    for i in range(1, args.n + 1):
        fake.add_node(i)
    time.sleep(0.2)               # files settle: bmx7.py skips them by stat
    bmx = Bmx7(d)
    own = NodeInfo(B.OWN_ID, "bench", str(address.primary_ip(B.OWN_ID)))
    rec = Reconciler(cfg, FakeBackend())

    def change(what):
        if what == "one":
            fake.write_sms(args.n // 2, port=51999)
        elif what == "metric":
            nid = B.node_id(args.n // 3)
            fake.write_json(f"json/originators/{nid}", {
                "nodeId": nid, "shortId": nid[:8], "name": f"n{args.n // 3}",
                "primaryIp": str(address.primary_ip(nid)), "dev": "veth0", "metric": "500M",
                "hops": 2, "lastRef": 0})
        elif what == "new":
            fake.add_node(args.n + 1)

    for what in ("cold", "noop", "one", "metric", "new"):
        change(what)
        prof = cProfile.Profile() if args.top and what == args.what else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        res = rec.step(time.time(), own, bmx.received("wgtun"), bmx.originators())
        if prof:
            prof.disable()
        dt = time.perf_counter() - t0
        print(f"N={args.n} {what:6s} {dt * 1000:8.1f} ms  writes {res.writes}")
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
    fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
