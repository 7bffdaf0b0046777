import gc
import json
import os
import shutil
import socket
import stat
import threading
import time

import pytest

from conftest import SHARED
from bmx7wg import bmx7 as bmx7mod
from bmx7wg.bmx7 import Bmx7, parse_metric, valid_sms_name
from bmx7wg.model import NodeInfo

FIXTURES = SHARED / "bmx7" / "fixtures"
NODE_A = "EAD40A7766B30932298102810C08D48C4F24C92585CCC0B88D951EE5"
NODE_B = "E4FAA5093B067E0CFBCDC775B5EC898EB32623078408B56AA72E39EB"
NODE_C = "9F293C788E17A5EE3C7EB9DC3C4CED90B8CF3FBB1DAB0ADAB62979D2"
NODE_D = "1F114F89C5CB7F20FA40E7C014132E6B74BCC7D5CF8BF4405B6F16B1"


def copy_runtime(tmp_path, name):
    """A writable copy of a real bmx7 runtime dir (the fixtures are read-only)."""
    dst = tmp_path / "rt"
    shutil.copytree(FIXTURES / name / "runtime", dst)
    for root, dirs, files in os.walk(dst):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    os.chmod(dst, 0o755)
    return dst


@pytest.fixture
def steady(tmp_path):
    return copy_runtime(tmp_path, "nodeD-steady")


# ---------------------------------------------------------------- json/status

def test_own_from_real_status(steady):
    own = Bmx7(steady).own()
    assert own == NodeInfo(NODE_D, "nodeD", "fd70:1f11:4f89:c5cb:7f20:fa40:e7c0:1413")


def test_own_after_sigterm_fixture(tmp_path):
    rt = copy_runtime(tmp_path, "nodeD-after-SIGTERM")
    assert Bmx7(rt).own().node_id == NODE_D


def test_own_absent(steady):
    (steady / "json" / "status").unlink()
    assert Bmx7(steady).own() is None
    assert Bmx7(steady / "nonexistent").own() is None


