"""One reconcile step: bmx7's view -> policy -> desired peers -> one batched `wg set`.

Kept free of the event loop so the daemon, the tests and the benchmark drive the same code.
The device model is cached between steps (a full `wg show dump` per event would cost more
than the write itself on big meshes); the daemon refreshes it from the kernel periodically.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field

from . import policy, wg
from .config import IfaceConfig
from .model import DeviceState, NodeInfo, Originator, PeerSpec, PeerState
from .peers import PeerTable

log = logging.getLogger("bmx7wg")


@dataclass
class StepResult:
    writes: int = 0
    added: list[str] = field(default_factory=list)      # node ids
    removed: list[str] = field(default_factory=list)    # node ids
    routes_changed: bool = False


class Reconciler:
    def __init__(self, cfg: IfaceConfig, backend, local_networks: tuple = ()):
        self.cfg = cfg
        self.backend = backend
        self.own_public_key: str | None = None
        self.local_addresses: tuple = ()      # own tunnel addresses + primaryIp: never routed into the tunnel
        self.table = PeerTable(cfg.hold_down)
        self.device: DeviceState | None = None
        self.owned: set[str] = set()
        self.selection = None
        self.local_networks = local_networks
        self.node_of_key: dict[str, str] = {}
        self.node_of_key_before: dict[str, str] = {}   # keys of removed peers -> their node
        self.routes: frozenset = frozenset()
        self.inputs_seen: tuple | None = None  # what the last selection was computed from
        self.force = True                      # config/key changed: recompute even if inputs did not
        self.replan = True                     # device re-read: diff it against `desired` again
        self.desired: dict[str, PeerSpec] = {}
        self.known_originators: dict[str, Originator] = {}
        self.kernel_peers: dict[str, PeerState] = {}   # as WireGuard last reported them (not our cache)

    def refresh_device(self) -> DeviceState | None:
        self.device = self.backend.dump(self.cfg.ifname)
        self.kernel_peers = dict(self.device.peers) if self.device else {}
        self.replan = True      # the kernel's view may differ from our cache: compare again
        return self.device

    def context(self, own: NodeInfo, originators: dict[str, Originator], now: float):
        return policy.PolicyContext(
            own_node_id=own.node_id, auto_prefix=self.cfg.auto_prefix, rules=self.cfg.rules,
            allow_nodes=self.cfg.allow_nodes, local_networks=self.local_networks,
            local_addresses=self.local_addresses + (own.primary_ip,), originators=originators,
            previous=self.selection, now=now, own_public_key=self.own_public_key,
            proven_keys=self.proven_keys())

    def proven_keys(self, wall_now: float | None = None) -> dict[str, str]:
        """{public key: nodeId} for keys a node proved it holds: WireGuard has a live session
        with the key (handshake younger than wg.STALE_HANDSHAKE, by WireGuard's unix clock)
        and its endpoint, as WireGuard reported it, is that node's primaryIp. WireGuard moves
        the endpoint to the source of every authenticated packet, so only the private key's
        holder puts its address there, and `plan` never overwrites the endpoint of a live
        session. Read from the last kernel dump, not from the cache `_update_cache` fills
        with the endpoints we asked for."""
        now = time.time() if wall_now is None else wall_now
        node_at = {}
        for node_id, orig in self.known_originators.items():
            try:
                node_at[ipaddress.ip_address(orig.primary_ip)] = node_id
            except ValueError:
                continue
        proven = {}
        for key, peer in self.kernel_peers.items():
            live = peer.latest_handshake and now - peer.latest_handshake < wg.STALE_HANDSHAKE
            if not live or not peer.endpoint:
                continue
            host = peer.endpoint.rpartition(":")[0].strip("[]").partition("%")[0]
            try:
                node_id = node_at.get(ipaddress.ip_address(host))
            except ValueError:
                continue
            if node_id is not None:
                proven[key] = node_id
        return proven

    def step(self, now: float, own: NodeInfo, received: dict[str, bytes],
             originators: dict[str, Originator]) -> StepResult:
        result = StepResult()
        changed = self.table.update(now, received, originators, own.node_id)
        originators = self._remember(originators)
        inputs = (own, {nid: _standing(o) for nid, o in originators.items()})
        if changed or self.force or inputs != self.inputs_seen:
            self.inputs_seen, self.force = inputs, False
            sel = policy.select(self.context(own, originators, now), self.table.adverts())
            for conflict in sel.new_conflicts:
                log.warning("conflict: %s", conflict)
            self.selection = sel
            self.desired = self.desired_peers(sel)
            self.replan = True
            routes = self.desired_routes(sel)
            if routes != self.routes:
                self.routes = routes
                result.routes_changed = True
        if not self.replan:
            return result          # nothing the policy or the device shows moved: no work, no writes
        self.replan = False
        if self.device is None:
            self.refresh_device()
            self.replan = False
        args = wg.plan(self.device, self.desired, self.owned)
        if args:
            result.writes = self.backend.apply(self.cfg.ifname, args)
            self._update_cache(self.desired, result)
        self.owned |= set(self.desired)
        return result

    def _remember(self, originators: dict[str, Originator]) -> dict[str, Originator]:
        """A node's json/originators file can vanish too (bmx7 restarting, a torn rewrite):
        like a missing sms file, that is no reason to drop the peer inside its hold-down."""
        merged = {nid: o for nid, o in self.known_originators.items() if nid in self.table.nodes}
        merged.update(originators)
        self.known_originators = merged
        return merged

    def desired_peers(self, sel) -> dict[str, PeerSpec]:
        desired = {}
        self.node_of_key_before = {**self.node_of_key_before, **self.node_of_key}
        self.node_of_key = {}
        for node_id, decision in sel.peers.items():
            if not decision.allowed_ips or decision.public_key is None:
                continue
            desired[decision.public_key] = PeerSpec(
                public_key=decision.public_key, endpoint=decision.endpoint,
                allowed_ips=frozenset(decision.allowed_ips), keepalive=self.cfg.keepalive)
            self.node_of_key[decision.public_key] = node_id
        return desired

    def desired_routes(self, sel) -> frozenset:
        """(network, table, metric) routed into the link: the auto prefix plus selected networks."""
        want = set()
        if self.cfg.auto_address:
            want.add((str(self.cfg.auto_prefix), None, None))
        for decision in sel.peers.values():
            for route in decision.routes:
                net = ipaddress.ip_network(route.network)
                if self.cfg.auto_address and net.version == 6 and net.subnet_of(self.cfg.auto_prefix):
                    continue  # covered by the auto prefix route
                want.add((str(net), route.table, route.metric))
        return frozenset(want)

    def _update_cache(self, desired: dict[str, PeerSpec], result: StepResult) -> None:
        peers = self.device.peers
        for key in list(peers):
            if key not in desired and key in self.owned:
                del peers[key]
                self.owned.discard(key)
                result.removed.append(self.node_of_key_before.get(key, key))
        self.node_of_key_before = {k: v for k, v in self.node_of_key_before.items() if k in peers}
        for key, spec in desired.items():
            old = peers.get(key)
            if old is None:
                result.added.append(self.node_of_key.get(key, key))
            peers[key] = PeerState(
                public_key=key, endpoint=spec.endpoint, allowed_ips=spec.allowed_ips,
                latest_handshake=old.latest_handshake if old else None,
                rx=old.rx if old else 0, tx=old.tx if old else 0, keepalive=spec.keepalive)


def _standing(orig: Originator) -> tuple:
    """The parts of an originator the policy uses; lastRef ticks every second and is left out
    except through reachability."""
    return (orig.name, orig.primary_ip, orig.metric, orig.hops, orig.reachable)
