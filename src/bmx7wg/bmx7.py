"""Client of bmx7's file interface (json + sms plugins) and of `bmx7 -c`.

What bmx7 really does (../shared/bmx7/README.md), and how this module copes:
- json files are rewritten in place, not atomically: a read can catch a half-written file,
  so reads are retried, and an originator that stays unreadable keeps its last good value.
- every new description of a sender deletes and rewrites all its rcvdSms files: a file can
  vanish between listdir and open, or be 0 bytes for a moment; both mean "absent for now"
  (the caller must not treat a brief absence as a withdrawal).
- a file written in place in sendSms is published as 0 bytes first: write a temp file in
  the same directory and rename it.
- runtime registrations (`syncSms=<name>`) are lost when bmx7 restarts: call register()
  again whenever bmx7 (re)appears. A duplicate registration is a no-op.
- after SIGKILL, pid/sock/json files stay: liveness is a successful connect to `sock`.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections.abc import Sequence

from . import charset, ints, jsontext, libc, sockets, spawn, watch
from .charset import made_of
from .address import is_node_id
from .keyset import KeySet
from .fsutil import unlink_quietly
from .model import NodeInfo, Originator
from .log import log


DEFAULT_RUNTIME_DIR = "/var/run/bmx7"
MAX_SMS_SIZE = 300            # bmx7's limit with refSms=0; far larger files crash senders
_METRIC_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}

_ABSENT = object()            # file not there
_UNREADABLE = object()        # there, but not (yet) valid JSON


def valid_sms_name(name: object) -> bool:
    """bmx7's rule: 1-15 chars of [A-Za-z0-9_.-], no leading or trailing '.'."""
    return made_of(name, charset.NAME, 1, 15) and not name.startswith(".") and not name.endswith(".")


