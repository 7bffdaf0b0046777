"""An emulator of bmx7's sms + json file interface, one process per virtual node.

Run inside the node's network namespace:

    python3 -m bmx7wg.lab.emulator --runtime-dir DIR --key-file F --name NAME \
        [--dev DEV ...] [--sync-sms NAME ...] [--hop-delay S] [--purge-timeout S] [--ref-sms 0|2]
        [--link-quality DEV=PERCENT[,DEV=PERCENT...]]

It reproduces what ../shared/bmx7/README.md records about the real daemon, so a
helper reading these files takes the same code path as on a router:

- identity: nodeId = SHA-224 (hex, upper case) of a key file kept across restarts,
  primaryIp = fd70: + the first 28 hex digits, configured /16 on every mesh dev;
- `<runtimeDir>/sock` control socket (client: bmx7_client.py) and `<runtimeDir>/pid`;
- sendSms is polled; registered names whose file exists make up the description
  (refSms=0: more than 300 bytes is refused; refSms=2: up to REF_SMS_MAX);
- descriptions and OGMs travel as UDP over IPv6 link-local multicast on the real
  veths (port 6270), one configurable delay per hop, so a cut-off node really
  stops hearing the others;
- path metrics: 999M/sqrt(hops) as the line capture showed, scaled by the worst
  link quality (percent, per receiving device, default 100) along the path; OGMs
  carry it, so a quality set on one node changes the metric every node behind
  it derives. Settable at start (--link-quality) and at runtime
  (`bmx7 -c linkQuality=DEV=PERCENT`); routes follow the best metric;
- rcvdSms/<NODEID>:<name> on every node, the sender included; every new
  description deletes and rewrites all of the sender's files; a dead sender's
  files stay until the purge timeout; a (re)started node wipes its rcvdSms and
  refills it only after --refill-delay;
- json/status, json/originators/<NODEID>, json/links, json/interfaces,
  json/descriptions/<NODEID>, json/parameters, rewritten in place (not
  atomically) on changes and every --json-interval; a dead node behind a live
  neighbour keeps dev/metric/hops until the purge, only lastRef grows;
- SIGTERM clears rcvdSms, json/originators and json/descriptions but leaves
  `sock` and `pid` behind (as the real daemon did); SIGKILL leaves everything.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import ipaddress
import itertools
import json
import os
import random
import re
import secrets
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field

from . import bmx7fmt
from .bmx7_client import recv_all
from ..fsutil import unlink_quietly


def _unlink(path: str) -> None:
    unlink_quietly(path, (FileNotFoundError, IsADirectoryError))   # a listing may name a directory


SMS_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
INLINE_SMS_MAX = 300          # refSms=0: 301 bytes is refused
REF_SMS_MAX = 50_000          # refSms=2: 50 kB passed, 120 kB was refused (98 kB crashed bmx7)
DESC_MAX = 60_000             # all sms of one description must fit one UDP datagram
PORT = 6270
MCAST = "ff02::1"
MAGIC = b"BX7e"
NONE = bmx7fmt.NONE


def valid_sms_name(name: str) -> bool:
    return bool(SMS_NAME_RE.match(name)) and not name.startswith(".") and not name.endswith(".")


def parse_link_quality(text: str) -> dict[str, int]:
    """"DEV=PERCENT[,DEV=PERCENT...]" -> {dev: percent}; ValueError names the bad item."""
    out: dict[str, int] = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        dev, sep, value = item.rpartition("=")
        if not sep or not dev or not value.isdigit() or not 1 <= int(value) <= 100:
            raise ValueError(f"link quality '{item}': want DEV=PERCENT with PERCENT 1..100")
        out[dev] = int(value)
    return out


def path_metric(hops: int, quality: int = 100) -> int:
    """bits/s: the hop-count metric of the real capture, scaled by the path's link quality (%)."""
    if hops <= 0:
        return bmx7fmt.SELF_METRIC
    return bmx7fmt.metric_for_hops(hops) * quality // 100


# ---------------------------------------------------------------- identity

