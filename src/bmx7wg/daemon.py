"""`bmx7wg run IFACE`: the event loop around reconcile.Reconciler.

Events: rcvdSms / json/originators changes (inotify or polling), signals (TERM/INT stop,
HUP reload, USR1 rotate key), and a 1 s tick for hold-down expiry, the sms registration
check (bmx7 forgets runtime registrations when it restarts) and the state file.
"""

from __future__ import annotations

import _signal
import ipaddress
import os
import time

from .record import replace

from . import address, advert, clockguard, config, heap, history, keys, port, sockets, state, wg
from .bmx7 import Bmx7
from .model import Advert, NodeInfo
from .poller import Poller
from .reconcile import Reconciler
from .uciadapter import open_uci
from .watch import Watcher
from .log import log


TICK = 1.0
STATS_EVERY = 5.0
STATS_TIMEOUT = 30.0          # a `wg show dump` still running after this is given up
TRIM_AFTER = 100              # peers added/removed in one step: worth handing freed heap back
REGISTER_GRACE = 3.0          # own sms copy may lag the publish by ~0.1 s; allow for slow bmx7
# The signals caught, by the names handle_signals() acts on. From _signal, not signal.py:
# its enums (which would name them) load the enum module, 0.2 MB.
_CAUGHT = {_signal.SIGTERM: "SIGTERM", _signal.SIGINT: "SIGINT", _signal.SIGHUP: "SIGHUP",
           _signal.SIGUSR1: "SIGUSR1"}


