"""The real files/lib/netifd/proto/bmx7wg.sh under a stand-in of netifd's shell API.

Each run happens in a private mount namespace where a read-only overlay puts the stand-in
/lib/functions.sh, /lib/netifd/netifd-proto.sh, the script itself and a test /usr/bin/bmx7wg
in place, so the script runs exactly as netifd runs it (`cd /lib/netifd/proto;
./bmx7wg.sh bmx7wg setup IFACE DATA IFNAME`), under bash and under busybox ash (OpenWrt's
/bin/sh). `/usr/bin/bmx7wg check-config` is the real CLI; `run` is tests/netifd_standin/
fake_helper.py, which talks to netifd through the real bmx7wg.netifd. Every notify_proto
message (from the script and from the helper), every other `ubus call` and every system
command is recorded and checked against docs/schema.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schema_check import check

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "files" / "lib" / "netifd" / "proto" / "bmx7wg.sh"
STANDIN = Path(__file__).resolve().parent / "netifd_standin"
BUSYBOX = shutil.which("busybox")
APPLETS = ["sh", "grep", "sed", "cat", "rm", "mkdir", "sleep", "printf", "tail", "head", "tr", "env", "echo"]
DECLARED_TYPES = {1: "array", 3: "string", 5: "int", 7: "boolean"}

SHELLS = {"bash": "/bin/bash", "ash": f"{BUSYBOX} sh"}
_DUMPS: dict[str, dict] = {}


def shells():
    out = [pytest.param("bash", id="bash")]
    out.append(pytest.param("ash", id="busybox-ash",
                            marks=pytest.mark.skipif(BUSYBOX is None, reason="busybox not installed")))
    return out


def uci_text(iface: str, options: dict) -> str:
    lines = ["", f"config interface '{iface}'", "\toption proto 'bmx7wg'"]
    for key, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            kind = "list" if isinstance(value, list) else "option"
            lines.append(f"\t{kind} {key} '{item}'")
    return "\n".join(lines) + "\n"


def netifd_data(options: dict, declared: dict) -> str:
    """What netifd passes as DATA: declared options only, typed like its uci_to_blob()
    (a value that does not parse as the declared int/bool is dropped)."""
    out = {}
    for key, value in options.items():
        kind = declared.get(key)
        if kind is None:
            continue
        if kind == "array":
            out[key] = value if isinstance(value, list) else str(value).split()
        elif kind == "int":
            try:
                out[key] = int(str(value), 0)
            except ValueError:
                continue
        elif kind == "boolean":
            if str(value) in ("1", "true"):
                out[key] = True
            elif str(value) in ("0", "false"):
                out[key] = False
        else:
            out[key] = str(value)
    return json.dumps(out)


class Netifd:
    """One router: stand-in netifd + stubs + UCI dir, driving the real proto script."""

    def __init__(self, tmp: Path, shell: str, *, bmx7=True, wireguard_go=False, kernel_wg=True):
        tmp.mkdir(parents=True)
        self.tmp = tmp
        self.shell = SHELLS[shell]
        self.log = tmp / "log.jsonl"
        self.state = tmp / "state"
        self.conf = tmp / "conf"
        for d in (self.state, self.conf, tmp / "save", tmp / "run"):
            d.mkdir()
        self.log.touch()
        self._layout()
        self._stubs(bmx7=bmx7, wireguard_go=wireguard_go)
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "STANDIN_PATH": f"{tmp}/bin:{tmp}/sys",
            "STANDIN_PYTHON": sys.executable,
            "STANDIN_PY": str(STANDIN / "standin.py"),
            "STANDIN_LOG": str(self.log),
            "STANDIN_STATE": str(self.state),
            "STANDIN_SHELL": self.shell,
            "BMX7WG_CONFDIR": str(self.conf),
            "BMX7WG_SAVEDIR": str(tmp / "save"),
            "BMX7WG_RUNDIR": str(tmp / "run"),
        }
        if not kernel_wg:
            self.env["STANDIN_NO_KERNEL_WG"] = "1"

    def _layout(self):
        lib = self.tmp / "lower_lib"
        (lib / "netifd" / "proto").mkdir(parents=True)
        shutil.copy(STANDIN / "functions.sh", lib / "functions.sh")
        shutil.copy(STANDIN / "netifd-proto.sh", lib / "netifd" / "netifd-proto.sh")
        shutil.copy2(SCRIPT, lib / "netifd" / "proto" / "bmx7wg.sh")
        usr_bin = self.tmp / "lower_bin"
        usr_bin.mkdir()
        wrapper = usr_bin / "bmx7wg"
        wrapper.write_text(
            "#!/bin/sh\n# test /usr/bin/bmx7wg: the real CLI, except `run` (the fake helper)\n"
            f"export PYTHONPATH='{ROOT / 'src'}'\n"
            f'case "$1" in run) exec \'{sys.executable}\' \'{STANDIN / "fake_helper.py"}\' "$@";; esac\n'
            f"exec '{sys.executable}' -m bmx7wg \"$@\"\n")
        wrapper.chmod(0o755)

    def _stubs(self, bmx7: bool, wireguard_go: bool):
        bin_dir, sys_dir = self.tmp / "bin", self.tmp / "sys"
        bin_dir.mkdir()
        sys_dir.mkdir()
        names = ["ip", "wg", "ubus"] + (["bmx7"] if bmx7 else []) + (["wireguard-go"] if wireguard_go else [])
        for name in names:
            sub = "ubus" if name == "ubus" else f"cmd {name}"
            stub = bin_dir / name
            stub.write_text(f'#!/bin/sh\nexec "$STANDIN_PYTHON" "$STANDIN_PY" {sub} "$@"\n')
            stub.chmod(0o755)
        for applet in APPLETS:
            if BUSYBOX:
                (sys_dir / applet).symlink_to(BUSYBOX)
            elif shutil.which(applet):
                (sys_dir / applet).symlink_to(shutil.which(applet))
        (sys_dir / "python3").symlink_to(sys.executable)

    def configure(self, iface: str, options: dict) -> None:
        (self.conf / "network").write_text(uci_text(iface, options))

    def run(self, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        """`./bmx7wg.sh ARGS` from /lib/netifd/proto, in a mount namespace that has our files."""
        inner = (
            f"mount -t overlay overlay -o lowerdir={self.tmp}/lower_lib:/usr/lib /usr/lib && "
            f"mount -t overlay overlay -o lowerdir={self.tmp}/lower_bin:/usr/bin /usr/bin && "
            f'cd /lib/netifd/proto && PATH="$STANDIN_PATH" exec {self.shell} ./bmx7wg.sh "$@"')
        env = dict(self.env, **(extra_env or {}))
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", inner,
                               "sh", *args], env=env, capture_output=True, text=True, timeout=60)

    # -- netifd's view -------------------------------------------------------------------
    def dump(self) -> dict:
        proc = self.run("", "dump")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def declared(self) -> dict:
        if self.shell not in _DUMPS:          # the declarations are tested on their own
            _DUMPS[self.shell] = {name: DECLARED_TYPES[typ] for name, typ in self.dump()["config"]}
        return _DUMPS[self.shell]

    def setup(self, iface: str, options: dict, **kw) -> subprocess.CompletedProcess:
        self.configure(iface, options)
        self.data = netifd_data(options, self.declared())
        self.iface = iface
        return self.run("bmx7wg", "setup", iface, self.data, "", **kw)

    def teardown(self) -> subprocess.CompletedProcess:
        return self.run("bmx7wg", "teardown", self.iface, self.data, "")

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def notifications(self, caller: str | None = None) -> list[dict]:
        return [r["data"] for r in self.records() if r["kind"] == "ubus" and r["object"] == "network.interface"
                and r["method"] == "notify_proto" and (caller is None or r["caller"] == caller)]

    def commands(self, name: str) -> list[list[str]]:
        return [r["argv"] for r in self.records() if r["kind"] == "cmd" and r["argv"][0] == name]

    def wait_for(self, predicate, timeout: float = 20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for rec in self.records():
                if predicate(rec):
                    return rec
            time.sleep(0.05)
        raise AssertionError(f"timed out; records: {self.records()}")

    def task_pid(self) -> int | None:
        try:
            return int((self.state / "task.pid").read_text())
        except (OSError, ValueError):
            return None

    def cleanup(self):
        pid = self.task_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 10
        while (self.state / "task.pid").exists() and time.monotonic() < end:
            time.sleep(0.05)


@pytest.fixture
def router(tmp_path):
    made = []

    def make(shell: str, **kw) -> Netifd:
        n = Netifd(tmp_path / f"r{len(made)}", shell, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        n.cleanup()


def validate_all(n: Netifd) -> None:
    for rec in n.records():
        if rec["kind"] != "ubus":
            continue
        if rec["object"] == "network.interface":
            check("notify_proto.json", rec["data"])
        elif rec["object"] == "service" and rec["method"] == "set":
            check("service-set.json", rec["data"])
        elif rec["object"] == "service" and rec["method"] == "delete":
            assert set(rec["data"]) == {"name"} and rec["data"]["name"].startswith("bmx7wg-")
        else:
            raise AssertionError(f"unexpected ubus call {rec}")


def options_config_py_reads() -> set[str]:
    """Every option name config.parse() reads with get("...")."""
    tree = ast.parse((ROOT / "src" / "bmx7wg" / "config.py").read_text())
    parse = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "parse")
    names = set()
    for node in ast.walk(parse):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get"
                and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return names - {"proto"}


def wg_key() -> str:
    return subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::", 0))
        return s.getsockname()[1]


# ---- dump -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shell", shells())
def test_dump_declares_every_option_the_helper_reads(router, shell):
    n = router(shell)
    dump = n.dump()
    declared = {name: DECLARED_TYPES[typ] for name, typ in dump["config"]}
    assert dump["name"] == "bmx7wg"
    assert set(declared) == options_config_py_reads()
    assert declared["listen_port"] == "int" and declared["addresses"] == "array"
    assert declared["auto_address"] == "boolean" and declared["private_key"] == "string"
    # a link of its own, always available, and a supervised helper (proto task)
    assert dump["no-device"] is True and dump["available"] is True
    assert dump["no-proto-task"] is False


# ---- setup -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shell", shells())
def test_setup_with_defaults_starts_helper_and_helper_reports(router, shell):
    n = router(shell)
    proc = n.setup("bwo0", {})
    assert proc.returncode == 0, proc.stderr
    n.wait_for(lambda r: r.get("event") == "ready")
    assert n.commands("ip") == [["ip", "link", "show", "dev", "bwo0"],
                                ["ip", "link", "add", "dev", "bwo0", "type", "wireguard"]]
    script = n.notifications("script")
    assert script == [{"action": 1, "interface": "bwo0",
                       "command": ["/usr/bin/bmx7wg", "run", "--netifd", "bwo0"]}]
    started = n.wait_for(lambda r: r.get("event") == "started")
    assert started["argv"] == ["run", "--netifd", "bwo0"]
    assert started["confdir"] == str(n.conf)      # the helper reads the same UCI as check-config
    update = n.notifications("helper")[0]
    assert update["action"] == 0 and update["ifname"] == "bwo0" and update["link-up"] is True
    assert {"ipaddr": "10.66.0.1", "mask": "32"} in update["ipaddr"]
    targets = {(r["target"], r["netmask"]) for r in update["routes6"]}
    assert ("fd77::", "16") in targets
    assert not any(r["target"].startswith("fd70:") for r in update["routes6"])   # the mesh stays out
    fw = [r["data"] for r in n.records() if r["kind"] == "ubus" and r["object"] == "service"]
    assert fw == [{"name": "bmx7wg-bwo0", "data": {"firewall": [
        {"type": "rule", "proto": "udp", "src": "*", "dest_port": 51999, "target": "accept"}]}}]
    validate_all(n)


@pytest.mark.parametrize("shell", shells())
def test_setup_with_every_option(router, shell, tmp_path):
    n = router(shell)
    key = wg_key()
    port = free_udp_port()            # free now; nothing binds it during the test
    options = {
        "ifname": "bwo1link", "private_key": key, "key_mode": "persist",
        "key_file": str(tmp_path / "bwo1.key"), "listen_port": str(port), "port_range": "52000-52100",
        "addresses": ["fd66::1/128", "10.66.0.1/32"], "auto_address": "1", "auto_prefix": "fd78::/16",
        "announce": ["192.168.77.0/24"], "mtu": "1400", "fwmark": "0x51", "bmx7_dir": "/var/run/bmx7",
        "sms_name": "wgtun", "hold_down": "90", "keepalive": "20", "allow_node": ["nodeB"],
    }
    assert set(options) == options_config_py_reads()      # really every option
    proc = n.setup("bwo1", options)
    assert proc.returncode == 0, proc.stderr
    n.wait_for(lambda r: r.get("event") == "ready")
    data = json.loads(n.data)
    assert data["listen_port"] == port and data["auto_address"] is True and data["announce"] == ["192.168.77.0/24"]
    assert ["ip", "link", "add", "dev", "bwo1link", "type", "wireguard"] in n.commands("ip")
    assert n.notifications("script") == [{"action": 1, "interface": "bwo1",
                                          "command": ["/usr/bin/bmx7wg", "run", "--netifd", "bwo1"]}]
    assert n.notifications("helper")[0]["ifname"] == "bwo1link"
    # the key from UCI never travels through netifd, ubus or a command line
    assert key not in n.log.read_text()
    validate_all(n)


BAD = [
    ({"listen_port": "abc"}, "option 'listen_port': invalid value 'abc' (not a number)"),
    ({"mtu": "100"}, "option 'mtu': invalid value '100' (must be 1280..9000)"),
    ({"auto_prefix": "fd70:1::/32"}, "option 'auto_prefix': invalid value 'fd70:1::/32' (overlaps bmx7's own fd70::/16)"),
    ({"ifname": "a-very-long-interface-name"}, "option 'ifname': invalid value"),
    ({"private_key": "bm90IGEga2V5"}, "option 'private_key': invalid value (not a base64 WireGuard key)"),
]


def bad_cases():
    """Every bad value under OpenWrt's ash; one under bash too (the message is check-config's)."""
    ash = BUSYBOX is not None
    cases = [pytest.param("ash" if ash else "bash", o, m, id=f"{next(iter(o))}-{'ash' if ash else 'bash'}")
             for o, m in BAD]
    if ash:
        cases.append(pytest.param("bash", *BAD[0], id="listen_port-bash"))
    return cases


@pytest.mark.parametrize("shell,options,message", bad_cases())
def test_bad_option_is_reported_and_no_helper_starts(router, shell, options, message):
    n = router(shell)
    proc = n.setup("bwo2", options)
    assert proc.returncode != 0
    notes = n.notifications("script")
    assert [m["action"] for m in notes] == [3, 4, 7]            # error, block restart, setup failed
    code, detail = notes[0]["error"]
    assert code == "INVALID_CONFIG" and detail.startswith(message), detail
    assert "\n" not in detail and "Traceback" not in proc.stderr
    assert not any(r.get("event") == "task_started" for r in n.records())
    assert not any(a[2] == "add" for a in n.commands("ip"))
    if "private_key" in options:
        assert options["private_key"] not in n.log.read_text()
    validate_all(n)


@pytest.mark.parametrize("shell", shells())
def test_missing_bmx7_is_reported(router, shell):
    n = router(shell, bmx7=False)
    n.setup("bwo3", {})
    notes = n.notifications("script")
    assert [m["action"] for m in notes] == [3, 4, 7]
    assert notes[0]["error"][0] == "NO_BMX7"
    assert not any(r.get("event") == "task_started" for r in n.records())
    validate_all(n)


@pytest.mark.parametrize("shell", shells())
def test_no_wireguard_at_all_is_reported(router, shell):
    n = router(shell, kernel_wg=False, wireguard_go=False)
    n.setup("bwo4", {})
    notes = n.notifications("script")
    assert [m["action"] for m in notes] == [3, 4, 7]
    assert notes[0]["error"][0] == "NO_WIREGUARD"
    validate_all(n)


@pytest.mark.parametrize("shell", shells())
def test_userspace_fallback_leaves_the_link_to_the_helper(router, shell):
    n = router(shell, kernel_wg=False, wireguard_go=True)
    proc = n.setup("bwo5", {})
    assert proc.returncode == 0, proc.stderr
    assert n.notifications("script")[0]["action"] == 1
    n.wait_for(lambda r: r.get("event") == "ready")


@pytest.mark.parametrize("shell", shells())
def test_fixed_port_in_use_is_reported(router, shell):
    n = router(shell)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        taken.bind(("::", 0))
        port = taken.getsockname()[1]
        n.setup("bwo6", {"listen_port": str(port)})
    notes = n.notifications("script")
    assert [m["action"] for m in notes] == [3, 4, 7]
    assert notes[0]["error"] == ["PORT_IN_USE", f"option 'listen_port': UDP port {port} is in use"]
    # the link it had just created is gone again
    assert n.commands("ip")[-1] == ["ip", "link", "del", "dev", "bwo6"]
    validate_all(n)


# ---- teardown and helper death ----------------------------------------------------------------

@pytest.mark.parametrize("shell", shells())
def test_teardown_stops_helper_closes_port_deletes_link(router, shell):
    n = router(shell)
    assert n.setup("bwo7", {}).returncode == 0
    n.wait_for(lambda r: r.get("event") == "ready")
    before = len(n.records())
    proc = n.teardown()
    assert proc.returncode == 0, proc.stderr
    n.wait_for(lambda r: r.get("event") == "task_exited")
    assert (n.state / "links").read_text() == ""                     # link deleted
    after = n.records()[before:]
    script_calls = [(r["object"], r["method"], r["data"]) for r in after
                    if r["kind"] == "ubus" and r["caller"] == "script"]
    assert script_calls == [
        ("network.interface", "notify_proto", {"action": 2, "interface": "bwo7"}),
        ("service", "set", {"name": "bmx7wg-bwo7", "data": {}}),
        ("service", "delete", {"name": "bmx7wg-bwo7"}),
    ]
    assert any(r.get("event") == "stopped" for r in after)            # helper shut down cleanly (SIGTERM)
    exited = next(r for r in after if r.get("event") == "task_exited")
    assert exited["returncode"] == 0
    assert not any(r.get("event") == "link_lost" for r in after)      # an ifdown, not a death
    validate_all(n)


@pytest.mark.parametrize("shell", shells())
def test_helper_death_brings_the_interface_down(router, shell):
    n = router(shell)
    assert n.setup("bwo8", {}).returncode == 0
    n.wait_for(lambda r: r.get("event") == "ready")
    os.kill(n.task_pid(), signal.SIGKILL)
    n.wait_for(lambda r: r.get("event") == "link_lost")
    end = time.monotonic() + 20
    while not (n.state / "task.done").exists() and time.monotonic() < end:
        time.sleep(0.05)
    recs = n.records()
    exited = next(r for r in recs if r.get("event") == "task_exited")
    assert exited["returncode"] == -signal.SIGKILL
    teardown = [r for r in recs if r["kind"] == "script" and r["action"] == "teardown"]
    assert len(teardown) == 1
    # the dead helper could not close its port: the script's teardown did
    assert ("service", "set", {"name": "bmx7wg-bwo8", "data": {}}) in [
        (r["object"], r["method"], r["data"]) for r in recs if r["kind"] == "ubus" and r["caller"] == "script"]
    assert (n.state / "links").read_text() == ""
    validate_all(n)


@pytest.mark.parametrize("shell", shells())
def test_helper_setup_failure_is_reported_by_the_helper(router, shell):
    n = router(shell)
    assert n.setup("bwo9", {}, extra_env={"STANDIN_HELPER_MODE": "fail"}).returncode == 0
    n.wait_for(lambda r: r.get("event") == "link_lost")
    helper = n.notifications("helper")
    assert helper == [
        {"action": 3, "interface": "bwo9", "error": ["PORT_IN_USE", "option 'listen_port': cannot listen on 51999"]},
        {"action": 4, "interface": "bwo9"},
    ]
    exited = next(r for r in n.records() if r.get("event") == "task_exited")
    assert exited["returncode"] == 2
    validate_all(n)
