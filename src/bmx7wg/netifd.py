"""netifd side of an OpenWrt interface (`bmx7wg run IFACE --netifd`).

The helper is the only writer of the interface's addresses and routes: it sends netifd the
same `notify_proto` messages the shell API (`proto_init_update` ... `proto_send_update`) would,
so firewall zones, `ip4table`/`ip6table`, metrics and hotplug work the OpenWrt way. Every
update is complete (`keep: false`): netifd drops whatever the previous one had and this one
has not, so a push is idempotent and a restarted helper converges.

Peer endpoints are bmx7 primaryIps, routed by bmx7 itself; a route covering one would send
WireGuard's own UDP packets into the tunnel. `payload()` therefore never lets a route or an
address prefix cover bmx7's prefix (fd70::/16) or an endpoint: such routes are split around
them, addresses are narrowed to host prefixes. netifd's `add_host_route {exclude: true}`
(unetd's way) is NOT used: netifd does not know bmx7's routes and would pin the endpoint to
whatever netifd-managed route matches (e.g. the WAN default route).

The random UDP port is opened the way unetd does it: procd service data with a firewall rule
(`ubus call service set`), which fw4 reads on reload, and procd triggers that reload
(`service.data.update`) whenever the data changes. One service per interface, because
`service set` replaces a service's whole data table.

Transport: the process's python-ubus connection when ubusadapter has one (one connection per
process), else the `ubus` command line tool; without either, nothing is sent (logged once).
"""

from __future__ import annotations

import ipaddress

from . import jsontext, spawn
from .config import BMX7_PREFIX
from .log import log


UBUS_TIMEOUT = 5              # seconds; netifd answers notify_proto at once
SERVICE_PREFIX = "bmx7wg-"    # procd service carrying the firewall rule: bmx7wg-<iface>

# notify_proto actions (netifd proto-shell.c)
ACTION_UPDATE = 0
ACTION_ERROR = 3
ACTION_BLOCK_RESTART = 4

_said: set[str] = set()


def _once(key: str, msg: str, *args) -> None:
    if key not in _said:
        _said.add(key)
        log.warning(msg, *args)


# ---- payloads -----------------------------------------------------------------------------

def _endpoint_ip(text: str):
    """'[fd70::1]:51820', '10.0.0.1:51820', 'fd70::1' or '10.0.0.1' -> ip_address."""
    text = str(text).strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    return ipaddress.ip_address(text.split("%", 1)[0])


def _excluded(exclude) -> list:
    nets = [BMX7_PREFIX]
    for item in exclude or ():
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            try:
                nets.append(ipaddress.ip_network(_endpoint_ip(item)))
            except ValueError:
                log.warning("netifd: ignoring unparsable endpoint %r", str(item)[:60])
    return nets


def _without(net, excluded) -> list:
    """`net` minus every excluded network of its family (split when one lies inside it)."""
    pieces = [net]
    for ex in excluded:
        if ex.version != net.version:
            continue
        kept = []
        for piece in pieces:
            if piece.subnet_of(ex):
                continue                                 # entirely mesh/endpoint space
            if ex.subnet_of(piece):
                kept.extend(piece.address_exclude(ex))   # route around it
            else:
                kept.append(piece)
        pieces = kept
    return sorted(pieces)


def _route_items(routes):
    """Accept (network, table, metric) tuples (reconcile.desired_routes) or bare networks."""
    for item in routes or ():
        if isinstance(item, (tuple, list)):
            net, table, metric = (list(item) + [None, None])[:3]
        else:
            net, table, metric = item, None, None
        yield ipaddress.ip_network(net, strict=False), table, metric


def _address_entries(addresses, excluded) -> tuple[list, list]:
    ip4, ip6 = [], []
    for addr in sorted({ipaddress.ip_interface(a) for a in addresses or ()},
                       key=lambda a: (a.version, a.ip, a.network.prefixlen)):
        mask = addr.network.prefixlen
        if mask < addr.max_prefixlen and any(addr.network.overlaps(x) for x in excluded
                                               if x.version == addr.version):
            # The prefix route netifd would add for it would cover the mesh: host prefix only.
            _once(f"addr:{addr}", "netifd: address %s would route bmx7's mesh into the tunnel; "
                  "using /%d", addr, addr.max_prefixlen)
            mask = addr.max_prefixlen
        entry = {"ipaddr": str(addr.ip), "mask": str(mask)}
        (ip6 if addr.version == 6 else ip4).append(entry)
    return ip4, ip6


