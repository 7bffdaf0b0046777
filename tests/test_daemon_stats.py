"""daemon: the `wg show dump` read beside the event loop (_StatsRead), the state writer at
shutdown, and how peers added and removed are reported."""

from __future__ import annotations

import types

from bmx7wg import daemon, spawn, state, wg
from bmx7wg.model import NodeInfo
from bmx7wg.reconcile import StepResult


def test_output_read_in_chunks_then_parsed(tmp_path):
    dump = "priv\tPUB=\t51820\toff\n" + "".join(
        f"K{i:042d}=\t(none)\t[fd70::{i:x}]:51820\tfd77::{i:x}/128\t0\t0\t0\toff\n" for i in range(1, 3000))
    (tmp_path / "dump").write_text(dump)
    with open(tmp_path / "dump", "rb") as fh:
        child = spawn.Child(["cat"], stdin_fd=fh.fileno())
    known = wg.parse_dump(dump.splitlines()[0] + "\n" + dump.splitlines()[5] + "\n").peers
    read = daemon._StatsRead(child, writes=7, reuse=known)
    chunks = []
    feed = read.reader.feed
    read.reader.feed = lambda chunk: (chunks.append(len(chunk)), feed(chunk))
    while read.read():
        pass
    assert len(chunks) > 1            # bigger than one read: lines cut between chunks, parsed whole
    device = read.finish(wg.Backend(), "wgx")
    assert device.listen_port == 51820 and len(device.peers) == 2999
    assert device.peers[f"K{5:042d}="] is known[f"K{5:042d}="]     # the model's peer, not a copy
    assert device.peers[f"K{6:042d}="].allowed_ips == ("fd77::6/128",)
    assert read.writes == 7 and not read.overdue()


def test_a_dump_that_never_answers_is_overdue_and_killed(monkeypatch):
    child = spawn.Child(["sleep", "60"])
    read = daemon._StatsRead(child, writes=0)
    assert not read.overdue()
    monkeypatch.setattr(daemon, "STATS_TIMEOUT", -1.0)
    assert read.overdue()
    read.close()
    assert child.returncode == -9                    # killed and reaped
    assert child.stdout_fd is child.stderr_fd is None


def test_shutdown_writes_the_whole_state_file_in_place_of_one_half_written(tmp_path):
    helper = daemon.Helper("wgx", None, None, str(tmp_path))
    items = [{"node_id": f"{i:056X}"} for i in range(500)]
    helper.state_writer = lambda: state.Writer(str(tmp_path), "wgx", {"interface": "wgx"}, {"peers": (items, None)})
    helper.state_dirty, helper.next_state_write = True, 0.0
    helper.write_state(1.0)
    half = helper.writer
    assert half is not None and state.read(str(tmp_path), "wgx") is None      # one slice written so far
    helper.state_dirty = True
    helper.write_state(2.0, force=True)
    assert helper.writer is None
    assert state.read(str(tmp_path), "wgx") == {"interface": "wgx", "peers": items}


def test_a_state_file_that_fails_is_logged_and_tried_again(tmp_path, logged):
    helper = daemon.Helper("wgx", None, None, str(tmp_path))

    def broken(p):
        raise OSError(28, "No space left on device")

    helper.state_writer = lambda: state.Writer(str(tmp_path), "wgx", {}, {"peers": ([{"a": 1}], broken)})
    helper.state_dirty, helper.next_state_write = True, 0.0
    helper.write_state(1.0)
    assert helper.writer is None and helper.state_dirty is True
    assert logged.times("wgx: state file: [Errno 28] No space left on device") == 1
    assert state.read(str(tmp_path), "wgx") is None


def test_a_removed_peer_no_state_file_named_is_logged_by_key_without_an_event(tmp_path, logged):
    node = "AB" * 28
    helper = daemon.Helper("wgx", None, None, str(tmp_path))
    helper.rec = types.SimpleNamespace(known_originators={},
                                       step=lambda *a: StepResult(removed=["K" * 43 + "=", node]))
    helper.own = NodeInfo("CD" * 28, "me", "fd70::1")
    helper.bmx = types.SimpleNamespace(received=lambda name: {}, originators=lambda: {})
    helper.cfg = types.SimpleNamespace(sms_name="wgtun")
    events = []
    helper.ubus = types.SimpleNamespace(send_event=lambda name, data: events.append((name, data)))
    helper.reconcile(1.0)                      # no crash on a key where a nodeId was expected
    assert events == [("bmx7wg.peer", {"interface": "wgx", "node_id": node, "name": "", "action": "remove"})]
    assert logged.times("peer with key " + "K" * 43 + "= removed") == 1
    assert logged.times("peer ABABABAB removed") == 1


def test_what_a_state_file_tells_a_restart_skips_anything_malformed():
    node = "AB" * 28
    peers = [{"public_key": "K=", "node_id": node}, {"public_key": "L=", "node_id": "ab" * 28},
             {"public_key": None, "node_id": node}, "x", {"node_id": node}]
    assert daemon._node_of_key(peers) == {"K=": node}
    assert daemon._node_of_key({"K=": node}) == daemon._node_of_key(None) == {}

    good = [["10.1.0.0/16", None, None], ["0.0.0.0/0", 151, 5]]
    bad = [["x", "151", 5], ["y", True, None], ["z", None], "10.0.0.0/8", [1, None, None], None]
    assert daemon._routes_of(good + bad) == {("10.1.0.0/16", None, None), ("0.0.0.0/0", 151, 5)}
    assert daemon._routes_of("junk") == daemon._routes_of(None) == set()
