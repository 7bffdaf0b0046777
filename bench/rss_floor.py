"""The RSS floors for `make bench`: the least a Python helper could hold for N advertisers.

Run by run.py under the same bare-venv python3 as the helper: it imports what the helper's
daemon imports (the same fixed cost), then keeps, for each advertiser in the file it is
given (one line each: nodeId name primaryIp public_key endpoint allowed_ip), only that
data: one tuple in one dict keyed by nodeId. No decoded advert, no arbitration, no view of
the kernel's peers: what bmx7 and WireGuard themselves are told, held once. Prints VmRSS
in kB.

With --one-record: what a helper built around one record per peer would hold at least.
The record has a slot for everything today's helper keeps per node (raw sms bytes, port,
metric, status and reason, claim age, last seen, handshake and counters), and the indexes
it cannot do without: by nodeId, by public key, by tunnel address, the peers it owns, the
endpoint addresses in order. No policy tables, no history, no transient state of a step.
"""

import bisect
import sys

import bmx7wg.daemon  # noqa: F401  the helper's modules and everything they import
from bmx7wg import advert, cidr, ints
from bmx7wg.model import Advert


class Peer:
    __slots__ = ("node_id", "name", "primary_ip", "metric", "raw", "public_key", "port", "addresses",
                 "networks", "endpoint", "status", "reason", "last_seen", "key_since",
                 "kernel_endpoint", "latest_handshake", "rx", "tx")


def floor(lines) -> dict:
    peers = {}
    for line in lines:
        node_id, name, primary_ip, key, endpoint, allowed = line.split()
        peers[sys.intern(node_id)] = (name, primary_ip, key, endpoint, (allowed,))
    return peers


def one_record(lines) -> tuple:
    by_node, by_key, by_address, owned, endpoints = {}, {}, {}, {}, []
    for line in lines:
        node_id, name, primary_ip, key, endpoint, allowed = line.split()
        p = Peer()
        p.node_id, p.name, p.primary_ip = sys.intern(node_id), name, primary_ip
        p.public_key, p.endpoint, p.addresses, p.networks = sys.intern(key), endpoint, allowed, None
        p.port = ints.shared(int(endpoint.rpartition(":")[2]))
        p.raw = advert.encode(Advert(public_key=p.public_key, port=p.port, addresses=(allowed,)))
        p.metric, p.status, p.reason = ints.shared(999_000_000), "accepted", None
        p.last_seen = p.key_since = 0.0
        p.kernel_endpoint, p.latest_handshake, p.rx, p.tx = endpoint, None, 0, 0
        by_node[p.node_id] = by_key[p.public_key] = by_address[allowed] = p
        owned[p.public_key] = None
        bisect.insort(endpoints, cidr.address(primary_ip)[1])
    return by_node, by_key, by_address, owned, endpoints


def main() -> None:
    build = one_record if "--one-record" in sys.argv[1:] else floor
    with open(sys.argv[-1]) as fh:
        held = build(fh)   # noqa: F841  held while VmRSS is read
    with open("/proc/self/status") as fh:
        print(next(line.split()[1] for line in fh if line.startswith("VmRSS")))


if __name__ == "__main__":
    main()
