"""Which advertised addresses and networks each peer gets as WireGuard allowed-ips (issue 5).

On one WireGuard interface an allowed-ip belongs to exactly one peer and the last writer
silently wins, so every prefix is arbitrated here before anything reaches `wg set`:

1. whole-advert checks: well-formed, trusted (allow_node), known to bmx7, unique key;
2. per entry: safety (reserved ranges, bmx7's prefix, peer endpoints, local addresses and
   networks, the tunnel-address prefix), then the node's own derived tunnel address is
   accepted, anything else only if a search rule (`config bmx7wg_out`) accepts it;
3. per prefix exactly one holder: bmx7 path metric x rule rating (the incumbent gets the
   rule's hysteresis as a bonus), then the older claim, then the lowest nodeId; a derived
   tunnel address, which only nodeIds sharing its leading 64+ bits can claim, goes to the
   lowest of them (update_own).

Pure: no I/O and no clock; the caller passes `now` and the previous Selection. The result
does not depend on dict order, and adverts fed one by one at the same `now` give the same
result as all at once. docs/policy.md lists the rules, defaults and every reason string.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Collection, Mapping
from .record import record, field

from . import address, cidr
from .keyset import KeySet
from .charset import HEX, is_wg_key, made_of
from .config import BMX7_PREFIX, DEFAULT_AUTO_PREFIX, ConfigError
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

@record(frozen=True)
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
        if not _is_hex_id(gw_id):
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

@record(frozen=True)
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


@record(frozen=True, slots=True)
class Route:
    network: str
    table: int | None = None
    metric: int | None = None


@record(frozen=True, slots=True)
class PeerDecision:
    """What one advertising node gets. Only `accepted` decisions carry allowed-ips."""

    node_id: str
    name: str | None
    status: str                                    # accepted | pending | rejected
    reason: str | None = None                      # why pending/rejected as a whole
    public_key: str | None = None
    endpoint: str | None = None
    addresses: tuple[str, ...] = ()                # accepted tunnel addresses
    allowed_ips: tuple[str, ...] = ()              # addresses + accepted networks, in address order
    routed: tuple[Route, ...] = ()                 # those whose rule sets a table or metric
    rejected: tuple[tuple[str, str], ...] = ()     # (entry, reason)

    @property
    def accepted_networks(self) -> tuple[str, ...]:
        """The allowed-ips that are not addresses (made when asked: one slot less per peer)."""
        if self.addresses is self.allowed_ips:
            return ()
        return tuple([p for p in self.allowed_ips if p not in self.addresses])

    @property
    def routes(self) -> tuple[Route, ...]:
        """A route per allowed-ip, with its rule's table and metric. Made when asked: most
        are the defaults, and a Route and a tuple per peer is 100 B, thousands of times."""
        special = {r.network: r for r in self.routed}
        return tuple([special.get(p) or Route(p) for p in self.allowed_ips])


@record(frozen=True, order=True)
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


@record(frozen=True)
class Selection:
    now: float
    peers: dict[str, PeerDecision]
    holders: dict[str, str]                        # prefix -> nodeId holding it
    holder_since: dict[str, float]                 # prefix -> since when that holder has it
    claimed_since: dict[tuple[str, str], float]    # (prefix, nodeId) -> first seen offering it
    # nodeId -> since when it claims the key it claims now (its decision's public_key): a
    # node claims one key at a time, so no (key, nodeId) tuple per claim (0.3 MB at 5,000)
    key_since: dict[str, float]
    conflicts: frozenset[Conflict] = frozenset()
    new_conflicts: tuple[Conflict, ...] = ()       # not in the previous selection: log these
    # the keys of key_since's nodes that have no decision: a selection seeded from history
    seeded_keys: dict[str, str] = field(default_factory=dict)

    def claimed_key(self, node_id: str) -> str | None:
        """The key whose claim age key_since holds for this node."""
        decision = self.peers.get(node_id)
        return decision.public_key if decision is not None else self.seeded_keys.get(node_id)


# ---------------------------------------------------------------------------- selection

def select(ctx: PolicyContext, adverts: Mapping[str, Advert | Exception]) -> Selection:
    """Decide every advertiser's allowed-ips from scratch. Deterministic; no I/O."""
    return Policy().select(ctx, adverts)


class Policy:
    """`select` with memory, for a caller that passes each result back as `ctx.previous`.

    The daemon calls the policy on every event, and an event changes one or two nodes.
    So the work is kept per node (admission, entry checks), per public key and per prefix
    (arbitration), and a call redoes only what the changed inputs touch:

    - a node whose advert or originator standing changed is admitted and judged again;
    - a key is arbitrated again when its claimants or its proof changed;
    - a prefix is arbitrated again when one of its offers changed, when the incumbent
      flags the previous result implies differ from the ones it was arbitrated with (a
      holder chosen at the previous instant gets its hysteresis bonus once time moves
      on), and, when a rule restricts overlapping, when a covering prefix was;
    - an endpoint (any originator's primaryIp) appearing or going away re-judges the
      entries covering it.

    Any other call (the first, another `previous`, `now` going backwards, changed rules,
    local addresses or networks, prefixes, allowlist or own key) starts from scratch.
    Either way the result equals `select(ctx, adverts)` with the same previous Selection
    (tests/test_policy_incremental.py checks that on random histories).
    """

    def __init__(self):
        self._reset(None)

    def select(self, ctx: PolicyContext, adverts: Mapping[str, Advert | Exception],
               changed: Collection[str] | None = None) -> Selection:
        """Like `select`. `changed`: the node ids whose advert or originator may differ from
        the previous call (None: compare them all); unused when starting from scratch."""
        env_key = _Env.key_of(ctx)
        last = self.last
        if last is None or ctx.previous is not last or ctx.now < last.now or env_key != self.env_key:
            self._reset(env_key, _Env(ctx))
            changed = None
        return _Step(self, ctx, adverts, changed).run()

    def _reset(self, env_key, env: _Env | None = None) -> None:
        self.env_key, self.env = env_key, env
        self.last: Selection | None = None
        self.touched: KeySet | None = None            # decisions the last call rebuilt; None: all
        self.nodes: dict[str, _Node] = {}
        self.origs: dict[str, Originator] = {}          # as the last call saw them
        self.endpoints = _Endpoints()
        self.key_claims: dict[str, str | set[str]] = {}   # key -> admitted node(s) advertising it
        self.proven: Mapping[str, str] = {}
        self.prefixes: dict[str, _Prefix] = {}
        self.own_claims: dict[str, str | set[str]] = {}   # derived tunnel address -> node(s)
        self.plens: dict[int, dict[int, int]] = {4: {}, 6: {}}        # lengths in `prefixes`
        self.net_users: dict[str, str | set[str]] = {}   # an entry's canonical text -> node(s)
        #                                                   that judged an entry of it
        self.user_plens: dict[int, dict[int, int]] = {4: {}, 6: {}}   # lengths in `net_users`
        self.conflicts: dict[tuple[str, str], Conflict] = {}
        # prefixes arbitrated with incumbent flags other than the ones the last result
        # implies for a next call at the same instant / at a later one
        self.recheck_same: set[str] = set()
        self.recheck_later: set[str] = set()


