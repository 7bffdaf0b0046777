"""state.py: the state file, written atomically, here or by a forked child."""

from __future__ import annotations

import json
import os
import stat
import time

from bmx7wg import state


def wait_reaped(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = state.reaped(pid)
        if done is not None:
            return done
        time.sleep(0.01)
    raise AssertionError("state writer did not exit")


def test_child_writes_the_snapshot_built_from_its_copy(tmp_path):
    data = {"interface": "wgmesh", "peers": [{"node_id": "A" * 56}]}
    pid = state.write_in_child(str(tmp_path), "wgmesh", lambda: data)
    assert pid != os.getpid()
    data["peers"].append({"node_id": "B" * 56})      # after the fork: not in the file
    assert wait_reaped(pid) is True
    assert state.read(str(tmp_path), "wgmesh") == {"interface": "wgmesh", "peers": [{"node_id": "A" * 56}]}
    assert stat.S_IMODE(os.stat(state.path(str(tmp_path), "wgmesh")).st_mode) == 0o644
    assert state.reaped(pid) is False                 # reaped once; later calls: nothing to wait for


def test_a_failing_build_leaves_the_last_file_and_reports_it(tmp_path):
    state.write(str(tmp_path), "wgmesh", {"interface": "wgmesh", "n": 1})

    def broken():
        raise RuntimeError("boom")

    assert wait_reaped(state.write_in_child(str(tmp_path), "wgmesh", broken)) is False
    assert state.read(str(tmp_path), "wgmesh") == {"interface": "wgmesh", "n": 1}
    assert not os.path.exists(state.path(str(tmp_path), "wgmesh") + ".tmp")


def test_compact_json_and_interfaces(tmp_path):
    state.write(str(tmp_path), "b", {"z": 1, "a": [1, 2]})
    state.write(str(tmp_path), "a", {})
    with open(state.path(str(tmp_path), "b")) as fh:
        assert fh.read() == json.dumps({"a": [1, 2], "z": 1}, separators=(",", ":"))
    assert state.interfaces(str(tmp_path)) == ["a", "b"]
    assert state.interfaces(str(tmp_path / "missing")) == []
