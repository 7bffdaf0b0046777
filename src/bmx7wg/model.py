"""Value types shared by the pipeline: bmx7 files -> adverts -> desired WireGuard state.

slots: the helper holds several of these per node, thousands of nodes on a big mesh."""

from __future__ import annotations

import ipaddress
from . import address, cidr
from .record import FrozenInstanceError, record, field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@record(frozen=True, slots=True)
class Advert:
    """What one node publishes through its sms file (see advert.py for the wire format)."""

    public_key: str                      # base64, 44 chars (32 bytes)
    port: int                            # UDP port WireGuard really listens on
    addresses: tuple[str, ...] = ()      # tunnel addresses, host prefixes (/128, /32)
    networks: tuple[str, ...] = ()       # networks offered through the tunnel
    version: int = 1

    def __post_init__(self):
        # Entries are canonical CIDR text (see cidr.py: the one string an entry costs);
        # ipaddress networks given are turned into it, anything else is left for the
        # policy to reject.
        for name in ("addresses", "networks"):
            items = getattr(self, name)
            if not all(type(i) is str for i in items):
                object.__setattr__(self, name, tuple(
                    str(i) if isinstance(i, (ipaddress.IPv4Network, ipaddress.IPv6Network)) else i
                    for i in items))


@record(frozen=True, slots=True)
class NodeInfo:
    """The own node, from bmx7's json/status."""

    node_id: str
    name: str
    primary_ip: str


class Originator:
    """One node as bmx7 sees it (json/originators/<NODEID>); frozen, compared by value.

    Its primaryIp is kept only when it is not the one bmx7 derives from the nodeId under
    its default prefix: on a mesh of thousands of nodes that is thousands of 39-character
    strings (0.5 MB at 5,000 on 64-bit), each worked out again when asked instead."""

    __slots__ = ("node_id", "name", "_primary_ip", "dev", "metric", "hops", "last_ref")

    def __init__(self, node_id: str, name: str, primary_ip: str, dev: str = "---", metric: int = 0,
                 hops: int = 0, last_ref: int = 0):
        derived = address.is_node_id(node_id) and primary_ip == address.primary_ip_text(node_id)
        # metric: bits/s, 0 = no usable route; last_ref: seconds since last heard
        for slot, value in (("node_id", node_id), ("name", name), ("_primary_ip", None if derived else primary_ip),
                            ("dev", dev), ("metric", metric), ("hops", hops), ("last_ref", last_ref)):
            object.__setattr__(self, slot, value)

    @property
    def primary_ip(self) -> str:
        ip = self._primary_ip
        return address.primary_ip_text(self.node_id) if ip is None else ip

    def primary_ip_key(self) -> int | None:
        """cidr.address_key(self.primary_ip), without the text when it is the derived one."""
        ip = self._primary_ip
        return address.primary_ip_value(self.node_id) if ip is None else cidr.address_key(ip)

    @property
    def reachable(self) -> bool:
        # Not the metric: real bmx7 writes this file when a route is added *before* it
        # updates metric and hops, so a fresh route reads dev=<dev>, metric "-1", hops 0
        # until the next description change or the periodic rewrite (jsonUpdateInterval, 60 s).
        return self.dev != "---" and self.last_ref < 20

    def _values(self) -> tuple:
        return (self.node_id, self.name, self._primary_ip, self.dev, self.metric, self.hops, self.last_ref)

    def __eq__(self, other):
        return self._values() == other._values() if other.__class__ is self.__class__ else NotImplemented

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        return (f"Originator(node_id={self.node_id!r}, name={self.name!r}, primary_ip={self.primary_ip!r}, "
                f"dev={self.dev!r}, metric={self.metric!r}, hops={self.hops!r}, last_ref={self.last_ref!r})")

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")


def cidrs(values) -> tuple[str, ...]:
    """A peer's allowed IPs as compared everywhere: a sorted tuple, so the kernel's order
    and ours agree. A tuple, not a frozenset: one costs 48 bytes, the other 216, and an
    already sorted tuple (a decision's, most often of one entry) is kept as it is."""
    if type(values) is tuple and all(a < b for a, b in zip(values, values[1:])):
        return values
    return tuple(sorted(set(values)))


@record(frozen=True, slots=True)
class PeerSpec:
    """Desired configuration of one WireGuard peer, as wg.plan reads it: any object with
    these attributes will do (the reconciler hands it policy.PeerDecision objects). The
    persistent keepalive is the interface's, one argument of wg.plan for all peers."""

    public_key: str
    endpoint: str | None                 # "[fd70::1]:51820" or "10.0.0.1:51820"
    allowed_ips: tuple[str, ...] = ()    # canonical CIDR strings (any order: see cidrs())


@record(slots=True)
class PeerState:
    """A peer as `wg show <if> dump` reports it.

    Not frozen: a dump that shows a known peer as before but for its handshake and
    counters updates them in place (wg.parse_dump). With thousands of live sessions every
    dump moves every peer's counters, and a new object for each, built while the previous
    ones still stand, kept two generations of them resident (0.9 MB at 5,000 peers).
    Everything else in it is replaced, never changed.
    """

    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]         # sorted: see cidrs()
    latest_handshake: int | None         # unix seconds, None if never
    rx: int
    tx: int
    keepalive: int = 0


@record(slots=True)
class DeviceState:
    """The device line plus peers of `wg show <if> dump`. Holds no private key."""

    public_key: str | None
    listen_port: int
    fwmark: int = 0
    peers: dict[str, PeerState] = field(default_factory=dict)
