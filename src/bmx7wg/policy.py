"""Which advertised addresses and networks each peer gets as WireGuard allowed-ips (issue 5).

On one WireGuard interface an allowed-ip belongs to exactly one peer and the last writer
silently wins, so every prefix is arbitrated here before anything reaches `wg set`:

1. whole-advert checks: well-formed, trusted (allow_node), known to bmx7, unique key;
2. per entry: safety (reserved ranges, bmx7's prefix, peer endpoints, local addresses and
   networks, the tunnel-address prefix), then the node's own derived tunnel address is
   accepted, anything else only if a search rule (`config bmx7wg_out`) accepts it;
3. per prefix exactly one holder: bmx7 path metric x rule rating (the incumbent gets the
   rule's hysteresis as a bonus), then the older claim, then the lowest nodeId.

Pure: no I/O and no clock; the caller passes `now` and the previous Selection. The result
does not depend on dict order, and adverts fed one by one at the same `now` give the same
result as all at once. docs/policy.md lists the rules, defaults and every reason string.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import address
from .config import BMX7_PREFIX, DEFAULT_AUTO_PREFIX, KEY_RE, ConfigError
from .model import Advert, IPNetwork, Originator

RULE_TYPE = "bmx7wg_out"
MAX_NETWORKS = 16                 # per advertiser, the verified tunnel address not counted
DEFAULT_HYSTERESIS = 20           # %, as bmx7's tunOut
DEFAULT_RATING = 100              # %
MAX_HYSTERESIS = 1000
MAX_RATING = 10000
ADVERT_VERSION = 1
ZERO_KEY = "A" * 43 + "="         # all-zero key: not a usable Curve25519 public key

# Nothing inside these ever goes into a tunnel (loopback, link-local, multicast, "this network").
RESERVED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "fe80::/10", "ff00::/8"))

ACCEPTED, PENDING, REJECTED = "accepted", "pending", "rejected"

# Reason strings (docs/policy.md lists them; LuCI and the README show them).
R_NOT_DERIVED = "address not derived from the advertiser's nodeId"
R_OUTSIDE_RULES = "outside every rule"
R_NOT_FROM_NODE = "no rule accepts it from this node (gw_id/gw_name)"
R_TOO_MANY = f"too many networks (limit {MAX_NETWORKS})"
R_NOT_ALLOWED = "node not in allow_node"
R_NO_ORIGINATOR = "unknown to bmx7 (no originator yet)"
R_BAD_NODE_ID = "bad node id"
R_BAD_KEY = "bad key: not a WireGuard public key"
R_OWN_KEY = "key is this node's own key"
R_MALFORMED = "malformed advert"


# ---------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class Rule:
    """One search rule: which offered networks are accepted, from whom, and how routed."""

    name: str
    network: IPNetwork
    min_prefix_len: int
    max_prefix_len: int
    gw_names: tuple[str, ...] = ()
    gw_ids: tuple[str, ...] = ()          # uppercase nodeId prefixes, 8..56 hex digits
    hysteresis: int = DEFAULT_HYSTERESIS
    rating: int = DEFAULT_RATING
    table: int | None = None              # None: the interface's default (main)
    metric: int | None = None             # None: the interface's default
    allow_overlapping_prefix: bool = True
    break_overlapping_prefix: bool = True
    interface: str | None = None          # None: every bmx7wg interface

    def matches_network(self, net: IPNetwork) -> bool:
        return (net.version == self.network.version and net.subnet_of(self.network)
                and self.min_prefix_len <= net.prefixlen <= self.max_prefix_len)

    def allows_node(self, node_id: str, name: str | None) -> bool:
        if self.gw_ids and not any(node_id.startswith(i) for i in self.gw_ids):
            return False
        return not self.gw_names or name in self.gw_names


_RULE_OPTIONS = ("interface", "network", "min_prefix_len", "max_prefix_len", "gw_name", "gw_id",
                 "hysteresis", "rating", "table", "metric", "allow_overlapping_prefix",
                 "break_overlapping_prefix", "disabled")
_HEX_ID_RE = re.compile(r"^[0-9A-Fa-f]{8,56}$")
_TABLE_NAMES = {"main": 254, "default": 253}


class _RuleOptions:
    """Typed access to one section's options; every error names option, section and value."""

    def __init__(self, section: str, options: Mapping):
        self.section, self.options = section, options

    def fail(self, option: str, value, why: str) -> ConfigError:
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        return ConfigError(f"option '{option}' in {RULE_TYPE} '{self.section}': "
                           f"invalid value '{shown}' ({why})")

    def single(self, option: str) -> str | None:
        raw = self.options.get(option)
        if isinstance(raw, (list, tuple)):
            raise self.fail(option, raw, "expected a single value, not a list")
        return None if raw is None else str(raw).strip()

    def words(self, option: str) -> tuple[str, ...]:
        raw = self.options.get(option)
        items = raw if isinstance(raw, (list, tuple)) else ([] if raw is None else [raw])
        return tuple(word for item in items for word in str(item).split())

    def integer(self, option: str, lo: int, hi: int, default):
        raw = self.single(option)
        if raw is None:
            return default
        try:
            value = int(raw, 0)
        except ValueError:
            raise self.fail(option, raw, "not a number") from None
        if not lo <= value <= hi:
            raise self.fail(option, raw, f"must be {lo}..{hi}")
        return value

    def boolean(self, option: str, default: bool) -> bool:
        raw = self.single(option)
        if raw is None:
            return default
        if raw.lower() in ("1", "yes", "on", "true", "enabled"):
            return True
        if raw.lower() in ("0", "no", "off", "false", "disabled"):
            return False
        raise self.fail(option, raw, "expected 0 or 1")


