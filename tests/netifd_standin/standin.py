"""Stand-in for netifd (and the `ubus` CLI) around a real proto script, for tests.

Subcommands (called by netifd-proto.sh stand-in and bin/* stubs):
  jget JSON KEY                 json_get_var: value of KEY in the setup data (exit 1 if absent)
  build KIND ARGS...            the notify_proto JSON the real shell API would send
  dump NAME CONFIG FLAGS...     the protocol description netifd reads at start
  log KIND ARGS...              a record in $STANDIN_LOG
  ubus [-t N] [-S] call OBJ METHOD [JSON]
                                the `ubus` CLI: records the call; for notify_proto acts as netifd
                                (action 1: start + supervise the command, action 2: signal it)
  cmd NAME ARGS...              a system command stub (ip, bmx7, wg, wireguard-go): recorded
  supervise                     (internal) netifd's proto task: run it, on exit tear down

Every record is one JSON line in $STANDIN_LOG, appended under flock (several writers).
State lives in $STANDIN_STATE (a directory): links that exist, the proto task's pid.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

LOG = os.environ.get("STANDIN_LOG", "")
STATE = os.environ.get("STANDIN_STATE", "")

# blobmsg types used by config_add_* (netifd scripts/utils.sh)
CONFIG_TYPES = {"array": 1, "string": 3, "int": 5, "boolean": 7}


def record(entry: dict) -> None:
    entry = {"pid": os.getpid(), **entry}
    with open(LOG, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def state_path(name: str) -> str:
    return os.path.join(STATE, name)


# ---- jshn ----------------------------------------------------------------------------------

def jget(data: str, key: str) -> int:
    try:
        obj = json.loads(data) if data else {}
    except ValueError:
        return 1
    if key not in obj:
        return 1
    value = obj[key]
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    print(value)
    return 0


# ---- notify_proto messages ---------------------------------------------------------------------

def _bool(text: str) -> bool:
    return text not in ("", "0")


def _addr_items(words: str) -> list[dict]:
    items = []
    for word in words.split():
        addr, _, mask = word.partition("/")
        entry = {"ipaddr": addr}
        if mask:
            entry["mask"] = mask
        items.append(entry)
    return items


def _route_items(words: str) -> list[dict]:
    items = []
    for word in words.split():
        target, mask, gw, metric = (word.split("/") + ["", "", ""])[:4]
        entry = {"target": target, "netmask": mask}
        if gw:
            entry["gateway"] = gw
        if metric:
            entry["metric"] = int(metric)
        items.append(entry)
    return items


def build(kind: str, args: list[str]) -> dict:
    iface = args[0] if args else ""
    if kind == "update":
        ifname, up, keep, a4, a6, r4, r6 = (args[1:] + [""] * 7)[:7]
        msg = {"action": 0}
        if ifname and ifname != "*":
            msg["ifname"] = ifname
        msg["link-up"] = _bool(up)
        msg["keep"] = _bool(keep)
        for key, items in (("ipaddr", _addr_items(a4)), ("ip6addr", _addr_items(a6)),
                           ("routes", _route_items(r4)), ("routes6", _route_items(r6))):
            if items:
                msg[key] = items
    elif kind == "run_command":
        msg = {"action": 1, "command": args[1:]}
    elif kind == "kill_command":
        msg = {"action": 2}
        if len(args) > 1 and args[1]:
            msg["signal"] = int(args[1])
    elif kind == "error":
        msg = {"action": 3, "error": args[1:]}
    elif kind == "block_restart":
        msg = {"action": 4}
    elif kind == "set_available":
        msg = {"action": 5, "available": _bool(args[1])}
    elif kind == "host_dependency":
        msg = {"action": 6, "host": args[1]}
        if len(args) > 2 and args[2]:
            msg["ifname"] = args[2]
    elif kind == "setup_failed":
        msg = {"action": 7}
    else:
        raise SystemExit(f"standin: unknown notification {kind}")
    msg["interface"] = iface
    return msg


def dump(name: str, config: str, flags: list[str]) -> dict:
    keys = ["no-device", "no-device-config", "no-proto-task", "available", "renew-handler",
            "teardown-on-l3-link-down"]
    out = {"name": name, "config": []}
    for item in config.split():
        opt, _, typ = item.partition(":")
        out["config"].append([opt, CONFIG_TYPES[typ]])
    for key, flag in zip(keys, flags):
        out[key] = _bool(flag)
    return out


# ---- ubus CLI + netifd reactions -----------------------------------------------------------------

def ubus(argv: list[str]) -> int:
    args = list(argv)
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("-t", "-s"):
            args.pop(0)
    if len(args) < 3 or args[0] != "call":
        record({"kind": "ubus", "argv": argv, "error": "unsupported"})
        return 1
    obj, method = args[1], args[2]
    try:
        data = json.loads(args[3]) if len(args) > 3 else {}
    except ValueError:
        print("Failed to parse message data", file=sys.stderr)
        record({"kind": "ubus", "argv": argv, "error": "bad json"})
        return 1
    record({"kind": "ubus", "object": obj, "method": method, "data": data,
            "caller": os.environ.get("STANDIN_CALLER", "script")})
    fail = os.environ.get("STANDIN_UBUS_FAIL", "")
    if fail and f"{obj} {method}" == fail:
        print("Command failed: Not found", file=sys.stderr)
        return 4
    if obj == "network.interface" and method == "notify_proto":
        action = data.get("action")
        if action == 1:
            start_task(data["command"])
        elif action == 2:
            kill_task(data.get("signal", signal.SIGTERM))
    return 0


def start_task(command: list[str]) -> None:
    """netifd: netifd_start_process() for proto_run_command, supervised."""
    env = dict(os.environ, STANDIN_CALLER="helper")
    sup = subprocess.Popen([sys.executable, os.path.abspath(__file__), "supervise", json.dumps(command)],
                           env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                           stdout=open(state_path("task.out"), "ab"), stderr=subprocess.STDOUT)
    # wait until the task runs, so a following kill has a pid to signal
    for _ in range(500):
        if os.path.exists(state_path("task.pid")) or sup.poll() is not None:
            break
        time.sleep(0.01)


def kill_task(signum: int) -> None:
    """netifd: proto_kill_command -> kill(proto_task pid, signal); TERM/KILL mark it killed."""
    try:
        pid = int(open(state_path("task.pid")).read())
    except (OSError, ValueError):
        return
    if signum in (signal.SIGTERM, signal.SIGKILL):
        open(state_path("task.killed"), "w").close()
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def supervise(command: list[str]) -> int:
    """netifd's proto task: when it exits on its own while the interface is up, netifd reports
    the link lost and runs the proto script's teardown (proto_shell_task_finish)."""
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    with open(state_path("task.pid.tmp"), "w") as fh:
        fh.write(str(proc.pid))
    os.replace(state_path("task.pid.tmp"), state_path("task.pid"))
    record({"kind": "netifd", "event": "task_started", "command": command, "task_pid": proc.pid})
    rc = proc.wait()
    record({"kind": "netifd", "event": "task_exited", "returncode": rc})
    os.unlink(state_path("task.pid"))
    if not os.path.exists(state_path("task.killed")):
        record({"kind": "netifd", "event": "link_lost"})
        run_script("teardown")
    open(state_path("task.done"), "w").close()
    return 0


