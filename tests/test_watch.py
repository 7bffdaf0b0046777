import os
import select
import shutil
import time

import pytest

from bmx7wg import watch
from bmx7wg.watch import Watcher


def readable(w, timeout=1.0):
    """Whether the inotify fd signals pending events within `timeout` seconds."""
    r, _, _ = select.select([w.fileno()], [], [], timeout)
    return bool(r)


@pytest.fixture
def dirs(tmp_path):
    a, b = tmp_path / "rcvdSms", tmp_path / "sendSms"
    a.mkdir()
    b.mkdir()
    return a, b


@pytest.fixture
def inotify_watcher(dirs, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    w = Watcher(dirs)
    yield w
    w.close()


# ---------------------------------------------------------------- inotify

def test_inotify_is_used(inotify_watcher):
    w = inotify_watcher
    assert isinstance(w.fileno(), int) and not w.polling
    assert os.get_inheritable(w.fileno()) is False           # IN_CLOEXEC
    assert os.get_blocking(w.fileno()) is False              # IN_NONBLOCK
    assert w.read() is False                                  # nothing happened yet
    assert not readable(w, 0.05)
    assert w.poll_interval >= watch.IDLE_RECHECK_INTERVAL     # all watched: only re-checks


def test_inotify_create_write_rename_delete(inotify_watcher, dirs):
    w, (a, b) = inotify_watcher, dirs
    steps = [
        lambda: (a / "X:wgtun").write_bytes(b"one"),                    # IN_CREATE/CLOSE_WRITE
        lambda: (a / "X:wgtun").write_bytes(b"two"),                    # IN_CLOSE_WRITE only
        lambda: (b / ".tmp").write_bytes(b"x"),
        lambda: os.rename(b / ".tmp", b / "wgtun"),                     # IN_MOVED_FROM/TO
        lambda: (a / "X:wgtun").unlink(),                               # IN_DELETE
        lambda: os.rename(b / "wgtun", a / "moved"),                    # across the two dirs
    ]
    for step in steps:
        step()
        assert readable(w), step
        assert w.read() is True
        assert w.read() is False                                        # fully drained
        assert not readable(w, 0.02)


def test_inotify_ignores_other_directories(inotify_watcher, tmp_path):
    w = inotify_watcher
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_bytes(b"x")
    (tmp_path / "file-beside").write_bytes(b"x")
    assert not readable(w, 0.05)
    assert w.read() is False


def test_inotify_drains_a_burst(inotify_watcher, dirs):
    w, (a, _) = inotify_watcher, dirs
    for i in range(3000):                                   # more than one 64 KiB read
        (a / f"f{i}").write_bytes(b"")
    assert w.read() is True
    assert w.read() is False
    assert not readable(w, 0.02)


def test_inotify_directory_deleted_and_recreated(inotify_watcher, dirs):
    w, (a, _) = inotify_watcher, dirs
    (a / "old").write_bytes(b"x")
    assert w.read() is True
    shutil.rmtree(a)                                        # bmx7 wipes rcvdSms at start
    assert readable(w)
    assert w.read() is True
    assert w.poll_interval == watch.DEFAULT_POLL_INTERVAL   # must look for it again
    assert w.read() is False                                # still missing: no news
    a.mkdir()
    assert w.read() is True                                 # found again: watch re-added
    assert w.poll_interval >= watch.IDLE_RECHECK_INTERVAL
    (a / "new").write_bytes(b"y")                           # and events flow again
    assert readable(w)
    assert w.read() is True


def test_inotify_directory_replaced_between_reads(inotify_watcher, dirs):
    w, (a, _) = inotify_watcher, dirs
    shutil.rmtree(a)
    a.mkdir()                                               # both before the next read()
    assert w.read() is True
    (a / "f").write_bytes(b"x")
    assert readable(w)
    assert w.read() is True


def test_inotify_directory_renamed_away(inotify_watcher, dirs, tmp_path):
    w, (a, _) = inotify_watcher, dirs
    os.rename(a, tmp_path / "away")
    assert w.read() is True
    (tmp_path / "away" / "f").write_bytes(b"x")             # no longer the watched path
    assert w.read() is False
    a.mkdir()
    assert w.read() is True
    (a / "g").write_bytes(b"x")
    assert readable(w) and w.read() is True


def test_inotify_directory_missing_at_start(tmp_path, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    missing = tmp_path / "run" / "bmx7" / "sms" / "rcvdSms"
    with Watcher([missing]) as w:
        assert w.fileno() is not None
        assert w.poll_interval == watch.DEFAULT_POLL_INTERVAL
        assert w.read() is False
        missing.mkdir(parents=True)
        assert w.read() is True
        (missing / "f").write_bytes(b"x")
        assert readable(w) and w.read() is True


def test_inotify_path_is_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    f = tmp_path / "notadir"
    f.write_bytes(b"x")
    with Watcher([f]) as w:
        assert w.read() is False
        f.unlink()
        f.mkdir()
        assert w.read() is True


def test_unwatchable_directory_is_polled(dirs, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    a, b = dirs
    real = watch._load_inotify()

    def add_refusing_a(fd, path, mask):
        if path == os.fsencode(a):
            import ctypes
            ctypes.set_errno(28)                       # ENOSPC: watch limit reached
            return -1
        return real[1](fd, path, mask)

    monkeypatch.setattr(watch, "_load_inotify", lambda: (real[0], add_refusing_a, real[2]))
    with Watcher([a, b]) as w:
        assert w.fileno() is not None
        assert w.poll_interval == watch.DEFAULT_POLL_INTERVAL
        assert w.read() is False
        (a / "f").write_bytes(b"x")                    # seen by polling a
        assert w.read() is True
        (b / "g").write_bytes(b"x")                    # seen by inotify on b
        assert readable(w) and w.read() is True


# ---------------------------------------------------------------- polling

@pytest.fixture
def polling_watcher(dirs, monkeypatch):
    monkeypatch.setenv("BMX7WG_NO_INOTIFY", "1")
    w = Watcher(dirs, poll_interval=0.2)
    yield w
    w.close()


def test_polling_mode_by_env(polling_watcher):
    w = polling_watcher
    assert w.fileno() is None and w.polling
    assert w.poll_interval == 0.2
    assert w.read() is False


def test_polling_sees_changes(polling_watcher, dirs):
    w, (a, b) = polling_watcher, dirs
    (a / "X:wgtun").write_bytes(b"one")
    assert w.read() is True and w.read() is False
    # same size, new content, rewritten in place: only the file's mtime changes
    time.sleep(0.01)
    with open(a / "X:wgtun", "r+b") as f:
        f.write(b"two")
    assert w.read() is True and w.read() is False
    (b / ".tmp").write_bytes(b"x")
    assert w.read() is True
    os.rename(b / ".tmp", b / "wgtun")
    assert w.read() is True
    (a / "X:wgtun").unlink()
    assert w.read() is True and w.read() is False


def test_polling_directory_deleted_and_recreated(polling_watcher, dirs):
    w, (a, _) = polling_watcher, dirs
    shutil.rmtree(a)
    assert w.read() is True
    assert w.read() is False
    a.mkdir()
    assert w.read() is True
    (a / "f").write_bytes(b"x")
    assert w.read() is True


def test_polling_when_libc_has_no_inotify(dirs, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    monkeypatch.setattr(watch, "_load_inotify", lambda: None)
    with Watcher(dirs) as w:
        assert w.fileno() is None
        (dirs[0] / "f").write_bytes(b"x")
        assert w.read() is True


def test_polling_when_inotify_init_fails(dirs, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    real = watch._load_inotify()
    monkeypatch.setattr(watch, "_load_inotify", lambda: (lambda flags: -1, real[1], real[2]))
    with Watcher(dirs) as w:
        assert w.fileno() is None
        (dirs[1] / "f").write_bytes(b"x")
        assert w.read() is True


def test_explicit_inotify_false(dirs, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    with Watcher(dirs, inotify=False) as w:
        assert w.fileno() is None


# ---------------------------------------------------------------- close

def test_close_releases_fd(dirs, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    w = Watcher(dirs)
    fd = w.fileno()
    os.fstat(fd)
    w.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert w.fileno() is None
    w.close()                                           # idempotent
    (dirs[0] / "f").write_bytes(b"x")
    assert w.read() is False
