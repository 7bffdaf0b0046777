"""ubusadapter.py against a stand-in of python-ubus 0.1.3 (tests/fake_ubus.py) that enforces
the binding's rules: one connection per process, strict signatures, name clashes.

The replies come from the real api.py reading real state files; every reply is checked
against docs/schema/ubus-<method>.json, and none may contain a private key."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from bmx7wg import api, state, ubusadapter
from fake_ubus import (STATUS_INVALID_ARGUMENT, STATUS_NOT_FOUND, STATUS_OK, FakeBus, FakeUbusModule)
from schema_check import check, load


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def fresh():
    ubusadapter._said.clear()
    ubusadapter._current = None
    yield
    ubusadapter._current = None


def wg(*args, data=None) -> str:
    return subprocess.run(["wg", *args], input=data, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def keys():
    private = wg("genkey")
    return private, wg("pubkey", data=private)


@pytest.fixture
def helper_proc(tmp_path):
    """A running process that looks like `bmx7wg run IFACE` and logs the signals it gets."""
    log = tmp_path / "signals"
    code = ("import signal,sys,time\n"
            "f=sys.argv[1]\n"
            "h=lambda s,_: open(f,'a').write(signal.Signals(s).name+'\\n')\n"
            "signal.signal(signal.SIGHUP,h); signal.signal(signal.SIGUSR1,h)\n"
            "open(f+'.ready','w').close()\n"
            "while True: time.sleep(0.05)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(log), "bmx7wg", "run", "bwoub0"])
    end = time.monotonic() + 10
    while not (tmp_path / "signals.ready").exists():
        assert time.monotonic() < end
        time.sleep(0.02)
    yield proc, log
    proc.kill()
    proc.wait()


def write_state(rundir, iface: str, keys, pid: int | None, tmp_path) -> None:
    private, public = keys
    key_file = tmp_path / f"{iface}.key"
    key_file.write_text(private + "\n")
    key_file.chmod(0o600)
    node = "EAD40A7766B3093229810281" + "0C08" + "AB" * 14
    peer_pub = wg("pubkey", data=wg("genkey"))
    state.write(str(rundir), iface, {
        "interface": iface, "ifname": iface, "pid": pid, "updated": 1732550000.5,
        "public_key": public, "listen_port": 51873, "key_mode": "persist", "backend": "userspace",
        "node_id": node, "name": "nodeA", "addresses": ["fd77:ead4:a77::1/128"], "announce": ["10.1.0.0/24"],
        "bmx7": {"dir": "/var/run/bmx7", "running": True, "sms_name": "wgtun", "published": True},
        "owned": [peer_pub],
        # a forged / buggy state file: secrets where they must never come from
        "private_key": private, "key_file": str(key_file),
        "peers": [{
            "node_id": "56B3" * 14, "short_id": "56B356B3", "name": "nodeB", "public_key": peer_pub,
            "fingerprint": peer_pub[:8], "endpoint": "[fd70:56b3::1]:51820", "addresses": ["fd77:56b3::1/128"],
            "allowed_ips": ["fd77:56b3::1/128", "10.2.0.0/24"], "networks_accepted": ["10.2.0.0/24"],
            "networks_rejected": [{"network": "0.0.0.0/0", "reason": "default route not allowed"}],
            "state": "active", "reason": None, "latest_handshake": 1732549990, "rx": 1234, "tx": 5678,
            "private_key": private,
        }],
    })


def serve(bus: FakeBus, rundir, clock=None):
    return ubusadapter.serve(str(rundir), module=FakeUbusModule(bus), clock=clock or Clock())


def ask(bus: FakeBus, owner, method: str, data: dict):
    req = bus.request("bmx7wg", method, data)
    owner.poll(0)
    return req


# ---- registration ------------------------------------------------------------------------------

def test_registers_api_methods_with_their_signatures(tmp_path):
    bus = FakeBus()
    owner = serve(bus, tmp_path)
    assert owner.registered and owner.connected
    module = owner.module
    declared = module.objects("bmx7wg")["bmx7wg"]
    assert declared == {m: {a: module.BLOBMSG_TYPE_STRING for a in args} for m, args in api.METHODS.items()}
    # the recorded contract and what is registered are the same thing
    assert load("ubus-methods.json")["methods"] == api.METHODS


def test_status_peers_reload_rotate_key_replies_match_their_schemas(tmp_path, keys, helper_proc):
    proc, log = helper_proc
    write_state(tmp_path, "bwoub0", keys, proc.pid, tmp_path)
    bus = FakeBus()
    owner = serve(bus, tmp_path)
    replies = {}
    for method in ("status", "peers", "reload", "rotate_key"):
        req = ask(bus, owner, method, {"interface": "bwoub0"})
        assert req.status == STATUS_OK
        (replies[method],) = req.replies
        check(f"ubus-{method}.json", replies[method])
    assert replies["status"]["public_key"] == keys[1] and replies["status"]["running"] is True
    assert replies["peers"]["peers"][0]["state"] == "active"
    assert replies["reload"] == {"ok": True, "interface": "bwoub0"}
    end = time.monotonic() + 5
    while (not log.exists() or len(log.read_text().split()) < 2) and time.monotonic() < end:
        time.sleep(0.02)
    assert sorted(log.read_text().split()) == ["SIGHUP", "SIGUSR1"]   # both arrive; order is the kernel's
    # the private key was in the state file (twice) and next to it: it never leaves
    text = json.dumps(replies)
    assert keys[0] not in text and keys[0][:20] not in text


def test_no_reply_ever_contains_a_private_key(tmp_path, keys):
    """Every method, every argument form, errors included."""
    for i in range(2):
        write_state(tmp_path, f"bwoub{i}", keys, None, tmp_path)
    bus = FakeBus()
    owner = serve(bus, tmp_path)
    seen = []
    for method in api.METHODS:
        for iface in ("bwoub0", "bwoub1", "", "missing", "../x"):
            req = ask(bus, owner, method, {"interface": iface})
            assert req.status == STATUS_OK
            check(f"ubus-{method}.json", req.replies[0])
            seen.append(json.dumps(req.replies))
    assert len(seen) == 20
    assert not any(keys[0] in s for s in seen)
    # with two interfaces, "" lists both for status and refuses to guess for the others
    status_all = ask(bus, owner, "status", {"interface": ""}).replies[0]
    assert [s["interface"] for s in status_all["interfaces"]] == ["bwoub0", "bwoub1"]
    assert "several" in ask(bus, owner, "peers", {"interface": ""}).replies[0]["error"]


@pytest.mark.parametrize("data", [{}, {"interface": "bwoub0", "verbose": True}, {"interface": 5},
                                  {"iface": "bwoub0"}])
def test_signature_is_enforced_before_our_code_runs(tmp_path, keys, data):
    """python-ubus 0.1.3: undeclared keys, missing declared keys and wrong types are refused."""
    write_state(tmp_path, "bwoub0", keys, None, tmp_path)
    bus = FakeBus()
    owner = serve(bus, tmp_path)
    calls = []
    owner.wanted = (owner.wanted[0], owner.wanted[1], lambda m, a: calls.append(a) or {})
    owner.module.disconnect()
    owner.connect()
    assert owner._add()
    req = ask(bus, owner, "status", data)
    assert req.status == STATUS_INVALID_ARGUMENT and calls == []


def test_handler_failure_becomes_an_error_reply(tmp_path, logged):
    bus = FakeBus()
    bus_obj = ubusadapter.Ubus(FakeUbusModule(bus), clock=Clock())
    bus_obj.connect()

    def broken(method, args):
        raise KeyError("boom")
    assert bus_obj.register({"status": {"interface": "string"}}, broken)
    req = ask(bus, bus_obj, "status", {"interface": "x"})
    assert req.status == STATUS_OK and req.replies == [{"error": "internal error in 'status'"}]
    assert "KeyError" in logged.text


def test_unknown_type_name_is_a_programming_error():
    bus_obj = ubusadapter.Ubus(FakeUbusModule(FakeBus()), clock=Clock())
    bus_obj.connect()
    with pytest.raises(ValueError, match="unknown type 'str'"):
        bus_obj.register({"status": {"interface": "str"}}, lambda m, a: {})


# ---- several helpers, one object ----------------------------------------------------------------

def test_second_helper_retries_every_30s_and_takes_over(tmp_path, keys, logged):
    write_state(tmp_path, "bwoub0", keys, None, tmp_path)
    bus, clock = FakeBus(), Clock()
    first = ubusadapter.Ubus(FakeUbusModule(bus), clock=clock)
    second = ubusadapter.Ubus(FakeUbusModule(bus), clock=clock)
    handler = lambda m, a: api.handle(m, a, str(tmp_path))   # noqa: E731
    first.connect(), second.connect()
    assert first.register(api.METHODS, handler)
    assert not second.register(api.METHODS, handler)
    adds = []
    real_add = second.module.add
    second.module.add = lambda *a: (adds.append(clock.now), real_add(*a))[1]
    for _ in range(29):
        clock.now += 1
        second.poll(0)
    assert adds == []                               # no hammering ubusd
    first.module.disconnect()                       # the serving helper dies
    clock.now += 2
    second.poll(0)
    assert second.registered and len(adds) == 1
    req = ask(bus, second, "status", {"interface": "bwoub0"})
    assert req.status == STATUS_OK and req.replies[0]["interface"] == "bwoub0"


def test_object_lost_with_ubusd_restart_is_registered_again(tmp_path):
    bus, clock = FakeBus(), Clock()
    owner = serve(bus, tmp_path, clock)
    assert owner.registered
    bus.restart()
    assert bus.request("bmx7wg", "status", {"interface": ""}).status == STATUS_NOT_FOUND
    clock.now += ubusadapter.RETRY
    owner.poll(0)
    assert owner.registered and "bmx7wg" in bus.objects
    assert ask(bus, owner, "status", {"interface": ""}).status == STATUS_OK


# ---- absent binding / ubusd ------------------------------------------------------------------------

def test_without_the_binding_the_helper_runs_without_api_and_says_so_once(monkeypatch, tmp_path, logged):
    monkeypatch.setitem(sys.modules, "ubus", None)        # import ubus -> ImportError
    assert ubusadapter.serve(str(tmp_path)) is None
    assert ubusadapter.serve(str(tmp_path)) is None
    assert ubusadapter.current() is None
    assert logged.times("ubus binding not installed") == 1


def test_without_ubusd_it_logs_once_and_connects_later(tmp_path, logged):
    bus, clock = FakeBus(), Clock()
    bus.stop()
    owner = serve(bus, tmp_path, clock)
    assert owner is not None and not owner.connected and not owner.registered
    owner.poll(0)                                  # no exception, nothing to serve
    assert owner.send_event("bmx7wg.peer", {"x": 1}) is False
    clock.now += ubusadapter.RETRY
    owner.poll(0)                                  # still down: retried, not logged again
    bus.start()
    clock.now += ubusadapter.RETRY
    owner.poll(0)
    assert owner.connected and owner.registered
    said = [message for _, message in logged]
    assert len([m for m in said if "ubus not reachable" in m]) == 1
    assert "ubus connected" in said


def test_one_connection_per_process(tmp_path):
    bus = FakeBus()
    module = FakeUbusModule(bus)
    first = ubusadapter.connect(module=module)
    assert ubusadapter.connect(module=module) is first      # a second connect() would raise in the binding
    assert ubusadapter.serve(str(tmp_path), module=module) is first
    assert ubusadapter.current() is first
    first.close()
    assert ubusadapter.current() is None and not module.get_connected()


# ---- events -----------------------------------------------------------------------------------------

def test_peer_event_is_sent_and_matches_its_schema(tmp_path):
    bus = FakeBus()
    owner = serve(bus, tmp_path)
    event = {"interface": "bwoub0", "node_id": "EAD40A7766B3" + "0" * 44, "name": "nodeB", "action": "add"}
    assert owner.send_event("bmx7wg.peer", event)
    assert bus.events == [("bmx7wg.peer", event)]
    check("ubus-event-peer.json", event)


def test_loop_with_timeout_keeps_serving(tmp_path, keys):
    write_state(tmp_path, "bwoub0", keys, None, tmp_path)
    bus = FakeBus()
    owner = ubusadapter.serve(str(tmp_path), module=FakeUbusModule(bus))
    req = bus.request("bmx7wg", "peers", {"interface": "bwoub0"})
    started = time.monotonic()
    owner.loop(100)
    assert 0.09 <= time.monotonic() - started < 2
    assert req.status == STATUS_OK
