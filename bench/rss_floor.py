"""The RSS floor for `make bench`: the least a Python helper could hold for N advertisers.

Run by run.py under the same bare-venv python3 as the helper: it imports what the helper's
daemon imports (the same fixed cost), then keeps, for each advertiser in the file it is
given (one line each: nodeId name primaryIp public_key endpoint allowed_ip), only that
data: one tuple in one dict keyed by nodeId. No decoded advert, no arbitration, no view of
the kernel's peers: what bmx7 and WireGuard themselves are told, held once. Prints VmRSS
in kB.
"""

import sys

import bmx7wg.daemon  # noqa: F401  the helper's modules and everything they import


def main() -> None:
    peers = {}
    with open(sys.argv[1]) as fh:
        for line in fh:
            node_id, name, primary_ip, key, endpoint, allowed = line.split()
            peers[sys.intern(node_id)] = (name, primary_ip, key, endpoint, (allowed,))
    with open("/proc/self/status") as fh:
        print(next(line.split()[1] for line in fh if line.startswith("VmRSS")))


if __name__ == "__main__":
    main()