def parse_rules(sections, iface: str) -> tuple[Rule, ...]:
    """Validate the `config bmx7wg_out` sections that apply to `iface`, in file order.

    `sections` is the UCI adapter's list of (name, type, options). A section applies when
    its `interface` option names iface or is absent (then it applies to every bmx7wg
    interface). Sections for other interfaces are left to their own load.
    """
    rules = []
    for name, stype, options in sections:
        if stype != RULE_TYPE:
            continue
        opts = _RuleOptions(name, options)
        target = opts.single("interface")
        if target == "":
            raise opts.fail("interface", target, "empty; omit it to apply to every interface")
        if target is not None and target != iface:
            continue
        rule = _parse_rule(opts, target)
        if not opts.boolean("disabled", False):
            rules.append(rule)
    return tuple(rules)


def _parse_rule(opts: _RuleOptions, target: str | None) -> Rule:
    for option in opts.options:
        if option not in _RULE_OPTIONS:
            raise ConfigError(f"option '{option}' in {RULE_TYPE} '{opts.section}': unknown option "
                              f"(known: {', '.join(_RULE_OPTIONS)})")
    raw_net = opts.single("network")
    if raw_net is None:
        raise ConfigError(f"option 'network' in {RULE_TYPE} '{opts.section}': missing "
                          "(the networks this rule accepts, e.g. 10.0.0.0/8 or 0.0.0.0/0)")
    try:
        network = ipaddress.ip_network(raw_net, strict=True)
    except ValueError as exc:
        raise opts.fail("network", raw_net, str(exc).split("\n")[0]) from None
    longest = network.max_prefixlen
    min_len = opts.integer("min_prefix_len", 0, longest, network.prefixlen)
    max_len = opts.integer("max_prefix_len", 0, longest, longest)
    if max_len < network.prefixlen:
        raise opts.fail("max_prefix_len", max_len, f"below the length of network {network}")
    if min_len > max_len:
        raise opts.fail("min_prefix_len", min_len, f"above max_prefix_len {max_len}")
    for gw_id in opts.words("gw_id"):
        if not _HEX_ID_RE.match(gw_id):
            raise opts.fail("gw_id", gw_id, "want a nodeId or its first 8+ hex digits")
    return Rule(
        name=opts.section, network=network, min_prefix_len=min_len, max_prefix_len=max_len,
        gw_names=opts.words("gw_name"), gw_ids=tuple(i.upper() for i in opts.words("gw_id")),
        hysteresis=opts.integer("hysteresis", 0, MAX_HYSTERESIS, DEFAULT_HYSTERESIS),
        rating=opts.integer("rating", 0, MAX_RATING, DEFAULT_RATING),
        table=_table(opts), metric=opts.integer("metric", 0, 0xFFFFFFFF, None),
        allow_overlapping_prefix=opts.boolean("allow_overlapping_prefix", True),
        break_overlapping_prefix=opts.boolean("break_overlapping_prefix", True),
        interface=target)


