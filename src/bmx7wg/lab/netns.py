"""Network namespaces, veth links, routes and processes for the lab (all through `ip`).

Everything here acts only on namespaces the caller names: veth pairs are created
directly inside their namespaces, so no lab device ever appears in the host's.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time


class LabError(RuntimeError):
    """One-line description of what the lab could not do."""


def run(argv: list[str], input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise LabError(f"{' '.join(argv[:6])}{' ...' if len(argv) > 6 else ''}: {detail}")
    return proc


def ns_exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def ns_add(ns: str, sysctls: dict[str, str]) -> None:
    """Create `ns` with lo up and the given /proc/sys/net settings (before any device exists)."""
    run(["ip", "netns", "add", ns])
    script = "".join(f"echo {v} > /proc/sys/{k.replace('.', '/')}\n" for k, v in sysctls.items())
    run(["ip", "netns", "exec", ns, "sh", "-ec", script])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def ns_del(ns: str) -> None:
    if ns_exists(ns):
        run(["ip", "netns", "del", ns], check=False)


def ns_pids(ns: str) -> list[int]:
    if not ns_exists(ns):
        return []
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def veth(ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
    run(["ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b])
    run(["ip", "-n", ns_a, "link", "set", dev_a, "up"])
    run(["ip", "-n", ns_b, "link", "set", dev_b, "up"])


def link_local(ns: str, dev: str, timeout: float = 10.0) -> str:
    """The kernel-assigned fe80:: address of `dev` (appears once both veth ends are up)."""
    deadline = time.monotonic() + timeout
    while True:
        out = run(["ip", "-n", ns, "-j", "-6", "addr", "show", "dev", dev, "scope", "link"]).stdout
        for entry in json.loads(out or "[]"):
            for info in entry.get("addr_info", []):
                if info.get("local", "").startswith("fe80") and not info.get("tentative"):
                    return info["local"]
        if time.monotonic() > deadline:
            raise LabError(f"{ns}: no link-local address on {dev} after {timeout:.0f}s")
        time.sleep(0.05)


def batch(ns: str, commands: list[str]) -> None:
    """Several `ip` commands in one process (`ip -n NS -batch -`)."""
    if commands:
        run(["ip", "-n", ns, "-batch", "-"], input="\n".join(commands) + "\n")


# ---------------------------------------------------------------- processes

def spawn(ns: str, argv: list[str], env: dict[str, str], log_path: str, cwd: str | None = None) -> int:
    """Start argv inside `ns` in its own session; `ip netns exec` execs, so the pid is argv's."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    return proc.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop(pid: int | None, marker: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> bool:
    """Send `sig` to pid if its command line still contains `marker` (never a recycled pid);
    wait up to timeout for it to end, then SIGKILL. Returns True if it was running."""
    if not alive(pid) or marker not in cmdline(pid):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    if sig == signal.SIGKILL:
        wait_gone(pid, 2.0)
        return True
    if timeout <= 0:
        return True
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, 2.0)
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside(ns: str | None):
    """Run the body with this thread in network namespace `ns` (None: stay where it is):
    cheaper than `ip netns exec` per command, for tests and benchmarks that time `wg`."""
    if ns is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        yield
    finally:
        libc.setns(back, CLONE_NEWNET)
        os.close(target)
        os.close(back)