def load_or_create_key(path: str) -> bytes:
    """The node's secret (stands in for bmx7's RSA key): created once, 0600, kept."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data:
            return data
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = secrets.token_bytes(64)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data


def node_id_of(key: bytes) -> str:
    return hashlib.sha224(key).hexdigest().upper()


def primary_ip_of(node_id: str) -> str:
    digits = node_id[:28].lower()
    groups = [digits[i:i + 4] for i in range(0, 28, 4)]
    return ipaddress.IPv6Address("fd70:" + ":".join(groups)).compressed


def identity(key_file: str) -> tuple[str, str]:
    node_id = node_id_of(load_or_create_key(key_file))
    return node_id, primary_ip_of(node_id)


# ---------------------------------------------------------------- wire format

def pack(header: dict, blob: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack("!I", len(head)) + head + blob


def unpack(data: bytes) -> tuple[dict, bytes]:
    if len(data) < 8 or data[:4] != MAGIC:
        raise ValueError("not an emulator packet")
    (hlen,) = struct.unpack("!I", data[4:8])
    header = json.loads(data[8:8 + hlen])
    if not isinstance(header, dict):
        raise ValueError("bad header")
    return header, data[8 + hlen:]


@dataclass
class Desc:
    """One node's description: identity plus its sms files."""

    node_id: str
    name: str
    primary_ip: str
    dsqn: int
    boot: str
    sms: dict[str, bytes]

    def header(self, sender: str, sender_name: str, hops: int) -> dict:
        return {"t": "desc", "from": sender, "fname": sender_name, "id": self.node_id, "name": self.name,
                "ip": self.primary_ip, "dsqn": self.dsqn, "boot": self.boot, "hops": hops,
                "sms": [[n, len(d)] for n, d in self.sms.items()]}

    def packet(self, sender: str, sender_name: str, hops: int) -> bytes:
        return pack(self.header(sender, sender_name, hops), b"".join(self.sms.values()))

    @classmethod
    def from_packet(cls, h: dict, blob: bytes) -> "Desc":
        sms, pos = {}, 0
        for name, size in h["sms"]:
            sms[str(name)] = blob[pos:pos + int(size)]
            pos += int(size)
        if pos != len(blob):
            raise ValueError("sms sizes do not match the payload")
        return cls(str(h["id"]), str(h["name"]), str(h["ip"]), int(h["dsqn"]), str(h["boot"]), sms)

    @property
    def size(self) -> int:
        return sum(len(d) for d in self.sms.values())

    @property
    def dhash(self) -> str:
        return hashlib.sha224(self.packet("", "", 0)).hexdigest().upper()


@dataclass
class Link:
    node_id: str
    name: str
    dev: str
    ifindex: int
    ll: str
    last: float
    hello_sqn: int = 0


@dataclass
class Route:
    """What we know about reaching one originator."""

    key: tuple = (-1, -1)                  # (descSqn, ogmSqn) of the freshest OGM
    fwd_metric: int = -1                   # path metric we last forwarded `key` with
    last_fresh: float = 0.0                # when `key` last grew (lastRef, purge)
    via: dict = field(default_factory=dict)  # link -> (hops, time, quality it carried) of its last OGM
    best: tuple | None = None              # link (ifindex, ll) of the next hop, None = "---"
    hops: int = 0
    quality: int = 100                     # worst link quality (%) along the chosen path
    last_req: float = 0.0
    ogm_sqn: int = 0


