"""spawn: the helper's child processes (`wg`, `ip`, `bmx7`, `ubus`) without subprocess."""

from __future__ import annotations

import errno
import os
import sys
import time

import pytest

from bmx7wg import spawn


@pytest.fixture(autouse=True, params=["posix_spawn", "fork_exec"])
def start(request, monkeypatch):
    """Every test both ways a child is started: posix_spawn, and fork and exec (long argvs)."""
    if request.param == "fork_exec":
        monkeypatch.setattr(spawn, "FORK_EXEC_ABOVE", 0)
    return request.param


def test_output_both_ways_beyond_a_pipe_buffer_and_the_exit_code():
    data = os.urandom(1 << 20)                      # 16 pipe buffers: feeding and reading interleave
    script = ("import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d); "
              "sys.stderr.write('x' * 200000); sys.exit(3)")
    result = spawn.run([sys.executable, "-c", script], input=data)
    assert result.stdout == data and result.stderr == b"x" * 200000 and result.returncode == 3


def test_stdin_is_dev_null_unless_given(tmp_path):
    assert spawn.run(["cat"]).stdout == b""
    (tmp_path / "in").write_bytes(b"from a file\n")
    with open(tmp_path / "in", "rb") as fh:
        assert spawn.run(["cat"], stdin_fd=fh.fileno(), text=True).stdout == "from a file\n"


def test_text_env_and_a_signal_exit():
    result = spawn.run(["sh", "-c", 'printf "%s" "$ONLY"; kill -TERM $$'], env={"ONLY": "é", "PATH": os.defpath},
                       text=True)
    assert result.stdout == "é" and result.returncode == -15


def test_a_missing_command_and_an_argv_beyond_the_kernel_limit_raise_oserror():
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        spawn.run(["no-such-command-bmx7wg"])
    assert set(os.listdir("/proc/self/fd")) <= before       # no pipe left open
    with pytest.raises(OSError) as exc:
        spawn.run(["true", "x" * (1 << 21)])            # one argument over MAX_ARG_STRLEN
    assert exc.value.errno == errno.E2BIG


def test_a_timeout_kills_the_child_and_leaves_no_descriptor():
    before = set(os.listdir("/proc/self/fd"))
    began = time.monotonic()
    with pytest.raises(spawn.Timeout, match="sleep: no answer after 0.3 s"):
        spawn.run(["sleep", "30"], timeout=0.3)
    assert time.monotonic() - began < 5
    assert set(os.listdir("/proc/self/fd")) <= before


def test_a_timeout_holds_for_a_child_that_closed_its_outputs():
    began = time.monotonic()
    with pytest.raises(spawn.Timeout):
        spawn.run(["sh", "-c", "exec >&- 2>&-; sleep 30"], timeout=0.3)
    assert time.monotonic() - began < 5


def test_the_child_gets_sigpipe_back_and_none_of_the_helpers_descriptors(tmp_path):
    # Python ignores SIGPIPE; a child left so would spin on EPIPE instead of dying
    ignored = spawn.run(["grep", "SigIgn", "/proc/self/status"], text=True).stdout.split()[1]
    assert not int(ignored, 16) & (1 << (13 - 1))      # SIGPIPE (13) not ignored
    with open("/proc/self/status") as fh:             # while this process does ignore it
        assert int(next(line for line in fh if line.startswith("SigIgn")).split()[1], 16) & (1 << 12)
    leaked = os.open(tmp_path / "leaked", os.O_WRONLY | os.O_CREAT)    # as a C library might
    os.set_inheritable(leaked, True)
    try:
        with open(tmp_path / "secret", "w"):         # Python opens close-on-exec
            fds = spawn.run(["sh", "-c", "ls /proc/$$/fd"], text=True).stdout.split()
    finally:
        os.close(leaked)
    assert sorted(map(int, fds)) == [0, 1, 2]


def test_a_started_child_read_by_the_caller():
    child = spawn.Child(["sh", "-c", "echo out; echo err >&2"])
    out = b""
    while chunk := os.read(child.stdout_fd, 4096):
        out += chunk
    assert out == b"out\n" and child.wait() == 0 and child.read_stderr() == b"err\n"
    child.close()
    assert child.stdout_fd is None and child.stderr_fd is None


def test_without_proc_a_missing_command_is_still_told_apart(monkeypatch):
    """_inheritable reads /proc/self/fd; without /proc the child still starts."""
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: (_ for _ in ()).throw(FileNotFoundError(p))
                        if p == "/proc/self/fd" else real(p))
    assert spawn.run(["echo", "hi"]).stdout == b"hi\n"
    with pytest.raises(FileNotFoundError):
        spawn.run(["no-such-command-bmx7wg"])


def test_a_long_argv_is_started_by_fork_and_exec_with_its_arguments_intact(monkeypatch):
    started = []
    monkeypatch.setattr(spawn, "_fork_exec", lambda *a, _real=spawn._fork_exec: started.append(1) or _real(*a))
    words = [f"w{i}" for i in range(spawn.FORK_EXEC_ABOVE + 1)]
    assert spawn.run(["printf", "%s\\n", *words], text=True).stdout.split() == words
    assert started == [1]
