"""WireGuard backend: one link per interface, kernel or wireguard-go, diffed with `wg`.

Modelled on unetd's pluggable backend: a small ops table per link kind (create and
delete differ); everything else goes through `wg`, which talks netlink to the kernel
module and the UAPI socket in /var/run/wireguard to wireguard-go alike.

Facts measured with wireguard-tools v1.0.20210914 and wireguard-go 0.0.20220316:
- `wg set IF peer K allowed-ips A,B` REPLACES the peer's allowed IPs, and
  `allowed-ips ""` clears them. An allowed IP given to another peer moves to it.
- `wg addconf` also replaces a peer's allowed IPs and CLEARS them when the section has
  no AllowedIPs line; it cannot remove a peer. `wg setconf`/`wg syncconf` remove every
  peer not in the file (also ones we do not own) and drop the private key when the
  file has none. So batches always go through `wg set`; see `Backend.apply`.
- One `wg set` with 5,000 peers (about 1 MB of argv, ARG_MAX 2 MB) works and takes
  about as long as `wg addconf` with the same peers.
- wg prints IPv6 endpoints as "[compressed]:port"; wireguard-go drops a %scope.

Endpoints and roaming: WireGuard moves a peer's endpoint to the source of its latest
authenticated packet. While the session is live (handshake younger than
sessions.STALE_HANDSHAKE) the learnt endpoint works, so `plan` leaves it alone instead of
fighting roaming every cycle; once the session is stale or the peer has no endpoint,
the advertised endpoint is written again. A peer that restarts on a new port
initiates to us, so roaming picks that up without waiting.
"""

from __future__ import annotations

import _signal
import errno
import ipaddress
import os
import sys
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping

from .model import DeviceState, PeerSpec, PeerState, cidrs
from .fsutil import unlink_quietly
from . import jsontext, sockets, spawn
from .sessions import wall_live

USERSPACE_ENV = "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"
SOCKET_DIR = "/var/run/wireguard"
_NO_KERNEL_MODULE = ("unknown device type", "not supported")
# `wg show` of a missing link: kernel, no socket, stale socket, no module and no socket
_NO_DEVICE = ("no such device", "no such file", "connection refused", "protocol not supported")