class Emulator:
    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.rt = os.path.abspath(args.runtime_dir)
        self.send_dir = os.path.join(self.rt, "sms", "sendSms")
        self.rcvd_dir = os.path.join(self.rt, "sms", "rcvdSms")
        self.json_dir = os.path.join(self.rt, "json")
        self.node_id, self.primary_ip = identity(args.key_file)
        self.name = args.name
        self.boot = secrets.token_hex(8)
        self.sqn_path = args.desc_sqn_path or args.key_file + ".descSqn"
        self.dsqn = self._load_sqn()
        self.boot_sqn = self.dsqn
        self.osqn = 0
        self.cmdline_sms = list(dict.fromkeys(args.sync_sms or []))
        self.sync_sms = list(self.cmdline_sms)
        self.own_sms: dict[str, bytes] = {}
        self.send_sigs: dict[str, tuple] = {}
        self.refused: dict[str, tuple] = {}
        self.descs: dict[str, Desc] = {}
        self.desc_time: dict[str, float] = {}
        self.iids: dict[str, int] = {}
        self.pending: dict[str, int] = {}
        self.routes: dict[str, Route] = {}
        self.links: dict[tuple, Link] = {}
        self.devs: dict[str, int] = {}     # name -> ifindex
        self.link_quality: dict[str, int] = dict(args.link_quality)   # dev -> percent (absent: 100)
        self.gen: dict[str, int] = {}      # rewrite generation per sender
        self.timers: list = []
        self.seq = itertools.count()
        self.dirty: set = set()
        self.stopping = False
        self.started = time.monotonic()
        self.refill_at = self.started + args.refill_delay
        self.refilled = args.refill_delay <= 0
        self.last_own_ogm = self.started
        self.sel = selectors.DefaultSelector()

    # -------------------------------------------------------------- setup

    def log(self, msg: str) -> None:
        t = time.monotonic() - self.started
        print(f"[{t:8.3f}] {self.name} {msg}", file=sys.stderr, flush=True)

    def _load_sqn(self) -> int:
        try:
            with open(self.sqn_path) as f:
                return int(f.read().strip() or 0) + 1
        except (FileNotFoundError, ValueError):
            return 1

    def _save_sqn(self) -> None:
        tmp = f"{self.sqn_path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{self.dsqn}\n")
        os.replace(tmp, self.sqn_path)

    def setup(self) -> None:
        os.umask(0o022)
        for d in (self.send_dir, self.rcvd_dir, os.path.join(self.json_dir, "originators"),
                  os.path.join(self.json_dir, "descriptions"), os.path.join(self.json_dir, "netjson")):
            os.makedirs(d, exist_ok=True)
        # A starting bmx7 wipes what a previous run left and refills as descriptions arrive.
        self._wipe()
        _write_in_place(os.path.join(self.rt, "pid"), f"{os.getpid()}\n")
        self._resolve_devs()
        self._open_udp()
        self._open_control()
        rfd, wfd = socket.socketpair()
        rfd.setblocking(False)
        wfd.setblocking(False)
        signal.set_wakeup_fd(wfd.fileno())
        self._wake = (rfd, wfd)
        self.sel.register(rfd, selectors.EVENT_READ, lambda: rfd.recv(4096))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, lambda *_: None)
        self.log(f"nodeId={self.node_id} primaryIp={self.primary_ip} devs={list(self.devs)}")
        self._poll_send(force=True, publish_always=True)
        self._send_ogm()
        self.after(self.a.poll_interval, self._poll_timer)
        self.after(min(1.0, self.a.link_timeout / 4, self.a.purge_timeout / 4), self._check_timer)
        self.after(self.a.json_interval, self._json_timer)
        if not self.refilled:
            self.after(self.a.refill_delay, self._refill)
        self.dirty.update({"status", "links", "interfaces", "parameters"})

    def _wipe(self) -> None:
        for d in (self.rcvd_dir, os.path.join(self.json_dir, "originators"),
                  os.path.join(self.json_dir, "descriptions")):
            for entry in os.listdir(d):
                _unlink(os.path.join(d, entry))

    def _resolve_devs(self) -> None:
        for dev in self.a.dev:
            try:
                index = socket.if_nametoindex(dev)
            except OSError:
                self.devs.pop(dev, None)
                continue
            if self.devs.get(dev) != index:
                self.devs[dev] = index
                self.dirty.add("interfaces")
        if not self.a.no_addr:
            self._ensure_primary_ip()

    def _ensure_primary_ip(self) -> None:
        """bmx7 keeps its primaryIp as a /16 on every interface it runs on."""
        want = ipaddress.IPv6Address(self.primary_ip).packed.hex()
        have = {parts[5] for parts in (ln.split() for ln in _read("/proc/net/if_inet6").splitlines())
                if len(parts) == 6 and parts[0] == want}
        for dev in self.devs:
            if dev not in have:
                subprocess.run(["ip", "-6", "addr", "replace", f"{self.primary_ip}/16", "dev", dev, "nodad"],
                               check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _open_udp(self) -> None:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind(("::", self.a.port))
        s.setblocking(False)
        self.udp = s
        self.sel.register(s, selectors.EVENT_READ, self._on_udp)

    def _open_control(self) -> None:
        path = os.path.join(self.rt, "sock")
        _unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)
        s.setblocking(False)
        self.ctl = s
        self.sel.register(s, selectors.EVENT_READ, self._on_control)

    def _on_stop(self, *_):
        self.stopping = True

    # -------------------------------------------------------------- loop

    def after(self, delay: float, fn) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), fn))

    def run(self) -> int:
        self.setup()
        while not self.stopping:
            now = time.monotonic()
            timeout = 1.0
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - now))
            for key, _ in self.sel.select(timeout):
                key.data()
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now and not self.stopping:
                _, _, fn = heapq.heappop(self.timers)
                fn()
            self._flush_json()
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        """SIGTERM: what real bmx7 removed on a clean stop; sock and pid files stay."""
        self.log("stopping")
        self._wipe()
        self.ctl.close()
        self.udp.close()

    # -------------------------------------------------------------- sendSms

    def _poll_timer(self) -> None:
        self._poll_send()
        self.after(self.a.poll_interval, self._poll_timer)

    def _limit(self) -> int:
        return INLINE_SMS_MAX if self.a.ref_sms == 0 else REF_SMS_MAX

    def _poll_send(self, force: bool = False, publish_always: bool = False) -> None:
        sms: dict[str, bytes] = {}
        total = 0
        for name in sorted(self.sync_sms):
            path = os.path.join(self.send_dir, name)
            try:
                st = os.stat(path)
                # Like bmx7's inotify on the directory: a symlink's target changing goes unnoticed.
                lst = os.lstat(path)
            except OSError:
                self.send_sigs.pop(name, None)
                continue
            sig = (lst.st_ino, lst.st_size, lst.st_mtime_ns)
            if st.st_size > self._limit() or total + st.st_size > DESC_MAX:
                if self.refused.get(name) != sig:
                    self.log(f"ERROR sms {name}: {st.st_size} bytes exceed refSms={self.a.ref_sms} limit, refused")
                    self.refused[name] = sig
                continue
            # Small files are simply re-read: a same-size rewrite within one timestamp tick
            # keeps the stat, and inotify would still have reported it.
            if not force and self.send_sigs.get(name) == sig and name in self.own_sms and lst.st_size > 4096:
                data = self.own_sms[name]
            else:
                try:
                    with open(path, "rb") as f:
                        data = f.read(self._limit() + 1)
                except OSError:
                    continue
                if len(data) > self._limit():
                    continue
                self.send_sigs[name] = sig
            sms[name] = data
            total += len(data)
        if publish_always or sms != self.own_sms:
            self.own_sms = sms
            self._publish_own(bump=not publish_always)

    def _publish_own(self, bump: bool = True) -> None:
        if bump:
            self.dsqn += 1
        self._save_sqn()
        d = Desc(self.node_id, self.name, self.primary_ip, self.dsqn, self.boot, dict(self.own_sms))
        self.log(f"own description descSqn={d.dsqn} sms={ {n: len(v) for n, v in d.sms.items()} }")
        self._accept(d, link=None, hops=0, gap=self.a.rewrite_gap)

    # -------------------------------------------------------------- descriptions

    def _accept(self, d: Desc, link, hops: int, gap: float) -> None:
        """Make `d` the known description of its node: files, json, flood on."""
        self.descs[d.node_id] = d
        self.desc_time[d.node_id] = time.monotonic()
        self.iids.setdefault(d.node_id, len(self.iids) + 1)
        if self.pending.get(d.node_id, -1) <= d.dsqn:
            self.pending.pop(d.node_id, None)
        r = self.routes.get(d.node_id)
        if d.node_id != self.node_id and r is None:
            r = self.routes[d.node_id] = Route(last_fresh=time.monotonic(), hops=hops)
            if link in self.links:
                r.best = link
        if d.node_id == self.node_id or self.refilled:
            self._rewrite(d.node_id, gap)
        self._send_all(d.packet(self.node_id, self.name, hops))
        self.dirty.update({("orig", d.node_id), ("desc", d.node_id), "status"})

    def _on_desc(self, h: dict, blob: bytes, link) -> None:
        d = Desc.from_packet(h, blob)
        if d.node_id == self.node_id:
            if d.boot != self.boot and d.dsqn >= self.dsqn:
                self.dsqn = d.dsqn           # our id with a newer sqn: outbid it
                self._publish_own()
            return
        known = self.descs.get(d.node_id)
        if known is not None and known.dsqn >= d.dsqn:
            return
        if self.pending.get(d.node_id, -1) >= d.dsqn:
            return
        self.pending[d.node_id] = d.dsqn
        hops = int(h.get("hops", 0)) + 1
        self.after(self.a.hop_delay, lambda: self._apply(d, link, hops))

    def _apply(self, d: Desc, link, hops: int) -> None:
        known = self.descs.get(d.node_id)
        if known is not None and known.dsqn >= d.dsqn:
            return
        if self.pending.get(d.node_id) != d.dsqn:
            return                           # purged or superseded meanwhile
        restarted = known is not None and known.boot != d.boot
        self.log(f"description of {d.name} descSqn={d.dsqn}{' (restarted)' if restarted else ''}")
        self._accept(d, link, hops, self.a.restart_gap if restarted else self.a.rewrite_gap)

    def _rewrite(self, node_id: str, gap: float) -> None:
        """Delete ALL of the sender's rcvdSms files, then write the new set (in place)."""
        gen = self.gen[node_id] = self.gen.get(node_id, 0) + 1
        prefix = node_id + ":"
        for entry in os.listdir(self.rcvd_dir):
            if entry.startswith(prefix):
                _unlink(os.path.join(self.rcvd_dir, entry))
        if gap <= 0.002:
            time.sleep(max(gap, 0))
            self._write_rcvd(node_id, gen)
        else:
            self.after(gap, lambda: self._write_rcvd(node_id, gen))

    def _write_rcvd(self, node_id: str, gen: int) -> None:
        d = self.descs.get(node_id)
        if d is None or self.gen.get(node_id) != gen:
            return
        for name, data in d.sms.items():
            fd = os.open(os.path.join(self.rcvd_dir, f"{node_id}:{name}"),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def _refill(self) -> None:
        self.refilled = True
        for node_id in list(self.descs):
            if node_id != self.node_id:
                self._rewrite(node_id, 0)
        self.log("rcvdSms refilled")

    def _purge(self, node_id: str) -> None:
        d = self.descs.pop(node_id, None)
        self.routes.pop(node_id, None)
        self.pending.pop(node_id, None)
        self.gen[node_id] = self.gen.get(node_id, 0) + 1
        for entry in os.listdir(self.rcvd_dir):
            if entry.startswith(node_id + ":"):
                _unlink(os.path.join(self.rcvd_dir, entry))
        _unlink(os.path.join(self.json_dir, "originators", node_id))
        _unlink(os.path.join(self.json_dir, "descriptions", node_id))
        self.dirty.discard(("orig", node_id))
        self.dirty.discard(("desc", node_id))
        self.dirty.add("status")
        self.log(f"purged {d.name if d else node_id}")

    # -------------------------------------------------------------- OGMs and links

    def _send_ogm(self) -> None:
        self.osqn += 1
        self.last_own_ogm = time.monotonic()
        self._send_all(pack({"t": "ogm", "from": self.node_id, "fname": self.name,
                             "id": self.node_id, "dsqn": self.dsqn, "osqn": self.osqn, "hops": 0}))
        jitter = self.a.ogm_interval * random.uniform(-0.1, 0.1)
        self.after(self.a.ogm_interval + jitter, self._send_ogm)

    def _on_ogm(self, h: dict, link) -> None:
        origin = str(h["id"])
        if origin == self.node_id:
            return
        now = time.monotonic()
        key = (int(h["dsqn"]), int(h["osqn"]))
        hops = int(h["hops"]) + 1
        q_in = int(h.get("q", 100))        # worst quality before our own link
        quality = min(q_in, self._quality(link))
        metric = path_metric(hops, quality)
        r = self.routes.get(origin)
        if r is None:
            r = self.routes[origin] = Route()
        if key > r.key:
            r.key, r.fwd_metric, r.last_fresh, r.ogm_sqn = key, metric, now, key[1]
            self._forward_ogm(h, hops, quality)
        elif key == r.key and metric > r.fwd_metric:
            r.fwd_metric = metric
            self._forward_ogm(h, hops, quality)
        if key >= r.key:
            r.via[link] = (hops, now, q_in)
        self._choose_route(origin, r)
        known = self.descs.get(origin)
        want = known is None or key[0] > known.dsqn
        if want and self.pending.get(origin, -1) < key[0] and now - r.last_req > max(1.0, self.a.hop_delay * 2):
            r.last_req = now
            self._send_to(link, pack({"t": "descreq", "from": self.node_id, "fname": self.name, "id": origin}))

    def _quality(self, link) -> int:
        dev = next((n for n, i in self.devs.items() if i == link[0]), None)
        return self.link_quality.get(dev, 100)

    def _forward_ogm(self, h: dict, hops: int, quality: int) -> None:
        fwd = dict(h, hops=hops, q=quality)
        fwd["from"], fwd["fname"] = self.node_id, self.name
        self._send_all(pack(fwd))

    def _choose_route(self, origin: str, r: Route) -> None:
        now = time.monotonic()
        window = 2.5 * self.a.ogm_interval + self.a.hop_delay
        live = {lk: hv for lk, hv in r.via.items() if lk in self.links and now - hv[1] <= window}
        if live:
            quality = {lk: min(hv[2], self._quality(lk)) for lk, hv in live.items()}
            best = min(live, key=lambda lk: (-path_metric(live[lk][0], quality[lk]), lk != r.best, lk))
            new = (best, live[best][0], quality[best])
        elif r.best in self.links:
            new = (r.best, r.hops, r.quality)   # a dead node behind a live link keeps its route
        else:
            new = (None, r.hops, r.quality)
        if new != (r.best, r.hops, r.quality):
            r.best, r.hops, r.quality = new
            self.dirty.add(("orig", origin))

    def _check_timer(self) -> None:
        now = time.monotonic()
        self._resolve_devs()
        for lk, link in list(self.links.items()):
            if now - link.last > self.a.link_timeout:
                del self.links[lk]
                self.log(f"link to {link.name} via {link.dev} timed out")
                self.dirty.update({"links", "status"})
                for origin, r in self.routes.items():
                    r.via.pop(lk, None)
                    if r.best == lk:
                        r.best = None
                        self.dirty.add(("orig", origin))
        for origin, r in list(self.routes.items()):
            if now - r.last_fresh > self.a.purge_timeout:
                self._purge(origin)
        self.after(min(1.0, self.a.link_timeout / 4, self.a.purge_timeout / 4), self._check_timer)

    # -------------------------------------------------------------- UDP

    def _send_all(self, pkt: bytes) -> None:
        for ifindex in self.devs.values():
            self._send_to((ifindex, MCAST), pkt)

    def _send_to(self, link, pkt: bytes) -> None:
        ifindex, addr = link
        try:
            self.udp.sendto(pkt, (addr, self.a.port, 0, ifindex))
        except OSError:
            pass                             # dev down or gone: like radio silence

    def _on_udp(self) -> None:
        while True:
            try:
                data, src = self.udp.recvfrom(1 << 17)
            except (BlockingIOError, InterruptedError):
                return
            try:
                h, blob = unpack(data)
                if h.get("from") == self.node_id or src[3] not in self.devs.values():
                    continue
                link = (src[3], src[0].split("%")[0])
                self._touch_link(link, h)
                kind = h.get("t")
                if kind == "ogm":
                    self._on_ogm(h, link)
                elif kind == "desc":
                    self._on_desc(h, blob, link)
                elif kind == "descreq":
                    d = self.descs.get(str(h.get("id")))
                    if d is not None:
                        self._send_to(link, d.packet(self.node_id, self.name, self._hops_to(d.node_id)))
            except (ValueError, KeyError, TypeError) as exc:
                self.log(f"bad packet from {src[0]}: {exc}")

    def _hops_to(self, node_id: str) -> int:
        if node_id == self.node_id:
            return 0
        r = self.routes.get(node_id)
        return r.hops if r else 0

    def _touch_link(self, link, h: dict) -> None:
        current = self.links.get(link)
        if current is None or current.node_id != h["from"]:
            dev = next((n for n, i in self.devs.items() if i == link[0]), "?")
            self.links[link] = Link(str(h["from"]), str(h.get("fname", "")), dev, link[0], link[1], time.monotonic())
            self.log(f"new link to {h.get('fname')} via {dev}")
            self.dirty.update({"links", "status"})
            for origin, r in self.routes.items():
                if r.best is None:
                    self.dirty.add(("orig", origin))
        else:
            current.last = time.monotonic()
            current.hello_sqn += 1
            current.name = str(h.get("fname", current.name))

    # -------------------------------------------------------------- control socket

    def _on_control(self) -> None:
        try:
            conn, _ = self.ctl.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            conn.setblocking(True)
            conn.settimeout(2.0)
            try:
                raw = recv_all(conn)
                if not raw:
                    return                   # a liveness probe: connect and close
                args = json.loads(raw)
                if not isinstance(args, list):
                    raise ValueError("request is not a list")
                rc, out, err = self.control([str(a) for a in args])
                self._flush_json()
                conn.sendall(json.dumps({"rc": rc, "out": out, "err": err}).encode())
            except BrokenPipeError:
                pass
            except (OSError, ValueError) as exc:
                self.log(f"control connection failed: {exc}")

    def control(self, args: list[str]) -> tuple[int, str, str]:
        out: list[str] = []
        for arg in args:
            opt, _, value = arg.partition("=")
            if opt == "syncSms":
                remove = value.startswith("-")
                name = value[1:] if remove else value
                if not valid_sms_name(name):
                    return 1, "".join(out), (f"ERROR syncSms: invalid name '{name}': 1-15 chars of "
                                             "A-Z a-z 0-9 _ . - without leading or trailing '.'\n")
                if remove and name in self.sync_sms:
                    self.sync_sms.remove(name)
                elif not remove and name not in self.sync_sms:
                    self.sync_sms.append(name)
                self.dirty.add("parameters")
                self._poll_send(force=True)
            elif opt in ("show", "jshow") and value in ("status", "originators", "links", "interfaces", "parameters"):
                out.append(self.render(value, as_json=opt == "jshow"))
            elif arg in ("status", "originators", "links", "interfaces", "parameters"):
                out.append(self.render(arg, as_json=False))
            elif opt == "linkQuality":
                try:
                    self.link_quality.update(parse_link_quality(value))
                except ValueError as exc:
                    return 1, "".join(out), f"ERROR linkQuality: {exc}\n"
                for origin, r in self.routes.items():
                    self._choose_route(origin, r)
                self.dirty.add("parameters")
            elif arg == "configReload":
                pass
            else:
                return 1, "".join(out), f"ERROR: unknown or unsupported option '{arg}'\n"
        return 0, "".join(out), ""

    # -------------------------------------------------------------- json / show

    def render(self, kind: str, as_json: bool) -> str:
        if kind == "parameters":
            params = self._params()
            return bmx7fmt.dumps(bmx7fmt.parameters_json(params)) if as_json else bmx7fmt.parameters_table(params)
        if kind == "status":
            obj = self._status()
            return bmx7fmt.dumps(obj) if as_json else bmx7fmt.table(kind, [obj["status"]])
        rows = {"originators": self._originators, "links": self._links, "interfaces": self._interfaces}[kind]()
        return bmx7fmt.dumps({kind: rows}) if as_json else bmx7fmt.table(kind, rows)

    def _status(self) -> dict:
        own = self.descs.get(self.node_id)
        now = time.monotonic()
        return bmx7fmt.status(
            node_id=self.node_id, name=self.name, primary_ip=self.primary_ip,
            dhash=own.dhash if own else "0" * 56, desc_sqn=self.dsqn,
            last_desc=int(now - self.desc_time.get(self.node_id, now)), ogm_sqn=self.osqn,
            uptime_s=now - self.started, nbs=len(self.links),
            rts=sum(1 for r in self.routes.values() if r.best is not None), nodes=len(self.descs))

    def _originator(self, node_id: str) -> dict | None:
        d = self.descs.get(node_id)
        if d is None:
            return None
        now = time.monotonic()
        own = node_id == self.node_id
        r = self.routes.get(node_id)
        link = self.links.get(r.best) if r and r.best else None
        hops = 0 if own else (r.hops if r else 0)
        return bmx7fmt.originator(
            node_id=node_id, name=d.name, primary_ip=d.primary_ip, dhash=d.dhash, desc_sqn=d.dsqn,
            last_desc=int(now - self.desc_time.get(node_id, now)), desc_size=d.size, own=own,
            neighbor=any(lk.node_id == node_id for lk in self.links.values()),
            dev=link.dev if link else NONE, nb_node_id=link.node_id if link else NONE,
            nb_name=link.name if link else NONE, nb_local_ip=link.ll if link else "::",
            hops=hops, metric=path_metric(hops, r.quality if r and not own else 100),
            ogm_sqn=self.osqn if own else (r.ogm_sqn if r else 0),
            last_ref=int(now - (self.last_own_ogm if own else (r.last_fresh if r else now))),
            nbs=len(self.links), my_iid=self.iids.get(node_id, 0))

    def _originators(self) -> list[dict]:
        rows = [self._originator(n) for n in sorted(self.descs, key=lambda n: self.descs[n].name)]
        return [r for r in rows if r is not None]

    def _links(self) -> list[dict]:
        return [bmx7fmt.link(node_id=lk.node_id, name=lk.name, nb_local_ip=lk.ll,
                             local_ip=_link_local(lk.dev) or "::", dev=lk.dev, idx=lk.ifindex,
                             rts=sum(1 for r in self.routes.values() if r.best == key),
                             hello_sqn=lk.hello_sqn)
                for key, lk in sorted(self.links.items(), key=lambda kv: kv[1].name)]

    def _interfaces(self) -> list[dict]:
        rows = []
        for dev, idx in self.devs.items():
            ll = _link_local(dev)
            rows.append(bmx7fmt.interface(
                dev=dev, idx=idx, mac=_read(f"/sys/class/net/{dev}/address").strip() or "00:00:00:00:00:00",
                local_ip=f"{ll}/64" if ll else "::/0", global_ip=f"{self.primary_ip}/16",
                rts=sum(1 for r in self.routes.values() if r.best and r.best[0] == idx), hello_sqn=self.osqn))
        return rows

    def _params(self) -> list[tuple[str, str, str | None]]:
        p: list[tuple[str, str, str | None]] = [("runtimeDir", self.rt, None),
                                                 ("plugin", "bmx7_sms.so", None),
                                                 ("plugin", "bmx7_json.so", None),
                                                 ("nodeRsaKey", "6", None),
                                                 ("/keyPath", os.path.abspath(self.a.key_file), "nodeRsaKey"),
                                                 ("hostname", self.name, None)]
        p += [("dev", dev, None) for dev in self.a.dev]
        p.append(("descSqnPath", os.path.abspath(self.sqn_path), None))
        p += [("syncSms", n, None) for n in self.sync_sms]
        p += [("linkQuality", f"{dev}={q}", None) for dev, q in sorted(self.link_quality.items())]
        return p

    def _json_timer(self) -> None:
        self.dirty.update({"status", "links", "interfaces"})
        self.dirty.update(("orig", n) for n in self.descs)
        self.after(self.a.json_interval, self._json_timer)

    def _flush_json(self) -> None:
        dirty, self.dirty = self.dirty, set()
        j = self.json_dir
        for item in dirty:
            if item == "status":
                _write_in_place(os.path.join(j, "status"), bmx7fmt.dumps(self._status()))
            elif item == "links":
                _write_in_place(os.path.join(j, "links"), bmx7fmt.dumps({"links": self._links()}))
            elif item == "interfaces":
                _write_in_place(os.path.join(j, "interfaces"), bmx7fmt.dumps({"interfaces": self._interfaces()}))
            elif item == "parameters":
                _write_in_place(os.path.join(j, "parameters"), bmx7fmt.dumps(bmx7fmt.parameters_json(self._params())))
            elif item[0] == "orig":
                obj = self._originator(item[1])
                if obj is not None:
                    _write_in_place(os.path.join(j, "originators", item[1]), bmx7fmt.dumps(obj))
            elif item[0] == "desc":
                d = self.descs.get(item[1])
                if d is not None:
                    ll = _link_local(next(iter(self.devs), "")) or "::"
                    _write_in_place(os.path.join(j, "descriptions", item[1]), bmx7fmt.dumps(bmx7fmt.description(
                        dhash=d.dhash, boot_sqn=d.dsqn, desc_sqn=d.dsqn, desc_size=d.size, local_ip=ll,
                        primary_ip=d.primary_ip, name=d.name, sms_names=list(d.sms))))


# ---------------------------------------------------------------- small file helpers

def _write_in_place(path: str, text: str) -> None:
    """Truncate and rewrite the same inode, as bmx7's json plugin does (readers may see half a file)."""
    with open(path, "w") as f:
        f.write(text)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _link_local(dev: str) -> str | None:
    for line in _read("/proc/net/if_inet6").splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[5] == dev and parts[0].startswith("fe80"):
            return ipaddress.IPv6Address(bytes.fromhex(parts[0])).compressed
    return None


# ---------------------------------------------------------------- command line

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bmx7wg.lab.emulator", description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime-dir", required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--dev", action="append", default=[], help="mesh device (repeat); default: every ethernet device")
    p.add_argument("--sync-sms", action="extend", nargs="+", default=[], metavar="NAME")
    p.add_argument("--desc-sqn-path", default=None)
    p.add_argument("--ref-sms", type=int, choices=(0, 2), default=2)
    p.add_argument("--hop-delay", type=float, default=0.43, help="seconds per hop before a description is used")
    p.add_argument("--purge-timeout", type=float, default=68.0)
    p.add_argument("--link-timeout", type=float, default=20.0)
    p.add_argument("--refill-delay", type=float, default=10.0, help="seconds after start before others' sms appear")
    p.add_argument("--ogm-interval", type=float, default=6.0)
    p.add_argument("--json-interval", type=float, default=60.0)
    p.add_argument("--poll-interval", type=float, default=0.1, help="sendSms polling")
    p.add_argument("--rewrite-gap", type=float, default=0.001, help="files absent between delete and rewrite")
    p.add_argument("--restart-gap", type=float, default=1.0, help="same, after the sender restarted")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--no-addr", action="store_true", help="do not put primaryIp on the devices")
    p.add_argument("--link-quality", action="append", default=[], metavar="DEV=PERCENT[,...]",
                   help="quality (1..100 %%) of links heard on DEV: scales path metrics; repeatable")
    args = p.parse_args(argv)
    try:
        args.link_quality = {k: v for item in args.link_quality for k, v in parse_link_quality(item).items()}
    except ValueError as exc:
        p.error(f"--link-quality: {exc}")
    for name in args.sync_sms:
        if not valid_sms_name(name):
            p.error(f"--sync-sms: invalid sms name '{name}'")
    if args.ogm_interval <= 0 or args.poll_interval <= 0 or args.json_interval <= 0:
        p.error("intervals must be positive")
    if not args.dev:
        args.dev = _ethernet_devs()
    return args


def _ethernet_devs() -> list[str]:
    devs = []
    for dev in sorted(os.listdir("/sys/class/net")):
        if dev != "lo" and _read(f"/sys/class/net/{dev}/type").strip() == "1":
            devs.append(dev)
    return devs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return Emulator(args).run()
    except OSError as exc:
        print(f"bmx7 emulator: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