class _Env:
    """What the context fixes for a whole run of calls, pre-digested into integers."""

    @staticmethod
    def key_of(ctx: PolicyContext) -> tuple:
        return (ctx.own_node_id, ctx.auto_prefix, ctx.rules, ctx.allow_nodes, ctx.local_networks,
                ctx.local_addresses, ctx.own_public_key, ctx.bmx7_prefix)

    def __init__(self, ctx: PolicyContext):
        self.own_node_id = ctx.own_node_id
        self.allow_nodes = ctx.allow_nodes
        self.own_public_key = ctx.own_public_key
        self.auto_prefix = address.parse_prefix(ctx.auto_prefix)
        self.auto_span = _span(self.auto_prefix)
        # as address.derive: the prefix, then the nodeId's leading bits as the host part
        self.auto_shift = address.NODE_ID_HEX * 4 - (128 - self.auto_prefix.prefixlen)
        self.bmx7_prefix = ipaddress.ip_network(ctx.bmx7_prefix)
        self.bmx7_span = _span(self.bmx7_prefix)
        self.local_networks = tuple((_span(n), str(n)) for n in
                                    (ipaddress.ip_network(n, strict=False) for n in ctx.local_networks))
        self.local_addresses = _AddressIndex(ipaddress.ip_interface(a).ip for a in ctx.local_addresses)
        self.rule_spans = tuple((_span(r.network), r) for r in ctx.rules)
        self.restricted = any(not (r.allow_overlapping_prefix and r.break_overlapping_prefix)
                              for r in ctx.rules)

    def own_address(self, node_id: str) -> int:
        return self.auto_span[1] | (int(node_id, 16) >> self.auto_shift)

    def trusted(self, node_id: str, name: str | None) -> bool:
        return not self.allow_nodes or any(_names_node(e, node_id, name) for e in self.allow_nodes)


def _span(net: IPNetwork) -> tuple[int, int, int]:
    """cidr.span of an ipaddress network (the configured ones)."""
    return cidr.span(net.version, net.prefixlen, int(net.network_address))


def _inside(inner: tuple, outer: tuple) -> bool:
    return inner[0] == outer[0] and outer[1] <= inner[1] and inner[2] <= outer[2]


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[1] <= b[2] and b[1] <= a[2]


_RESERVED_SPANS = tuple((_span(r), str(r)) for r in RESERVED)


class _AddressIndex:
    """Sorted addresses per IP version: "is any of them inside this span?" in O(log n)."""

    def __init__(self, ips=()):
        self.by_version: dict[int, list[int]] = {4: [], 6: []}
        for ip in ips:
            self.by_version[ip.version].append(int(ip))
        for values in self.by_version.values():
            values.sort()

    def inside(self, span: tuple):
        values = self.by_version[span[0]]
        i = bisect.bisect_left(values, span[1])
        if i < len(values) and values[i] <= span[2]:
            return (ipaddress.IPv6Address if span[0] == 6 else ipaddress.IPv4Address)(values[i])
        return None


class _Endpoints(_AddressIndex):
    """Every originator's primaryIp (the peer endpoints), updated one node at a time.

    Each address is in the sorted lists once, however many nodes have it; `copies` counts
    the nodes beyond the first (a node may copy another's primaryIp: rare, so no count is
    kept for the thousands of addresses only one node has). Which node has which is the
    caller's (its originators, as last seen)."""

    def __init__(self):
        super().__init__()
        # (version, address) -> nodes with it beyond the first
        self.copies: dict[tuple[int, int], int] = {}

    def move(self, was: tuple[int, int] | None, ip: tuple[int, int] | None, touched: list) -> None:
        """A node's endpoint went from `was` to `ip` ((version, address) or None); addresses
        that appear or vanish go to `touched`."""
        if was == ip:
            return
        if was is not None:
            extra = self.copies.get(was)
            if extra:
                if extra > 1:
                    self.copies[was] = extra - 1
                else:
                    del self.copies[was]
            else:
                values = self.by_version[was[0]]
                del values[bisect.bisect_left(values, was[1])]
                touched.append(was)
        if ip is not None:
            values = self.by_version[ip[0]]
            i = bisect.bisect_left(values, ip[1])
            if i < len(values) and values[i] == ip[1]:
                self.copies[ip] = self.copies.get(ip, 0) + 1
            else:
                values.insert(i, ip[1])
                touched.append(ip)


def _members(value) -> tuple | set:
    """A one-or-more node slot (see _add_member) as a collection."""
    return (value,) if isinstance(value, str) else value