def _table(opts: _RuleOptions) -> int | None:
    raw = opts.single("table")
    if raw is not None and raw.lower() in _TABLE_NAMES:
        return _TABLE_NAMES[raw.lower()]
    table = opts.integer("table", 1, 0xFFFFFFFF, None)
    if table == 255:
        raise opts.fail("table", raw, "255 is the kernel's local table")
    return table


# ---------------------------------------------------------------------------- inputs / outputs

@dataclass(frozen=True)
class PolicyContext:
    own_node_id: str
    auto_prefix: ipaddress.IPv6Network | str = DEFAULT_AUTO_PREFIX
    rules: tuple[Rule, ...] = ()
    allow_nodes: tuple[str, ...] = ()        # nodeIds, 8+ hex digit id prefixes or names; () = all
    local_networks: tuple = ()               # stay local: nothing equal to or inside them is accepted
    local_addresses: tuple = ()              # never covered by any accepted prefix (tunnel underlay)
    originators: Mapping[str, Originator] = field(default_factory=dict)
    previous: Selection | None = None
    now: float = 0.0
    own_public_key: str | None = None
    proven_keys: Mapping[str, str] = field(default_factory=dict)   # key -> nodeId that proved it
    bmx7_prefix: ipaddress.IPv6Network = BMX7_PREFIX


@dataclass(frozen=True)
class Route:
    network: str
    table: int | None = None
    metric: int | None = None