class WgError(Exception):
    """One-line error naming the interface; never contains key material."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def _run(argv: list[str], *, check: bool = True, what: str = "", stdin=None,
         env: dict | None = None) -> spawn.Result:
    try:
        proc = spawn.run(argv, stdin_fd=None if stdin is None else stdin.fileno(), env=env, text=True)
    except FileNotFoundError:
        raise WgError(f"{what or argv[0]}: command not found: {argv[0]}") from None
    if check and proc.returncode != 0:
        raise WgError(f"{what or argv[0]}: {_last_line(proc.stderr)}")
    return proc


# ---------------------------------------------------------------- link kinds (ops)

class _KernelOps:
    name = "kernel"

    @staticmethod
    def create(backend: Backend, ifname: str) -> bool:
        """True when created; False when the kernel has no WireGuard support."""
        proc = _run([backend.ip, "link", "add", "dev", ifname, "type", "wireguard"],
                    check=False)
        if proc.returncode == 0:
            return True
        if any(s in proc.stderr.lower() for s in _NO_KERNEL_MODULE):
            return False
        raise WgError(f"{ifname}: ip link add: {_last_line(proc.stderr)}")

    @staticmethod
    def delete(backend: Backend, ifname: str) -> None:
        backend.ip_link_del(ifname)


class _UserspaceOps:
    name = "userspace"

    @staticmethod
    def create(backend: Backend, ifname: str) -> bool:
        sock = backend.socket_path(ifname)
        if _socket_alive(sock):
            # Socket names are global: another namespace already runs this name.
            raise WgError(f"{ifname}: name already used by a wireguard-go outside this network namespace")
        unlink_quietly(sock)
        env = dict(os.environ, **{USERSPACE_ENV: "1"})
        # with LOG_LEVEL set the daemon keeps our stdout pipe open and run() never returns
        env.pop("LOG_LEVEL", None)
        _run([backend.wireguard_go, ifname], env=env, what=f"{ifname}: wireguard-go")
        # wireguard-go daemonises; wait until its link and UAPI socket exist.
        deadline = time.monotonic() + 3
        while not (backend.link_exists(ifname) and os.path.exists(sock)):
            if time.monotonic() > deadline:
                raise WgError(f"{ifname}: wireguard-go did not create the link")
            time.sleep(0.02)
        return True

    @staticmethod
    def delete(backend: Backend, ifname: str) -> None:
        pids = _wireguard_go_pids(ifname)
        backend.ip_link_del(ifname)       # wireguard-go exits when its tun goes away
        _stop(pids)
        sock = backend.socket_path(ifname)
        if not _socket_alive(sock):
            unlink_quietly(sock)


_OPS = {ops.name: ops for ops in (_KernelOps, _UserspaceOps)}


def _socket_alive(path: str) -> bool:
    with sockets.Socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _own_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def _wireguard_go_pids(ifname: str) -> list[int]:
    """wireguard-go processes serving `ifname` in this network namespace."""
    ours, pids = _own_netns(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")[:-1]
            if (argv and os.path.basename(argv[0]) == b"wireguard-go"
                    and argv[-1] == ifname.encode()
                    and os.readlink(f"/proc/{entry}/ns/net") == ours):
                pids.append(int(entry))
        except OSError:
            continue                       # exited meanwhile, or not ours to read
    return pids


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _stop(pids: list[int], grace: float = 2.0) -> None:
    """Wait for pids to exit; TERM, then KILL the ones that do not."""
    for sig in (None, _signal.SIGTERM, _signal.SIGKILL):
        if sig is not None:
            for pid in pids:
                if _running(pid):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
        deadline = time.monotonic() + grace
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not any(_running(p) for p in pids):
            return
    raise WgError(f"wireguard-go pid {pids[0]} does not exit")


# ---------------------------------------------------------------- dump parsing

def _none(field: str) -> str | None:
    return None if field in ("(none)", "off", "") else field


def parse_dump(text: str, reuse: Mapping[str, PeerState] | None = None) -> DeviceState:
    """Parse `wg show IF dump`; the private and preshared keys are dropped unread.
    `reuse`: as for DumpReader."""
    reader = DumpReader(reuse)
    for line in _lines(text):
        reader.line(line)
    return reader.finish()


class DumpReader:
    """`wg show IF dump` parsed as its output comes, a chunk (`feed`) or a line at a time.

    `reuse`: peers known from before (the reconciler's model). A line that describes one
    of them the same way gives back that very object, its handshake and counters brought
    up to date in place (see PeerState), or at least its key, endpoint and allowed-ips.
    So a dump of thousands of peers never holds a second copy of them all, nor its whole
    text (bytes, joined, decoded: three copies, 3 MB at 5,000 peers with live sessions,
    which raised the helper's peak at every stats read).
    """

    def __init__(self, reuse: Mapping[str, PeerState] | None = None):
        self.reuse = reuse or {}
        self.state: DeviceState | None = None
        self.number = 0                   # lines read
        self._rest = b""                  # a line not ended yet
        self.error: WgError | None = None

    def feed(self, chunk: bytes) -> None:
        """Never raises: a bad line's error is kept for finish(), the rest left unread (the
        caller reads on, so that the child is not left blocked on a full pipe)."""
        if self.error is not None:
            return
        data = self._rest + chunk if self._rest else chunk
        end = data.rfind(b"\n") + 1
        self._rest = data[end:]
        try:
            for line in _lines(data[:end].decode("ascii")):
                self.line(line)
        except (WgError, UnicodeDecodeError) as exc:
            self.error = exc if isinstance(exc, WgError) else WgError(
                f"wg show dump: unexpected line {self.number + 1}")

    def line(self, line: str) -> None:
        self.number += 1
        if self.state is None:
            try:
                _private, public, port, fwmark = line.split("\t")
                del _private
                self.state = DeviceState(public_key=_none(public), listen_port=int(port),
                                         fwmark=int(fwmark, 0) if _none(fwmark) else 0)
            except ValueError:
                raise WgError(f"wg show dump: unexpected line {self.number}") from None
            return
        try:
            key, _psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
            peer = _dumped_peer(self.reuse.get(key), key, _none(endpoint), _none(allowed),
                                int(handshake) or None, int(rx), int(tx), int(_none(keepalive) or 0))
        except ValueError:      # the line holds a preshared key: never quote it
            raise WgError(f"wg show dump: unexpected line {self.number}") from None
        self.state.peers[peer.public_key] = peer

    def finish(self) -> DeviceState:
        if self._rest:
            self.feed(b"\n")             # the last line, not ended: the same checks
        if self.error is not None:
            raise self.error
        if self.state is None:
            raise WgError("wg show dump: empty output")
        return self.state


def _dump_ran(ifname: str, returncode: int, stderr: str) -> bool:
    """False when `wg show IF dump` failed because the link is gone; WgError for any other
    failure."""
    if returncode == 0:
        return True
    if any(s in stderr.lower() for s in _NO_DEVICE):
        return False
    raise WgError(f"{ifname}: wg show: {_last_line(stderr)}")


def _lines(text: str) -> Iterator[str]:
    """text.splitlines() for "\\n" ends, one line at a time; blank lines skipped."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        if stop < 0:
            stop = end
        if stop > start:
            yield text[start:stop]
        start = stop + 1


def _allowed_ips(field: str | None) -> tuple[str, ...]:
    """A dump's allowed-ips field (None: "(none)") as compared everywhere: see cidrs()."""
    return cidrs(field.split(",")) if field else ()


def _dumped_peer(old: PeerState | None, key: str, endpoint: str | None, allowed: str | None,
                 handshake: int | None, rx: int, tx: int, keepalive: int) -> PeerState:
    """One dump line as a PeerState, made of `old`'s parts where they are equal."""
    if old is None:
        return PeerState(public_key=sys.intern(key), endpoint=endpoint,   # one string per key
                         allowed_ips=_allowed_ips(allowed),
                         latest_handshake=handshake, rx=rx, tx=tx, keepalive=keepalive)
    ips = old.allowed_ips
    if (allowed or "") != ",".join(ips):            # the kernel's order or another set
        fresh = _allowed_ips(allowed)
        ips = ips if fresh == ips else fresh
    if endpoint == old.endpoint:
        endpoint = old.endpoint
    if endpoint is old.endpoint and ips is old.allowed_ips and keepalive == old.keepalive:
        if (handshake, rx, tx) != (old.latest_handshake, old.rx, old.tx):
            old.latest_handshake, old.rx, old.tx = handshake, rx, tx    # see PeerState
        return old
    return PeerState(public_key=old.public_key, endpoint=endpoint, allowed_ips=ips,
                     latest_handshake=handshake, rx=rx, tx=tx, keepalive=keepalive)


# ---------------------------------------------------------------- canonical forms

def canonical_cidrs(values: Iterable[str], peer: str = "") -> tuple[str, ...]:
    try:
        nets = {ipaddress.ip_network(v, strict=False) for v in values}
    except ValueError as e:
        raise WgError(f"peer {peer[:8]}: bad allowed IP: {e}") from None
    return tuple(str(n) for n in sorted(nets, key=lambda n: (n.version, n)))


def _endpoint_parts(endpoint: str) -> tuple[str, int, str | None]:
    """(host, port, scope); IP hosts compressed, IPv4-mapped IPv6 shown as IPv4."""
    host, _, port = endpoint.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host, _, scope = host.partition("%")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host.lower(), int(port), None      # a name; wg resolves it
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr), int(port), scope or None


