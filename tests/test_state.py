"""state.py: the state file, written a slice of peers at a time and renamed into place."""

from __future__ import annotations

import json
import os
import stat

import pytest

from bmx7wg import state


def peers(n: int) -> list[dict]:
    return [{"node_id": f"{i:056X}", "rx": i} for i in range(n)]


def test_a_file_is_written_a_slice_at_a_time_and_appears_whole(tmp_path):
    rundir = str(tmp_path)
    state.write(rundir, "wgmesh", {"interface": "wgmesh", "peers": []})
    items = peers(250)
    made = []
    writer = state.Writer(rundir, "wgmesh", {"interface": "wgmesh", "updated": 2},
                          {"peers": (items, lambda p: made.append(p) or p)})
    steps = 1
    while not writer.step():
        assert len(made) == steps * state.Writer.SLICE                          # one slice per step
        assert state.read(rundir, "wgmesh") == {"interface": "wgmesh", "peers": []}   # readers: the old file
        steps += 1
    assert steps == -(-len(items) // state.Writer.SLICE) and made == items
    assert state.read(rundir, "wgmesh") == {"interface": "wgmesh", "updated": 2, "peers": items}
    assert stat.S_IMODE(os.stat(state.path(rundir, "wgmesh")).st_mode) == 0o644
    assert not os.path.exists(state.path(rundir, "wgmesh") + ".tmp")


def test_an_item_whose_entry_is_none_is_left_out(tmp_path):
    items = peers(5)
    state.Writer(str(tmp_path), "wgmesh", {}, {"peers": (items, lambda p: None if p["rx"] % 2 else p)}).finish()
    assert state.read(str(tmp_path), "wgmesh") == {"peers": [items[0], items[2], items[4]]}
    state.Writer(str(tmp_path), "wgmesh", {}, {"peers": (items, lambda p: None)}).finish()
    assert state.read(str(tmp_path), "wgmesh") == {"peers": []}


def test_long_lists_follow_the_head_in_their_order_and_slices_run_across_them(tmp_path):
    owned, routes = [f"K{i:042d}=" for i in range(30)], [("fd00::/64", None, 5)] * 15
    writer = state.Writer(str(tmp_path), "wgmesh", {"b": 1, "a": {"x": [1]}},
                          {"owned": (owned, None), "empty": ([], None), "routes": (routes, list),
                           "peers": (peers(3), None)})
    assert writer.items == 48
    steps = 1
    while not writer.step():
        steps += 1
    assert steps == -(-48 // state.Writer.SLICE)         # slices run across the lists
    with open(state.path(str(tmp_path), "wgmesh")) as fh:
        text = fh.read()
    assert text.startswith('{"a":{"x":[1]},"b":1,"owned":["K0')
    assert json.loads(text) == {"a": {"x": [1]}, "b": 1, "owned": owned, "empty": [],
                                "routes": [list(r) for r in routes], "peers": peers(3)}
    state.Writer(str(tmp_path), "wgmesh", {}).finish()
    assert state.read(str(tmp_path), "wgmesh") == {}


def test_a_failing_entry_leaves_the_last_file_and_no_temp_file(tmp_path):
    state.write(str(tmp_path), "wgmesh", {"interface": "wgmesh", "n": 1})

    def broken(p):
        if p["rx"] == 150:
            raise RuntimeError("boom")
        return p

    writer = state.Writer(str(tmp_path), "wgmesh", {"interface": "wgmesh"}, {"peers": (peers(200), broken)})
    with pytest.raises(RuntimeError):
        while not writer.step():
            pass
    assert state.read(str(tmp_path), "wgmesh") == {"interface": "wgmesh", "n": 1, "peers": []}
    assert not os.path.exists(state.path(str(tmp_path), "wgmesh") + ".tmp")


def test_an_abandoned_writer_leaves_the_last_file(tmp_path):
    state.write(str(tmp_path), "wgmesh", {"n": 1})
    writer = state.Writer(str(tmp_path), "wgmesh", {"n": 2}, {"peers": (peers(300), None)})
    writer.step()
    writer.abandon()
    assert state.read(str(tmp_path), "wgmesh") == {"n": 1, "peers": []}
    assert not os.path.exists(state.path(str(tmp_path), "wgmesh") + ".tmp")


def test_compact_json_and_interfaces(tmp_path):
    state.write(str(tmp_path), "b", {"z": 1, "a": [1, 2]})
    state.write(str(tmp_path), "a", {})
    with open(state.path(str(tmp_path), "b")) as fh:
        assert fh.read() == json.dumps({"a": [1, 2], "z": 1, "peers": []}, separators=(",", ":"))
    assert state.interfaces(str(tmp_path)) == ["a", "b"]
    assert state.interfaces(str(tmp_path / "missing")) == []
