"""netifd.py: notify_proto payloads (checked against docs/schema), endpoint exclusion,
firewall service data, and both transports (ubus CLI, python-ubus binding)."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmx7wg import netifd, ubusadapter
from fake_ubus import FakeBus, FakeUbusModule
from schema_check import check, errors, load

MESH = ipaddress.ip_network("fd70::/16")


@pytest.fixture(autouse=True)
def fresh_modules():
    netifd._said.clear()
    ubusadapter._said.clear()
    ubusadapter._current = None
    yield
    ubusadapter._current = None


# ---- payload ------------------------------------------------------------------------------

def test_payload_is_what_netifd_parses():
    msg = netifd.payload(
        "wgmesh", "wgmesh",
        ["fd77:ead4:a77::1/128", "10.66.0.1/32", "fd66::1/64"],
        [("fd77::/16", None, None), ("192.168.1.0/24", "100", 20), ("fd12:3456:789a::/64", None, None)])
    check("notify_proto.json", msg)
    assert msg["action"] == 0 and msg["interface"] == "wgmesh" and msg["ifname"] == "wgmesh"
    assert msg["link-up"] is True and msg["keep"] is False
    # netifd's address/route policies want masks as STRINGS and metric as an int
    assert msg["ipaddr"] == [{"ipaddr": "10.66.0.1", "mask": "32"}]
    assert msg["ip6addr"] == [{"ipaddr": "fd66::1", "mask": "64"}, {"ipaddr": "fd77:ead4:a77::1", "mask": "128"}]
    assert msg["routes"] == [{"target": "192.168.1.0", "netmask": "24", "metric": 20, "table": "100"}]
    assert msg["routes6"] == [{"target": "fd12:3456:789a::", "netmask": "64"}, {"target": "fd77::", "netmask": "16"}]


def test_empty_state_still_brings_the_link_up_with_empty_lists():
    msg = netifd.payload("wgmesh", "wg0", [], [])
    check("notify_proto.json", msg)
    assert (msg["ipaddr"], msg["ip6addr"], msg["routes"], msg["routes6"]) == ([], [], [], [])


def test_payload_is_deterministic():
    addrs = ["10.0.0.1/32", "fd77::1/128", "10.0.0.2/32"]
    routes = [("10.1.0.0/24", None, None), ("fd77::/16", None, None), ("10.2.0.0/24", None, 5)]
    one = netifd.payload("a", "a", addrs, routes)
    two = netifd.payload("a", "a", list(reversed(addrs)), list(reversed(routes)) + routes)
    assert json.dumps(one) == json.dumps(two)


def test_accepts_bare_networks_and_interface_objects():
    msg = netifd.payload("a", "a", [ipaddress.ip_interface("10.0.0.1/32")], ["10.9.0.0/16", ipaddress.ip_network("fd77::/16")])
    assert msg["routes"] == [{"target": "10.9.0.0", "netmask": "16"}]
    assert msg["routes6"] == [{"target": "fd77::", "netmask": "16"}]


def test_mesh_prefix_is_never_routed_into_the_tunnel():
    msg = netifd.payload("a", "a", [], [("fd70::/16", None, None), ("fd70:1::/32", None, None)])
    assert msg["routes6"] == []


def test_default_route_is_split_around_the_mesh_and_endpoints():
    endpoints = ["[fd70:ead4:a77:66b3:932:2981:281:c08]:51820", "198.51.100.7:51820"]
    msg = netifd.payload("a", "a", [], [("::/0", None, None), ("0.0.0.0/0", None, None)], exclude=endpoints)
    check("notify_proto.json", msg)
    v6 = [ipaddress.ip_network(f"{r['target']}/{r['netmask']}") for r in msg["routes6"]]
    v4 = [ipaddress.ip_network(f"{r['target']}/{r['netmask']}") for r in msg["routes"]]
    assert not any(n.overlaps(MESH) for n in v6)
    assert not any(ipaddress.ip_address("198.51.100.7") in n for n in v4)
    # everything else is still covered
    assert sum(n.num_addresses for n in v6) == 2**128 - MESH.num_addresses
    assert sum(n.num_addresses for n in v4) == 2**32 - 1
    assert len(v6) == 16 and len(v4) == 32


def test_address_whose_prefix_route_would_cover_the_mesh_becomes_a_host_address(logged):
    msg = netifd.payload("a", "a", ["fd70:1::5/64", "fd77::5/64"], [])
    netifd.payload("a", "a", ["fd70:1::5/64"], [])
    assert msg["ip6addr"] == [{"ipaddr": "fd70:1::5", "mask": "128"}, {"ipaddr": "fd77::5", "mask": "64"}]
    assert logged.times("fd70:1::5/64") == 1   # said once


def test_unparsable_endpoint_is_ignored_with_a_warning(logged):
    msg = netifd.payload("a", "a", [], [("10.0.0.0/8", None, None)], exclude=["not-an-ip"])
    assert msg["routes"] == [{"target": "10.0.0.0", "netmask": "8"}]
    assert "not-an-ip" in logged.text


nets4 = st.builds(lambda a, p: ipaddress.ip_network((a, p), strict=False),
                  st.integers(0, 2**32 - 1), st.integers(0, 32))
nets6 = st.builds(lambda a, p: ipaddress.ip_network((a, p), strict=False),
                  st.integers(0, 2**128 - 1) | st.integers(0xFD70 << 112, (0xFD71 << 112) - 1), st.integers(0, 128))
addr4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
addr6 = st.builds(ipaddress.IPv6Address, st.integers(0xFD70 << 112, (0xFD71 << 112) - 1))


@settings(max_examples=150, deadline=None)
@given(routes=st.lists(nets4 | nets6, max_size=4), endpoints=st.lists(addr4 | addr6, max_size=3),
       probes=st.lists(st.integers(0, 2**128 - 1), max_size=20))
def test_exclusion_property(routes, endpoints, probes):
    """No pushed route covers an endpoint or the mesh; every other address a route had is kept."""
    eps = [f"[{e}]:51820" if e.version == 6 else f"{e}:51820" for e in endpoints]
    msg = netifd.payload("a", "a", [], [(str(r), None, None) for r in routes], exclude=eps)
    pushed = [ipaddress.ip_network(f"{r['target']}/{r['netmask']}") for r in msg["routes"] + msg["routes6"]]
    for net in pushed:
        assert not (net.version == 6 and net.overlaps(MESH))
        assert not any(e in net for e in endpoints)
    for route in routes:
        samples = [route.network_address, route.broadcast_address]
        samples += [route[p % route.num_addresses] for p in probes]
        for ip in samples:
            excluded = (ip.version == 6 and ip in MESH) or ip in endpoints
            assert excluded or any(ip in n for n in pushed), (ip, route)


# ---- other messages -----------------------------------------------------------------------------

def test_error_and_block_restart_payloads():
    err = netifd.error_payload("wgmesh", "PORT_IN_USE", "option 'listen_port': cannot listen\non 51820")
    check("notify_proto.json", err)
    assert err == {"action": 3, "interface": "wgmesh",
                   "error": ["PORT_IN_USE", "option 'listen_port': cannot listen on 51820"]}
    block = netifd.block_restart_payload("wgmesh")
    check("notify_proto.json", block)
    assert block == {"action": 4, "interface": "wgmesh"}
    assert errors(load("notify_proto.json"), netifd.error_payload("wgmesh", "SOMETHING_ELSE"))


def test_firewall_service_data():
    msg = netifd.firewall_payload("wgmesh", 51873)
    check("service-set.json", msg)
    assert msg == {"name": "bmx7wg-wgmesh", "data": {"firewall": [
        {"type": "rule", "proto": "udp", "src": "*", "dest_port": 51873, "target": "accept"}]}}
    withdraw = netifd.firewall_payload("wgmesh", None)
    check("service-set.json", withdraw)
    assert withdraw == {"name": "bmx7wg-wgmesh", "data": {}}


# ---- the schema checker itself ---------------------------------------------------------------------

BROKEN = [
    {"action": 0, "interface": "a", "ifname": "a", "link-up": True, "keep": False,
     "ipaddr": [{"ipaddr": "10.0.0.1", "mask": 32}], "ip6addr": [], "routes": [], "routes6": []},   # int mask
    {"action": 0, "interface": "a", "ifname": "a", "link-up": True, "keep": False,
     "ipaddr": [], "ip6addr": [], "routes": [], "routes6": [], "private_key": "x"},                  # extra key
    {"action": 1, "interface": "a", "command": []},                                                  # empty command
    {"action": 3, "interface": "a", "error": ["INVALID_CONFIG", 5]},                                 # non-string detail
    {"action": 4, "interface": "name-longer-than-15"},
]


@pytest.mark.parametrize("msg", BROKEN)
def test_schema_rejects_broken_messages(msg):
    assert errors(load("notify_proto.json"), msg)


def test_own_validator_agrees_with_jsonschema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = load("notify_proto.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    good = [netifd.payload("a", "a", ["10.0.0.1/32"], [("fd77::/16", None, 3)]),
            netifd.error_payload("a", "NO_BMX7", "x"), netifd.block_restart_payload("a")]
    for msg in good + BROKEN:
        assert (not errors(schema, msg)) == jsonschema.Draft202012Validator(schema).is_valid(msg), msg
    for name in os.listdir(os.path.join(os.path.dirname(__file__), "..", "docs", "schema")):
        if name != "ubus-methods.json":
            jsonschema.Draft202012Validator.check_schema(load(name))


# ---- transports ------------------------------------------------------------------------------------

@pytest.fixture
def ubus_cli(tmp_path, monkeypatch):
    """A `ubus` on PATH that records its argv (one JSON line per call) and exits $RC."""
    log = tmp_path / "ubus.log"
    stub = tmp_path / "ubus"
    stub.write_text(f"""#!/usr/bin/env python3