def _route_entries(routes, excluded) -> tuple[list, list]:
    seen = {}
    for net, table, metric in _route_items(routes):
        pieces = _without(net, excluded)
        if pieces != [net]:
            _once(f"route:{net}", "netifd: route %s would cover bmx7's mesh or a peer endpoint; "
                  "pushed as %d narrower route(s)", net, len(pieces))
        for piece in pieces:
            entry = {"target": str(piece.network_address), "netmask": str(piece.prefixlen)}
            if metric is not None:
                entry["metric"] = int(metric)
            if table not in (None, ""):
                entry["table"] = str(table)
            seen[(piece.version, piece, entry.get("table", ""), entry.get("metric", -1))] = entry
    r4 = [e for k, e in sorted(seen.items(), key=lambda kv: kv[0]) if k[0] == 4]
    r6 = [e for k, e in sorted(seen.items(), key=lambda kv: kv[0]) if k[0] == 6]
    return r4, r6


def payload(iface: str, ifname: str, addresses, routes, exclude=()) -> dict:
    """The complete notify_proto update (action 0) for the interface's current state.

    addresses: "IP/len" strings or ip_interface objects (own tunnel addresses).
    routes:    (network, table, metric) tuples or bare networks routed into the link.
    exclude:   peer endpoints ("[ip]:port", "ip:port", IPs or networks) never to be routed
               into the link; bmx7's fd70::/16 is always excluded.
    """
    excluded = _excluded(exclude)
    ip4, ip6 = _address_entries(addresses, excluded)
    r4, r6 = _route_entries(routes, excluded)
    return {
        "action": ACTION_UPDATE,
        "interface": iface,
        "ifname": ifname,
        "link-up": True,
        "keep": False,
        "ipaddr": ip4,
        "ip6addr": ip6,
        "routes": r4,
        "routes6": r6,
    }


def error_payload(iface: str, code: str, *details: str) -> dict:
    """proto_notify_error: shown by `ifstatus`/LuCI as the interface's error."""
    return {"action": ACTION_ERROR, "interface": iface,
            "error": [str(code)] + [str(d).replace("\n", " ")[:200] for d in details]}


def block_restart_payload(iface: str) -> dict:
    """proto_block_restart: netifd stops restarting the interface until ifup / config change."""
    return {"action": ACTION_BLOCK_RESTART, "interface": iface}


def service_name(iface: str) -> str:
    return f"{SERVICE_PREFIX}{iface}"


def firewall_payload(iface: str, port: int | None) -> dict:
    """`ubus call service set` message opening UDP `port` from any zone (as unetd does).

    port None -> empty data: withdraws the rule (procd triggers the fw4 reload)."""
    data = {}
    if port is not None:
        data["firewall"] = [{"type": "rule", "proto": "udp", "src": "*",
                             "dest_port": int(port), "target": "accept"}]
    return {"name": service_name(iface), "data": data}


# ---- transport --------------------------------------------------------------------------------

def call(obj: str, method: str, data: dict) -> bool:
    """One ubus call, through the process's python-ubus connection or the ubus CLI."""
    from . import ubusadapter
    bus = ubusadapter.current()
    if bus is not None and bus.connected:
        try:
            bus.call(obj, method, data, timeout_ms=UBUS_TIMEOUT * 1000)
            return True
        except Exception as exc:  # python-ubus raises RuntimeError with ubus_strerror()
            log.warning("ubus call %s %s: %s", obj, method, str(exc).strip()[:120])
            return False
    import shutil          # only without python-ubus
    cli = shutil.which("ubus")
    if cli is None:
        _once("no-ubus", "ubus not available: cannot send %s %s (further ones not logged)", obj, method)
        return False
    try:
        proc = spawn.run([cli, "-t", str(UBUS_TIMEOUT), "call", obj, method,
                          jsontext.dumps(data)], text=True, timeout=UBUS_TIMEOUT + 5)
    except (OSError, spawn.Timeout) as exc:
        log.warning("ubus call %s %s: %s", obj, method, exc)
        return False
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        log.warning("ubus call %s %s: %s", obj, method, reason[:120])
        return False
    return True


def push(iface: str, ifname: str, addresses, routes, exclude=()) -> bool:
    """Send the interface's complete address/route set to netifd."""
    return call("network.interface", "notify_proto",
                payload(iface, ifname, addresses, routes, exclude))


def report_failure(iface: str, code: str, message: str, block: bool = True) -> bool:
    """Setup failed inside the helper: tell netifd why (and, when retrying cannot help,
    stop it from restarting the interface in a loop). The helper exits afterwards."""
    sent = call("network.interface", "notify_proto", error_payload(iface, code, message))
    if block:
        sent = call("network.interface", "notify_proto", block_restart_payload(iface)) and sent
    return sent


def publish_port(iface: str, port: int) -> bool:
    """Open the WireGuard port in fw4 (procd service data `bmx7wg-<iface>`)."""
    return call("service", "set", firewall_payload(iface, port))


def withdraw_port(iface: str) -> bool:
    """Close it again (empty data triggers the fw4 reload) and drop the service."""
    done = call("service", "set", firewall_payload(iface, None))
    return call("service", "delete", {"name": service_name(iface)}) and done