class HelperError(RuntimeError):
    """Setup failed; `code` is what the netifd proto script reports (proto_notify_error)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Helper:
    def __init__(self, iface: str, confdir: str | None, savedir: str | None, rundir: str,
                 netifd: bool = False, clock=time.time, mono=time.monotonic):
        self.iface = iface
        self.confdir, self.savedir, self.rundir = confdir, savedir, rundir
        self.netifd = netifd
        # Two clocks: `clock` (wall) for what is shown or compared with WireGuard's handshake
        # times and the clock guard; `mono` for everything that measures time passing (ticks,
        # hold-downs, claim ages, the restart wait), which a router's clock steps (NTP at boot,
        # by months) must neither stall nor cut short.
        self.clock, self.mono = clock, mono
        self.backend = wg.Backend()
        self.stopping = False
        self.pending: set[str] = set()   # signal names waiting to be handled
        self.own: NodeInfo | None = None
        self.published: bytes | None = None
        self.published_at = 0.0
        self.bmx7_pid: int | None = None
        self.bmx7_running = False
        self.last_stats = 0.0
        self.stats_every = STATS_EVERY
        self.next_state_write = 0.0
        self.state_dirty = True
        self.pid = os.getpid()            # the state file's pid
        self.writer: state.Writer | None = None   # the state file being written
        self.stats: _StatsRead | None = None
        self.sel: Poller | None = None
        self.ubus = None
        self.route_tables: set = set()
        self.previous_peers: list = []      # a previous run's state-file peers, while awaited
        self.clock_behind_until: float | None = None
        self.clock_recorded = 0.0

    # ---- setup -------------------------------------------------------------------------
    def load_config(self):
        try:
            return config.load(open_uci(self.confdir, self.savedir), self.iface)
        except config.ConfigError as exc:
            raise HelperError("INVALID_CONFIG", str(exc)) from None

    def setup(self) -> None:
        self.cfg = self.load_config()
        os.makedirs(self.rundir, mode=0o755, exist_ok=True)
        self.bmx = Bmx7(self.cfg.bmx7_dir)
        try:
            self.backend_kind = self.backend.ensure_link(self.cfg.ifname, self.cfg.mtu)
        except Exception as exc:  # kernel module and wireguard-go both unavailable
            raise HelperError("NO_WIREGUARD", f"cannot create WireGuard link {self.cfg.ifname}: {exc}") from None
        self.rec = Reconciler(self.cfg, self.backend, self._local_networks(), wall=self.clock, mono=self.mono)
        device = self.rec.refresh_device()
        self.keypair = self._choose_keys(device.public_key if device else None)
        self.rec.own_public_key = self.keypair.public_key
        previous = state.read(self.rundir, self.iface) or {}
        self.port = self._configure_port(device, previous.get("listen_port"))
        self._restore_previous_run(previous)
        self.publish_port()
        # The previous run's routes, which a link made anew lacks (netifd: the first update,
        # which puts the link up in netifd now; addresses follow once bmx7 answers).
        self.sync_routes()
        log.info("%s: link %s (%s), public key %s, port %d", self.iface, self.cfg.ifname,
                 self.backend_kind, self.keypair.public_key, self.port)

    def _choose_keys(self, link_public_key: str | None) -> keys.KeyPair:
        """The persisted key, unless the clock is behind our last run (see clockguard)."""
        if self.cfg.key_mode == "persist" and not self.cfg.private_key:
            until = clockguard.behind_until(clockguard.record_path(self.cfg.key_file), self.clock())
            if until is not None:
                self.clock_behind_until = until
                log.warning("%s: clock is %d s behind the last run: advertising a session key until it "
                            "catches up (peers would drop handshakes from the persisted key)",
                            self.iface, until - self.clock())
                return keys.load_or_create(replace(self.cfg, key_mode="session"), self.rundir, link_public_key)
            self.record_clock(self.clock())
        return keys.load_or_create(self.cfg, self.rundir, link_public_key)

    def record_clock(self, now: float) -> None:
        if self.cfg.key_mode == "persist" and not self.cfg.private_key and self.clock_behind_until is None:
            clockguard.record(clockguard.record_path(self.cfg.key_file), now)
            self.clock_recorded = now

    def check_clock(self, now: float) -> None:
        if self.clock_behind_until is not None and now >= self.clock_behind_until:
            self.clock_behind_until = None
            log.info("%s: clock caught up with the last run: back to the persisted key", self.iface)
            self.install_key(keys.load_or_create(self.cfg, self.rundir))
            self.record_clock(now)
        elif now - self.clock_recorded >= clockguard.RECORD_EVERY:
            self.record_clock(now)

    def _configure_port(self, device, remembered=None) -> int:
        """`remembered`: the previous run's port (state file), for a link created anew."""
        failed: set[int] = set()
        current = device.listen_port if device and device.public_key == self.keypair.public_key else None
        if not isinstance(remembered, int) or isinstance(remembered, bool):
            remembered = None
        while True:
            try:
                chosen = port.choose_port(self.cfg, current, failed, remembered=remembered)
            except RuntimeError as exc:
                raise HelperError("PORT_IN_USE", str(exc)) from None
            try:
                self.backend.configure_device(self.cfg.ifname, self.keypair.private_path, chosen, self.cfg.fwmark)
            except Exception as exc:
                if self.cfg.listen_port:
                    raise HelperError("PORT_IN_USE", f"option 'listen_port': cannot listen on {chosen}: {exc}") from None
                failed.add(chosen)   # lost a race for the port: pick again
                current = None
                continue
            self.rec.refresh_device()
            return chosen

    def _restore_previous_run(self, previous: dict) -> None:
        """Peers a previous run of this helper created stay ours after a restart (even kill -9),
        and contested prefixes and keys stay with their holders (history.py)."""
        self.rec.owned = dict.fromkeys(previous.get("owned", []))
        self.rec.selection = history.seed(previous.get("history"), self.clock() - self.mono())
        routes = _routes_of(previous.get("routes"))
        self.route_tables |= {table for _, table, _ in routes}   # synced, so stale ones can go
        self.rec.await_previous(_node_of_key(previous.get("peers")), self.cfg.hold_down, routes)
        if self.rec.awaited:
            # shown, and kept for a next restart, until the first step has its own view
            self.previous_peers = previous["peers"]
            log.info("%s: waiting for the previous run's %d nodes in bmx7 (up to %d s once it answers)",
                     self.iface, len(self.rec.awaited), self.cfg.hold_down)

    def _local_networks(self) -> tuple:
        nets = [ipaddress.ip_network(a.ip) for a in self.cfg.addresses]
        nets += list(self.cfg.announce)
        return tuple(nets)

    # ---- bmx7 side -----------------------------------------------------------------------
    def own_addresses(self) -> list[str]:
        addrs = [str(a) for a in self.cfg.addresses]
        if self.cfg.auto_address and self.own:
            addrs.insert(0, f"{address.auto_address(self.own.node_id, str(self.cfg.auto_prefix))}/128")
        return addrs

    def advert_bytes(self) -> bytes:
        hosts = tuple(ipaddress.ip_network(ipaddress.ip_interface(a).ip) for a in self.own_addresses())
        return advert.encode(Advert(public_key=self.keypair.public_key, port=self.port,
                                    addresses=hosts, networks=self.cfg.announce))

    def publish(self) -> None:
        data = self.advert_bytes()
        if data != self.published:
            self.bmx.publish(self.cfg.sms_name, data)
            self.published, self.published_at = data, self.mono()
            log.info("%s: advertisement published (%d bytes)", self.iface, len(data))
        self.bmx.register(self.cfg.sms_name)

    def check_bmx7(self, now: float) -> None:
        """Learn our nodeId once bmx7 runs; re-register the sms name after a bmx7 restart."""
        running = self.bmx.alive()
        if running != self.bmx7_running:
            log.info("%s: bmx7 %s", self.iface, "running" if running else "not running")
            self.bmx7_running = running
            self.state_dirty = True
        if not running:
            return
        if self.own is None:
            self.own = self.bmx.own()
            if self.own is None:
                return
            self.rec.local_addresses = tuple(self.own_addresses())
            self.sync_link_addresses()
            self.publish()
            return
        pid = self.bmx.pid()
        mine = self.bmx.received(self.cfg.sms_name).get(self.own.node_id)
        if pid != self.bmx7_pid or (mine != self.published and now - self.published_at > REGISTER_GRACE):
            # bmx7 restarted (registration lost) or our copy did not come back: register again.
            self.bmx7_pid = pid
            self.bmx.register(self.cfg.sms_name)
            self.published_at = now

    # ---- link side -------------------------------------------------------------------------
    def sync_link_addresses(self) -> None:
        if self.netifd:
            self.push_netifd()
        else:
            from . import routes
            routes.sync_addresses(self.cfg.ifname, set(self.own_addresses()))

    def sync_routes(self) -> None:
        if self.netifd:
            self.push_netifd()
            return
        from . import routes
        # One call per table (each call owns the whole table); tables used before but empty
        # now are synced to nothing so stale routes go.
        by_table: dict = {table: {} for table in self.route_tables}
        for net, table, metric in self.rec.routes:
            by_table.setdefault(table, {})[net] = metric
        for table, nets in by_table.items():
            routes.sync_routes(self.cfg.ifname, nets, table=table)
        self.route_tables = set(by_table)

    def push_netifd(self) -> None:
        from . import netifd
        endpoints = sorted({d.endpoint for d in (self.rec.selection.peers.values() if self.rec.selection else ())
                            if d.endpoint})
        netifd.push(self.iface, self.cfg.ifname, self.own_addresses(), sorted(self.rec.routes, key=str),
                    exclude=endpoints)

    def publish_port(self) -> None:
        """On OpenWrt, open the (possibly random) port in fw4 the way unetd does (procd data)."""
        if self.netifd:
            from . import netifd
            netifd.publish_port(self.iface, self.port)

    def reconcile(self, now: float) -> None:
        if self.own is None:
            return
        result = self.rec.step(now, self.own, self.bmx.received(self.cfg.sms_name), self.bmx.originators())
        if self.previous_peers and not self.rec.awaited:
            self.previous_peers = []
            missing = self.rec.not_back
            log.info("%s: %s", self.iface, "the previous run's nodes are back in bmx7" if not missing else
                     f"{len(missing)} of the previous run's nodes not back after {self.cfg.hold_down} s "
                     f"({', '.join(address.short_id(n) for n in missing[:5])}{', ...' if len(missing) > 5 else ''})")
        if result.routes_changed:
            self.sync_routes()
        for node_id in result.added:
            log.info("%s: peer %s added", self.iface, address.short_id(node_id))
            self.event("add", node_id)
        for node_id in result.removed:
            if address.is_node_id(node_id):
                log.info("%s: peer %s removed", self.iface, address.short_id(node_id))
                self.event("remove", node_id)
            else:            # a previous run's peer that no state file named: its key, no event
                log.info("%s: peer with key %s removed", self.iface, node_id)
        if result.writes or result.added or result.removed or result.shown_changed:
            self.state_dirty = True         # written within a TICK, not at the next stats dump
        if len(result.added) + len(result.removed) >= TRIM_AFTER:
            heap.trim()

    def event(self, action: str, node_id: str) -> None:
        if self.ubus is not None:
            orig = self.rec.known_originators.get(node_id)
            self.ubus.send_event("bmx7wg.peer", {"interface": self.iface, "node_id": node_id,
                                                 "name": orig.name if orig else "", "action": action})

    # ---- state ------------------------------------------------------------------------------
    def state_writer(self) -> state.Writer:
        """The state file as of now, to be written a slice at a time (write_more)."""
        from . import status
        return state.Writer(self.rundir, self.iface, status.head(self), status.tails(self))

    def write_state(self, now: float, force: bool = False) -> None:
        """Refresh counters from WireGuard and start writing the state file, neither in the
        way of events: the dump is read as it comes, and the file is written a slice of
        peers at a time between events (write_more). `force` (shutdown) writes it all here
        and now, in place of one still being written."""
        if self.stats is not None and self.stats.overdue():
            log.warning("%s: wg show %s dump: no answer in %d s, stopped", self.iface, self.cfg.ifname,
                        STATS_TIMEOUT)
            self.sel.unregister(self.stats.fd)
            self.stats.close()
            self.stats = None
        if now - self.last_stats >= self.stats_every and self.stats is None and self.sel is not None:
            self.last_stats = now
            self.start_stats()
        if self.writer is not None:
            if not force:
                return                      # one file at a time: it only moves forward
            self.writer.abandon()
            self.writer = None
        if not self.state_dirty or not (force or now >= self.next_state_write):
            return
        self.state_dirty = False
        self.next_state_write = now + TICK
        self.writer = self.state_writer()
        if force:
            self.writer.finish()
            self.writer = None
        else:
            self.write_more()

    def write_more(self) -> None:
        """The state file's next slice. A failure is logged and the file tried again on the
        next tick: the tunnels do not depend on it."""
        try:
            done = self.writer.step()
        except Exception as exc:  # noqa: BLE001 - a status bug or a full disk must not stop the helper
            log.error("%s: state file: %s", self.iface, exc)
            done, self.state_dirty = True, True
        if done:
            if self.writer.items >= TRIM_AFTER:
                heap.trim()       # the slices' dicts and text, freed between long-lived objects
            self.writer = None

    def start_stats(self) -> None:
        try:
            self.stats = _StatsRead(self.backend.start_dump(self.cfg.ifname), self.backend.writes,
                                    self.rec.cached_peers())
        except wg.WgError as exc:
            log.warning("%s: %s", self.iface, exc)
            return
        self.sel.register(self.stats.fd, "stats")

    def read_stats(self) -> None:
        """Take what the running dump wrote; at its end, hand the device to the reconciler."""
        read = self.stats
        if read.read():
            return
        self.sel.unregister(read.fd)
        self.stats = None
        began = time.monotonic()
        try:
            device = read.finish(self.backend, self.cfg.ifname)
        except wg.WgError as exc:
            log.warning("%s: %s", self.iface, exc)
            return
        # peers written since the dump began are missing from it or stale in it
        self.rec.take_dump(device, exact=self.backend.writes == read.writes)
        heap.trim()               # the chunks and the lines parsed from them are gone
        self.stats_every = max(STATS_EVERY, 50 * (time.monotonic() - began))
        self.state_dirty = True

    # ---- signals --------------------------------------------------------------------------
    def reload(self) -> None:
        old = self.cfg
        new = self.load_config()
        if (new.ifname, new.key_mode, new.key_file, new.private_key) != (old.ifname, old.key_mode, old.key_file, old.private_key):
            log.warning("%s: ifname/key options changed: restart the interface to apply them", self.iface)
        self.cfg = new
        self.rec.cfg = new
        self.rec.table.hold_down = new.hold_down
        self.rec.local_networks = self._local_networks()
        self.rec.local_addresses = tuple(self.own_addresses())
        self.rec.force = True
        if new.listen_port != old.listen_port or new.port_range != old.port_range or new.fwmark != old.fwmark:
            self.port = self._configure_port(self.rec.device)
            self.publish_port()
        self.sync_link_addresses()
        self.publish()
        self.state_dirty = True           # the file shows announce and addresses, bmx7 or not
        log.info("%s: configuration reloaded", self.iface)

    def rotate_key(self) -> None:
        self.install_key(keys.rotate(self.cfg, self.rundir))
        log.info("%s: new key pair, public key %s", self.iface, self.keypair.public_key)

    def install_key(self, pair: keys.KeyPair) -> None:
        """Put a new key pair on the link and advertise it."""
        self.keypair = pair
        self.rec.own_public_key = pair.public_key
        self.rec.force = True
        self.backend.configure_device(self.cfg.ifname, pair.private_path, self.port, self.cfg.fwmark)
        self.rec.refresh_device()
        if self.own:
            self.publish()
        self.state_dirty = True

    def handle_signals(self) -> bool:
        """True if a signal was handled: the loop then acts on it now, not at the next tick."""
        handled = bool(self.pending)
        while self.pending:
            name = self.pending.pop()
            try:
                if name in ("SIGTERM", "SIGINT"):
                    self.stopping = True
                elif name == "SIGHUP":
                    self.reload()
                elif name == "SIGUSR1":
                    self.rotate_key()
            except (HelperError, keys.KeyStoreError, config.ConfigError) as exc:
                log.error("%s: %s", self.iface, exc)   # keep running with the old settings
        return handled

    # ---- loop -------------------------------------------------------------------------------
    def catch_signals(self) -> None:
        """Installed before setup: a SIGHUP or SIGTERM arriving early is queued, not fatal."""
        for sig, name in _CAUGHT.items():
            _signal.signal(sig, lambda _s, _f, name=name: self.pending.add(name))

    def run(self) -> None:
        rsock, wsock = sockets.socketpair()
        rsock.setblocking(False)
        wsock.setblocking(False)
        old_fd = _signal.set_wakeup_fd(wsock.fileno())
        dirs = [os.path.join(self.cfg.bmx7_dir, "sms", "rcvdSms"),
                os.path.join(self.cfg.bmx7_dir, "json", "originators"),
                self.cfg.bmx7_dir]
        watcher = Watcher(dirs)
        sel = self.sel = Poller()
        sel.register(rsock.fileno(), "signal")
        if watcher.fileno() is not None:
            sel.register(watcher.fileno(), "watch")
        self.ubus = _connect_ubus(self.rundir)
        next_tick = 0.0
        try:
            while not self.stopping:
                now = self.mono()
                if now >= next_tick:
                    watcher.read()
                    self.check_clock(self.clock())
                    self.check_bmx7(now)
                    self.reconcile(now)
                    self.write_state(now)
                    next_tick = now + min(TICK, watcher.poll_interval or TICK)
                # a state file being written: only look for events between its slices
                timeout = 0.0 if self.writer is not None else max(0.0, next_tick - self.mono())
                if self.ubus is not None:
                    timeout = min(timeout, 0.2)
                for name in sel.ready(timeout):
                    if name == "signal":
                        try:
                            while rsock.recv(64):
                                pass
                        except BlockingIOError:
                            pass
                    elif name == "stats":
                        self.read_stats()
                    elif watcher.read():
                        self.reconcile(self.mono())
                if self.handle_signals():
                    next_tick = 0.0
                if self.ubus is not None:
                    self.ubus.poll(0)
                if self.writer is not None and not self.stopping:
                    self.write_more()
        finally:
            _signal.set_wakeup_fd(old_fd)
            watcher.close()
            if self.stats is not None:
                self.stats.close()
                self.stats = None
            self.sel = None
            self.shutdown()

    def shutdown(self) -> None:
        """Withdraw the advertisement; the link and its peers stay until the interface goes down."""
        try:
            self.bmx.withdraw(self.cfg.sms_name)
        except Exception as exc:  # bmx7 gone: nothing left to withdraw from
            log.info("%s: withdraw: %s", self.iface, exc)
        if self.netifd:
            from . import netifd
            netifd.withdraw_port(self.iface)
        self.record_clock(self.clock())
        self.state_dirty = True
        self.stopping = True
        self.write_state(self.mono(), force=True)
        log.info("%s: stopped", self.iface)


