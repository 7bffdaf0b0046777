"""A small real program standing in for `bmx7wg run --netifd IFACE` under the netifd stand-in.

It talks to netifd through the real bmx7wg.netifd module (the `ubus` CLI on PATH records),
so what it sends is what the helper sends:
  STANDIN_HELPER_MODE=serve (default): push the interface's addresses/routes, open its port,
      then wait; SIGTERM -> close the port and exit 0 (as the helper's shutdown does).
  STANDIN_HELPER_MODE=fail: report PORT_IN_USE (error + block restart) and exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from bmx7wg import netifd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin import record  # noqa: E402

ADDRESSES = ["fd77:1234:5678::1/128", "10.66.0.1/32"]
ROUTES = [("fd77::/16", None, None), ("192.168.77.0/24", None, 10), ("::/0", "main", None)]
ENDPOINTS = ["[fd70:ead4:a77:66b3:932:2981:281:c08]:51820"]
PORT = 51999


def main(argv: list[str]) -> int:
    iface = argv[-1]
    mode = os.environ.get("STANDIN_HELPER_MODE", "serve")
    record({"kind": "helper", "event": "started", "argv": argv,
            "confdir": os.environ.get("BMX7WG_CONFDIR")})
    if mode == "fail":
        netifd.report_failure(iface, "PORT_IN_USE", f"option 'listen_port': cannot listen on {PORT}")
        return 2
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    cfg_ifname = json.loads(os.environ.get("STANDIN_DATA") or "{}").get("ifname") or iface
    netifd.push(iface, cfg_ifname, ADDRESSES, ROUTES, exclude=ENDPOINTS)
    netifd.publish_port(iface, PORT)
    record({"kind": "helper", "event": "ready"})
    while not stop:
        time.sleep(0.05)
    netifd.withdraw_port(iface)
    record({"kind": "helper", "event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