@dataclass(frozen=True)
class PeerDecision:
    """What one advertising node gets. Only `accepted` decisions carry allowed-ips."""

    node_id: str
    short_id: str
    name: str | None
    status: str                                    # accepted | pending | rejected
    reason: str | None = None                      # why pending/rejected as a whole
    public_key: str | None = None
    endpoint: str | None = None
    addresses: tuple[str, ...] = ()                # accepted tunnel addresses
    accepted_networks: tuple[str, ...] = ()
    allowed_ips: tuple[str, ...] = ()              # addresses + accepted_networks
    routes: tuple[Route, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()     # (entry, reason)


@dataclass(frozen=True, order=True)
class Conflict:
    """Several nodes claimed one prefix (kind "prefix") or one public key (kind "key")."""

    kind: str
    item: str
    winner: str
    losers: tuple[str, ...]
    decided_by: str = field(default="", compare=False)

    def __str__(self) -> str:
        item = f"{self.item[:8]}..." if self.kind == "key" else self.item
        claimants = ", ".join(_short(n) for n in sorted((self.winner, *self.losers)))
        return (f"{self.kind} {item} claimed by {claimants}: "
                f"{_short(self.winner)} keeps it ({self.decided_by})")


@dataclass(frozen=True)
class Selection:
    now: float
    peers: dict[str, PeerDecision]
    holders: dict[str, str]                        # prefix -> nodeId holding it
    holder_since: dict[str, float]                 # prefix -> since when that holder has it
    claimed_since: dict[tuple[str, str], float]    # (prefix, nodeId) -> first seen offering it
    key_since: dict[tuple[str, str], float]        # (public key, nodeId) -> first seen with it
    conflicts: frozenset[Conflict] = frozenset()
    new_conflicts: tuple[Conflict, ...] = ()       # not in the previous selection: log these


# ---------------------------------------------------------------------------- selection

def select(ctx: PolicyContext, adverts: Mapping[str, Advert | Exception]) -> Selection:
    """Decide every advertiser's allowed-ips. Deterministic; no I/O."""
    run = _Run(ctx)
    for node_id in sorted(adverts):
        if node_id != ctx.own_node_id:
            run.admit(node_id, adverts[node_id])
    run.arbitrate_keys()
    for node in run.accepted_nodes():
        run.offer_entries(node)
    run.choose_holders()
    return run.result()


def _short(node_id: str) -> str:
    return node_id[:address.SHORT_ID_HEX]


class _Safety:
    """Prefixes that would route the tunnel into itself or steal local traffic."""

    def __init__(self, ctx: PolicyContext):
        self.bmx7_prefix = ipaddress.ip_network(ctx.bmx7_prefix)
        self.local_networks = tuple(ipaddress.ip_network(n, strict=False) for n in ctx.local_networks)
        endpoints = []
        for orig in ctx.originators.values():
            ip = _ip_or_none(orig.primary_ip)
            if ip is not None:
                endpoints.append(ip)
        self.endpoints = _AddressIndex(endpoints)
        self.local_addresses = _AddressIndex(
            ipaddress.ip_interface(a).ip for a in ctx.local_addresses)
        self._verdicts: dict = {}

    def problem(self, net: IPNetwork) -> str | None:
        if net not in self._verdicts:      # many nodes offer the same networks
            self._verdicts[net] = self._check(net)
        return self._verdicts[net]

    def _check(self, net: IPNetwork) -> str | None:
        for reserved in RESERVED:
            if reserved.version == net.version and net.subnet_of(reserved):
                return f"reserved range {reserved}"
        if net.version == self.bmx7_prefix.version and net.overlaps(self.bmx7_prefix):
            return f"overlaps the bmx7 prefix {self.bmx7_prefix}"
        endpoint = self.endpoints.inside(net)
        if endpoint is not None:
            return f"covers peer endpoint {endpoint}"
        local = self.local_addresses.inside(net)
        if local is not None:
            return f"covers local address {local}"
        for local_net in self.local_networks:
            if local_net.version == net.version and net.subnet_of(local_net):
                return f"inside local network {local_net}"
        return None


class _AddressIndex:
    """Sorted addresses per IP version: "is any of them inside this network?" in O(log n)."""

    def __init__(self, ips):
        self.by_version: dict[int, list[int]] = {4: [], 6: []}
        for ip in ips:
            self.by_version[ip.version].append(int(ip))
        for values in self.by_version.values():
            values.sort()

    def inside(self, net: IPNetwork):
        values = self.by_version[net.version]
        i = bisect.bisect_left(values, int(net.network_address))
        if i < len(values) and values[i] <= int(net.broadcast_address):
            return (ipaddress.IPv6Address if net.version == 6 else ipaddress.IPv4Address)(values[i])
        return None


def _ip_or_none(text):
    try:
        return ipaddress.ip_address(text)
    except (ValueError, TypeError):
        return None


@dataclass
class _Node:
    """Working record of one advertiser during a run."""

    node_id: str
    name: str | None
    status: str = ACCEPTED
    reason: str | None = None
    advert: Advert | None = None
    endpoint: str | None = None
    score_metric: int = 0
    rejected: list = field(default_factory=list)     # (network, reason)


@dataclass
class _Offer:
    """One node's claim on one prefix, ranked against other nodes' claims."""

    net: IPNetwork
    prefix: str
    node_id: str
    source: str                    # "address" or "network" (the advert list it came from)
    rule: Rule | None              # None: the node's own verified tunnel address
    score: int                     # path metric x rating
    since: float                   # first seen offering it
    incumbent: bool
    suppressed_by: str | None = None

    @property
    def hysteresis(self) -> int:
        return self.rule.hysteresis if self.rule else DEFAULT_HYSTERESIS

    @property
    def allows_overlap(self) -> bool:
        return self.rule is None or self.rule.allow_overlapping_prefix

    @property
    def standing(self) -> int:
        """Score with the incumbent's hysteresis bonus (integers: no float ties across hosts)."""
        return self.score * (100 + (self.hysteresis if self.incumbent else 0))

    def rank(self):
        return (-self.standing, self.since, self.node_id)


class _Run:
    def __init__(self, ctx: PolicyContext):
        self.ctx = ctx
        self.prev = ctx.previous
        self.now = ctx.now
        self.auto_prefix = address.parse_prefix(ctx.auto_prefix)
        self.safety = _Safety(ctx)
        self.nodes: dict[str, _Node] = {}
        self.offers: dict[str, list[_Offer]] = {}
        self.key_since: dict[tuple[str, str], float] = {}
        self.conflicts: set[Conflict] = set()
        self.holders: dict[str, _Offer] = {}
        self.rules_for: dict = {}

    # -- whole adverts -------------------------------------------------------------------
    def admit(self, node_id: str, adv) -> None:
        orig = self.ctx.originators.get(node_id)
        node = self.nodes[node_id] = _Node(node_id, orig.name if orig else None)
        reason = self._advert_problem(node_id, adv)
        if reason is None and not self._trusted(node_id, node.name):
            reason = R_NOT_ALLOWED
        if reason is not None:
            node.status, node.reason = REJECTED, reason
            return
        node.advert = adv
        endpoint_ip = _ip_or_none(orig.primary_ip) if orig else None
        if endpoint_ip is None:
            node.status, node.reason = PENDING, R_NO_ORIGINATOR
            return
        node.endpoint = (f"[{endpoint_ip}]:{adv.port}" if endpoint_ip.version == 6
                         else f"{endpoint_ip}:{adv.port}")
        node.score_metric = max(0, int(orig.metric)) if orig.reachable else 0

    def _advert_problem(self, node_id: str, adv) -> str | None:
        if not address.is_node_id(node_id):
            return R_BAD_NODE_ID
        if isinstance(adv, Exception):   # advert.AdvertError from decode(): its reason as is
            text = str(getattr(adv, "reason", None) or adv).strip()
            return text.splitlines()[0] if text else R_MALFORMED
        if not isinstance(adv, Advert):
            return R_MALFORMED
        if adv.version != ADVERT_VERSION:
            return f"unsupported advert version {adv.version}"
        if not isinstance(adv.public_key, str) or not KEY_RE.match(adv.public_key) \
                or adv.public_key == ZERO_KEY:
            return R_BAD_KEY
        if isinstance(adv.port, bool) or not isinstance(adv.port, int) or not 1 <= adv.port <= 65535:
            return f"bad port {adv.port!r}"
        entries = (*adv.addresses, *adv.networks)
        if not all(isinstance(e, (ipaddress.IPv4Network, ipaddress.IPv6Network)) for e in entries):
            return R_MALFORMED
        if self.ctx.own_public_key and adv.public_key == self.ctx.own_public_key:
            return R_OWN_KEY
        return None

    def _trusted(self, node_id: str, name: str | None) -> bool:
        return not self.ctx.allow_nodes or any(
            _names_node(entry, node_id, name) for entry in self.ctx.allow_nodes)

    def accepted_nodes(self) -> list[_Node]:
        return [n for n in self.nodes.values() if n.status == ACCEPTED]

    # -- keys ------------------------------------------------------------------------------
    def arbitrate_keys(self) -> None:
        """One key, one node: proven holder, then older claim, then lowest nodeId."""
        by_key: dict[str, list[str]] = {}
        for node in self.accepted_nodes():
            key = node.advert.public_key
            by_key.setdefault(key, []).append(node.node_id)
            self.key_since[(key, node.node_id)] = self._since(self.prev.key_since if self.prev else {},
                                                              (key, node.node_id))
        for key, claimants in by_key.items():
            if len(claimants) < 2:
                continue
            proven = self.ctx.proven_keys.get(key)
            ranked = sorted(claimants, key=lambda n: (n != proven, self.key_since[(key, n)], n))
            winner, runner_up = ranked[0], ranked[1]
            for loser in ranked[1:]:
                node = self.nodes[loser]
                node.status, node.reason = REJECTED, f"key already used by node {_short(winner)}"
            if winner == proven:
                why = "proven by handshake"
            elif self.key_since[(key, winner)] < self.key_since[(key, runner_up)]:
                why = "older claim"
            else:
                why = "lower nodeId"
            self.conflicts.add(Conflict("key", key, winner, tuple(sorted(ranked[1:])), why))

    # -- entries ---------------------------------------------------------------------------
    def offer_entries(self, node: _Node) -> None:
        own_address = address.auto_address(node.node_id, self.auto_prefix)
        counted = 0
        for net, source in _entries(node.advert):
            own = net.version == 6 and net.prefixlen == 128 and net.network_address == own_address
            if not own:
                counted += 1
                if counted > MAX_NETWORKS:
                    node.rejected.append((net, R_TOO_MANY))
                    continue
            rule, reason = self._judge(node, net, source, own)
            if reason is not None:
                node.rejected.append((net, reason))
            else:
                self._add_offer(node, net, "address" if own else source, rule)

    def _judge(self, node: _Node, net: IPNetwork, source: str, own: bool):
        """(rule, None) if the entry may compete for its prefix, else (None, reason)."""
        problem = self.safety.problem(net)
        if problem is not None:
            return None, problem
        if own:
            return None, None
        if net.version == 6 and net.overlaps(self.auto_prefix):
            if net.subnet_of(self.auto_prefix):
                return None, R_NOT_DERIVED
            return None, f"overlaps the tunnel address prefix {self.auto_prefix}"
        matching = self._matching_rules(net)
        allowed = [r for r in matching if r.allows_node(node.node_id, node.name)]
        if allowed:
            return max(allowed, key=lambda r: r.rating), None   # max keeps the first on ties
        if source == "address":
            return None, R_NOT_DERIVED
        return None, (R_NOT_FROM_NODE if matching else R_OUTSIDE_RULES)

    def _matching_rules(self, net: IPNetwork) -> list[Rule]:
        if net not in self.rules_for:
            self.rules_for[net] = [r for r in self.ctx.rules if r.matches_network(net)]
        return self.rules_for[net]

    def _add_offer(self, node: _Node, net: IPNetwork, source: str, rule: Rule | None) -> None:
        prefix = str(net)
        rating = rule.rating if rule else DEFAULT_RATING
        incumbent = bool(self.prev and self.prev.holders.get(prefix) == node.node_id
                         and self.prev.holder_since.get(prefix, self.now) < self.now)
        since = self._since(self.prev.claimed_since if self.prev else {}, (prefix, node.node_id))
        offer = _Offer(net, prefix, node.node_id, source, rule, node.score_metric * rating,
                       since, incumbent)
        self.offers.setdefault(prefix, []).append(offer)

    def _since(self, previous: Mapping, claim) -> float:
        return min(previous.get(claim, self.now), self.now)

    # -- holders -----------------------------------------------------------------------------
    def choose_holders(self) -> None:
        self._suppress_overlaps()
        for prefix, offers in self.offers.items():
            live = sorted((o for o in offers if o.suppressed_by is None), key=_Offer.rank)
            if not live:
                continue
            winner = self.holders[prefix] = live[0]
            for loser in live[1:]:
                self.nodes[loser.node_id].rejected.append(
                    (loser.net, f"held by node {_short(winner.node_id)} with better standing"))
            if len(live) > 1:
                self.conflicts.add(Conflict("prefix", prefix, winner.node_id,
                                            tuple(sorted(o.node_id for o in live[1:])),
                                            _decided_by(winner, live[1])))
        for offers in self.offers.values():
            for offer in offers:
                if offer.suppressed_by is not None:
                    self.nodes[offer.node_id].rejected.append((offer.net, offer.suppressed_by))

    def _suppress_overlaps(self) -> None:
        """bmx7's allowOverlappingPrefix/breakOverlappingPrefix: a more specific offer gives way
        to a covering offer with better standing unless the covering offer's rule allows
        overlapping and its own rule allows breaking. Compared with every covering offer,
        not only holders, so the outcome needs no iteration and has no order."""
        restricted = any(not (r.allow_overlapping_prefix and r.break_overlapping_prefix)
                         for r in self.ctx.rules)
        if not restricted:
            return
        present = {_net_key(offers[0].net): prefix for prefix, offers in self.offers.items()}
        # per covering prefix: its strongest offer, and its strongest that forbids overlapping
        best = {prefix: (max(offers, key=_Offer.standing.fget),
                         max((o for o in offers if not o.allows_overlap), key=_Offer.standing.fget,
                             default=None))
                for prefix, offers in self.offers.items()}
        for offers in self.offers.values():
            covers = _covering_prefixes(offers[0].net, present)
            for offer in offers:
                if offer.rule is None:
                    continue
                for cover in covers:
                    strongest = best[cover][0 if not offer.rule.break_overlapping_prefix else 1]
                    if strongest is not None and strongest.standing > offer.standing:
                        offer.suppressed_by = (f"overlaps {cover} from node {_short(strongest.node_id)} "
                                               "with better standing")
                        break

    # -- result ------------------------------------------------------------------------------
    def result(self) -> Selection:
        won: dict[str, list[_Offer]] = {}
        for offer in self.holders.values():
            won.setdefault(offer.node_id, []).append(offer)
        peers = {nid: self._decision(node, won.get(nid, [])) for nid, node in sorted(self.nodes.items())}
        holder_since = {}
        for prefix, offer in self.holders.items():
            kept = self.prev and self.prev.holders.get(prefix) == offer.node_id
            holder_since[prefix] = min(self.prev.holder_since.get(prefix, self.now), self.now) \
                if kept else self.now
        claimed = {(o.prefix, o.node_id): o.since for offers in self.offers.values() for o in offers}
        conflicts = frozenset(self.conflicts)
        old = self.prev.conflicts if self.prev else frozenset()
        return Selection(
            now=self.now, peers=peers,
            holders={p: o.node_id for p, o in sorted(self.holders.items())},
            holder_since=dict(sorted(holder_since.items())),
            claimed_since=dict(sorted(claimed.items())), key_since=dict(sorted(self.key_since.items())),
            conflicts=conflicts, new_conflicts=tuple(sorted(conflicts - old)))

    def _decision(self, node: _Node, won: list[_Offer]) -> PeerDecision:
        won = sorted(won, key=lambda o: _net_order(o.net))
        addresses = tuple(o.prefix for o in won if o.source == "address")
        networks = tuple(o.prefix for o in won if o.source == "network")
        routes = tuple(Route(o.prefix, o.rule.table if o.rule else None, o.rule.metric if o.rule else None)
                       for o in won)
        adv = node.advert
        return PeerDecision(
            node_id=node.node_id, short_id=_short(node.node_id), name=node.name,
            status=node.status, reason=node.reason,
            public_key=adv.public_key if adv is not None else None,
            endpoint=node.endpoint if node.status == ACCEPTED else None,
            addresses=addresses, accepted_networks=networks,
            allowed_ips=tuple(o.prefix for o in won), routes=routes,
            rejected=tuple((str(net), why) for net, why in
                           sorted(node.rejected, key=lambda r: (_net_order(r[0]), r[1]))))


def _entries(adv: Advert):
    """(network, source) in advert order, each prefix once."""
    seen = set()
    for source, nets in (("address", adv.addresses), ("network", adv.networks)):
        for net in nets:
            if net not in seen:
                seen.add(net)
                yield net, source


def _names_node(entry: str, node_id: str, name: str | None) -> bool:
    """An allow_node entry names a node by nodeId (or its first 8+ hex digits) or by name."""
    if _HEX_ID_RE.match(entry) and node_id.startswith(entry.upper()):
        return True
    return name is not None and entry == name


def _decided_by(winner: _Offer, runner_up: _Offer) -> str:
    if winner.standing != runner_up.standing:
        return "better metric" if winner.score > runner_up.score else "hysteresis"
    if winner.since != runner_up.since:
        return "older claim"
    return "lower nodeId"


def _net_key(net: IPNetwork):
    return (net.version, net.prefixlen, int(net.network_address))


def _covering_prefixes(net: IPNetwork, present: dict) -> list[str]:
    """Prefixes in `present` (keyed by _net_key) strictly covering net, longest first."""
    bits, addr = net.max_prefixlen, int(net.network_address)
    found = []
    for plen in range(net.prefixlen - 1, -1, -1):
        shift = bits - plen
        prefix = present.get((net.version, plen, addr >> shift << shift))
        if prefix is not None:
            found.append(prefix)
    return found


def _net_order(net: IPNetwork):
    return (net.version, int(net.network_address), net.prefixlen)
