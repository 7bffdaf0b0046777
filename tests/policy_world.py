"""Small builders for policy tests: nodes as bmx7 makes them (nodeId = SHA-224), adverts, context."""

from __future__ import annotations

import base64
import hashlib
import ipaddress

from bmx7wg import address, policy
from bmx7wg.model import Advert, Originator

PORT = 51820


def node_id(seed: str) -> str:
    """A nodeId spelled as bmx7 does: 56 uppercase hex digits of a SHA-224."""
    return hashlib.sha224(seed.encode()).hexdigest().upper()


def node_id_starting(first: str, seed: str = "") -> str:
    """A real-looking nodeId whose first hex digit is `first` (to order nodes in a test)."""
    i = 0
    while True:
        nid = node_id(f"{seed}{first}{i}")
        if nid.startswith(first):
            return nid
        i += 1


def key(seed: str) -> str:
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def auto(nid: str, prefix="fd77::/16") -> str:
    return f"{address.auto_address(nid, prefix)}/128"


def net(text: str):
    return ipaddress.ip_network(text)


def originator(nid: str, metric: int = 100_000_000, name: str | None = None, reachable: bool = True,
               primary_ip: str | None = None) -> Originator:
    return Originator(node_id=nid, name=name or f"node{nid[:4]}",
                      primary_ip=primary_ip or str(address.primary_ip(nid)),
                      dev="eth0" if reachable else "---", metric=metric, hops=1, last_ref=0)


def advert(nid: str, networks=(), addresses=None, public_key: str | None = None, port: int = PORT,
           with_auto: bool = True) -> Advert:
    addrs = [net(auto(nid))] if with_auto else []
    addrs += [net(a) for a in (addresses or ())]
    return Advert(public_key=public_key or key(nid), port=port, addresses=tuple(addrs),
                  networks=tuple(net(n) for n in networks))


def rules(*sections: dict, iface: str = "wgmesh"):
    """Rules from UCI-like option dicts: rules({"network": "10.0.0.0/8"}, ...)."""
    return policy.parse_rules([(s.get("_name", f"r{i}"), "bmx7wg_out",
                                {k: v for k, v in s.items() if k != "_name"})
                               for i, s in enumerate(sections)], iface)


ME = node_id("me")


def context(originators, rules_=(), previous=None, now=100.0, **kw) -> policy.PolicyContext:
    origs = {o.node_id: o for o in originators}
    origs.setdefault(ME, originator(ME, name="me"))
    return policy.PolicyContext(own_node_id=ME, rules=tuple(rules_), originators=origs,
                                previous=previous, now=now, **kw)


def allowed_map(sel) -> dict[str, frozenset[str]]:
    """The WireGuard side: public key -> allowed-ips, as reconcile configures peers."""
    return {d.public_key: frozenset(d.allowed_ips) for d in sel.peers.values()
            if d.public_key and d.allowed_ips}


def route_for(sel, ip: str) -> str | None:
    """WireGuard's cryptokey routing: the node whose allowed-ip is the longest match for ip."""
    target = ipaddress.ip_address(ip)
    best = None
    for nid, d in sel.peers.items():
        for cidr in d.allowed_ips:
            n = ipaddress.ip_network(cidr)
            if n.version == target.version and target in n and (best is None or n.prefixlen > best[0]):
                best = (n.prefixlen, nid)
    return best[1] if best else None
