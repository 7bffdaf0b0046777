"""Tell the daemon when bmx7's directories change: inotify (libc.py), else polling.

The watched directories may not exist yet (bmx7 not started) and may be deleted and
recreated (bmx7 wipes rcvdSms at start), so every read() also re-checks each directory:
a missing one is looked for again, a replaced one (other inode) is watched anew, and
both count as a change. Without inotify (no libc symbol, no fd left, or env
BMX7WG_NO_INOTIFY=1), read() compares a snapshot of names, sizes and mtimes instead;
a directory that inotify refuses to watch is polled the same way.

Usage: select on fileno() (when not None) with a timeout of poll_interval, then call
read(); when it returns True, re-read whatever the caller derives from those dirs.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterable

from . import libc
from .log import log


IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = 0o2000000                    # O_CLOEXEC on every Linux architecture we run on

WATCH_MASK = (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE
              | IN_DELETE_SELF | IN_MOVE_SELF)
_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED    # the watch no longer sees `path`
_EVENT = struct.Struct("iIII")            # wd, mask, cookie, len (then len bytes of name)
_MISSING = (errno.ENOENT, errno.ENOTDIR)

DEFAULT_POLL_INTERVAL = 1.0               # polling, or a directory still to be found
IDLE_RECHECK_INTERVAL = 10.0              # everything watched: only a safety re-check


def _load_inotify():
    """libc's inotify functions, or None when they cannot be loaded."""
    for name in (None, "libc.so.6", "libc.so"):           # glibc; musl (OpenWrt): libc.so
        try:
            return (libc.function(name, "inotify_init1", libc.INT),
                    libc.function(name, "inotify_add_watch", libc.INT, libc.CHAR_P, libc.UINT32),
                    libc.function(name, "inotify_rm_watch", libc.INT, libc.INT))
        except (OSError, AttributeError):
            continue
    return None


class Watcher:
    """Change notification for a few directories (see the module docstring)."""

    def __init__(self, paths: Iterable[str | os.PathLike], poll_interval: float =
                 DEFAULT_POLL_INTERVAL, inotify: bool | None = None):
        self.paths = list(dict.fromkeys(os.fspath(p) for p in paths))
        self._closed = False
        self.interval = poll_interval
        if inotify is None:
            inotify = os.environ.get("BMX7WG_NO_INOTIFY", "") not in ("1", "yes", "true")
        self._fd: int | None = None
        self._funcs = _load_inotify() if inotify else None
        self._wd: dict[str, int] = {}             # path -> watch descriptor
        self._ino: dict[str, tuple[int, int]] = {}  # path -> (dev, ino) of the watched dir
        self._path_of: dict[int, str] = {}
        self._snap: dict[str, object] = {}        # path -> snapshot (unwatched paths)
        if self._funcs:
            fd = self._funcs[0](IN_NONBLOCK | IN_CLOEXEC)
            if fd < 0:
                log.warning("inotify_init1: %s; polling instead", os.strerror(libc.get_errno()))
                self._funcs = None
            else:
                self._fd = fd
        for path in self.paths:
            if not self._add_watch(path):
                self._snap[path] = _snapshot(path)

    # ------------------------------------------------------------ public

    def fileno(self) -> int | None:
        """An fd that becomes readable on changes; None when polling."""
        return self._fd

    @property
    def polling(self) -> bool:
        return self._fd is None

    @property
    def poll_interval(self) -> float:
        """Call read() at least this often (seconds), even when fileno() stays quiet."""
        if self._fd is None or len(self._wd) < len(self.paths):
            return self.interval
        return max(self.interval, IDLE_RECHECK_INTERVAL)

    def read(self) -> bool:
        """Consume pending events and re-check the directories; True if anything changed."""
        if self._closed:
            return False
        changed = self._drain() if self._fd is not None else False
        for path in self.paths:
            if path in self._wd and _identity(path) != self._ino[path]:
                self._drop_watch(path)            # deleted or replaced, events or not
                changed = True
            if path not in self._wd:
                if self._add_watch(path):
                    self._snap.pop(path, None)
                    changed = True                # (re)appeared: its contents are new to us
                    continue
                snap = _snapshot(path)
                if snap != self._snap.get(path):
                    self._snap[path] = snap
                    changed = True
        return changed

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._funcs = None
        self._closed = True

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ inotify

    def _add_watch(self, path: str) -> bool:
        if self._fd is None or self._funcs is None:
            return False
        ident = _identity(path)
        if ident is None:
            return False
        wd = self._funcs[1](self._fd, os.fsencode(path), WATCH_MASK | IN_ONLYDIR)
        if wd < 0:
            err = libc.get_errno()
            if err not in _MISSING:
                log.warning("cannot watch %s: %s; polling it", path, os.strerror(err))
            return False
        # the watch follows the inode; bind it to what `path` named when it was added
        self._wd[path], self._ino[path], self._path_of[wd] = wd, ident, path
        return True

    def _drop_watch(self, path: str) -> None:
        wd = self._wd.pop(path)
        self._ino.pop(path, None)
        self._path_of.pop(wd, None)
        if self._fd is not None and self._funcs is not None:
            self._funcs[2](self._fd, wd)          # fails harmlessly if already gone
        self._snap[path] = None                   # compare against "missing" from now on

    def _drain(self) -> bool:
        changed = False
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return changed
            except InterruptedError:
                continue
            if not buf:
                return changed
            pos = 0
            while pos + _EVENT.size <= len(buf):
                wd, mask, _cookie, namelen = _EVENT.unpack_from(buf, pos)
                pos += _EVENT.size + namelen
                path = self._path_of.get(wd)
                if mask & IN_Q_OVERFLOW:
                    changed = True
                elif path is None:
                    continue                      # late event of a watch already dropped
                elif mask & _GONE:
                    self._drop_watch(path)
                    changed = True
                else:
                    changed = True


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _snapshot(path: str) -> object:
    """What polling compares: None if not a directory, else every entry's identity."""
    try:
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            return None
        entries = []
        with os.scandir(path) as it:
            for entry in it:
                try:
                    est = entry.stat(follow_symlinks=False)
                except OSError:
                    continue                      # vanished while we looked
                entries.append((entry.name, est.st_ino, est.st_size, est.st_mtime_ns))
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, tuple(sorted(entries)))
