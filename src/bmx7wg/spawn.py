"""Child processes (`wg`, `ip`, `bmx7`, `ubus`) without the subprocess module.

subprocess brings threading, locale and contextlib along: 0.6 MB of the helper's RSS on a
64-bit router, 0.45 MB on a 32-bit one, for two call shapes: run to completion with the
output captured (fed stdin, or with a timeout), and start one whose stdout the event loop
reads (the periodic stats dump). posix_spawn does both.

What subprocess did that this keeps: stdin is /dev/null unless given, SIGPIPE and SIGXFSZ
are default again in the child (Python ignores them), and no descriptor but 0-2 reaches the
child (close_fds): the helper's own are close-on-exec, and any other one a library left
inheritable is closed in the child (wireguard-go outlives the helper: it must not keep a
ubus socket open).
"""

from __future__ import annotations

import _signal
import os
import select
import time

_DEFAULT_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ)
# Above this many arguments a child is started by fork and exec (see _fork_exec).
FORK_EXEC_ABOVE = 1000


class Timeout(Exception):
    """The child ran longer than its timeout and was killed."""


class Result:
    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(argv: list[str], *, input: bytes | None = None, stdin_fd: int | None = None,
        timeout: float | None = None, env: dict | None = None, text: bool = False) -> Result:
    """Run argv to completion; its output as bytes, or as str with `text`. Raises OSError
    when it cannot start (FileNotFoundError when the command is missing, E2BIG when the
    argv is too long) and Timeout after `timeout` seconds."""
    child = Child(argv, input=input, stdin_fd=stdin_fd, env=env)
    try:
        out, err = child.communicate(timeout)
    finally:
        child.close()
    if text:
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
    return Result(child.returncode, out, err)


class Child:
    """A started child with its stdout and stderr on pipes (`stdout_fd`, `stderr_fd`)."""

    def __init__(self, argv: list[str], *, input: bytes | None = None, stdin_fd: int | None = None,
                 env: dict | None = None):
        self.argv, self.returncode, self._input = argv, None, input
        self.stdin_fd = self.stdout_fd = self.stderr_fd = None     # this end of the pipes
        opened = []                                                 # the child's ends
        try:
            if input is not None:
                child_in, self.stdin_fd = os.pipe()
                opened.append(child_in)
            elif stdin_fd is not None:
                child_in = stdin_fd
            else:
                child_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                opened.append(child_in)
            self.stdout_fd, child_out = os.pipe()
            opened.append(child_out)
            self.stderr_fd, child_err = os.pipe()
            opened.append(child_err)
            env = os.environ if env is None else env
            if len(argv) > FORK_EXEC_ABOVE:
                self.pid = _fork_exec(argv, env, (child_in, child_out, child_err))
            else:
                actions = [(os.POSIX_SPAWN_DUP2, child_in, 0), (os.POSIX_SPAWN_DUP2, child_out, 1),
                           (os.POSIX_SPAWN_DUP2, child_err, 2)]
                actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable()]
                self.pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions,
                                           setsigdef=_DEFAULT_SIGNALS)
        except BaseException:
            self._close_pipes()
            raise
        finally:
            for fd in opened:
                os.close(fd)

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        """Feed the input, read both outputs to their end, wait: (stdout, stderr)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks = {self.stdout_fd: [], self.stderr_fd: []}
        poller = select.poll()
        for fd in chunks:
            poller.register(fd, select.POLLIN)
        pending = memoryview(self._input or b"")
        if self.stdin_fd is not None:
            if pending:
                poller.register(self.stdin_fd, select.POLLOUT)
            else:
                self._close_stdin()
        open_fds = len(chunks) + (self.stdin_fd is not None)
        while open_fds:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                self._time_out(timeout)
            ready = poller.poll(None if wait is None else int(wait * 1000) + 1)
            for fd, _event in ready:
                if fd == self.stdin_fd:
                    try:
                        pending = pending[os.write(fd, pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(fd)
                        self._close_stdin()
                        open_fds -= 1
                    continue
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_fds -= 1
        while deadline is not None and self.poll() is None:   # outputs closed, still running
            if time.monotonic() >= deadline:
                self._time_out(timeout)
            time.sleep(0.005)
        self.wait()
        return b"".join(chunks[self.stdout_fd]), b"".join(chunks[self.stderr_fd])

    def _time_out(self, timeout: float):
        self.kill()
        raise Timeout(f"{self.argv[0]}: no answer after {timeout:g} s")

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()

    def read_stderr(self) -> bytes:
        """What is left on stderr (after the child ended)."""
        chunks = []
        while chunk := os.read(self.stderr_fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)

    def _close_stdin(self) -> None:
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def _close_pipes(self) -> None:
        for name in ("stdin_fd", "stdout_fd", "stderr_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def close(self) -> None:
        """Kill it if still running, and close the pipes."""
        self.kill()
        self._close_pipes()


def _fork_exec(argv: list[str], env, stdio: tuple[int, int, int]) -> int:
    """posix_spawnp's work for a long argv (a first `wg set` of 5,000 peers has 35,000
    arguments), done by fork and exec: exec turns the arguments into C strings in the child,
    where posix_spawn makes a small heap block of each in the helper, and pymalloc keeps the
    pools they filled: 1 MB of RSS for good. The same file actions and signal defaults;
    an exec error comes back through a close-on-exec pipe, raised here as posix_spawnp's is."""
    inheritable = _inheritable()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_r)
            _child_signals()
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            for fd in inheritable:
                os.close(fd)
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(report_w, str(exc.errno).encode())
        finally:
            os._exit(127)
    os.close(report_w)
    try:
        report = os.read(report_r, 32)      # nothing: the exec closed it
    finally:
        os.close(report_r)
    if report:
        os.waitpid(pid, 0)
        code = int(report)
        raise OSError(code, os.strerror(code))    # FileNotFoundError for ENOENT, as posix_spawnp
    return pid


def _child_signals() -> None:
    """In a forked child, until exec: the helper's signal handlers (and their wakeup
    descriptor, shared with the helper) must not run here, and SIGPIPE and SIGXFSZ go back
    to default as posix_spawn's setsigdef does."""
    _signal.set_wakeup_fd(-1)
    for sig in _signal.valid_signals():
        try:
            if callable(_signal.getsignal(sig)) or sig in _DEFAULT_SIGNALS:
                _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):        # SIGKILL, SIGSTOP, realtime ones Python refuses
            pass


def _inheritable() -> list[int]:
    """Descriptors above 2 that a child would inherit (none known without /proc: the
    helper's own are close-on-exec anyway)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                found.append(fd)
        except OSError:              # the listing's own descriptor, closed by now
            pass
    return found
