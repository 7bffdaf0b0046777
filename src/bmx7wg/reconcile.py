"""One reconcile step: bmx7's view -> policy -> desired peers -> one batched `wg set`.

Kept free of the event loop so the daemon, the tests and the benchmark drive the same code.
The device model is cached between steps (a full `wg show dump` per event would cost more
than the write itself on big meshes); the daemon refreshes it from the kernel periodically.

A step costs what changed, not the mesh size: the nodes whose sms bytes or originator
changed (found by identity: bmx7.py hands back the same objects for unchanged files) go
to the peer table and the policy as hints, the policy says which decisions it rebuilt,
and only those peers and routes are updated and planned. A refreshed device model, a
reload or a new key fall back to comparing everything.
"""

from __future__ import annotations

import bisect
import gc
from array import array
import time
from collections.abc import Callable
from .record import record, field, replace

from . import cidr, policy, wg
from .sessions import Sessions
from .config import IfaceConfig
from .keyset import KeySet
from .model import DeviceState, NodeInfo, Originator, PeerState, cidrs
from .peers import PeerTable
from .log import log



@record
class StepResult:
    writes: int = 0
    added: list[str] = field(default_factory=list)      # node ids
    removed: list[str] = field(default_factory=list)    # node ids
    routes_changed: bool = False
    shown_changed: bool = False       # an advert as shown, or a decision, moved: the state file is stale