import json, os, sys
with open({str(log)!r}, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
rc = int(os.environ.get("UBUS_STUB_RC", "0"))
if rc:
    print("Command failed: Permission denied", file=sys.stderr)
sys.exit(rc)
""")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return calls


def test_push_through_the_ubus_cli(ubus_cli):
    assert netifd.push("wgmesh", "wgmesh", ["10.66.0.1/32"], [("fd77::/16", None, None)])
    (argv,) = ubus_cli()
    assert argv[:5] == ["-t", "5", "call", "network.interface", "notify_proto"]
    sent = json.loads(argv[5])
    check("notify_proto.json", sent)
    assert sent == netifd.payload("wgmesh", "wgmesh", ["10.66.0.1/32"], [("fd77::/16", None, None)])


def test_failed_cli_call_returns_false_and_says_why(ubus_cli, monkeypatch, logged):
    monkeypatch.setenv("UBUS_STUB_RC", "6")
    assert not netifd.push("wgmesh", "wgmesh", [], [])
    assert "Permission denied" in logged.text


def test_report_failure_sends_error_then_block(ubus_cli):
    assert netifd.report_failure("wgmesh", "KEY_ERROR", "key file /etc/bmx7wg/wgmesh.key: permission denied")
    sent = [json.loads(argv[5]) for argv in ubus_cli()]
    assert [m["action"] for m in sent] == [3, 4]
    for m in sent:
        check("notify_proto.json", m)


def test_publish_and_withdraw_port(ubus_cli):
    assert netifd.publish_port("wgmesh", 51900)
    assert netifd.withdraw_port("wgmesh")
    calls = [(a[3], a[4], json.loads(a[5])) for a in ubus_cli()]
    assert calls == [("service", "set", netifd.firewall_payload("wgmesh", 51900)),
                     ("service", "set", {"name": "bmx7wg-wgmesh", "data": {}}),
                     ("service", "delete", {"name": "bmx7wg-wgmesh"})]


def test_without_ubus_nothing_is_sent_and_it_is_said_once(tmp_path, monkeypatch, logged):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not netifd.push("wgmesh", "wgmesh", [], [])
    assert not netifd.publish_port("wgmesh", 51820)
    assert logged.times("ubus not available") == 1


def test_push_uses_the_process_binding_when_connected(ubus_cli):
    bus = FakeBus()
    got = []
    bus.services["network.interface"] = lambda method, data: got.append((method, data))
    ubusadapter.connect(module=FakeUbusModule(bus))
    assert netifd.push("wgmesh", "wg0", ["10.66.0.1/32"], [])
    assert got == [("notify_proto", netifd.payload("wgmesh", "wg0", ["10.66.0.1/32"], []))]
    assert ubus_cli() == []                     # one connection per process: no CLI call


def test_binding_error_is_reported_not_raised(logged):
    bus = FakeBus()
    bus.services["network.interface"] = lambda method, data: 6       # UBUS_STATUS_PERMISSION_DENIED
    ubusadapter.connect(module=FakeUbusModule(bus))
    assert not netifd.push("wgmesh", "wg0", [], [])
    assert "notify_proto" in logged.text


def test_real_cli_argument_is_valid_json_for_blobmsg(ubus_cli):
    """The message goes through blobmsg_add_json_from_string: plain JSON object, no NaN/floats."""
    netifd.push("wgmesh", "wgmesh", ["10.66.0.1/32"], [("10.1.0.0/24", None, 7)])
    raw = ubus_cli()[0][5]
    assert raw.startswith("{") and "NaN" not in raw
    json.loads(raw, parse_float=lambda s: pytest.fail(f"float in message: {s}"))
