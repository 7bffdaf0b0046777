"""entry.parse_run (the helper's click-free path) reads a `run` line exactly as click does,
and hands every other line to click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bmx7wg import cli, daemon, entry

SRC = Path(__file__).resolve().parents[1] / "src"

RUN_LINES = [
    ["run", "wgmesh"],
    ["run", "--netifd", "wgmesh"],
    ["run", "wgmesh", "--netifd"],
    ["--rundir", "/tmp/r", "run", "wgmesh"],
    ["--rundir=/tmp/r", "--confdir", "/tmp/c", "-v", "run", "--netifd", "lan2"],
    ["--savedir", "/tmp/s", "--verbose", "run", "x"],
    ["--confdir", "", "run", "x"],
]

OTHER_LINES = [
    [], ["status"], ["run"], ["run", "--help"], ["--help"], ["run", "a", "b"], ["run", "--bogus", "a"],
    ["--bogus", "run", "a"], ["--rundir"], ["--rundir", "/x", "peers"], ["run", "--netifd", "--netifd", "a"],
    ["-v", "check-config", "run"],
]


def click_reading(argv, monkeypatch) -> dict:
    seen = {}

    def fake_run(iface, confdir, savedir, rundir, netifd=False):
        seen.update(iface=iface, confdir=confdir, savedir=savedir, rundir=rundir, netifd=netifd)
        return 0

    monkeypatch.setattr(daemon, "run", fake_run)
    result = CliRunner().invoke(cli.main, argv)
    assert result.exit_code == 0, result.output
    return seen


@pytest.mark.parametrize("argv", RUN_LINES)
@pytest.mark.parametrize("env", [{}, {"BMX7WG_RUNDIR": "/env/run", "BMX7WG_CONFDIR": "/env/conf"},
                                 {"BMX7WG_RUNDIR": ""}])
def test_run_lines_read_as_click_reads_them(argv, env, monkeypatch):
    for name in ("BMX7WG_RUNDIR", "BMX7WG_CONFDIR", "BMX7WG_SAVEDIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours = entry.parse_run(argv)
    assert ours is not None
    verbose = ours.pop("verbose")
    assert verbose == ("-v" in argv or "--verbose" in argv)
    assert ours == click_reading(argv, monkeypatch)


@pytest.mark.parametrize("argv", OTHER_LINES)
def test_other_lines_go_to_click(argv):
    assert entry.parse_run(argv) is None


# What the helper process does without, for its memory (each one's cost is in the module
# that avoids it): click (entry.py), the stdlib modules below (sockets.py, spawn.py,
# record.py, advert.py, port.py, bmx7.py's _Changes, charset.py, jsontext.py, daemon.py's
# _CAUGHT, poller.py, libc.py).
AVOIDED = ("click", "socket", "subprocess", "dataclasses", "base64", "random", "weakref",
           "re", "enum", "json", "signal", "selectors", "ctypes")


def test_helper_process_never_imports_what_it_avoids(tmp_path):
    """The real entry, a `run` line: the daemon starts (and fails on the missing section)
    with none of AVOIDED loaded."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "network").write_text("config interface 'lan'\n\toption proto 'static'\n")
    code = ("import sys; from bmx7wg import entry\n"
            "try:\n    entry.main()\nexcept SystemExit as e:\n"
            f"    print(e.code, *sorted(set({AVOIDED!r}) & sys.modules.keys()))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code, "--confdir", str(conf), "--rundir", str(tmp_path / "run"),
                          "run", "wgmesh"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert out.stdout.split() == ["2"], out.stderr
    assert "wgmesh" in out.stderr