def canonical_endpoint(endpoint: str) -> str:
    try:
        host, port, scope = _endpoint_parts(endpoint)
    except ValueError:
        raise WgError(f"bad endpoint {endpoint!r}") from None
    if ":" in host:
        return f"[{host}%{scope}]:{port}" if scope else f"[{host}]:{port}"
    return f"{host}:{port}"


def same_endpoint(a: str, b: str) -> bool:
    """Equal up to notation; a scope only counts when both sides carry one."""
    ha, pa, sa = _endpoint_parts(a)
    hb, pb, sb = _endpoint_parts(b)
    return (ha, pa) == (hb, pb) and (sa is None or sb is None or sa == sb)


# ---------------------------------------------------------------- planning

def _endpoint_stale(spec: PeerSpec, have: PeerState, live: Callable[[PeerState], bool]) -> bool:
    if spec.endpoint is None:
        return False                      # WireGuard cannot unset an endpoint anyway
    if have.endpoint is None:
        return True
    if spec.endpoint == have.endpoint or same_endpoint(spec.endpoint, have.endpoint):
        return False
    return not live(have)                 # a live session keeps its roamed endpoint


def _peer_args(spec: PeerSpec, have: PeerState | None, live: Callable[[PeerState], bool],
               canonical: bool, keepalive: int) -> list[str]:
    fields: list[str] = []
    if have is None or _endpoint_stale(spec, have, live):
        if spec.endpoint is not None:
            fields += ["endpoint", spec.endpoint if canonical and _plain_endpoint(spec.endpoint)
                       else canonical_endpoint(spec.endpoint)]
    # equal strings need no parsing: the common, steady case with thousands of peers
    if have is None or have.allowed_ips != spec.allowed_ips:
        if canonical and len(spec.allowed_ips) == 1:
            want_ips = spec.allowed_ips
        else:
            want_ips = canonical_cidrs(spec.allowed_ips, spec.public_key)
        have_ips = canonical_cidrs(have.allowed_ips, spec.public_key) if have else ()
        if want_ips != have_ips:
            fields += ["allowed-ips", ",".join(want_ips)]   # replaces the whole set
    if keepalive != (have.keepalive if have else 0):
        fields += ["persistent-keepalive", str(keepalive) if keepalive else "off"]
    if have is not None and not fields:
        return []
    return ["peer", spec.public_key, *fields]