def run_script(action: str) -> int:
    """netifd: `./<proto>.sh <proto> <action> <interface> <data> <ifname>` in /lib/netifd/proto."""
    argv = os.environ["STANDIN_SHELL"].split() + [
        "./bmx7wg.sh", "bmx7wg", action, os.environ["STANDIN_INTERFACE"],
        os.environ.get("STANDIN_DATA", "{}"), os.environ.get("STANDIN_IFNAME", "")]
    env = dict(os.environ, STANDIN_CALLER="script")
    return subprocess.run(argv, cwd="/lib/netifd/proto", env=env).returncode


# ---- system command stubs -----------------------------------------------------------------------

def links() -> set[str]:
    try:
        return set(open(state_path("links")).read().split())
    except OSError:
        return set()


def save_links(names: set[str]) -> None:
    with open(state_path("links"), "w") as fh:
        fh.write("\n".join(sorted(names)))


def cmd(name: str, argv: list[str]) -> int:
    record({"kind": "cmd", "argv": [name] + argv, "caller": os.environ.get("STANDIN_CALLER", "script")})
    if name == "ip" and argv[:1] == ["link"]:
        op = argv[1] if len(argv) > 1 else "show"
        dev = argv[argv.index("dev") + 1] if "dev" in argv else (argv[2] if len(argv) > 2 else "")
        have = links()
        if op == "show":
            return 0 if dev in have else 1
        if op == "add":
            if os.environ.get("STANDIN_NO_KERNEL_WG"):
                print("Error: Unknown device type.", file=sys.stderr)
                return 2
            if dev in have:
                print("RTNETLINK answers: File exists", file=sys.stderr)
                return 2
            save_links(have | {dev})
            return 0
        if op in ("del", "delete"):
            if dev not in have:
                print(f'Cannot find device "{dev}"', file=sys.stderr)
                return 1
            save_links(have - {dev})
            return 0
    if name == "wg" and argv[:1] == ["show"] and argv[2:3] == ["listen-port"]:
        print(os.environ.get("STANDIN_WG_PORT", "0"))
        return 0
    return 0


def main(argv: list[str]) -> int:
    sub, rest = argv[0], argv[1:]
    if sub == "jget":
        return jget(rest[0], rest[1])
    if sub == "build":
        print(json.dumps(build(rest[0], rest[1:]), separators=(",", ":")))
        return 0
    if sub == "dump":
        print(json.dumps(dump(rest[0], rest[1], rest[2:]), separators=(",", ":")))
        return 0
    if sub == "log":
        record({"kind": rest[0], "action": rest[1], "interface": rest[2]})
        return 0
    if sub == "ubus":
        return ubus(rest)
    if sub == "cmd":
        return cmd(rest[0], rest[1:])
    if sub == "supervise":
        return supervise(json.loads(rest[0]))
    raise SystemExit(f"standin: unknown subcommand {sub}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