class _StatsRead:
    """A `wg show dump` running beside the event loop, parsed as it comes (wg.DumpReader)."""

    def __init__(self, child, writes: int, reuse=None):
        self.child = child              # a spawn.Child
        self.fd = child.stdout_fd
        self.writes = writes            # backend.writes when it started
        # reuse: the model's peers when the dump started (wg.DumpReader; one a step replaced
        # since is an equal or a stale copy, and take_dump corrects the latter: not exact)
        self.reader = wg.DumpReader(reuse)
        self.started = time.monotonic()

    def overdue(self) -> bool:
        return time.monotonic() - self.started > STATS_TIMEOUT

    def read(self) -> bool:
        """False at the end of its output."""
        chunk = os.read(self.fd, 1 << 18)
        if chunk:
            self.reader.feed(chunk)
        return bool(chunk)

    def finish(self, backend, ifname: str):
        returncode = self.child.wait()
        err = self.child.read_stderr().decode(errors="replace")
        self.close()
        return backend.dumped(ifname, returncode, self.reader, err)

    def close(self) -> None:
        self.child.close()


def _connect_ubus(rundir: str):
    try:
        from . import ubusadapter
    except ImportError:
        return None
    return ubusadapter.serve(rundir)


def _node_of_key(peers) -> dict[str, str]:
    """public key -> nodeId from a state file's "peers"; anything malformed is skipped."""
    return {p["public_key"]: p["node_id"] for p in peers if isinstance(p, dict)
            and isinstance(p.get("public_key"), str) and address.is_node_id(p.get("node_id"))} \
        if isinstance(peers, list) else {}