def _plain_endpoint(endpoint: str) -> bool:
    """Canonical text needs no rewriting: no scope, no IPv4-mapped address (shown as IPv4)."""
    return "%" not in endpoint and "::ffff:" not in endpoint


def plan(current: DeviceState | None, desired: Mapping[str, PeerSpec], owned: Container[str],
         live: Callable[[PeerState], bool] = wall_live, canonical: bool = False,
         keepalive: int = 0) -> list[str]:
    """Arguments for one `wg set IF ...` turning `current` into `desired`.

    Empty when nothing differs. Peers not desired are removed only when in `owned`.
    `live` judges whether a peer's session is live, for roaming (a running helper passes
    sessions.Sessions.live: immune to clock steps).
    `canonical`: the caller vouches that desired's allowed-ips and endpoints are the text
    `ipaddress` gives (as policy.py makes them), so new peers skip parsing them again; the
    result is the same.
    `keepalive`: every desired peer's persistent keepalive (0: off).
    """
    have = current.peers if current else {}
    args: list[str] = []
    for key in sorted(have):               # removals first: they free allowed IPs
        if key not in desired and key in owned:
            args += ["peer", key, "remove"]
    for key in sorted(desired):
        args += _peer_args(desired[key], have.get(key), live, canonical, keepalive)
    return args


def plan_changed(current: DeviceState | None, desired: Mapping[str, PeerSpec], owned: Container[str],
                 keys: Iterable[str], live: Callable[[PeerState], bool] = wall_live,
                 canonical: bool = False, keepalive: int = 0) -> list[str]:
    """`plan` looked at only for the public keys in `keys`.

    For a caller whose `current` is its own up-to-date model of the device (it applied the
    previous plan and patched `current` accordingly) and that knows which peers it changed
    since: then this equals `plan(current, desired, owned, live)`, at a cost that does not
    grow with the number of peers.
    """
    have = current.peers if current else {}
    keys = sorted(keys)
    args: list[str] = []
    for key in keys:                       # removals first: they free allowed IPs
        if key in have and key not in desired and key in owned:
            args += ["peer", key, "remove"]
    for key in keys:
        if key in desired:
            args += _peer_args(desired[key], have.get(key), live, canonical, keepalive)
    return args


def _peer_boundary(args: list[str]) -> int | None:
    """The index of the `peer` argument nearest the middle that leaves something before
    it (the device fields stay in front), or None for a single peer block."""
    starts = [i for i in range(1, len(args)) if args[i] == "peer"]   # never a key (44 chars) nor a value
    return min(starts, key=lambda i: abs(2 * i - len(args))) if starts else None


# ---------------------------------------------------------------- the backend