def _add_member(table: dict, key, node_id: str) -> bool:
    """Most slots hold one node: the node id itself, a set only from the second on (a
    one-element set costs ten times a pointer). True if the key is new."""
    value = table.get(key)
    if value is None:
        table[key] = node_id
        return True
    if isinstance(value, str):
        if value != node_id:
            table[key] = {value, node_id}
    else:
        value.add(node_id)
    return False


def _drop_member(table: dict, key, node_id: str) -> bool:
    """True if the key is left without nodes (and gone)."""
    value = table.get(key)
    if isinstance(value, str):
        if value == node_id:
            del table[key]
            return True
    elif value is not None:
        value.discard(node_id)
        if len(value) == 1:
            table[key] = next(iter(value))
    return False


def _ip_or_none(text):
    try:
        return ipaddress.ip_address(text)
    except (ValueError, TypeError):
        return None


def _parse_ip(text) -> tuple:
    """ipaddress.ip_address(text) as (version, address, str()), or () when it refuses.

    inet_pton first: it accepts a subset of what ipaddress does (no scope, no other
    spellings) with the same value, at a tenth of the cost; anything it refuses goes to
    ipaddress itself.
    """
    found = cidr.address(text) if isinstance(text, str) else None
    if found is not None:
        version, value = found
        canonical = cidr.ip_text(version, value)
        # the caller's string when it is already canonical (bmx7 writes it so): no
        # second copy of every primaryIp held for the rest of the call
        return version, value, text if canonical == text else canonical
    ip = _ip_or_none(text)
    return () if ip is None else (ip.version, int(ip), str(ip))


def _standing(orig: Originator | None) -> tuple | None:
    """All the policy reads from an originator."""
    return None if orig is None else (orig.name, orig.primary_ip, orig.metric, orig.reachable)


class _Node:
    """One advertiser: admission and entry checks, kept while its inputs stay the same."""

    __slots__ = ("node_id", "advert_in", "orig_in", "status", "reason", "endpoint",
                 "score_metric", "_judged", "judged_advert", "judged_name", "key", "key_reason",
                 "_offers", "own_claim")

    def __init__(self, node_id: str):
        self.node_id = node_id
        self.judged: tuple[_Entry, ...] = ()   # the advert's entries, checked (accepted nodes)
        self.judged_advert = None              # the advert and name they were checked for
        self.judged_name = None
        self.key: str | None = None            # the key it claims (admitted nodes only)
        self.key_reason: str | None = None     # lost the key to another node
        self.offers: tuple[_Offer, ...] = ()   # taking part in arbitration
        self.own_claim: str | None = None      # its derived tunnel address, claimed (see update_own)

    judged = property(lambda self: tuple([_Entry.unpacked(e) for e in _as_tuple(self._judged)]),
                      lambda self, items: setattr(self, "_judged", _packed(tuple(
                          [_Entry.packed(e) for e in items]))))
    offers = property(lambda self: _as_tuple(self._offers),
                      lambda self, items: setattr(self, "_offers", _packed(items)))

    @property
    def name(self) -> str | None:
        return self.orig_in.name if self.orig_in else None

    @property
    def advert(self) -> Advert | None:
        """The advert, unless rejected as a whole by admission."""
        return None if self.reason is not None and self.status == REJECTED else self.advert_in

    @property
    def judged_now(self) -> bool:
        return self.judged_advert is self.advert_in and self.judged_name == self.name

    def admit(self, env: _Env, adv, orig: Originator | None) -> None:
        """Whole-advert checks: well-formed, trusted, known to bmx7."""
        self.advert_in, self.orig_in = adv, orig
        self.endpoint, self.score_metric = None, 0
        self.status, self.reason = ACCEPTED, _advert_problem(env, self.node_id, adv)
        if self.reason is None and not env.trusted(self.node_id, self.name):
            self.reason = R_NOT_ALLOWED
        if self.reason is not None:
            self.status = REJECTED
            return
        found = _parse_ip(orig.primary_ip) if orig else ()
        if not found:
            self.status, self.reason = PENDING, R_NO_ORIGINATOR
            return
        self.endpoint = f"[{found[2]}]:{adv.port}" if found[0] == 6 else f"{found[2]}:{adv.port}"
        self.score_metric = max(0, int(orig.metric)) if orig.reachable else 0

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED and self.key_reason is None


def _advert_problem(env: _Env, node_id: str, adv) -> str | None:
    if not address.is_node_id(node_id):
        return R_BAD_NODE_ID
    if isinstance(adv, Exception):   # advert.AdvertError from decode(): its reason as is
        text = str(getattr(adv, "reason", None) or adv).strip()
        return text.splitlines()[0] if text else R_MALFORMED
    if not isinstance(adv, Advert):
        return R_MALFORMED
    if adv.version != ADVERT_VERSION:
        return f"unsupported advert version {adv.version}"
    if not is_wg_key(adv.public_key) \
            or adv.public_key == ZERO_KEY:
        return R_BAD_KEY
    if isinstance(adv.port, bool) or not isinstance(adv.port, int) or not 1 <= adv.port <= 65535:
        return f"bad port {adv.port!r}"
    # canonical CIDR text (model.Advert), which judge() parses again: cheaper than keeping
    # what this parse made for thousands of nodes
    if not all(cidr.parse(e) for e in (*adv.addresses, *adv.networks)):
        return R_MALFORMED
    if env.own_public_key and adv.public_key == env.own_public_key:
        return R_OWN_KEY
    return None