def _routes_of(value) -> set:
    """(network, table, metric) from a state file's "routes"; anything malformed is skipped."""
    def number(x):
        return x is None or isinstance(x, int) and not isinstance(x, bool)
    return {(net, table, metric) for net, table, metric in
            (r for r in value if isinstance(r, list) and len(r) == 3) if isinstance(net, str)
            and number(table) and number(metric)} if isinstance(value, list) else set()


def _clock():
    """time.time, shifted by BMX7WG_CLOCK_OFFSET seconds, and by DELTA more from AFTER seconds
    on with BMX7WG_CLOCK_STEP=AFTER:DELTA: lets the lab fake a router whose clock is behind,
    or is stepped (NTP) while the helper runs. WireGuard and the rest of the system keep the
    real time, and so does the monotonic clock: unlike on a stepped router, handshakes made
    after the step carry stamps DELTA away from the helper's clock."""
    offset = float(os.environ.get("BMX7WG_CLOCK_OFFSET", "0") or 0)
    after, _, delta = os.environ.get("BMX7WG_CLOCK_STEP", "").partition(":")
    if not delta:
        return (lambda: time.time() + offset) if offset else time.time
    step_at, delta = time.monotonic() + float(after), float(delta)
    return lambda: time.time() + offset + (delta if time.monotonic() >= step_at else 0.0)


def run(iface: str, confdir: str | None, savedir: str | None, rundir: str, netifd: bool = False) -> int:
    helper = Helper(iface, confdir, savedir, rundir, netifd=netifd, clock=_clock())
    helper.catch_signals()
    try:
        helper.setup()
    except (HelperError, keys.KeyStoreError) as exc:
        code = getattr(exc, "code", "KEY_ERROR")
        log.error("%s: %s: %s", iface, code, exc)
        if netifd:
            from . import netifd as netifd_mod
            netifd_mod.report_failure(iface, code, str(exc))
        return 2
    helper.run()
    return 0
