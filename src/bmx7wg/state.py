"""The helper's state file: `<rundir>/<iface>.json`, 0644, never a secret in it."""

from __future__ import annotations

import _signal
import gc
import os

from . import jsontext
from .log import log



def path(rundir: str, iface: str) -> str:
    return os.path.join(rundir, f"{iface}.json")


def write(rundir: str, iface: str, state: dict) -> None:
    """Atomic replace so readers (ubus, CLI, LuCI) never see half a file."""
    os.makedirs(rundir, mode=0o755, exist_ok=True)
    target = path(rundir, iface)
    tmp = f"{target}.tmp"
    with open(tmp, "w") as fh:
        fh.write(jsontext.dumps(state, sort_keys=True))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


def write_in_child(rundir: str, iface: str, build) -> int:
    """Fork; the child builds the snapshot (`build()`) from its copy-on-write view of the
    helper, writes the file and exits. On a 5,000-peer mesh building and encoding the
    snapshot takes ~120 ms: done in the helper it would stall every event arriving
    meanwhile, and its transient strings would stay in the helper's heap as fragmentation.
    Returns the child's pid; reap it with `reaped`."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        gc.disable()          # one snapshot, then exit: a collection would only copy pages
        for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGUSR1):
            _signal.signal(sig, _signal.SIG_DFL)
        _signal.set_wakeup_fd(-1)
        os.nice(10)           # on a one-core router the event loop goes first
        write(rundir, iface, build())
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the child must reach os._exit whatever happens
        log.error("%s: state file: %s", iface, exc)
    finally:
        os._exit(code)


def reaped(pid: int) -> bool | None:
    """None while the writer runs; else whether it wrote the file."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    if not done:
        return None
    return os.waitstatus_to_exitcode(status) == 0


def read(rundir: str, iface: str) -> dict | None:
    try:
        with open(path(rundir, iface)) as fh:
            return jsontext.loads(fh.read())
    except (FileNotFoundError, jsontext.JsonError):
        return None


def interfaces(rundir: str) -> list[str]:
    """Interfaces that have a state file, sorted."""
    try:
        names = os.listdir(rundir)
    except FileNotFoundError:
        return []
    return sorted(n[:-5] for n in names if n.endswith(".json"))