class _Entry:
    """One advert entry of an accepted node, checked: an offer (reason None) or refused."""

    __slots__ = ("text", "prefix", "source", "rule", "reason")

    def __init__(self, text, prefix, source, rule, reason):
        # text: canonical CIDR, the advert's own string, and the entry's key everywhere (its
        # integers are parsed again where needed, rather than kept for thousands of entries);
        # prefix: the text if the entry may compete for it, else None
        self.text, self.prefix = text, prefix
        self.source, self.rule, self.reason = source, rule, reason

    @staticmethod
    def packed(entry: _Entry):
        """How a node keeps an entry: a node's own derived address, accepted under no rule
        (every node has one, most nothing else), as its text alone; unpacked() makes the
        entry again when it is read."""
        if (entry.reason is None and entry.rule is None and entry.source == "address"
                and entry.prefix is entry.text):
            return entry.text
        return entry

    @staticmethod
    def unpacked(kept) -> _Entry:
        return _Entry(kept, kept, "address", None, None) if type(kept) is str else kept

    @property
    def host(self) -> bool:
        """A /32 or /128."""
        return cidr.is_host(self.text)

    @property
    def span(self) -> tuple[int, int, int]:
        version, plen, lo, _ = cidr.parse(self.text)
        return cidr.span(version, plen, lo)


class _Offer:
    """One node's claim on one prefix, ranked against other nodes' claims."""

    __slots__ = ("entry", "node_id", "metric", "since", "incumbent", "suppressed_by")

    def __init__(self, entry: _Entry, node_id: str, metric: int):
        # the node's metric object, not metric x rating: a product would be one more int
        # per offer, thousands of them
        self.entry, self.node_id, self.metric = entry, node_id, metric
        self.since = 0.0
        self.incumbent = False
        self.suppressed_by: str | None = None

    prefix = property(lambda self: self.entry.prefix)
    rule = property(lambda self: self.entry.rule)
    source = property(lambda self: self.entry.source)

    @property
    def score(self) -> int:
        return self.metric * (self.rule.rating if self.rule else DEFAULT_RATING)

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


class _Prefix:
    """The offers of one prefix, and the outcome of their arbitration."""

    __slots__ = ("_offers", "holder", "since")

    def __init__(self):
        self.offers: tuple[_Offer, ...] = ()   # one per node
        self.holder: _Offer | None = None
        self.since = 0.0                         # holder_since

    offers = property(lambda self: _as_tuple(self._offers),
                      lambda self, items: setattr(self, "_offers", _packed(items)))


def _packed(items: tuple):
    """What a slot holding a few items stores: a lone item itself (most nodes judge one entry
    and make one offer, most prefixes have one offer, and a tuple of one costs 48 bytes
    more), else the tuple. _as_tuple reads it back."""
    return items[0] if len(items) == 1 else items


def _as_tuple(value) -> tuple:
    return value if type(value) is tuple else (value,)


class _Everything:
    """The dirty marks of a call from scratch: every node, key and derived address is to do,
    so none is listed (sets of all of them were most of a first call's memory peak: five
    sets of 512 KB at 5,000). Iterating gives the keys `source` has when the iteration starts."""

    __slots__ = ("source",)

    def __init__(self, source: dict):
        self.source = source

    def add(self, key) -> None:
        pass

    def add_all(self, keys) -> None:
        pass

    def __iter__(self):
        return iter(list(self.source))        # a copy: callers may drop a key meanwhile