class Reconciler:
    def __init__(self, cfg: IfaceConfig, backend, local_networks: tuple = (),
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.backend = backend
        self.own_public_key: str | None = None
        self.local_addresses: tuple = ()      # own tunnel addresses + primaryIp: never routed into the tunnel
        self.table = PeerTable(cfg.hold_down)
        self.policy = policy.Policy()
        self.device: DeviceState | None = None
        # keys of peers this helper created: a dict, a fifth of a set's size at 5,000 keys
        self.owned: dict[str, None] = {}
        self.selection = None
        self.local_networks = local_networks
        self.node_of_key_before: dict[str, str] = {}   # keys of removed peers -> their node
        self._handed_over: dict[str, str] = {}         # key now desired for another node -> the old one
        # after a restart: the previous run's nodes, until all are back (await_previous)
        self.awaited: set[str] = set()
        self.await_for = 0.0
        self.await_until: float | None = None          # set by the first step
        self.not_back: list[str] = []                  # awaited in vain, when the wait ended
        self.routes: frozenset = frozenset()
        self.force = True                      # config/key changed: recompute even if inputs did not
        self.replan = True                     # device re-read: diff all of it against `desired` again
        # public key -> the decision that wants it as a peer (its node: decision.node_id).
        # The decisions themselves, not a spec object beside each: 0.4 MB of objects at 5,000.
        self.desired: dict[str, policy.PeerDecision] = {}
        self.known_originators: dict[str, Originator] = {}
        self.kernel_peers: dict[str, PeerState] = {}   # as WireGuard last reported them (not our cache)
        self.sessions = Sessions(wall, mono)           # their handshakes, aged step-proof
        self._own: NodeInfo | None = None
        self._seen = None                              # (Bmx7, versions) the last step read
        self._rebuilt = False                          # this step built everything anew
        self._pending = KeySet()                       # changed since the policy last ran
        self._plan_keys: set[str] = set()              # peers changed since the last plan
        self._route_count: dict[tuple, int] = {}       # route -> number of decisions asking for it
        self._proofs = _Proofs()

    def await_previous(self, node_of_key: dict[str, str], hold: float, routes=frozenset()) -> None:
        """After a restart: act on nothing until every node of the previous run's peers
        (owned and on the link; `node_of_key` names their nodes, from its state file) is back
        in rcvdSms and reachable in json/originators, or `hold` seconds from the first step
        have passed, as a node gone missing waits out its hold-down. bmx7 may be refilling
        them (it restarted too, or has not heard everyone yet): a step on half the adverts
        would remove peers, or give a contested network to whoever came back first. Meanwhile
        the link keeps the previous run's peers and `routes` ((network, table, metric))."""
        peers = self.device.peers if self.device is not None else {}
        mine = {k: n for k, n in node_of_key.items() if k in self.owned and k in peers}
        self.node_of_key_before.update(mine)
        self.awaited = set(mine.values())
        self.await_for, self.await_until = hold, None
        self.routes = frozenset(routes)

    def _awaiting(self, now: float, received: dict, originators: dict) -> bool:
        if self.await_until is None:
            self.await_until = now + self.await_for
        # all back at once: each node's advert, and a route to it (real bmx7 lists a restarted
        # neighbourhood's originators a few seconds before it has routes to them: dev "---")
        missing = [n for n in self.awaited
                   if n not in received or (o := originators.get(n)) is None or not o.reachable]
        if missing and now < self.await_until:
            return True
        self.awaited, self.not_back = set(), sorted(missing)
        return False

    def refresh_device(self) -> DeviceState | None:
        self.take_dump(self.backend.dump(self.cfg.ifname, reuse=self.cached_peers()), exact=True)
        return self.device

    def cached_peers(self) -> dict[str, PeerState]:
        """The device model's peers: what a dump should build its peers from (see
        wg.parse_dump's `reuse`)."""
        return self.device.peers if self.device is not None else {}

    def peers_to_patch(self) -> dict[str, PeerState]:
        """The device model's peers, for writing: no longer the kernel's view (take_dump
        shares one dict between them until now)."""
        if self.device.peers is self.kernel_peers:
            self.device.peers = dict(self.kernel_peers)
        return self.device.peers

    def take_dump(self, device: DeviceState | None, exact: bool) -> None:
        """A `wg show dump`. `exact`: nothing was written while it was read, so it is the
        device as it is now: it replaces the cache, and the next step compares everything
        (the kernel may differ from our cache). Otherwise the cache, which knows the later
        writes, stays, and only the counters and handshakes are taken from the dump."""
        if exact or device is None or self.device is None:
            # the dump becomes the model and the kernel's view alike, one dict until a step
            # patches the model (_update_cache copies it then)
            self.kernel_peers = device.peers if device else {}
            self.sessions.observe(self.kernel_peers)
            self.device = device
            self.replan = True
            return
        self.kernel_peers = device.peers        # the dump itself is dropped: no copy needed
        self.sessions.observe(self.kernel_peers)
        peers = self.device.peers
        for key, seen in device.peers.items():
            cached = peers.get(key)
            if cached is None or cached is seen or (cached.latest_handshake, cached.rx, cached.tx) == (
                    seen.latest_handshake, seen.rx, seen.tx):
                continue
            if (seen.endpoint, seen.allowed_ips, seen.keepalive) == (
                    cached.endpoint, cached.allowed_ips, cached.keepalive):
                peers[key] = seen          # one object for the model and the kernel's view
            else:
                peers[key] = replace(cached, latest_handshake=seen.latest_handshake, rx=seen.rx, tx=seen.tx)

    def context(self, own: NodeInfo, originators: dict[str, Originator], now: float,
                proven: dict[str, str] | None = None):
        return policy.PolicyContext(
            own_node_id=own.node_id, auto_prefix=self.cfg.auto_prefix, rules=self.cfg.rules,
            allow_nodes=self.cfg.allow_nodes, local_networks=self.local_networks,
            local_addresses=self.local_addresses + (own.primary_ip,), originators=originators,
            previous=self.selection, now=now, own_public_key=self.own_public_key,
            proven_keys=self.proven_keys() if proven is None else proven)

    def proven_keys(self, live: list[PeerState] | None = None) -> dict[str, str]:
        """{public key: nodeId} for keys a node proved it holds: WireGuard has a live session
        with the key (sessions.py) and its endpoint, as WireGuard reported it, is that node's
        primaryIp. WireGuard moves the endpoint to the source of every authenticated packet,
        so only the private key's holder puts its address there, and `plan` never overwrites
        the endpoint of a live session. Read from the last kernel dump, not from the cache
        `_update_cache` fills with the endpoints we asked for. `live`: those kernel peers
        with an endpoint and a live session, when the caller has them already."""
        if live is None:
            live = self.live_sessions()
        if not live:
            return {}                          # no live session: nothing to look up
        node_at = {}
        for node_id, orig in self.known_originators.items():
            ip = orig.primary_ip_key()
            if ip is not None:
                node_at[ip] = node_id
        proven = {}
        for peer in live:
            node_id = node_at.get(_endpoint_key(peer.endpoint))
            if node_id is not None:
                proven[peer.public_key] = node_id
        return proven

    def live_sessions(self) -> list[PeerState]:
        """The last kernel dump's peers with an endpoint and a live session."""
        if not self.sessions.any_live():
            return []
        return [p for p in self.kernel_peers.values() if p.endpoint and self.sessions.live(p)]

    def step(self, now: float, own: NodeInfo, received: dict[str, bytes],
             originators: dict[str, Originator]) -> StepResult:
        # A first step creates ~50 objects per node that all live on; the cyclic GC would
        # walk the growing heap again and again meanwhile (half the time at 5,000 nodes).
        # Nothing here makes reference cycles, so pausing it frees nothing later.
        paused = gc.isenabled()
        gc.disable()
        try:
            result = self._step(now, own, received, originators)
        finally:
            if paused:
                gc.enable()
        if self._rebuilt:
            # ... and afterwards every full collection would walk them again, a 30-80 ms
            # stall at 5,000 nodes just when an event comes in. They stay until the next
            # rebuild and hold no cycles (refcounting still frees them): out of its sight.
            gc.freeze()
            self._rebuilt = False
        return result

    def _step(self, now: float, own: NodeInfo, received: dict[str, bytes],
              originators: dict[str, Originator]) -> StepResult:
        if self.awaited and self._awaiting(now, received, originators):
            return StepResult()    # the previous run's peers and routes stand meanwhile
        result = StepResult()
        changed = self._changed(received, originators, own.node_id)
        table_changed = self.table.update(now, received, originators, own.node_id, changed)
        changed.add_all(self.table.changed_ids)
        # a new advert, a new error beside the last good one, a node gone or back
        result.shown_changed = table_changed or self.table.presence_changed
        standing_moved, replaced = self._remember(originators, changed)
        proven = self._proofs.current(self, replaced)
        self._pending.add_all(changed)
        if (table_changed or self.force or standing_moved or own != self._own
                or proven is not self._proofs.used):
            self._own, self._proofs.used = own, proven
            self._run_policy(own, now, proven, result)
        if not (self.replan or self._plan_keys):
            return result          # nothing the policy or the device shows moved: no work, no writes
        if self.device is None:
            self.refresh_device()
        if self.replan:
            args = wg.plan(self.device, self.desired, self.owned, self.sessions.live, canonical=True,
                           keepalive=self.cfg.keepalive)
            keys = None
        else:
            keys = self._plan_keys
            args = wg.plan_changed(self.device, self.desired, self.owned, keys, self.sessions.live,
                                   canonical=True, keepalive=self.cfg.keepalive)
        self.replan, self._plan_keys = False, set()
        if args:
            result.writes = self.backend.apply(self.cfg.ifname, args)
            self._update_cache(keys, result)
        self._handed_over = {}
        self.owned.update(dict.fromkeys(self.desired if keys is None else
                                        (k for k in keys if k in self.desired)))
        return result

    def _run_policy(self, own: NodeInfo, now: float, proven: dict[str, str], result: StepResult) -> None:
        rebuild = self.force
        self.force = False
        previous = self.selection
        sel = self.policy.select(self.context(own, self.known_originators, now, proven),
                                 self.table.adverts_view(), changed=self._pending)
        self._pending = KeySet()
        for conflict in sel.new_conflicts:
            log.warning("conflict: %s", conflict)
        self.selection = sel
        touched = self.policy.touched
        if rebuild or touched is None or previous is None:
            self._rebuilt = True
            self.desired = self.desired_peers(sel)
            self.replan = True
            routes = self.desired_routes(sel)
            result.shown_changed = True
        else:
            moved = [n for n in touched if previous.peers.get(n) != sel.peers.get(n)]
            self._update_desired(previous, sel, moved)
            routes = self._update_routes(previous, sel, moved)
            result.shown_changed |= bool(moved)
        if routes != self.routes:
            self.routes = routes
            result.routes_changed = True

    def _changed(self, received: dict[str, bytes], originators: dict[str, Originator],
                 own_id: str) -> KeySet:
        """Nodes whose sms bytes or originator are not the very objects the table and
        known_originators kept from the previous step (bmx7.py returns the same objects
        for the files it did not read again), or that came or went."""
        source = getattr(received, "source", None)
        if source is not None and source is getattr(originators, "source", None):
            seen, self._seen = self._seen, (source, received.version, originators.version)
            if seen is not None and seen[0] is source:      # what bmx7.py read again since
                received_moved = source.changed_since(seen[1], "received")
                originators_moved = source.changed_since(seen[2], "originators")
                if received_moved is not None and originators_moved is not None:
                    received_moved.add_all(originators_moved)
                    return received_moved
        else:
            self._seen = None
        table, known = self.table, self.known_originators
        moved = KeySet(n for n, raw in received.items()
                       if table.raws.get(n) is not raw or not table.present(n))   # or back
        moved.add_all(n for n in table.raws if n not in received and table.present(n))
        moved.add_all(n for n, o in originators.items() if known.get(n) is not o)
        moved.add_all(n for n in known if n not in originators)
        return moved

    def _remember(self, originators: dict[str, Originator], changed: KeySet) -> tuple[bool, list]:
        """A node's json/originators file can vanish too (bmx7 restarting, a torn rewrite):
        like a missing sms file, that is no reason to drop the peer inside its hold-down.
        Keeps known_originators = the remembered ones of nodes still in the table, updated
        by the current ones. Returns whether what the policy reads of them changed, and the
        originators replaced and replacing (one flat list: a pair per node would be
        thousands of short-lived tuples at a first step)."""
        known, standing_moved, replaced = self.known_originators, False, []
        for node_id in changed:
            old = known.get(node_id)
            new = originators.get(node_id)
            if new is None and node_id in self.table.raws:
                new = old
            if new is old:
                continue
            if new is None:
                del known[node_id]
            else:
                known[node_id] = new
            if old is None or new is None:
                standing_moved = True
                replaced.append(old if new is None else new)
            else:
                standing_moved = standing_moved or _standing(old) != _standing(new)
                replaced += (old, new)
        return standing_moved, replaced

    def node_of(self, key: str, default: str | None = None) -> str | None:
        """The node whose decision wants the peer with this key."""
        decision = self.desired.get(key)
        return decision.node_id if decision is not None else default

    def node_of_keys(self) -> dict[str, str]:
        """{public key: nodeId} of every desired peer."""
        return {key: decision.node_id for key, decision in self.desired.items()}

    def desired_peers(self, sel) -> dict[str, policy.PeerDecision]:
        desired = {}
        before = self.node_of_key_before = {**self.node_of_key_before, **self.node_of_keys()}
        for node_id, decision in sel.peers.items():
            if _wants_peer(decision):
                desired[decision.public_key] = decision
                self._note_hand_over(decision.public_key, before.get(decision.public_key), node_id)
        return desired

    def _note_hand_over(self, key: str, old: str | None, new: str) -> None:
        """A copied key that changes hands stays one WireGuard peer, rewritten: reported as
        the old node's peer removed and the new node's added."""
        if old is not None and old != new:
            self._handed_over[key] = old

    def _update_desired(self, previous, sel, moved: list[str]) -> None:
        """desired_peers for the decisions that changed: removals first, so a key that
        moves from one node to another in this step ends up with the new node."""
        desired = self.desired
        for node_id in moved:
            old = previous.peers.get(node_id)
            key = old.public_key if old is not None else None
            if key is not None and self.node_of(key) == node_id:
                del desired[key]
                self.node_of_key_before[key] = node_id
                self._plan_keys.add(key)
        for node_id in moved:
            decision = sel.peers.get(node_id)
            if decision is not None and _wants_peer(decision):
                key = decision.public_key
                if _on_wire(decision) != _on_wire(desired.get(key)):
                    self._plan_keys.add(key)
                desired[key] = decision
                self._note_hand_over(key, self.node_of_key_before.pop(key, None), node_id)

    def desired_routes(self, sel) -> frozenset:
        """(network, table, metric) routed into the link: the auto prefix plus selected networks."""
        self._route_count = {}
        for decision in sel.peers.values():
            self._count_routes(decision, 1)
        return self._routes()

    def _update_routes(self, previous, sel, moved: list[str]) -> frozenset:
        for node_id in moved:
            self._count_routes(previous.peers.get(node_id), -1)
            self._count_routes(sel.peers.get(node_id), 1)
        return self._routes()

    def _count_routes(self, decision, delta: int) -> None:
        if decision is None:
            return
        auto = self.cfg.auto_address
        for route in decision.routes:
            if auto and _inside_prefix(route.network, self.cfg.auto_prefix):
                continue  # covered by the auto prefix route
            want = (route.network, route.table, route.metric)
            left = self._route_count.get(want, 0) + delta
            if left:
                self._route_count[want] = left
            else:
                del self._route_count[want]

    def _routes(self) -> frozenset:
        want = set(self._route_count)
        if self.cfg.auto_address:
            want.add((str(self.cfg.auto_prefix), None, None))
        return self.routes if want == self.routes else frozenset(want)

    def _update_cache(self, keys: set[str] | None, result: StepResult) -> None:
        """Patch the device model with what the applied plan did (keys None: every peer)."""
        peers, desired, keepalive = self.peers_to_patch(), self.desired, self.cfg.keepalive
        for key in list(peers) if keys is None else sorted(keys):
            if key in peers and key not in desired and key in self.owned:
                del peers[key]
                del self.owned[key]
                result.removed.append(self.node_of_key_before.get(key, key))
        if keys is None:
            self.node_of_key_before = {k: v for k, v in self.node_of_key_before.items() if k in peers}
        else:
            for key in keys:
                if key not in peers:
                    self.node_of_key_before.pop(key, None)
        for key in desired if keys is None else sorted(keys):
            want = desired.get(key)
            if want is None:
                continue
            old = peers.get(key)
            if old is None:
                result.added.append(self.node_of(key, key))
            elif (old.endpoint, old.allowed_ips, old.keepalive) == (want.endpoint, cidrs(want.allowed_ips),
                                                                     keepalive):
                continue
            elif key in self._handed_over:
                result.removed.append(self._handed_over[key])
                result.added.append(self.node_of(key, key))
            peers[key] = PeerState(
                public_key=key, endpoint=want.endpoint, allowed_ips=cidrs(want.allowed_ips),
                latest_handshake=old.latest_handshake if old else None,
                rx=old.rx if old else 0, tx=old.tx if old else 0, keepalive=keepalive)


class _Proofs:
    """proven_keys, worked out again only when its inputs moved: a kernel dump with other
    peers or endpoints, a session come alive or gone (Sessions.moves), the first live
    session going stale, or an originator at a session's endpoint (or a proven node)
    changing. Not at every dump: on a big mesh each one would build the proofs and their
    index anew beside the old ones (0.3 MB of RSS at 5,000 live sessions)."""

    def __init__(self):
        self.proven: dict[str, str] = {}
        self.used: dict[str, str] | None = None        # what the policy last ran with
        self.source = None                              # the kernel_peers it was read from
        self.moves = -1                                 # Sessions.moves then
        self.expires = 0.0
        # endpoint addresses of live sessions, sorted, each as the hash of its
        # cidr.address_key: 8 bytes in an array, not an int of up to 129 bits in a list (0.2
        # MB less at 5,000 live sessions) or an address object in a set (1.1 MB)
        self.hosts = array("q")

    def current(self, rec: Reconciler, replaced: list[Originator]) -> dict[str, str]:
        sessions = rec.sessions
        if (sessions.moves == self.moves and sessions.mono() < self.expires
                and _same_peers(self.source, rec.kernel_peers) and not any(
                    self.maybe_at_host(o.primary_ip_key()) or o.node_id in self.proven.values()
                    for o in replaced)):
            self.source = rec.kernel_peers
            return self.proven
        live = rec.live_sessions()
        proven = rec.proven_keys(live)
        self.source, self.moves = rec.kernel_peers, sessions.moves
        self.expires = min((sessions.stale_at(p) for p in live), default=float("inf"))
        self.hosts = array("q", sorted([hash(k) for k in map(_endpoint_key, (p.endpoint for p in live))
                                        if k is not None]))
        if proven != self.proven:
            self.proven = proven
        return self.proven

    def maybe_at_host(self, key: int | None) -> bool:
        """A live session's endpoint may be at this address (a cidr.address_key): True if it
        is, and now and then for another address of the same hash, which only works the
        proofs out once more."""
        hosts = self.hosts
        if key is None:
            return False
        i = bisect.bisect_left(hosts, hash(key))
        return i < len(hosts) and hosts[i] == hash(key)


def _same_peers(old: dict | None, new: dict) -> bool:
    """The same peer objects under the same keys: a dump changes a known peer's handshake
    and counters in place, anything else (endpoint, allowed-ips) by a new object."""
    return old is new or (old is not None and len(old) == len(new)
                          and all(old.get(key) is peer for key, peer in new.items()))


def _endpoint_key(endpoint: str) -> int | None:
    """cidr.address_key of an endpoint's address ("[fd70::1%eth0]:51820" -> fd70::1)."""
    return cidr.address_key(endpoint.rpartition(":")[0].strip("[]").partition("%")[0])


def _inside_prefix(network: str, prefix) -> bool:
    """ip_network(network).subnet_of(prefix), on integers (a route's network is canonical
    CIDR text, see cidr.py)."""
    version, plen, value, _ = cidr.parse(network)
    if version != prefix.version or plen < prefix.prefixlen:
        return False
    shift = cidr.BITS[version] - prefix.prefixlen
    return value >> shift == int(prefix.network_address) >> shift


def _wants_peer(decision) -> bool:
    """A decision with a key and something to route to it makes a WireGuard peer."""
    return bool(decision.allowed_ips) and decision.public_key is not None


def _on_wire(decision) -> tuple | None:
    """What of a desired peer's decision reaches WireGuard."""
    return (decision.endpoint, decision.allowed_ips) if decision is not None else None


def _standing(orig: Originator) -> tuple:
    """The parts of an originator the policy uses; lastRef ticks every second and is left out
    except through reachability."""
    return (orig.name, orig.primary_ip, orig.metric, orig.hops, orig.reachable)
