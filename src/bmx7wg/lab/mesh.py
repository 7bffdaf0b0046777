"""The lab: a virtual bmx7 mesh, one network namespace per router, our helper on each.

    lab = up(nodes=3, topology="line", prefix="bwl", workdir="/tmp/x")
    lab.exec("n1", ["ping", "-c1", lab.primary_ip("n3")])
    lab.restart_bmx7("n2"); lab.stop_helper("n1", signal.SIGKILL); ...
    lab.down()                          # or down(workdir) from another process

Per node `<workdir>/<node>/`: etc/config/network (UCI: `config interface 'wgmesh'`,
proto bmx7wg, bmx7_dir, key_file, ifname), etc/bmx7/ (bmx7 key + descSqn),
uci-save/, run/bmx7 (bmx7 runtimeDir), run/bmx7wg (helper rundir), bin/bmx7
(client shim, first on the node's PATH), log/. Namespaces are `<prefix><node>`,
links veth pairs `v<i>-<j>`; every node's primaryIp gets static routes along
shortest paths (emulator mode; the real bmx7 routes by itself). The lab's state
lives in `<workdir>/lab.json`, so `down`, `exec` and `status` work from any process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from .. import uci
from . import emulator, netns
from .netns import LabError

DEFAULT_PREFIX = "bmx7wg-"
IFACE = "wgmesh"
STATE_FILE = "lab.json"
TOPOLOGIES = ("line", "ring", "full")
NS_SYSCTLS = {
    "net.ipv6.conf.default.accept_dad": "0",   # link-locals usable at once, no tentative addresses
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.all.forwarding": "1",       # nodes route each other's primaryIp
    "net.ipv6.conf.default.forwarding": "1",
    "net.ipv6.conf.all.keep_addr_on_down": "1",   # a link taken down and up keeps primaryIp
    "net.ipv6.conf.default.keep_addr_on_down": "1",
}
SRC_ROOT = str(Path(__file__).resolve().parents[2])   # the dir holding the bmx7wg package
CLIENT_SOURCE = Path(__file__).with_name("bmx7_client.py")
WG_RUN_DIR = "/var/run/wireguard"


def default_workdir(prefix: str = DEFAULT_PREFIX) -> str:
    return f"/tmp/{prefix.rstrip('-')}-lab"


def edges_for(count: int, topology: str) -> list[tuple[int, int]]:
    if topology not in TOPOLOGIES:
        raise LabError(f"topology '{topology}': expected one of {', '.join(TOPOLOGIES)}")
    if count < 1:
        raise LabError(f"nodes '{count}': need at least 1")
    if topology == "full":
        return [(i, j) for i in range(1, count + 1) for j in range(i + 1, count + 1)]
    edges = [(i, i + 1) for i in range(1, count)]
    if topology == "ring" and count >= 3:
        edges.append((1, count))
    return edges


def next_hops(names: list[str], links: list[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """For every source, the first hop of a shortest path to every other node (ties: lowest index)."""
    order = {n: i for i, n in enumerate(names)}
    adj: dict[str, list[str]] = {n: [] for n in names}
    for a, b in links:
        adj[a].append(b)
        adj[b].append(a)
    for n in adj:
        adj[n].sort(key=order.__getitem__)
    table: dict[str, dict[str, str]] = {}
    for src in names:
        first: dict[str, str] = {}
        queue = deque()
        for nb in adj[src]:
            if nb not in first:
                first[nb] = nb
                queue.append(nb)
        while queue:
            cur = queue.popleft()
            for nb in adj[cur]:
                if nb != src and nb not in first:
                    first[nb] = first[cur]
                    queue.append(nb)
        table[src] = first
    return table


class Lab:
    """A running lab, described by <workdir>/lab.json."""

    def __init__(self, workdir: str, state: dict):
        self.workdir = os.path.abspath(workdir)
        self.state = state

    # -------------------------------------------------------------- state

    @classmethod
    def load(cls, workdir: str) -> "Lab":
        path = os.path.join(workdir, STATE_FILE)
        try:
            with open(path) as f:
                return cls(workdir, json.load(f))
        except FileNotFoundError:
            raise LabError(f"no lab in {workdir} ({STATE_FILE} missing)") from None
        except ValueError as exc:
            raise LabError(f"{path}: unreadable lab state ({exc})") from None

    def save(self) -> None:
        path = os.path.join(self.workdir, STATE_FILE)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _changing(self):
        """Reload, change, save: other processes may act on the same lab."""
        with open(os.path.join(self.workdir, "lab.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                fresh = Lab.load(self.workdir).state
                self.state.clear()
                self.state.update(fresh)
                yield
                self.save()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def prefix(self) -> str:
        return self.state["prefix"]

    @property
    def names(self) -> list[str]:
        return [n["name"] for n in self.state["nodes"]]

    def node(self, name: str) -> dict:
        for n in self.state["nodes"]:
            if n["name"] == name:
                return n
        raise LabError(f"node '{name}': not in this lab (nodes: {', '.join(self.names)})")

    def ns(self, name: str) -> str:
        return self.node(name)["ns"]

    def node_id(self, name: str) -> str | None:
        return self.node(name).get("node_id")

    def primary_ip(self, name: str) -> str | None:
        return self.node(name).get("primary_ip")

    def runtime_dir(self, name: str) -> str:
        return self.node(name)["runtime_dir"]

    def rundir(self, name: str) -> str:
        return self.node(name)["rundir"]

    def ifname(self, name: str) -> str:
        return self.node(name)["ifname"]

    def env(self, name: str) -> dict[str, str]:
        node = self.node(name)
        env = dict(os.environ)
        env["PATH"] = f"{node['bin']}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        env["PYTHONPATH"] = SRC_ROOT + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1"
        return env

    # -------------------------------------------------------------- running things in a node

    def exec(self, name: str, argv: list[str], timeout: float | None = 30, **kw):
        """Run argv in the node (its PATH has the bmx7 shim first); returns CompletedProcess (text)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.ns(name), *argv], env=self.env(name),
                              timeout=timeout, **kw)

    # -------------------------------------------------------------- bmx7 (emulator or real)

    def _bmx7_argv(self, node: dict) -> list[str]:
        real = self.state.get("bmx7")
        if real:
            # Option order matters to bmx7: runtimeDir, plugins, key, hostname, descSqnPath/syncSms/dev, debug.
            return [real, f"runtimeDir={node['runtime_dir']}", "plugin=bmx7_sms.so", "plugin=bmx7_json.so",
                    "nodeRsaKey=6", f"/keyPath={node['key_file']}", f"hostname={node['name']}",
                    f"descSqnPath={node['desc_sqn_path']}",
                    *[f"syncSms={s}" for s in self.state.get("sync_sms", [])],
                    *[f"dev={d}" for d in node["devs"]], "debug=0"]
        argv = [sys.executable, "-m", "bmx7wg.lab.emulator", "--runtime-dir", node["runtime_dir"],
                "--key-file", node["key_file"], "--desc-sqn-path", node["desc_sqn_path"],
                "--name", node["name"]]
        for dev in node["devs"]:
            argv += ["--dev", dev]
        if self.state.get("sync_sms"):
            argv += ["--sync-sms", *self.state["sync_sms"]]
        options = {**self.state.get("emulator", {}), **node.get("emulator", {})}
        for key, value in sorted(options.items()):
            argv += [f"--{key.replace('_', '-')}", str(value)]
        return argv

    def set_emulator_option(self, name: str, option: str, value) -> None:
        """Per-node emulator flag (e.g. "ref_sms", 0); None removes it. Applies at the next start."""
        with self._changing():
            opts = self.node(name).setdefault("emulator", {})
            if value is None:
                opts.pop(option, None)
            else:
                opts[option] = value

    def _bmx7_marker(self, node: dict) -> str:
        return f"runtimeDir={node['runtime_dir']}" if self.state.get("bmx7") else node["runtime_dir"]

    def start_bmx7(self, name: str, wait: float = 10.0) -> int:
        node = self.node(name)
        if netns.alive(node.get("bmx7_pid")) and self._bmx7_marker(node) in netns.cmdline(node["bmx7_pid"]):
            return node["bmx7_pid"]
        env = self.env(name)
        if self.state.get("bmx7"):
            env["BMX7_LIB_PATH"] = self.state["bmx7_lib"]
        pid = netns.spawn(node["ns"], self._bmx7_argv(node), env, os.path.join(node["dir"], "log", "bmx7.log"),
                          cwd=node["dir"])
        with self._changing():
            self.node(name)["bmx7_pid"] = pid
        self._wait_control(name, pid, wait)
        return pid

    def _wait_control(self, name: str, pid: int, wait: float) -> None:
        """Until the control socket answers. The emulator answers an empty command list only
        from its main loop, i.e. once its own description and files are in place."""
        path = os.path.join(self.runtime_dir(name), "sock")
        real = bool(self.state.get("bmx7"))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not netns.alive(pid):
                raise LabError(f"{name}: bmx7 exited at start (see {self.node(name)['dir']}/log/bmx7.log)")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.settimeout(2.0)
                    s.connect(path)
                    if real:
                        return
                    s.sendall(b"[]")
                    s.shutdown(socket.SHUT_WR)
                    if s.recv(4096):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise LabError(f"{name}: bmx7 control socket {path} not answering after {wait:.0f}s")

    def stop_bmx7(self, name: str, sig: int = signal.SIGTERM) -> bool:
        node = self.node(name)
        return netns.stop(node.get("bmx7_pid"), self._bmx7_marker(node), sig)

    def kill_bmx7(self, name: str) -> bool:
        """SIGKILL: pid, sock and json/* stay behind, rcvdSms keeps its (stale) files."""
        return self.stop_bmx7(name, signal.SIGKILL)

    def restart_bmx7(self, name: str) -> int:
        """SIGTERM and start again: rcvdSms is wiped and refilled later, runtime syncSms lost."""
        self.stop_bmx7(name)
        return self.start_bmx7(name)

    # -------------------------------------------------------------- our helper

    def helper_runnable(self) -> bool:
        return (Path(SRC_ROOT) / "bmx7wg" / "__main__.py").exists()

    def _helper_argv(self, node: dict) -> list[str]:
        return [sys.executable, "-m", "bmx7wg", "--confdir", node["confdir"], "--savedir", node["savedir"],
                "--rundir", node["rundir"], "run", IFACE]

    def start_helper(self, name: str, env: dict | None = None) -> int:
        """Start our helper in the node; `env` adds variables (e.g. BMX7WG_CLOCK_OFFSET)."""
        node = self.node(name)
        if netns.alive(node.get("helper_pid")) and node["rundir"] in netns.cmdline(node["helper_pid"]):
            return node["helper_pid"]
        if not self.helper_runnable():
            raise LabError("helper: `python3 -m bmx7wg` is not runnable yet (no bmx7wg/__main__.py)")
        pid = netns.spawn(node["ns"], self._helper_argv(node), {**self.env(name), **(env or {})},
                          os.path.join(node["dir"], "log", "helper.log"), cwd=node["dir"])
        with self._changing():
            self.node(name)["helper_pid"] = pid
        return pid

    def stop_helper(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
        node = self.node(name)
        return netns.stop(node.get("helper_pid"), node["rundir"], sig, timeout)

    def delete_link(self, name: str, timeout: float = 10.0) -> None:
        """Remove the node's WireGuard link the way the netifd proto script's teardown does
        (a wireguard-go link goes when its socket does), and wait until it is gone."""
        ifname = self.ifname(name)
        self.exec(name, ["sh", "-c", f"ip link del dev {ifname} || rm -f /var/run/wireguard/{ifname}.sock"])
        deadline = time.monotonic() + timeout
        while self.exec(name, ["ip", "link", "show", "dev", ifname]).returncode == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: link {ifname} still there {timeout:.0f} s after deleting it")
            time.sleep(0.1)

    def reload_helper(self, name: str) -> bool:
        node = self.node(name)
        return netns.stop(node.get("helper_pid"), node["rundir"], signal.SIGHUP, timeout=0)

    def helper_state(self, name: str) -> dict | None:
        path = os.path.join(self.rundir(name), f"{IFACE}.json")
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    # -------------------------------------------------------------- configuration

    def _edit_network(self, name: str, what: str, change) -> None:
        """Apply `change(store)` to the node's network config and commit, through our UCI layer."""
        from bmx7wg.uciadapter import UciError, open_uci
        store = open_uci(self.node(name)["confdir"], self.node(name)["savedir"])
        try:
            change(store)
            store.commit("network")
        except UciError as exc:
            raise LabError(f"{name}: {what}: {exc}") from None

    def set_option(self, name: str, option: str, value) -> None:
        """Set (None: delete) an option of the node's `config interface 'wgmesh'` and commit it."""
        def change(store):
            if value is None:
                store.delete("network", IFACE, option)
            else:
                store.set("network", IFACE, option, list(value) if isinstance(value, tuple) else value)
        self._edit_network(name, f"option '{option}'", change)

    def add_section(self, name: str, section: str, stype: str, options: dict) -> None:
        """Create (or replace) `config <stype> '<section>'` in the node's network config and
        commit it, e.g. a policy rule: add_section("n1", "defroute", "bmx7wg_out", {...}).
        A running helper applies it on reload_helper()."""
        def change(store):
            store.delete("network", section)
            store.set("network", section, None, stype)
            for option, value in options.items():
                store.set("network", section, option, list(value) if isinstance(value, tuple) else value)
        self._edit_network(name, f"section '{section}'", change)

    def set_link_quality(self, name: str, neighbour: str, percent: int) -> None:
        """Quality (1..100 %) of `name`'s end of its link to `neighbour` (emulator only): scales
        the path metric of every originator `name` hears over that link, now and after restarts."""
        if self.state.get("bmx7"):
            raise LabError("link quality: only the emulator has this knob (use real bmx7's own options)")
        edge = next((e for e in self.state["edges"] if {e[0], e[1]} == {name, neighbour}), None)
        if edge is None:
            raise LabError(f"no link between '{name}' and '{neighbour}'")
        dev = edge[2] if edge[0] == name else edge[3]
        with self._changing():
            opts = self.node(name).setdefault("emulator", {})
            quality = emulator.parse_link_quality(opts.get("link_quality", ""))
            quality[dev] = percent
            opts["link_quality"] = ",".join(f"{d}={q}" for d, q in sorted(quality.items()))
        r = self.exec(name, ["bmx7", "-c", f"linkQuality={dev}={percent}"])
        if r.returncode != 0:
            raise LabError(f"{name}: linkQuality={dev}={percent}: {(r.stderr or r.stdout).strip()}")

    # -------------------------------------------------------------- topology

    def _install_routes(self) -> None:
        """Static routes to every node's primaryIp along shortest paths (emulator mode)."""
        if self.state.get("bmx7"):
            return
        nodes = {n["name"]: n for n in self.state["nodes"]}
        edges = [e for e in self.state["edges"] if e[0] in nodes and e[1] in nodes]
        dev_to: dict[tuple[str, str], str] = {}
        for a, b, dev_a, dev_b in edges:
            dev_to[(a, b)], dev_to[(b, a)] = dev_a, dev_b
        hops = next_hops(list(nodes), [(e[0], e[1]) for e in edges])
        lls: dict[tuple[str, str], str] = {}
        for src, table in hops.items():
            cmds = ["route flush proto static"]
            for dst, nh in sorted(table.items()):
                if (nh, src) not in lls:
                    lls[(nh, src)] = netns.link_local(nodes[nh]["ns"], dev_to[(nh, src)])
                cmds.append(f"route replace {nodes[dst]['primary_ip']}/128 via {lls[(nh, src)]} "
                            f"dev {dev_to[(src, nh)]} proto static")
            netns.run(["ip", "-6", "-n", nodes[src]["ns"], "-batch", "-"], input="\n".join(cmds) + "\n")

    def set_link(self, a: str, b: str, up: bool) -> None:
        """Take the link between two nodes down (radio silence) or back up (routes restored)."""
        edge = next((e for e in self.state["edges"] if {e[0], e[1]} == {a, b}), None)
        if edge is None:
            raise LabError(f"no link between '{a}' and '{b}'")
        for node, dev in ((edge[0], edge[2]), (edge[1], edge[3])):
            netns.run(["ip", "-n", self.ns(node), "link", "set", dev, "up" if up else "down"])
        if up:
            self._install_routes()       # the kernel dropped the routes through the downed devices

    def remove_node(self, name: str) -> None:
        """Take a router out of the mesh: its processes end, its namespace and links vanish."""
        node = self.node(name)
        self._teardown_node(node)
        with self._changing():
            self.state["nodes"] = [n for n in self.state["nodes"] if n["name"] != name]
            self.state["edges"] = [e for e in self.state["edges"] if name not in (e[0], e[1])]
        self._install_routes()

    def _teardown_node(self, node: dict) -> None:
        netns.stop(node.get("helper_pid"), node["rundir"], signal.SIGTERM, timeout=5)
        netns.stop(node.get("bmx7_pid"), self._bmx7_marker(node), signal.SIGTERM, timeout=3)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in netns.ns_pids(node["ns"]):   # wireguard-go and whatever ran inside the node
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            for pid in netns.ns_pids(node["ns"]):
                netns.wait_gone(pid, 2.0)
        sock = os.path.join(WG_RUN_DIR, f"{node['ifname']}.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        netns.ns_del(node["ns"])

    # -------------------------------------------------------------- status

    def status(self) -> dict:
        """{"nodes": [{"name", "node_id", "peers": [{"node_id", "name", "state",
        "latest_handshake", "rx", "tx"}]}]} from each node's helper state file."""
        out = []
        for node in self.state["nodes"]:
            st = self.helper_state(node["name"]) or {}
            peers = [{"node_id": p.get("node_id"), "name": p.get("name"), "state": p.get("state"),
                      "latest_handshake": p.get("latest_handshake"), "rx": p.get("rx", 0), "tx": p.get("tx", 0)}
                     for p in st.get("peers", [])]
            out.append({"name": node["name"], "node_id": node.get("node_id") or st.get("node_id"), "peers": peers})
        return {"nodes": out}

    # -------------------------------------------------------------- teardown

    def down(self) -> None:
        """End everything the lab started, delete its namespaces and its workdir."""
        for node in self.state.get("nodes", []):
            self._teardown_node(node)
        if os.path.exists(os.path.join(self.workdir, STATE_FILE)):
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------- building a lab

def up(nodes: int = 3, topology: str = "line", prefix: str = DEFAULT_PREFIX, bmx7: str | None = None,
       workdir: str | None = None, helper: bool = True, emulator_options: dict | None = None,
       uci_options: dict | None = None, sync_sms: list[str] | tuple = (), bmx7_lib: str | None = None,
       node_options: dict[str, dict] | None = None) -> Lab:
    """Build and start a lab. emulator_options: emulator flags without dashes for every node,
    e.g. {"hop_delay": 0.05, "purge_timeout": 5}; node_options: the same per node name
    ({"n1": {"ref_sms": 0}}); uci_options: extra options for every node's
    `config interface 'wgmesh'`; sync_sms: names registered on bmx7's command line."""
    workdir = os.path.abspath(workdir or default_workdir(prefix))
    edges = edges_for(nodes, topology)
    names = [f"n{i}" for i in range(1, nodes + 1)]
    for n in names:
        if len(f"{prefix}{n}") > 15 or len(f"wg-{prefix}{n}") > 15:
            raise LabError(f"prefix '{prefix}': too long, namespace/WireGuard names must stay within 15 chars")
    for s in sync_sms:
        if not emulator.valid_sms_name(s):
            raise LabError(f"sync_sms: invalid sms name '{s}'")
    if os.path.exists(os.path.join(workdir, STATE_FILE)):
        raise LabError(f"a lab is already up in {workdir}: run down first")
    for n in names:
        if netns.ns_exists(f"{prefix}{n}"):
            raise LabError(f"namespace {prefix}{n} exists already: another lab with prefix '{prefix}' is up")
    if bmx7 and not os.access(bmx7, os.X_OK):
        raise LabError(f"bmx7 '{bmx7}': not an executable file")
    os.makedirs(workdir, exist_ok=True)
    state = {
        "version": 1, "prefix": prefix, "workdir": workdir, "topology": topology, "created": time.time(),
        "bmx7": os.path.abspath(bmx7) if bmx7 else None,
        "bmx7_lib": bmx7_lib or os.environ.get("BMX7_LIB_PATH")
        or (str(Path(bmx7).resolve().parent.parent / "lib") if bmx7 else None),
        "emulator": dict(emulator_options or {}), "sync_sms": list(sync_sms),
        "nodes": [], "edges": [[f"n{a}", f"n{b}", f"v{a}-{b}", f"v{b}-{a}"] for a, b in edges],
    }
    for i, name in enumerate(names, 1):
        d = os.path.join(workdir, name)
        state["nodes"].append({
            "name": name, "index": i, "ns": f"{prefix}{name}", "dir": d,
            "confdir": os.path.join(d, "etc", "config"), "savedir": os.path.join(d, "uci-save"),
            "runtime_dir": os.path.join(d, "run", "bmx7"), "rundir": os.path.join(d, "run", "bmx7wg"),
            "bin": os.path.join(d, "bin"),
            "key_file": os.path.join(d, "etc", "bmx7", "rsa.der" if bmx7 else "node.key"),
            "desc_sqn_path": os.path.join(d, "etc", "bmx7", "descSqn"),
            "ifname": f"wg-{prefix}{name}",
            "devs": [e[2] if e[0] == name else e[3] for e in state["edges"] if name in (e[0], e[1])],
            "node_id": None, "primary_ip": None, "bmx7_pid": None, "helper_pid": None,
            "emulator": dict((node_options or {}).get(name, {})),
        })
    lab = Lab(workdir, state)
    lab.save()
    try:
        _build(lab, uci_options or {}, helper)
    except BaseException:
        lab.down()
        raise
    return lab


def _build(lab: Lab, uci_options: dict, helper: bool) -> None:
    state = lab.state
    for node in state["nodes"]:
        netns.ns_add(node["ns"], NS_SYSCTLS)
    for a, b, dev_a, dev_b in state["edges"]:
        netns.veth(lab.ns(a), dev_a, lab.ns(b), dev_b)
    for node in state["nodes"]:
        _prepare_node(lab, node, uci_options)
    lab.save()
    lab._install_routes()
    for name in lab.names:
        lab.start_bmx7(name)
    if not state["bmx7"]:
        return _start_helpers(lab, helper)
    for name in lab.names:                   # real bmx7: learn the ids it derived from its keys
        _learn_real_identity(lab, name)
    _start_helpers(lab, helper)


def _start_helpers(lab: Lab, helper: bool) -> None:
    if helper:
        for name in lab.names:
            lab.start_helper(name)


def _prepare_node(lab: Lab, node: dict, uci_options: dict) -> None:
    for key in ("confdir", "savedir", "runtime_dir", "rundir", "bin"):
        os.makedirs(node[key], exist_ok=True)
    os.makedirs(os.path.join(node["dir"], "etc", "bmx7wg"), exist_ok=True)
    os.makedirs(os.path.dirname(node["key_file"]), mode=0o700, exist_ok=True)
    if not lab.state["bmx7"]:
        node["node_id"], node["primary_ip"] = emulator.identity(node["key_file"])
    options = {"proto": "bmx7wg", "ifname": node["ifname"], "bmx7_dir": node["runtime_dir"],
               "key_file": os.path.join(node["dir"], "etc", "bmx7wg", f"{IFACE}.key")}
    options.update(uci_options)
    pkg = uci.parse(b"", "network")          # written the way `uci commit` writes it
    pkg.set(IFACE, None, "interface")
    for opt, value in options.items():
        if isinstance(value, (list, tuple)):
            for item in value:
                pkg.add_list(IFACE, opt, str(item))
        elif value is not None:
            pkg.set(IFACE, opt, str(value))
    with open(os.path.join(node["confdir"], "network"), "w") as f:
        f.write(uci.commit_text(pkg))
    shim = os.path.join(node["bin"], "bmx7")
    if lab.state["bmx7"]:
        if os.path.lexists(shim):
            os.unlink(shim)
        os.symlink(lab.state["bmx7"], shim)
        return
    source = CLIENT_SOURCE.read_text().replace(
        'DEFAULT_RUNTIME_DIR = "/var/run/bmx7"', f"DEFAULT_RUNTIME_DIR = {node['runtime_dir']!r}")
    with open(shim, "w") as f:
        f.write(f"#!{sys.executable} -S\n{source}")
    os.chmod(shim, 0o755)


def _learn_real_identity(lab: Lab, name: str, wait: float = 15.0) -> None:
    path = os.path.join(lab.runtime_dir(name), "json", "status")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                st = json.load(f)["status"]
            with lab._changing():
                lab.node(name)["node_id"], lab.node(name)["primary_ip"] = st["nodeId"], st["primaryIp"]
            return
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)


def load(workdir: str | None = None, prefix: str = DEFAULT_PREFIX) -> Lab:
    return Lab.load(os.path.abspath(workdir or default_workdir(prefix)))


def down(workdir: str | None = None, prefix: str = DEFAULT_PREFIX) -> None:
    load(workdir, prefix).down()
