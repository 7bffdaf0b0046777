"""routes.py on a real WireGuard link (wireguard-go) in namespace wgb-r."""

from __future__ import annotations

import json

import pytest

from bmx7wg.routes import RT_PROTO, Changes, RouteError, sync_addresses, sync_routes
from bmx7wg.wg import Backend
from wgb_netns import Netns, inside, logging_wrapper

IF = "wgb8"


@pytest.fixture
def link():
    ns = Netns("wgb-r")
    with inside(ns.name):
        Backend().ensure_link(IF, 1420)
    yield ns
    ns.close()


@pytest.fixture
def ip(tmp_path):
    """An `ip` that records its command lines, to count real invocations."""
    script, log = logging_wrapper(tmp_path, "ip")

    def calls() -> list[str]:
        with open(log) as f:
            return f.read().splitlines()
    return script, calls


def addresses(ns: Netns) -> set[str]:
    out = json.loads(ns.ip("-j", "addr", "show", "dev", IF).stdout)[0]["addr_info"]
    return {f"{a['local']}/{a['prefixlen']}" for a in out}


def routes_of(ns: Netns, family: str, table: str = "main") -> set[tuple[str, str, int]]:
    out = json.loads(ns.ip("-N", "-j", family, "route", "show", "dev", IF, "table", table).stdout)
    return {(r["dst"], r.get("protocol", "3"), r.get("metric", 0)) for r in out}   # boot (3) is not printed


def test_addresses_sync_is_idempotent_and_keeps_link_local(link, ip):
    script, calls = ip
    link_local = {a for a in addresses(link) if a.startswith("fe80:")}
    with inside(link.name):
        assert sync_addresses(IF, {"fd77:b::1/128", "10.77.0.1/32"}, ip=script) == Changes(2, 0)
        n = len(calls())
        assert sync_addresses(IF, {"fd77:b:0::1/128", "10.77.0.1"}, ip=script) == Changes(0, 0)
        assert calls()[n:] == ["-j addr show dev wgb8"]          # a read, no write
        assert sync_addresses(IF, {"fd77:b::2/128", "10.77.0.1/32"}, ip=script) == Changes(1, 1)
    assert addresses(link) == {"fd77:b::2/128", "10.77.0.1/32"} | link_local
    with inside(link.name):
        assert sync_addresses(IF, set(), ip=script).removed == 2
    assert addresses(link) == link_local


def test_routes_sync_only_touches_own_routes(link, ip):
    script, calls = ip
    link.ip("route", "add", "10.60.0.0/16", "dev", IF, "proto", "static")
    link.ip("-6", "route", "add", "fd60::/64", "dev", IF)           # proto boot: not ours
    want = {"10.61.0.0/16", "fd61::/64", "fd62::1"}
    with inside(link.name):
        assert sync_routes(IF, want, ip=script) == Changes(3, 0)
        n = len(calls())
        assert sync_routes(IF, want, ip=script) == Changes(0, 0)
        assert not any("-batch" in c for c in calls()[n:])          # no write at all
    p = str(RT_PROTO)
    assert {("10.61.0.0/16", p, 0), ("10.60.0.0/16", "4", 0)} <= routes_of(link, "-4")
    assert {("fd61::/64", p, 1024), ("fd62::1", p, 1024), ("fd60::/64", "3", 1024)} <= \
        routes_of(link, "-6")
    with inside(link.name):
        assert sync_routes(IF, {"fd61::/64"}, ip=script) == Changes(0, 2)
    assert ("10.60.0.0/16", "4", 0) in routes_of(link, "-4")
    assert not any(r[1] == p for r in routes_of(link, "-4"))
    assert {r for r in routes_of(link, "-6") if r[1] == p} == {("fd61::/64", p, 1024)}
    assert ("fd60::/64", "3", 1024) in routes_of(link, "-6")


def test_routes_metric_table_and_owned(link):
    with inside(link.name):
        assert sync_routes(IF, {"10.62.0.0/24", "fd63::/64"}, table=100, metric=50) == Changes(2, 0)
        assert sync_routes(IF, {"10.62.0.0/24", "fd63::/64"}, table=100, metric=50).total == 0
        # metric change: new route first, then the old one goes
        assert sync_routes(IF, {"10.62.0.0/24", "fd63::/64"}, table=100, metric=60) == Changes(2, 2)
        assert routes_of(link, "-4", "100") == {("10.62.0.0/24", str(RT_PROTO), 60)}
        assert routes_of(link, "-6", "100") == {("fd63::/64", str(RT_PROTO), 60)}
        assert routes_of(link, "-4") == set()                      # main table untouched
        # with `owned`, a tagged route outside it is neither removed nor re-added
        assert sync_routes(IF, {"fd63::/64"}, table=100, metric=60, owned={"fd63::/64"}) == Changes(0, 0)
        assert ("10.62.0.0/24", str(RT_PROTO), 60) in routes_of(link, "-4", "100")
        assert sync_routes(IF, {"10.62.0.0/24"}, table=100, metric=60, owned={"fd63::/64"}) == Changes(0, 1)
        # several metrics in one table: one call with a dict, stable on repeat
        mixed = {"10.62.0.0/24": 60, "10.63.0.0/24": 70, "fd64::/64": None}
        assert sync_routes(IF, mixed, table=100) == Changes(2, 0)
        assert sync_routes(IF, mixed, table=100) == Changes(0, 0)
        assert routes_of(link, "-6", "100") == {("fd64::/64", str(RT_PROTO), 1024)}


def test_bad_input_is_one_line(link):
    with inside(link.name):
        with pytest.raises(RouteError, match="wgb8: .*10.0.0.0/33") as err:
            sync_routes(IF, {"10.0.0.0/33"})
        assert "\n" not in str(err.value)
        with pytest.raises(RouteError, match="wgbmissing"):
            sync_addresses("wgbmissing", {"10.0.0.1/32"})