class _Step:
    """One call of Policy.select: bring the caches up to date, then build the Selection."""

    def __init__(self, pol: Policy, ctx: PolicyContext, adverts: Mapping, changed):
        self.pol, self.ctx, self.adverts, self.changed = pol, ctx, adverts, changed
        self.env: _Env = pol.env
        self.prev, self.now = ctx.previous, ctx.now
        self.scratch = pol.last is None           # nothing cached: every node is new
        self.verdicts: dict = {}                  # net -> safety problem, for this call
        self.rules_for: dict = {}                 # net -> matching rules, for this call
        # dirty_nodes: decisions to build again; sync_nodes: offers to align with the judged
        # entries; dirty_own: derived addresses whose claimants changed. From scratch all of
        # them are, and none is listed (see _Everything); else KeySets, not sets: a bmx7
        # restart or a first proof can mark thousands.
        if self.scratch:
            self.dirty_nodes = self.sync_nodes = _Everything(pol.nodes)
            self.dirty_keys, self.dirty_own = _Everything(pol.key_claims), _Everything(pol.own_claims)
        else:
            self.dirty_nodes, self.sync_nodes, self.dirty_keys, self.dirty_own = (
                KeySet(), KeySet(), KeySet(), KeySet())
        self.dirty_prefixes: set[str] = set()
        self.gone_claims: list[tuple[str, str]] = []       # (prefix, node) no longer offered
        self.gone_key_claims: list[tuple[str, str]] = []   # (key, node) no longer claimed
        self.key_since: dict[str, float] = {}              # see Selection.key_since

    def run(self) -> Selection:
        self.update_originators()
        self.update_nodes()
        self.update_keys()
        self.update_offers()
        self.update_own()
        self.update_holders()
        return self.result()

    # -- inputs --------------------------------------------------------------------------
    def update_originators(self) -> None:
        """Endpoints come from every originator; entries covering one that moved are judged
        again."""
        pol, origs, touched = self.pol, self.ctx.originators, []
        if self.changed is None:
            seen, added = pol.origs, 0
            for node_id, orig in origs.items():
                old = seen.get(node_id)
                if orig is not old and (old is None or orig.primary_ip != old.primary_ip):
                    added += old is None
                    pol.endpoints.move(self.endpoint_of(old), self.endpoint_of(orig), touched)
            if len(seen) + added != len(origs):          # some went away
                for node_id in seen.keys() - origs.keys():
                    pol.endpoints.move(self.endpoint_of(seen[node_id]), None, touched)
            pol.origs = dict(origs)
        else:
            for node_id in self.changed:
                orig, old = origs.get(node_id), pol.origs.get(node_id)
                if orig is old:
                    continue
                if old is None or orig is None or orig.primary_ip != old.primary_ip:
                    pol.endpoints.move(self.endpoint_of(old), self.endpoint_of(orig), touched)
                if orig is None:
                    del pol.origs[node_id]
                else:
                    pol.origs[node_id] = orig
        for version, ip in touched:
            bits = cidr.BITS[version]
            for plen in pol.user_plens[version]:
                users = pol.net_users.get(cidr.net_text(version, ip >> (bits - plen) << (bits - plen), plen))
                for node_id in _members(users) if users else ():
                    pol.nodes[node_id].judged_advert = None   # its entries: check them again
                    self.dirty_nodes.add(node_id)

    def endpoint_of(self, orig: Originator | None) -> tuple[int, int] | None:
        # parsed again where needed (inet_pton: 10 ms at 5,000), not remembered for the call:
        # a first call held a tuple and an int per node at once, 0.25 MB more at its peak
        found = _parse_ip(orig.primary_ip) if orig is not None else ()
        return found[:2] if found else None

    def update_nodes(self) -> None:
        pol, adverts, origs = self.pol, self.adverts, self.ctx.originators
        nodes = pol.nodes
        if self.changed is not None:
            ids = KeySet(self.changed)
            ids.add_all(self.dirty_nodes)
        elif self.scratch:
            ids = list(adverts)                   # no node yet: every advert is new
        else:
            ids = KeySet(n for n, adv in adverts.items()
                         if (node := nodes.get(n)) is None or node.advert_in is not adv
                         or node.orig_in is not origs.get(n))
            ids.add_all(n for n in nodes if n not in adverts)
            ids.add_all(self.dirty_nodes)
        for node_id in ids:
            node = nodes.get(node_id)
            if node_id not in adverts or node_id == self.env.own_node_id:
                if node is not None:
                    self.drop_node(node)
                continue
            adv, orig = adverts[node_id], origs.get(node_id)
            if node is None:
                node = nodes[node_id] = _Node(node_id)
            elif node.advert_in is adv and (node.status != ACCEPTED or node.judged_now):
                if node.orig_in is orig:
                    continue
                if _standing(node.orig_in) == _standing(orig):
                    node.orig_in = orig               # lastRef ticked: nothing the policy reads
                    continue
            old_key = node.key
            node.admit(self.env, adv, orig)
            node.key = node.advert.public_key if node.status == ACCEPTED else None
            if node.key != old_key:
                self.move_claim(node, old_key)
            if node.status != ACCEPTED:
                self.unjudge(node)
            elif not node.judged_now:
                self.judge(node)
            self.dirty_nodes.add(node_id)
            self.sync_nodes.add(node_id)

    def drop_node(self, node: _Node) -> None:
        old_key, node.key, node.status = node.key, None, REJECTED
        if old_key is not None:
            self.move_claim(node, old_key)
        self.unjudge(node)
        self.sync_nodes.add(node.node_id)
        self.dirty_nodes.add(node.node_id)

    def move_claim(self, node: _Node, old: str | None) -> None:
        claims = self.pol.key_claims
        if old is not None:
            _drop_member(claims, old, node.node_id)
            self.dirty_keys.add(old)
            self.gone_key_claims.append((old, node.node_id))
        if node.key is not None:
            _add_member(claims, node.key, node.node_id)
            self.dirty_keys.add(node.key)
        elif node.key_reason is not None:
            node.key_reason = None

    # -- entries ---------------------------------------------------------------------------
    def judge(self, node: _Node) -> None:
        """Check every entry of an accepted node's advert: safety, own address, rules."""
        self.unjudge(node)
        own_address = self.env.own_address(node.node_id)
        judged, counted, seen = [], 0, set()
        for source, texts in (("address", node.advert.addresses), ("network", node.advert.networks)):
            for text in texts:                   # in advert order, each prefix once
                version, plen, lo, text = cidr.parse(text)   # admit() checked they parse
                if text in seen:
                    continue
                seen.add(text)
                own = version == 6 and plen == 128 and lo == own_address
                if not own:
                    counted += 1
                    if counted > MAX_NETWORKS:
                        judged.append(_Entry(text, None, source, None, R_TOO_MANY))
                        continue
                rule, reason = self._judge(node, cidr.span(version, plen, lo), text, plen, source, own)
                judged.append(_Entry(text, text if reason is None else None,
                                     "address" if own else source, rule, reason))
        node.judged, node.judged_advert, node.judged_name = tuple(judged), node.advert_in, node.name
        users, plens = self.pol.net_users, self.pol.user_plens
        for entry in judged:                     # not node.judged: it would unpack them again
            if _add_member(users, entry.text, node.node_id):
                _count_length(plens, entry.text, 1)

    def unjudge(self, node: _Node) -> None:
        users, plens = self.pol.net_users, self.pol.user_plens
        for entry in node.judged:
            if _drop_member(users, entry.text, node.node_id):
                _count_length(plens, entry.text, -1)
        node.judged, node.judged_advert, node.judged_name = (), None, None

    def _judge(self, node: _Node, span: tuple, text: str, plen: int, source: str, own: bool):
        """(rule, None) if the entry may compete for its prefix, else (None, reason)."""
        problem = self.verdicts.get(text, False)
        if problem is False:                     # many nodes offer the same networks
            problem = self.verdicts[text] = self._safety(span)
        if problem is not None:
            return None, problem
        if own:
            return None, None
        env = self.env
        if span[0] == 6 and _overlap(span, env.auto_span):
            if _inside(span, env.auto_span):
                return None, R_NOT_DERIVED
            return None, f"overlaps the tunnel address prefix {env.auto_prefix}"
        matching = self.rules_for.get(text)
        if matching is None:
            matching = self.rules_for[text] = [
                rule for rule_span, rule in env.rule_spans
                if _inside(span, rule_span) and rule.min_prefix_len <= plen <= rule.max_prefix_len]
        allowed = [r for r in matching if r.allows_node(node.node_id, node.name)]
        if allowed:
            return max(allowed, key=lambda r: r.rating), None   # max keeps the first on ties
        if source == "address":
            return None, R_NOT_DERIVED
        return None, (R_NOT_FROM_NODE if matching else R_OUTSIDE_RULES)

    def _safety(self, span: tuple) -> str | None:
        """Prefixes that would route the tunnel into itself or steal local traffic."""
        for reserved, text in _RESERVED_SPANS:
            if _inside(span, reserved):
                return f"reserved range {text}"
        env = self.env
        if _overlap(span, env.bmx7_span):
            return f"overlaps the bmx7 prefix {env.bmx7_prefix}"
        endpoint = self.pol.endpoints.inside(span)
        if endpoint is not None:
            return f"covers peer endpoint {endpoint}"
        local = env.local_addresses.inside(span)
        if local is not None:
            return f"covers local address {local}"
        for local_span, text in env.local_networks:
            if _inside(span, local_span):
                return f"inside local network {text}"
        return None

    # -- keys ------------------------------------------------------------------------------
    def update_keys(self) -> None:
        """One key, one node: proven holder, then older claim, then lowest nodeId."""
        pol, proven, now = self.pol, self.ctx.proven_keys, self.now
        if proven is not pol.proven:
            if not self.scratch:
                self.dirty_keys.add_all(k for k, v in proven.items() if pol.proven.get(k) != v)
                self.dirty_keys.add_all(k for k in pol.proven if k not in proven)
            pol.proven = proven
        prev = self.prev
        prev_since = prev.key_since if prev else {}
        step_since = self.key_since

        def prev_age(key, node_id):
            was = prev_since.get(node_id)
            return was if was is not None and prev.claimed_key(node_id) == key else None

        def since(key, node_id):
            found = step_since.get(node_id)
            return prev_age(key, node_id) if found is None else found

        for key in self.dirty_keys:
            pol.conflicts.pop(("key", key), None)
            claimants = _members(pol.key_claims.get(key, ()))
            for node_id in claimants:
                was = prev_age(key, node_id)
                # only claims that are new or whose time moved: the rest stand in the previous
                # selection (a new proof dirties every key: 5,000 of them at once otherwise)
                if was is None or was > now or self.scratch:
                    step_since[node_id] = now if was is None else min(was, now)
            ranked = list(claimants)
            if len(ranked) > 1:
                proven_by = proven.get(key)
                ranked.sort(key=lambda n: (n != proven_by, since(key, n), n))
                winner, runner_up = ranked[0], ranked[1]
                if winner == proven_by:
                    why = "proven by handshake"
                elif since(key, winner) < since(key, runner_up):
                    why = "older claim"
                else:
                    why = "lower nodeId"
                pol.conflicts[("key", key)] = Conflict("key", key, winner, tuple(sorted(ranked[1:])), why)
            for i, node_id in enumerate(ranked):
                reason = f"key already used by node {_short(ranked[0])}" if i else None
                node = pol.nodes[node_id]
                if node.key_reason != reason:
                    node.key_reason = reason
                    self.sync_nodes.add(node_id)
                    self.dirty_nodes.add(node_id)

    # -- offers ----------------------------------------------------------------------------
    def update_offers(self) -> None:
        """Put each changed node's acceptable entries into (or out of) their prefixes."""
        pol = self.pol
        for node_id in self.sync_nodes:
            node = pol.nodes[node_id]
            have, want, own = {o.entry.prefix: o for o in node.offers}, {}, None
            if node.accepted:
                for entry in node.judged:
                    if entry.reason is not None:
                        continue
                    if entry.rule is None:           # only its own derived address has none
                        own = entry.text
                        continue
                    old = have.get(entry.prefix)
                    if old is not None and old.entry.text == entry.text and old.metric == node.score_metric \
                            and old.entry.source == entry.source and old.entry.rule is entry.rule:
                        want[entry.prefix] = old     # the same claim: keep it as it is
                    else:
                        want[entry.prefix] = _Offer(entry, node_id, node.score_metric)
            for prefix, offer in have.items():
                if want.get(prefix) is not offer:
                    self.withdraw(offer)
            for prefix, offer in want.items():
                if have.get(prefix) is not offer:
                    self.place(offer)
            node.offers = tuple(want.values())
            if own != node.own_claim:
                if node.own_claim is not None:
                    _drop_member(pol.own_claims, node.own_claim, node_id)
                    self.own_moved(node.own_claim)
                if own is not None:
                    _add_member(pol.own_claims, own, node_id)
                    self.own_moved(own)
                node.own_claim = own
            if node_id not in self.adverts or node_id == self.env.own_node_id:
                del pol.nodes[node_id]

    def own_moved(self, text: str) -> None:
        """A derived address gained or lost a claimant: the others' decisions may change."""
        self.dirty_own.add(text)
        self.dirty_nodes.add_all(_members(self.pol.own_claims.get(text, ())))

    def update_own(self) -> None:
        """A node's derived tunnel address is not arbitrated by standing: no other node can
        claim it (an entry inside auto_prefix is refused unless derived from the advertiser's
        own nodeId), except one whose nodeId shares its leading 64+ bits. Between such nodes
        the lowest nodeId holds it, with no history to keep. So these addresses, one per
        node, need no offer, no prefix record and no claim ages."""
        conflicts, claims = self.pol.conflicts, self.pol.own_claims
        for text in self.dirty_own:
            conflicts.pop(("prefix", text), None)
            claimants = claims.get(text)
            if isinstance(claimants, set):
                ranked = sorted(claimants)
                conflicts[("prefix", text)] = Conflict("prefix", text, ranked[0], tuple(ranked[1:]),
                                                       "lower nodeId")

    def place(self, offer: _Offer) -> None:
        pol, prefix = self.pol, offer.prefix
        entry = pol.prefixes.get(prefix)
        if entry is None:
            entry = pol.prefixes[prefix] = _Prefix()
            _count_length(pol.plens, prefix, 1)
        entry.offers += (offer,)
        self.dirty_prefixes.add(prefix)

    def withdraw(self, offer: _Offer) -> None:
        pol, prefix = self.pol, offer.prefix
        entry = pol.prefixes[prefix]
        entry.offers = tuple([o for o in entry.offers if o is not offer])
        self.dirty_prefixes.add(prefix)
        self.gone_claims.append((prefix, offer.node_id))
        if not entry.offers:
            del pol.prefixes[prefix]
            _count_length(pol.plens, prefix, -1)

    # -- holders ---------------------------------------------------------------------------
    def update_holders(self) -> None:
        """Exactly one holder per arbitrated prefix: standing, then older claim, then nodeId."""
        pol, prev, now = self.pol, self.prev, self.now
        if self.scratch:
            dirty = set(pol.prefixes)
            recheck_later = set()
        else:
            dirty = self.dirty_prefixes
            later = now > pol.last.now
            dirty |= pol.recheck_later if later else pol.recheck_same
            if self.env.restricted and dirty:
                dirty |= self._covered_by(dirty)
            recheck_later = set() if later else pol.recheck_later - dirty
        recheck_same = set()
        self.arbitrated = dirty
        prev_holders = prev.holders if prev else {}
        prev_holder_since = prev.holder_since if prev else {}
        prev_claimed = prev.claimed_since if prev else {}
        entries = [pol.prefixes[p] for p in dirty if p in pol.prefixes]
        for entry in entries:
            for offer in entry.offers:
                prefix = offer.prefix
                offer.incumbent = (prev_holders.get(prefix) == offer.node_id
                                   and prev_holder_since.get(prefix, now) < now)
                offer.since = min(prev_claimed.get((prefix, offer.node_id), now), now)
                offer.suppressed_by = None
        if self.env.restricted:
            self._suppress_overlaps(entries)
        for prefix in dirty:
            pol.conflicts.pop(("prefix", prefix), None)
        restricted = self.env.restricted
        for prefix in dirty:
            entry = pol.prefixes.get(prefix)
            if entry is None:
                continue
            before = entry.holder
            live = sorted((o for o in entry.offers if o.suppressed_by is None), key=_Offer.rank)
            winner = entry.holder = live[0] if live else None
            if winner is not None:
                kept = prev_holders.get(prefix) == winner.node_id
                entry.since = min(prev_holder_since.get(prefix, now), now) if kept else now
                if len(live) > 1:
                    pol.conflicts[("prefix", prefix)] = Conflict(
                        "prefix", prefix, winner.node_id, tuple(sorted(o.node_id for o in live[1:])),
                        _decided_by(winner, live[1]))
            if len(entry.offers) > 1 or restricted and not _inert(winner):
                # the flags a next call would use: the holder's bonus, once its since is past
                flagged = {o.node_id for o in entry.offers if o.incumbent}
                holder = {winner.node_id} if winner is not None else set()
                if flagged != holder:
                    recheck_later.add(prefix)
                if flagged != (holder if entry.since < now else set()):
                    recheck_same.add(prefix)
            if winner is not before or len(entry.offers) > 1 or restricted:
                self.dirty_nodes.add_all(o.node_id for o in entry.offers)
        pol.recheck_same, pol.recheck_later = recheck_same, recheck_later

    def _covered_by(self, prefixes: set[str]) -> set[str]:
        """Prefixes with offers strictly inside one of `prefixes` (their overlap check reads
        the covering offers)."""
        pol = self.pol
        spans = {(v, lo, lo | ((1 << (cidr.BITS[v] - plen)) - 1))
                 for v, plen, lo, _ in map(cidr.parse, prefixes)}
        return {prefix for prefix, entry in pol.prefixes.items()
                if any(_inside(span, s) and span != s
                       for span in (entry.offers[0].entry.span,) for s in spans)}

    def _suppress_overlaps(self, entries: list[_Prefix]) -> None:
        """bmx7's allowOverlappingPrefix/breakOverlappingPrefix: a more specific offer gives way
        to a covering offer with better standing unless the covering offer's rule allows
        overlapping and its own rule allows breaking. Compared with every covering offer,
        not only holders, so the outcome needs no iteration and has no order."""
        pol, best = self.pol, {}

        def strongest(prefix: str):
            if prefix not in best:
                # in nodeId order: max() keeps the lowest nodeId among equal standings
                offers = sorted(pol.prefixes[prefix].offers, key=lambda o: o.node_id)
                best[prefix] = (max(offers, key=_Offer.standing.fget),
                                max((o for o in offers if not o.allows_overlap),
                                    key=_Offer.standing.fget, default=None))
            return best[prefix]

        for entry in entries:
            covers = None
            for offer in entry.offers:
                if offer.rule is None:
                    continue
                if covers is None:
                    covers = _covering_prefixes(offer.entry.text, pol.prefixes, pol.plens)
                for cover in covers:
                    top = strongest(cover)[0 if not offer.rule.break_overlapping_prefix else 1]
                    if top is not None and top.standing > offer.standing:
                        offer.suppressed_by = (f"overlaps {cover} from node {_short(top.node_id)} "
                                               "with better standing")
                        break

    # -- result ------------------------------------------------------------------------------
    def result(self) -> Selection:
        pol, prev, now = self.pol, self.prev, self.now
        if self.scratch:
            peers, holders, holder_since, claimed, key_since = {}, {}, {}, {}, {}
        else:
            peers, holders, holder_since = dict(prev.peers), dict(prev.holders), dict(prev.holder_since)
            claimed, key_since = dict(prev.claimed_since), dict(prev.key_since)
            for claim in self.gone_claims:
                claimed.pop(claim, None)
            for _, node_id in self.gone_key_claims:     # a new claim's age is in self.key_since
                key_since.pop(node_id, None)
        for prefix in self.arbitrated:
            entry = pol.prefixes.get(prefix)
            if entry is None or entry.holder is None:
                holders.pop(prefix, None)
                holder_since.pop(prefix, None)
            else:
                holders[prefix], holder_since[prefix] = entry.holder.node_id, entry.since
            for offer in entry.offers if entry is not None else ():
                claimed[(prefix, offer.node_id)] = offer.since
        key_since.update(self.key_since)
        for node_id in self.dirty_nodes:
            node = pol.nodes.get(node_id)
            if node is None:
                peers.pop(node_id, None)
            else:
                peers[node_id] = self._decision(node)
        if self.scratch:
            peers, holders, holder_since, claimed, key_since = (
                _sorted_dict(d) for d in (peers, holders, holder_since, claimed, key_since))
        conflicts = frozenset(pol.conflicts.values())
        old = prev.conflicts if prev else frozenset()
        pol.touched = None if self.scratch else self.dirty_nodes
        pol.last = Selection(now=now, peers=peers, holders=holders, holder_since=holder_since,
                             claimed_since=claimed, key_since=key_since, conflicts=conflicts,
                             new_conflicts=tuple(sorted(conflicts - old)))
        return pol.last

    def _decision(self, node: _Node) -> PeerDecision:
        status, reason = node.status, node.reason
        if status == ACCEPTED and node.key_reason is not None:
            status, reason = REJECTED, node.key_reason
        won, rejected = [], []
        if status == ACCEPTED:
            judged = node.judged                 # unpacked once (see _Entry.packed)
            rejected = [(entry, entry.reason) for entry in judged if entry.reason is not None]
            if node.own_claim is not None:
                entry = next(e for e in judged if e.prefix == node.own_claim)
                holder = min(_members(self.pol.own_claims[node.own_claim]))
                if holder == node.node_id:
                    won.append(entry)
                else:
                    rejected.append((entry, f"held by node {_short(holder)}: same derived address, "
                                            "lower nodeId"))
        prefixes = self.pol.prefixes
        for offer in node.offers:
            holder = prefixes[offer.entry.prefix].holder
            if holder is offer:
                won.append(offer.entry)
            elif offer.suppressed_by is not None:
                rejected.append((offer.entry, offer.suppressed_by))
            else:
                rejected.append((offer.entry, f"held by node {_short(holder.node_id)} with better standing"))
        if len(won) > 1:
            won.sort(key=_entry_order)
        adv = node.advert
        allowed = [entry.prefix for entry in won]
        # the advert's own tuple when it won whole (the usual peer: its one address): one
        # tuple per peer fewer, thousands of times
        allowed = adv.addresses if (adv is not None and not adv.networks and type(adv.addresses)
                                    is tuple and list(adv.addresses) == allowed) else tuple(allowed)
        addresses = tuple([entry.prefix for entry in won if entry.source == "address"])
        if len(rejected) > 1:
            rejected.sort(key=lambda r: (_entry_order(r[0]), r[1]))
        return PeerDecision(
            node_id=node.node_id, name=node.name,
            status=status, reason=reason,
            public_key=adv.public_key if adv is not None else None,
            endpoint=node.endpoint if status == ACCEPTED else None,
            # one tuple object where they are equal (the usual peer: one address)
            addresses=allowed if len(addresses) == len(allowed) else addresses,
            allowed_ips=allowed,
            routed=tuple([Route(e.prefix, e.rule.table, e.rule.metric) for e in won
                          if e.rule is not None and (e.rule.table, e.rule.metric) != (None, None)]),
            rejected=tuple([(entry.text, why) for entry, why in rejected]))