def parse_metric(value: object) -> int:
    """bmx7's metric text ("999M", "257G", "12K", "800") in bits/s; "-1", "0", junk -> 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    if not isinstance(value, str):
        return 0
    text = value.strip()
    unit = text[-1:] if text[-1:] in ("K", "M", "G", "T") else ""
    digits = text[:len(text) - len(unit)]
    return ints.shared(int(digits) * _METRIC_UNITS[unit]) if made_of(digits, charset.DIGITS) else 0


class Bmx7:
    """One bmx7 daemon, seen through its runtime directory."""

    read_attempts = 4          # a half-written json file is normally complete within ms
    retry_delay = 0.01

    def __init__(self, runtime_dir: str | os.PathLike = DEFAULT_RUNTIME_DIR,
                 bmx7_cmd: str | Sequence[str] = "bmx7", timeout: float = 5.0):
        self.runtime_dir = os.fspath(runtime_dir)
        self.bmx7_cmd = _split_command(bmx7_cmd) if isinstance(bmx7_cmd, str) else list(bmx7_cmd)
        self.timeout = timeout
        self._own: NodeInfo | None = None
        self._originators: dict[str, Originator] = {}
        self._orig_stat: dict[str, tuple] = {}
        self._sms_cache: dict[str, tuple[tuple, bytes]] = {}
        # With inotify, only the files named in its events are read again (see _Changes).
        self._orig_changes = _Changes(os.path.join(self.json_dir, "originators"))
        self._rcvd_changes = _Changes(self.rcvd_dir)
        self._rcvd: dict[str, dict[str, bytes]] = {}   # sms name -> {node_id: data}
        self._rcvd_dirty: dict[str, set[str]] = {}      # sms name -> node ids to read again
        self._rcvd_full: set[str] = set()               # sms names to list again as a whole
        self._sms_seen: dict[str, dict[str, bytes]] = {}   # without inotify: last result per name
        # Which nodes' entries changed, in order (see changed_since); results carry `version`.
        self.version = 0
        self._logs: dict[str, dict[str, int]] = {"received": {}, "originators": {}}
        self._forgotten = {"received": 0, "originators": 0}   # changes up to these are gone

    # ------------------------------------------------------------ paths

    @property
    def send_dir(self) -> str:
        return os.path.join(self.runtime_dir, "sms", "sendSms")

    @property
    def rcvd_dir(self) -> str:
        return os.path.join(self.runtime_dir, "sms", "rcvdSms")

    @property
    def json_dir(self) -> str:
        return os.path.join(self.runtime_dir, "json")

    # ------------------------------------------------------------ json plugin

    def own(self) -> NodeInfo | None:
        """The own node from json/status; None if absent (the last good value if torn)."""
        data = self._read_json(os.path.join(self.json_dir, "status"))
        if data is _ABSENT:
            self._own = None
            return None
        info = _node_info(data)
        if info is None:
            log.debug("json/status unreadable, keeping previous value")
            return self._own
        self._own = info
        return info

    def changed_since(self, version: int, kind: str) -> KeySet | None:
        """Node ids whose entry in a `kind` ("received" or "originators") result is another
        object (or came or went) than in a result of that kind with this `version` (the
        results' attribute): a caller comparing results finds the changes without walking
        every node. None when they are no longer all known: compare the results instead.

        The changes up to `version` are forgotten: the daemon has one reader, which asks
        with its last result's version each time, and a log kept of every node was two
        dicts of an int per node (0.6 MB at 5,000 nodes). A second reader lagging behind
        the first gets None, never a wrong answer."""
        if version < self._forgotten[kind]:
            return None
        log = self._logs[kind]
        found = KeySet()
        for node_id, changed_at in reversed(log.items()):
            if changed_at <= version:
                break
            found.add(node_id)
        if len(found) < len(log):
            self._logs[kind] = {n: v for n, v in log.items() if v > version}
            self._forgotten[kind] = version
        return found

    def _note(self, kind: str, node_id: str) -> None:
        self.version += 1
        log = self._logs[kind]
        log.pop(node_id, None)
        log[node_id] = self.version

    def _snapshot(self, entries: dict) -> dict:
        snap = _Snapshot(entries)
        snap.source, snap.version = self, self.version
        return snap

    def _note_diff(self, kind: str, before: dict, after: dict) -> None:
        for node_id, value in after.items():
            if before.get(node_id) is not value:
                self._note(kind, node_id)
        for node_id in before.keys() - after.keys():
            self._note(kind, node_id)

    def originators(self) -> dict[str, Originator]:
        """Every node in json/originators/, keyed by nodeId (the own node included).

        Only files changed since the last call are parsed again: the ones inotify names,
        or without inotify the ones whose stat changed (see _settled). An unchanged
        originator is the same object as in the previous result.
        """
        changes = self._orig_changes.take()
        if changes is False:
            before = self._originators
            self._originators_by_stat()
            self._note_diff("originators", before, self._originators)
            return self._snapshot(self._originators)
        if changes is None:                               # start, overflow, new directory
            self._orig_stat = {}
            try:
                listed = [e.name for e in os.scandir(os.path.join(self.json_dir, "originators"))]
            except (FileNotFoundError, NotADirectoryError):
                listed = []
            changes = {*listed, *self._originators}
        base = os.path.join(self.json_dir, "originators")
        for node_id in changes:
            if not is_node_id(node_id):
                continue
            node_id = sys.intern(node_id)
            data = _read_json_once(os.path.join(base, node_id))
            if data is _ABSENT:
                if self._originators.pop(node_id, None) is not None:
                    self._note("originators", node_id)
                continue
            orig = _originator(data, node_id)
            if orig is None:      # torn (its next write brings an event) or not ours: keep
                log.debug("originator %s unreadable, %s", node_id,
                          "keeping previous value" if node_id in self._originators else "skipped")
            elif orig != self._originators.get(node_id):
                self._originators[node_id] = orig
                self._note("originators", node_id)
        return self._snapshot(self._originators)

    def _originators_by_stat(self) -> dict[str, Originator]:
        try:
            entries = list(os.scandir(os.path.join(self.json_dir, "originators")))
        except (FileNotFoundError, NotADirectoryError):
            self._originators, self._orig_stat = {}, {}
            return {}
        result: dict[str, Originator] = {}
        stats: dict[str, tuple] = {}
        now = time.time()
        for entry in entries:
            node_id = entry.name
            if not is_node_id(node_id):
                continue
            key = _stat_key(entry)
            if key is None:
                continue                                  # purged between listdir and stat
            cached = self._originators.get(node_id)
            if cached is not None and self._orig_stat.get(node_id) == key and _settled(key, now):
                result[node_id], stats[node_id] = cached, key
                continue
            node_id = sys.intern(node_id)
            data = self._read_json(entry.path)
            if data is _ABSENT:
                continue
            orig = _originator(data, node_id)
            if orig is None:
                orig = cached
                log.debug("originator %s unreadable, %s", node_id,
                          "keeping previous value" if orig else "skipped")
            else:
                stats[node_id] = key
                if orig == cached:
                    orig = cached                         # unchanged: the same object
            if orig is not None:
                result[node_id] = orig
        self._originators, self._orig_stat = result, stats
        return dict(result)

    def _read_json(self, path: str) -> object:
        """Parsed JSON, _ABSENT, or _UNREADABLE after a few tries."""
        for attempt in range(self.read_attempts):
            if attempt:
                time.sleep(self.retry_delay)
            try:
                raw = _slurp(path)
            except FileNotFoundError:
                return _ABSENT
            except OSError:
                continue
            try:
                return jsontext.loads(raw)
            except jsontext.JsonError:            # torn write (or 0 bytes): retry
                continue
        return _UNREADABLE

    # ------------------------------------------------------------ sms plugin

    def received(self, sms_name: str) -> dict[str, bytes]:
        """Contents of every `<NODEID>:<sms_name>` in rcvdSms (the own node's too).

        A file that vanishes before it is read, or is 0 bytes (being rewritten), is left
        out for now. Only files changed since the last call are read again (inotify's
        names, or without inotify a changed stat).
        """
        _require_sms_name(sms_name)
        changes = self._rcvd_changes.take()
        if changes is False:
            before = self._sms_seen.get(sms_name, {})
            result = self._sms_seen[sms_name] = self._received_by_stat(sms_name, before)
            self._note_diff("received", before, result)
            return self._snapshot(result)
        if changes is None:                               # start, overflow, new directory
            self._rcvd_full = set(self._rcvd)
        else:
            for fname in changes:
                node_id, _, name = fname.partition(":")
                if name in self._rcvd_dirty:
                    self._rcvd_dirty[name].add(node_id)
        if sms_name not in self._rcvd:
            self._rcvd[sms_name], self._rcvd_dirty[sms_name] = {}, set()
            self._rcvd_full.add(sms_name)
        files, dirty = self._rcvd[sms_name], self._rcvd_dirty[sms_name]
        if sms_name in self._rcvd_full:
            self._rcvd_full.discard(sms_name)
            dirty.update(files)
            try:
                dirty.update(e.name.partition(":")[0] for e in os.scandir(self.rcvd_dir)
                             if e.name.endswith(":" + sms_name))
            except (FileNotFoundError, NotADirectoryError):
                pass
        base = os.fspath(self.rcvd_dir)
        for node_id in dirty:
            if not is_node_id(node_id):
                continue
            node_id = sys.intern(node_id)
            try:
                data = _slurp(os.path.join(base, f"{node_id}:{sms_name}"))
            except OSError:                               # vanished, or not a regular file
                data = b""
            if data:
                if files.get(node_id) != data:
                    files[node_id] = data
                    self._note("received", node_id)
            elif files.pop(node_id, None) is not None:
                self._note("received", node_id)
        # a new set, not dirty.clear(): a cleared set keeps its table, 0.4 MB after a full
        # read of 5,000 nodes
        self._rcvd_dirty[sms_name] = set()
        return self._snapshot(files)

    def _received_by_stat(self, sms_name: str, before: dict[str, bytes]) -> dict[str, bytes]:
        try:
            entries = list(os.scandir(self.rcvd_dir))
        except (FileNotFoundError, NotADirectoryError):
            self._sms_cache = {}
            return {}
        result: dict[str, bytes] = {}
        cache: dict[str, tuple[tuple, bytes]] = {}
        now = time.time()
        for entry in entries:
            node_id, sep, name = entry.name.partition(":")
            if not sep or name != sms_name or not is_node_id(node_id):
                continue
            key = _stat_key(entry)
            if key is None:
                continue
            hit = self._sms_cache.get(entry.name)
            if hit is not None and hit[0] == key and _settled(key, now):
                data = hit[1]
            else:
                try:
                    with open(entry.path, "rb") as fh:
                        data = fh.read()
                except OSError:                           # vanished, or not a regular file
                    continue
            if data:
                node_id = sys.intern(node_id)
                if before.get(node_id) == data:
                    data = before[node_id]                # unchanged: the same object
                result[node_id] = data
                cache[entry.name] = (key, data)
        self._sms_cache = cache
        return result

    def published(self, name: str) -> bytes | None:
        """What sendSms/<name> holds now, or None."""
        _require_sms_name(name)
        try:
            return _slurp(os.path.join(self.send_dir, name))
        except OSError:
            return None

    def publish(self, name: str, data: bytes, max_size: int = MAX_SMS_SIZE) -> bool:
        """Atomically place `data` in sendSms/<name>; False if it was already there.

        Does not register the name: call register() too (and again after bmx7 restarts).
        """
        _require_sms_name(name)
        data = bytes(data)
        if len(data) > max_size:
            raise ValueError(f"sms {name} is {len(data)} bytes, limit {max_size}")
        if self.published(name) == data:
            return False
        os.makedirs(self.send_dir, exist_ok=True)
        # a leading '.' is never a valid sms name, so bmx7 cannot pick up the temp file
        tmp = os.path.join(self.send_dir, f".{name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(self.send_dir, name))
        except BaseException:
            unlink_quietly(tmp)
            raise
        return True

    def withdraw(self, name: str) -> bool:
        """Remove sendSms/<name> and unregister it; False if bmx7 could not be told."""
        _require_sms_name(name)
        unlink_quietly(os.path.join(self.send_dir, name))
        return self._control(f"syncSms=-{name}")

    def register(self, name: str) -> bool:
        """`bmx7 runtimeDir=<dir> -c syncSms=<name>`; False if bmx7 is not running/failed."""
        _require_sms_name(name)
        return self._control(f"syncSms={name}")

    def _control(self, command: str) -> bool:
        argv = [*self.bmx7_cmd, f"runtimeDir={self.runtime_dir}", "-c", command]
        try:
            proc = spawn.run(argv, timeout=self.timeout)
        except (OSError, spawn.Timeout) as e:
            log.warning("bmx7 -c %s: %s", command, e)
            return False
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            log.warning("bmx7 -c %s failed (exit %d)%s", command, proc.returncode,
                        f": {err[-1]}" if err else "")
            return False
        return True

    # ------------------------------------------------------------ daemon

    def alive(self) -> bool:
        """True if bmx7 accepts a connection on its control socket (stale files do not)."""
        with sockets.Socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as s:
            s.settimeout(1.0)
            try:
                s.connect(os.path.join(self.runtime_dir, "sock"))
            except OSError:
                return False
        return True

    def pid(self) -> int | None:
        """The pid bmx7 wrote at start (it may be stale: see alive())."""
        try:
            text = _slurp(os.path.join(self.runtime_dir, "pid")).decode().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if made_of(text, charset.DIGITS, 1, 10) and int(text) > 0 else None


def _split_command(command: str) -> list[str]:
    if not any(c in command for c in "'\"\\"):
        return command.split()       # the usual "bmx7": no need to load shlex (0.1 MB)
    import shlex
    return shlex.split(command)


IN_MODIFY = 0x00000002       # a write: a reader may have caught the file half written


class _Snapshot(dict):
    """A result of received()/originators(): `source` (the Bmx7) and `version`, for
    Bmx7.changed_since."""

    __slots__ = ("source", "version")


class _Changes:
    """Which names in one directory changed since the last take(), from inotify.

    take() answers a set of names, None when everything must be read again (first call,
    event queue overflow, directory deleted or replaced: a new watch is in place before the
    caller reads), or False when there is no watch (no inotify, BMX7WG_NO_INOTIFY=1,
    directory missing): then the caller falls back to comparing stats.
    Any event counts (created, written, closed, deleted, moved), so a file caught half
    written is named again when its writer goes on or closes it.
    """

    MASK = (watch.IN_CREATE | watch.IN_DELETE | watch.IN_MOVED_FROM | watch.IN_MOVED_TO
            | watch.IN_CLOSE_WRITE | IN_MODIFY | watch.IN_DELETE_SELF | watch.IN_MOVE_SELF
            | watch.IN_ONLYDIR)
    _funcs = None

    def __init__(self, path: os.PathLike):
        self.path = os.fspath(path)
        self.fd: int | None = None
        self.wd: int | None = None
        self.ident = None
        if os.environ.get("BMX7WG_NO_INOTIFY", "") in ("1", "yes", "true"):
            return
        if _Changes._funcs is None:
            _Changes._funcs = watch._load_inotify() or ()
        if _Changes._funcs:
            fd = _Changes._funcs[0](watch.IN_NONBLOCK | watch.IN_CLOEXEC)
            if fd >= 0:
                self.fd = fd

    def __del__(self, _close=os.close):
        # not weakref.finalize: the weakref module is 0.1 MB of the helper's memory.
        # _close bound here: at interpreter exit the module's globals may be gone first.
        fd = getattr(self, "fd", None)             # None too if __init__ failed before it
        if fd is not None:
            _close(fd)

    def take(self) -> set[str] | None | bool:
        if self.fd is None:
            return False
        ident = watch._identity(self.path)
        if self.wd is not None and ident == self.ident:
            names = self._drain()
            if names is not None:
                return names
        self._drain()
        if self.wd is not None:
            self._funcs[2](self.fd, self.wd)          # the old inode's watch; fails if gone
        self.wd, self.ident = None, None
        if ident is None:
            return False
        wd = self._funcs[1](self.fd, os.fsencode(self.path), self.MASK)
        if wd < 0:
            log.debug("inotify on %s: %s", self.path, os.strerror(libc.get_errno()))
            return False
        self.wd, self.ident = wd, ident
        return None

    def _drain(self) -> set[str] | None:
        """Names from the pending events; None if a change of the directory itself or an
        overflow means names are not enough."""
        names: set[str] | None = set()
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            except InterruptedError:
                continue
            pos = 0
            while pos + _EVENT.size <= len(buf):
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size:pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                if mask & (watch.IN_Q_OVERFLOW | watch.IN_IGNORED | watch.IN_DELETE_SELF
                           | watch.IN_MOVE_SELF):
                    names = None
                elif wd == self.wd and names is not None and name:
                    names.add(os.fsdecode(name))


_EVENT = struct.Struct("iIII")


def _slurp(path: str) -> bytes:
    """The whole file: os-level calls, a third of what open().read() costs."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks) if len(chunks) != 1 else chunks[0]
            chunks.append(chunk)
    finally:
        os.close(fd)


def _read_json_once(path: str) -> object:
    """Parsed JSON, _ABSENT, or _UNREADABLE (torn: the writer's next event names it again)."""
    try:
        raw = _slurp(path)
    except FileNotFoundError:
        return _ABSENT
    except OSError:
        return _UNREADABLE
    try:
        return jsontext.loads(raw)
    except jsontext.JsonError:
        return _UNREADABLE


def _stat_key(entry: os.DirEntry) -> tuple | None:
    try:
        st = entry.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


SETTLE = 0.1   # s; several times the kernel's coarse timestamp tick (4-10 ms)


def _settled(key: tuple, now: float) -> bool:
    """A file last changed over SETTLE ago with the same stat is the same file.

    bmx7 rewrites rcvdSms and json files in place or delete+create; timestamps are only
    jiffy-precise, so a same-size rewrite inside one tick can keep the stat: recent files
    are always read again. Content, not mtime, is what counts (facts: compare content).
    """
    return now - key[2] / 1e9 > SETTLE


def _require_sms_name(name: object) -> None:
    if not valid_sms_name(name):
        raise ValueError(f"bad sms name {name!r}: want 1-15 of [A-Za-z0-9_.-], "
                         "not starting or ending with '.'")


def _node_info(data: object) -> NodeInfo | None:
    status = data.get("status") if isinstance(data, dict) else None
    if not isinstance(status, dict) or not is_node_id(status.get("nodeId")):
        return None
    return NodeInfo(node_id=status["nodeId"], name=_str(status.get("name")),
                    primary_ip=_str(status.get("primaryIp")))


def _originator(data: object, node_id: str) -> Originator | None:
    if not isinstance(data, dict) or data.get("nodeId") != node_id:
        return None
    return Originator(node_id=node_id, name=_str(data.get("name")),
                      primary_ip=_str(data.get("primaryIp")),
                      dev=sys.intern(_str(data.get("dev"), "---")),       # a few devices, many nodes
                      metric=parse_metric(data.get("metric")), hops=_int(data.get("hops"), 0),
                      last_ref=_int(data.get("lastRef"), 1 << 30))


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _int(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and made_of(value.strip(), charset.DIGITS):
        return int(value)
    return default