class Backend:
    """Links and configuration of WireGuard interfaces; counts `wg` writes."""

    def __init__(self, ip: str = "ip", wg: str = "wg", wireguard_go: str = "wireguard-go",
                 socket_dir: str = SOCKET_DIR):
        self.ip, self.wg, self.wireguard_go = ip, wg, wireguard_go
        self.socket_dir = socket_dir
        self.writes = 0                    # `wg` invocations that changed something
        self.kinds: dict[str, str] = {}    # ifname -> "kernel" | "userspace"

    def socket_path(self, ifname: str) -> str:
        return os.path.join(self.socket_dir, f"{ifname}.sock")

    # -- links

    def link_exists(self, ifname: str) -> bool:
        try:
            sockets.if_nametoindex(ifname)  # asks the current network namespace
            return True
        except OSError:
            return False

    def _link_info(self, ifname: str) -> dict:
        out = _run([self.ip, "-d", "-j", "link", "show", "dev", ifname],
                   what=f"{ifname}: ip link show").stdout
        return jsontext.loads(out)[0]

    def _kind_of(self, info: dict, ifname: str) -> str:
        kind = info.get("linkinfo", {}).get("info_kind")
        if kind == "wireguard":
            return "kernel"
        if kind == "tun" and _wireguard_go_pids(ifname):
            return "userspace"
        raise WgError(f"{ifname}: link exists and is not a WireGuard link of ours")

    def ensure_link(self, ifname: str, mtu: int) -> str:
        """Create (kernel first, else wireguard-go) or reuse the link; set mtu, up."""
        if self.link_exists(ifname):
            info = self._link_info(ifname)
            kind = self.kinds.get(ifname) or self._kind_of(info, ifname)
        else:
            kind = "kernel" if _KernelOps.create(self, ifname) else "userspace"
            if kind == "userspace":
                _UserspaceOps.create(self, ifname)
            info = self._link_info(ifname)
        self.kinds[ifname] = kind
        if info.get("mtu") != mtu or "UP" not in info.get("flags", []):
            _run([self.ip, "link", "set", "dev", ifname, "mtu", str(mtu), "up"],
                 what=f"{ifname}: ip link set")
        return kind

    def ip_link_del(self, ifname: str) -> None:
        proc = _run([self.ip, "link", "del", "dev", ifname], check=False)
        if proc.returncode != 0 and self.link_exists(ifname):
            raise WgError(f"{ifname}: ip link del: {_last_line(proc.stderr)}")

    def delete_link(self, ifname: str) -> None:
        """Remove the link; for wireguard-go also its process and socket."""
        kind = self.kinds.pop(ifname, None)
        if kind is None:
            if not self.link_exists(ifname):
                _UserspaceOps.delete(self, ifname)   # leftovers: process, stale socket
                return
            kind = self._kind_of(self._link_info(ifname), ifname)
        _OPS[kind].delete(self, ifname)

    # -- configuration

    def dump(self, ifname: str, reuse: Mapping[str, PeerState] | None = None) -> DeviceState | None:
        proc = _run([self.wg, "show", ifname, "dump"], check=False)
        if not _dump_ran(ifname, proc.returncode, proc.stderr):
            return None
        return parse_dump(proc.stdout, reuse)

    def start_dump(self, ifname: str) -> spawn.Child:
        """`wg show IF dump` left running: the caller reads its stdout as it comes (a
        5,000-peer dump takes ~30 ms) and hands the result to `dumped`."""
        try:
            return spawn.Child([self.wg, "show", ifname, "dump"])
        except FileNotFoundError:
            raise WgError(f"{self.wg}: command not found: {self.wg}") from None

    @staticmethod
    def dumped(ifname: str, returncode: int, reader: DumpReader, stderr: str) -> DeviceState | None:
        """The device from a finished `wg show IF dump` that `reader` read as it came (see
        start_dump); None when the link is gone."""
        return reader.finish() if _dump_ran(ifname, returncode, stderr) else None

    def public_key_of(self, private_key_path: str) -> str:
        """`wg pubkey` fed from the file, so the key never enters this process."""
        try:
            with open(private_key_path, "rb") as f:
                proc = _run([self.wg, "pubkey"], stdin=f, what=f"key file {private_key_path}")
        except OSError as e:
            raise WgError(f"key file {private_key_path}: {e.strerror}") from None
        return proc.stdout.strip()

    def configure_device(self, ifname: str, private_key_path: str, listen_port: int,
                         fwmark: int | None = None, public_key: str | None = None) -> int:
        """One `wg set` for the fields that differ; returns writes done (0 or 1).

        listen_port 0 keeps the current port; fwmark None leaves it alone. Pass
        `public_key` when known to save a `wg pubkey`.
        """
        current = self.dump(ifname)
        if current is None:
            raise WgError(f"{ifname}: no such WireGuard device")
        args: list[str] = []
        if current.public_key != (public_key or self.public_key_of(private_key_path)):
            args += ["private-key", private_key_path]
        if listen_port and listen_port != current.listen_port:
            args += ["listen-port", str(listen_port)]
        if fwmark is not None and fwmark != current.fwmark:
            args += ["fwmark", str(fwmark) if fwmark else "off"]
        return self.apply(ifname, args)

    def apply(self, ifname: str, args: list[str]) -> int:
        """Run `wg set IF <args>`; returns the number of `wg` writes (0 when empty).

        Always one invocation unless the kernel refuses the argv (E2BIG: beyond
        ARG_MAX, 2 MB here, about 9,000 typical peers); then the batch is split at a
        peer boundary and each part is one more write.
        """
        if not args:
            return 0
        try:
            _run([self.wg, "set", ifname, *args], what=f"{ifname}: wg set")
        except OSError as e:
            # split only now, not up front: a list per peer for a case that almost never comes
            cut = _peer_boundary(args) if e.errno == errno.E2BIG else None
            if cut is None:
                raise WgError(f"{ifname}: wg set: {e.strerror}") from None
            return self.apply(ifname, args[:cut]) + self.apply(ifname, args[cut:])
        self.writes += 1
        return 1