def _sorted_dict(d: dict) -> dict:
    """dict(sorted(d.items())) without an item tuple per key (thousands at a first call)."""
    return {k: d[k] for k in sorted(d)}


def _entry_order(entry: _Entry) -> tuple:
    """Networks in address order: (version, address, prefix length)."""
    version, plen, lo, _ = cidr.parse(entry.text)
    return version, lo, plen


def _short(node_id: str) -> str:
    return node_id[:address.SHORT_ID_HEX]


def _is_hex_id(text: str) -> bool:
    """A nodeId or its first 8+ hex digits, either case."""
    return made_of(text, HEX, 8, address.NODE_ID_HEX)


def _names_node(entry: str, node_id: str, name: str | None) -> bool:
    """An allow_node entry names a node by nodeId (or its first 8+ hex digits) or by name."""
    if _is_hex_id(entry) and node_id.startswith(entry.upper()):
        return True
    return name is not None and entry == name


def _inert(offer: _Offer | None) -> bool:
    """A lone offer whose standing no overlap check reads: never suppressed (no rule), and a
    host prefix covers nothing. Its incumbent flag cannot change any outcome."""
    return offer is not None and offer.rule is None and offer.entry.host


def _decided_by(winner: _Offer, runner_up: _Offer) -> str:
    if winner.standing != runner_up.standing:
        return "better metric" if winner.score > runner_up.score else "hysteresis"
    if winner.since != runner_up.since:
        return "older claim"
    return "lower nodeId"


def _covering_prefixes(text: str, prefixes: dict, plens: dict) -> list[str]:
    """Prefixes in `prefixes` strictly covering the network `text`, longest first."""
    version, length, addr, _ = cidr.parse(text)
    bits = cidr.BITS[version]
    found = []
    for plen in sorted((p for p in plens[version] if p < length), reverse=True):
        shift = bits - plen
        prefix = cidr.net_text(version, addr >> shift << shift, plen)
        if prefix in prefixes:
            found.append(prefix)
    return found


def _count_length(counts: dict[int, dict[int, int]], text: str, delta: int) -> None:
    """counts[version][length]: how many of the networks held have that prefix length (the
    lengths a covering-prefix lookup tries)."""
    version, plen, _, _ = cidr.parse(text)
    by_length = counts[version]
    left = by_length.get(plen, 0) + delta
    if left:
        by_length[plen] = left
    else:
        del by_length[plen]