def test_own_half_written(steady):
    status = steady / "json" / "status"
    full = status.read_bytes()
    b = Bmx7(steady)
    b.retry_delay = 0.001
    good = b.own()
    status.write_bytes(full[:len(full) // 2])
    assert b.own() == good                         # torn: keep the last good value
    assert Bmx7(steady).own() is None              # torn, nothing known before
    status.write_bytes(b"")
    assert b.own() == good                         # 0 bytes: being rewritten
    status.unlink()
    assert b.own() is None                         # really gone


def test_own_retry_sees_completed_rewrite(steady):
    status = steady / "json" / "status"
    full = status.read_bytes()
    status.write_bytes(full[:100])
    b = Bmx7(steady)
    b.read_attempts, b.retry_delay = 100, 0.01
    # bmx7 finishes its in-place rewrite a little later
    timer = threading.Timer(0.05, status.write_bytes, [full])
    timer.start()
    try:
        t0 = time.monotonic()
        own = b.own()
    finally:
        timer.join()
    assert own is not None and own.node_id == NODE_D
    assert time.monotonic() - t0 >= 0.04           # it did wait for the rewrite


# ---------------------------------------------------------------- originators

def test_originators_real_steady(steady):
    origs = Bmx7(steady).originators()
    assert set(origs) == {NODE_A, NODE_B, NODE_C, NODE_D}
    for node_id, o in origs.items():
        raw = json.loads((steady / "json" / "originators" / node_id).read_text())
        assert (o.name, o.primary_ip, o.dev, o.hops, o.last_ref) == (
            raw["name"], raw["primaryIp"], raw["dev"], raw["hops"], raw["lastRef"])
    assert origs[NODE_D].metric == 257 * 10**9 and origs[NODE_D].dev == "---"
    assert not origs[NODE_D].reachable                       # own node: no next hop
    assert origs[NODE_C].metric == 999 * 10**6 and origs[NODE_C].reachable
    assert origs[NODE_B].metric == 706 * 10**6 and origs[NODE_B].hops == 2
    assert origs[NODE_A].metric == 576 * 10**6 and origs[NODE_A].hops == 3


def test_originators_after_purge(tmp_path):
    origs = Bmx7(copy_runtime(tmp_path, "nodeD-A-purged")).originators()
    assert set(origs) == {NODE_B, NODE_C, NODE_D}


def test_originators_absent_dir(tmp_path):
    rt = copy_runtime(tmp_path, "nodeD-after-SIGTERM")   # bmx7 removed json/originators
    assert Bmx7(rt).originators() == {}


def test_originator_half_written_keeps_previous(steady):
    path = steady / "json" / "originators" / NODE_C
    full = path.read_bytes()
    b = Bmx7(steady)
    b.retry_delay = 0.001
    before = b.originators()
    path.write_bytes(full[:len(full) // 3])
    after = b.originators()
    assert after == before                                    # NODE_C from the cache
    fresh = Bmx7(steady)
    fresh.retry_delay = 0.001
    assert set(fresh.originators()) == {NODE_A, NODE_B, NODE_D}   # no cache: left out
    # a real change is picked up once the file is whole again
    changed = json.loads(full)
    changed["metric"], changed["lastRef"] = "0", 42
    path.write_text(json.dumps(changed))
    o = b.originators()[NODE_C]
    assert (o.metric, o.last_ref, o.reachable) == (0, 42, False)


def test_originator_written_on_route_add_is_reachable(steady):
    # Real bmx7 (json plugin route hook) writes a new route's file before it sets metric and
    # hops: the new dev with metric "-1" and hops 0, until the next rewrite (up to 60 s later).
    path = steady / "json" / "originators" / NODE_A
    raw = json.loads(path.read_text())
    raw["metric"], raw["hops"], raw["lastRef"] = "-1", 0, 0
    path.write_text(json.dumps(raw))
    o = Bmx7(steady).originators()[NODE_A]
    assert (o.dev, o.metric, o.hops) == (raw["dev"], 0, 0)
    assert o.reachable
    raw["dev"] = "---"                                         # no next hop: not reachable
    path.write_text(json.dumps(raw))
    assert not Bmx7(steady).originators()[NODE_A].reachable


def test_originator_deleted_is_dropped_from_cache(steady):
    path = steady / "json" / "originators" / NODE_A
    full = path.read_bytes()
    b = Bmx7(steady)
    b.retry_delay = 0.001
    assert NODE_A in b.originators()
    path.unlink()
    assert NODE_A not in b.originators()
    path.write_bytes(full[:50])                                # back, but torn
    assert NODE_A not in b.originators()                       # no stale cache resurrected


def test_originators_ignore_foreign_and_mismatched_files(steady):
    d = steady / "json" / "originators"
    (d / "README").write_text("{}")
    (d / NODE_A.lower()).write_bytes((d / NODE_A).read_bytes())
    wrong = "0" * 56                                           # file name != nodeId inside
    (d / wrong).write_bytes((d / NODE_A).read_bytes())
    b = Bmx7(steady)
    b.retry_delay = 0.001
    assert set(b.originators()) == {NODE_A, NODE_B, NODE_C, NODE_D}


@pytest.mark.parametrize("text,bits", [
    ("999M", 999_000_000), ("257G", 257_000_000_000), ("576M", 576_000_000),
    ("12K", 12_000), ("800", 800), ("-1", 0), ("0", 0), ("", 0), ("junk", 0),
    ("1.5G", 0), (None, 0), (12345, 12345), (-1, 0), (True, 0), ("MBitTime", 0),
])
def test_parse_metric(text, bits):
    assert parse_metric(text) == bits


def test_every_real_metric_parses():
    for f in FIXTURES.glob("*/runtime/json/originators/*"):
        metric = json.loads(f.read_text())["metric"]
        assert parse_metric(metric) > 0, (f, metric)


# ---------------------------------------------------------------- rcvdSms

def test_received_real_files(steady):
    got = Bmx7(steady).received("wgtun")
    rcvd = steady / "sms" / "rcvdSms"
    assert set(got) == {NODE_A, NODE_B, NODE_C, NODE_D}
    for node_id, data in got.items():
        assert data == (rcvd / f"{node_id}:wgtun").read_bytes()
    assert Bmx7(steady).received("info") == {NODE_B: b"hostname=nodeB role=relay\n"}
    assert Bmx7(steady).received("other") == {}


def test_received_ignores_foreign_names(steady):
    rcvd = steady / "sms" / "rcvdSms"
    (rcvd / f"{NODE_A}:wgtunX").write_bytes(b"x")
    (rcvd / f"{NODE_A.lower()}:wgtun").write_bytes(b"x")
    (rcvd / f"{NODE_A[:-1]}:wgtun").write_bytes(b"x")
    (rcvd / "wgtun").write_bytes(b"x")
    (rcvd / f"{NODE_A}:wgtun.tmp").write_bytes(b"x")
    got = Bmx7(steady).received("wgtun")
    assert set(got) == {NODE_A, NODE_B, NODE_C, NODE_D} and b"x" not in got.values()


def test_received_zero_bytes_is_absent(steady):
    (steady / "sms" / "rcvdSms" / f"{NODE_B}:wgtun").write_bytes(b"")
    assert set(Bmx7(steady).received("wgtun")) == {NODE_A, NODE_C, NODE_D}


def test_received_binary_byte_exact(steady):
    blob = bytes(range(256))[:300]
    (steady / "sms" / "rcvdSms" / f"{NODE_B}:wgtun").write_bytes(blob)
    assert Bmx7(steady).received("wgtun")[NODE_B] == blob


def test_received_file_deleted_between_listing_and_reading(steady, monkeypatch):
    rcvd = steady / "sms" / "rcvdSms"
    real_listdir, real_scandir = os.listdir, os.scandir

    def scandir_then_bmx7_deletes(path):
        entries = list(real_scandir(path))
        if os.fspath(path) == os.fspath(rcvd):
            (rcvd / f"{NODE_C}:wgtun").unlink()             # bmx7 rewrites NODE_C's files
        return iter(entries)

    monkeypatch.setattr(bmx7mod.os, "scandir", scandir_then_bmx7_deletes)
    got = Bmx7(steady).received("wgtun")
    assert set(got) == {NODE_A, NODE_B, NODE_D}
    assert f"{NODE_C}:wgtun" not in real_listdir(rcvd)


def test_received_without_rcvd_dir(tmp_path):
    rt = copy_runtime(tmp_path, "nodeD-after-SIGTERM")   # no rcvdSms after SIGTERM
    assert Bmx7(rt).received("wgtun") == {}


def test_received_rejects_bad_name(steady):
    with pytest.raises(ValueError, match="bad sms name"):
        Bmx7(steady).received("../wgtun")


# ---------------------------------------------------------------- sendSms

def test_publish_atomic_rename(steady):
    b = Bmx7(steady)
    target = steady / "sms" / "sendSms" / "wgtun"
    old_ino = target.stat().st_ino
    assert b.publish("wgtun", b"\xb7\x77\x10new") is True
    assert target.read_bytes() == b"\xb7\x77\x10new"
    st = target.stat()
    assert st.st_ino != old_ino                      # replaced by rename, not rewritten
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert os.listdir(target.parent) == ["wgtun"]    # no temp file left
    assert b.published("wgtun") == b"\xb7\x77\x10new"


def test_publish_identical_is_not_rewritten(steady):
    b = Bmx7(steady)
    target = steady / "sms" / "sendSms" / "wgtun"
    assert b.publish("wgtun", target.read_bytes()) is False
    ino = target.stat().st_ino
    assert b.publish("wgtun", target.read_bytes()) is False
    assert target.stat().st_ino == ino


def test_publish_reader_never_sees_partial_file(steady):
    b = Bmx7(steady)
    target = steady / "sms" / "sendSms" / "wgtun"
    versions = [bytes([i]) * 300 for i in range(1, 40)]
    b.publish("wgtun", versions[0])
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(target.read_bytes())
            except FileNotFoundError:
                seen.append(None)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for v in versions[1:]:
            b.publish("wgtun", v)
            time.sleep(0.001)
    finally:
        stop.set()
        t.join()
    assert seen and all(s in versions for s in seen), {len(s or b"") for s in seen}


def test_publish_creates_send_dir(tmp_path):
    b = Bmx7(tmp_path / "fresh")
    assert b.publish("wgtun", b"abc")
    assert (tmp_path / "fresh" / "sms" / "sendSms" / "wgtun").read_bytes() == b"abc"


def test_publish_refuses_oversize_and_bad_names(steady):
    b = Bmx7(steady)
    with pytest.raises(ValueError, match="301 bytes, limit 300"):
        b.publish("wgtun", bytes(301))
    for bad in (".wgtun", "wgtun.", "a" * 16, "", "a/b", "x y"):
        with pytest.raises(ValueError, match="bad sms name"):
            b.publish(bad, b"x")
    assert (steady / "sms" / "sendSms" / "wgtun").read_bytes().startswith(b'{"v":1')


# ---------------------------------------------------------------- bmx7 -c

FAKE_BMX7 = """#!/bin/sh
for a in "$@"; do printf '%s\\n' "$a"; done >> "$FAKE_BMX7_LOG"
echo --- >> "$FAKE_BMX7_LOG"
case "$FAKE_BMX7_MODE" in
  refused) echo "ERROR connect: Connection refused" >&2; exit 1 ;;
  hang) exec sleep 30 ;;
esac
exit 0
"""


@pytest.fixture
def fake_bmx7(tmp_path, monkeypatch):
    """A `bmx7` on a temp PATH that records each call's argv."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "bmx7"
    exe.write_text(FAKE_BMX7)
    exe.chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_BMX7_LOG", str(log))
    monkeypatch.delenv("FAKE_BMX7_MODE", raising=False)

    def calls():
        if not log.exists():
            return []
        return [c.strip("\n").split("\n") for c in log.read_text().split("---\n") if c.strip()]
    return calls


def test_register_exact_command_line(steady, fake_bmx7):
    assert Bmx7(steady).register("wgtun") is True
    assert fake_bmx7() == [[f"runtimeDir={steady}", "-c", "syncSms=wgtun"]]
    assert Bmx7(steady).register("wgtun") is True            # duplicate: still fine
    assert len(fake_bmx7()) == 2


def test_register_fails_when_daemon_down(steady, fake_bmx7, monkeypatch):
    monkeypatch.setenv("FAKE_BMX7_MODE", "refused")
    assert Bmx7(steady).register("wgtun") is False
    assert len(fake_bmx7()) == 1


def test_register_times_out(steady, fake_bmx7, monkeypatch):
    monkeypatch.setenv("FAKE_BMX7_MODE", "hang")
    t0 = time.monotonic()
    assert Bmx7(steady, timeout=0.5).register("wgtun") is False
    assert time.monotonic() - t0 < 5


def test_register_missing_command(steady):
    assert Bmx7(steady, bmx7_cmd=str(steady / "no-such-bmx7")).register("wgtun") is False


def test_register_with_explicit_command_list(steady, fake_bmx7, tmp_path):
    exe = tmp_path / "bin" / "bmx7"
    assert Bmx7(steady, bmx7_cmd=["sh", str(exe)]).register("a.b-c_9") is True
    assert fake_bmx7() == [[f"runtimeDir={steady}", "-c", "syncSms=a.b-c_9"]]


def test_register_rejects_bad_name_without_running(steady, fake_bmx7):
    for bad in ("-wgtun" + "x" * 10, ".x", "x.", "a b", "", "é"):
        with pytest.raises(ValueError):
            Bmx7(steady).register(bad)
    assert fake_bmx7() == []


def test_withdraw_removes_file_and_unregisters(steady, fake_bmx7):
    b = Bmx7(steady)
    assert b.withdraw("wgtun") is True
    assert not (steady / "sms" / "sendSms" / "wgtun").exists()
    assert fake_bmx7() == [[f"runtimeDir={steady}", "-c", "syncSms=-wgtun"]]
    assert b.withdraw("wgtun") is True                        # already gone: fine


@pytest.mark.parametrize("name,ok", [
    ("wgtun", True), ("a", True), ("a" * 15, True), ("a" * 16, False), ("", False),
    ("a.b", True), ("-x", True), ("x_y-Z.9", True), (".x", False), ("x.", False),
    (".", False), ("a b", False), ("a/b", False), ("a:b", False), ("é", False),
    ("wgtun\n", False), (None, False), (b"wgtun", False),
])
def test_valid_sms_name(name, ok):
    assert valid_sms_name(name) is ok


# ---------------------------------------------------------------- liveness

def test_alive_with_real_listener(steady):
    path = steady / "sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(str(path))
        srv.listen(4)
        assert Bmx7(steady).alive() is True
    finally:
        srv.close()
    # the daemon died without cleaning up (SIGKILL): the socket file stays
    assert path.exists() and stat.S_ISSOCK(path.stat().st_mode)
    assert Bmx7(steady).alive() is False


def test_alive_false_for_stale_fixture_and_odd_files(tmp_path):
    rt = copy_runtime(tmp_path, "nodeD-after-SIGKILL-stale")
    b = Bmx7(rt)
    assert b.alive() is False                                  # no sock at all
    (rt / "sock").write_text("")                               # a regular file
    assert b.alive() is False
    (rt / "sock").unlink()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)      # bound, never listening
    try:
        s.bind(str(rt / "sock"))
        assert b.alive() is False
    finally:
        s.close()
    assert b.pid() == int((FIXTURES / "nodeD-after-SIGKILL-stale" / "runtime" / "pid")
                          .read_text())                        # stale pid still readable


def test_pid(steady):
    b = Bmx7(steady)
    assert b.pid() == int((steady / "pid").read_text().strip()) == 25701
    for junk in ("", "abc", "-5", "0", "12 34", "²"):
        (steady / "pid").write_text(junk)
        assert b.pid() is None
    (steady / "pid").write_text("733\n")
    assert b.pid() == 733
    (steady / "pid").unlink()
    assert b.pid() is None


# ---------------------------------------------------------------- reading only what changed

def count_reads(monkeypatch):
    """Reads of the event-driven path (inotify), whatever the environment says."""
    reads = []
    real = bmx7mod._slurp

    def slurp(path):
        reads.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(bmx7mod, "_slurp", slurp)
    return reads


def test_a_dropped_reader_closes_its_inotify_descriptors(steady, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    b = Bmx7(steady)
    b.received("wgtun")
    b.originators()
    fds = [b._rcvd_changes.fd, b._orig_changes.fd]
    assert None not in fds
    for fd in fds:
        os.fstat(fd)
    del b
    gc.collect()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_received_reads_again_only_the_files_that_changed(steady, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    b = Bmx7(steady)
    first = b.received("wgtun")
    reads = count_reads(monkeypatch)
    path = steady / "sms" / "rcvdSms" / f"{NODE_B}:wgtun"
    same_size = bytes(len(first[NODE_B]))[:-1] + b"x"
    with open(path, "r+b") as fh:              # in place, same size, same tick: stat may not tell
        fh.write(same_size)
    assert b.received("wgtun") == {**first, NODE_B: same_size}
    assert reads == [f"{NODE_B}:wgtun"]
    assert b.received("wgtun") == {**first, NODE_B: same_size} and len(reads) == 1


def test_received_rcvd_dir_wiped_and_refilled(steady):
    """bmx7 wipes rcvdSms when it restarts: the new directory is read as a whole."""
    b = Bmx7(steady)
    b.received("wgtun")
    rcvd = steady / "sms" / "rcvdSms"
    shutil.rmtree(rcvd)
    assert b.received("wgtun") == {}
    rcvd.mkdir()
    (rcvd / f"{NODE_A}:wgtun").write_bytes(b"back")
    assert b.received("wgtun") == {NODE_A: b"back"}
    (rcvd / f"{NODE_C}:wgtun").write_bytes(b"new")
    (rcvd / f"{NODE_A}:wgtun").unlink()
    assert b.received("wgtun") == {NODE_C: b"new"}


def test_originators_read_again_only_when_changed(steady, monkeypatch):
    monkeypatch.delenv("BMX7WG_NO_INOTIFY", raising=False)
    b = Bmx7(steady)
    before = b.originators()
    reads = count_reads(monkeypatch)
    assert b.originators() == before and reads == []
    path = steady / "json" / "originators" / NODE_C
    raw = json.loads(path.read_text())
    raw["lastRef"] = 33
    path.write_text(json.dumps(raw))
    after = b.originators()
    assert reads == [NODE_C] and after[NODE_C].last_ref == 33
    assert all(after[n] is before[n] for n in before if n != NODE_C)


def test_without_inotify_stats_are_compared(steady, monkeypatch):
    monkeypatch.setenv("BMX7WG_NO_INOTIFY", "1")
    b = Bmx7(steady)
    first = b.received("wgtun")
    (steady / "sms" / "rcvdSms" / f"{NODE_B}:wgtun").write_bytes(b"changed")
    assert b.received("wgtun") == {**first, NODE_B: b"changed"}


def test_changed_since_names_the_changes_after_a_result_and_none_once_forgotten(steady):
    """The reconciler asks which nodes changed since its last result; the log behind the
    answer keeps only what a reader has not seen yet, so a lagging reader gets None (compare
    everything), never a short answer."""
    b = Bmx7(steady)
    first = b.received("wgtun")
    assert b.changed_since(0, "received") == set(first)
    (steady / "sms" / "rcvdSms" / f"{NODE_B}:wgtun").write_bytes(b"one")
    second = b.received("wgtun")
    assert b.changed_since(first.version, "received") == {NODE_B}
    (steady / "sms" / "rcvdSms" / f"{NODE_C}:wgtun").write_bytes(b"two")
    third = b.received("wgtun")
    assert b.changed_since(second.version, "received") == {NODE_C}
    assert b.changed_since(first.version, "received") is None      # NODE_B's change: forgotten
    assert b.changed_since(third.version, "received") == set()
    origs = b.originators()
    assert b.changed_since(0, "originators") == set(origs)
