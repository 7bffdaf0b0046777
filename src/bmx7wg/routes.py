"""Addresses and routes on the WireGuard link, outside OpenWrt (netifd does it there).

Read the link's state with iproute2's JSON output, then add/delete only the
difference in one `ip -batch -` call (none when equal). Our routes carry
`proto RT_PROTO`; a route with any other protocol is never deleted. Addresses
cannot be tagged with iproute2 6.1 (`ip addr add ... proto` is newer), so on our
own link every global address not wanted is removed; link-local ones stay.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from . import jsontext, spawn
from .record import record

RT_PROTO = 77                 # unassigned in /etc/iproute2/rt_protos; marks our routes
_DEFAULT_METRIC = {4: 0, 6: 1024}   # what the kernel gives a route added without one


class RouteError(Exception):
    """One-line error naming the interface or the bad value."""


@record(frozen=True)
class Changes:
    added: int = 0
    removed: int = 0

    @property
    def total(self) -> int:
        return self.added + self.removed


def _ip(ip: str, args: list[str], ifname: str, what: str, stdin: str | None = None,
        empty_if: str | None = None) -> str:
    """Run ip; stdout, or "" when stderr contains `empty_if` (e.g. a table not made yet)."""
    try:
        proc = spawn.run([ip, *args], input=None if stdin is None else stdin.encode(), text=True)
    except FileNotFoundError:
        raise RouteError(f"{ifname}: command not found: {ip}") from None
    if proc.returncode != 0:
        if empty_if and empty_if in proc.stderr:
            return ""
        lines = [l.strip() for l in proc.stderr.splitlines() if l.strip()]
        raise RouteError(f"{ifname}: {what}: {lines[0] if lines else 'failed'}")
    return proc.stdout


def _batch(ip: str, ifname: str, commands: list[str]) -> None:
    if commands:
        _ip(ip, ["-batch", "-"], ifname, "ip -batch", stdin="\n".join(commands) + "\n")


def _canonical(values: Iterable[str], parse, ifname: str) -> set[str]:
    try:
        return {str(parse(v)) for v in values}
    except ValueError as e:
        raise RouteError(f"{ifname}: {e}") from None


# ---------------------------------------------------------------- addresses

def _current_addresses(ip: str, ifname: str) -> set[str]:
    links = jsontext.loads(_ip(ip, ["-j", "addr", "show", "dev", ifname], ifname, "ip addr show") or "[]")
    return {f"{a['local']}/{a['prefixlen']}"
            for link in links for a in link.get("addr_info", [])
            if a.get("scope") != "link" and "local" in a}


def sync_addresses(ifname: str, want: Iterable[str], ip: str = "ip") -> Changes:
    """Make the link's global addresses exactly `want` ("fd77::1/128", "10.0.0.1/32")."""
    want = _canonical(want, ipaddress.ip_interface, ifname)
    have = _canonical(_current_addresses(ip, ifname), ipaddress.ip_interface, ifname)
    add, remove = sorted(want - have), sorted(have - want)
    _batch(ip, ifname, [f"address del {a} dev {ifname}" for a in remove]
                       + [f"address add {a} dev {ifname}" for a in add])
    return Changes(len(add), len(remove))


# ---------------------------------------------------------------- routes

def _route_dst(route: dict, family: int) -> str:
    dst = route["dst"]
    if dst == "default":
        dst = "0.0.0.0/0" if family == 4 else "::/0"
    return str(ipaddress.ip_network(dst))


def _current_routes(ip: str, ifname: str, table: str) -> tuple[set, set]:
    """(ours, foreign) as sets of (dst, metric) of unicast routes on the link."""
    ours, foreign = set(), set()
    for family in (4, 6):
        out = _ip(ip, ["-N", "-j", f"-{family}", "route", "show", "dev", ifname,
                       "table", table], ifname, "ip route show", empty_if="table does not exist")
        for r in jsontext.loads(out or "[]"):
            if r.get("type", "unicast") not in ("unicast", "1"):
                continue
            key = (_route_dst(r, family), int(r.get("metric", _DEFAULT_METRIC[4])))
            (ours if r.get("protocol") == str(RT_PROTO) else foreign).add(key)
    return ours, foreign


def _wanted(want: Iterable[str] | dict[str, int | None], metric: int | None,
            ifname: str) -> set[tuple[str, int]]:
    per_net = want if isinstance(want, dict) else dict.fromkeys(want, metric)
    wanted = set()
    for net, m in per_net.items():
        try:
            n = ipaddress.ip_network(net)
        except ValueError as e:
            raise RouteError(f"{ifname}: {e}") from None
        wanted.add((str(n), m if m is not None else _DEFAULT_METRIC[n.version]))
    return wanted


def sync_routes(ifname: str, want: Iterable[str] | dict[str, int | None],
                table: int | str | None = None, metric: int | None = None,
                owned: Iterable[str] | None = None, ip: str = "ip") -> Changes:
    """Make our routes (proto RT_PROTO) on the link in `table` exactly `want`.

    `want` is a set of networks, all with `metric`, or a dict network -> metric
    (None: the kernel default) when one table holds several metrics: each call
    owns the whole table. Only routes tagged with RT_PROTO are deleted, and when
    `owned` is given only those whose destination is in it. A wanted destination
    already routed over the link by someone else with the same metric is left to them.
    """
    table = str(table) if table is not None else "main"
    wanted = _wanted(want, metric, ifname)
    ours, foreign = _current_routes(ip, ifname, table)
    if owned is not None:
        owned = _canonical(owned, ipaddress.ip_network, ifname)
        foreign |= {r for r in ours if r[0] not in owned}
        ours = {r for r in ours if r[0] in owned}
    add = sorted(wanted - ours - foreign)
    remove = sorted(ours - wanted)
    tail = f"dev {ifname} table {table} proto {RT_PROTO}"
    # adds first: a metric change never leaves the destination unrouted
    _batch(ip, ifname, [f"route add {d} {tail} metric {m}" for d, m in add]
                       + [f"route del {d} {tail} metric {m}" for d, m in remove])
    return Changes(len(add), len(remove))
