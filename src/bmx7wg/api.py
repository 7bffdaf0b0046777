"""ubus / CLI replies, answered from the helpers' state files.

Stateless on purpose: whichever helper holds the ubus object `bmx7wg` answers for every
interface by reading `<rundir>/<iface>.json` and signalling the pid written there
(SIGHUP = reload, SIGUSR1 = rotate key).

Replies are built field by field from an allowlist, with each value coerced to the type
the contract promises. Nothing is copied wholesale from a state file, so a private key can
never reach ubus, LuCI or the terminal, even from a buggy or forged state file. Replies hold
no floats either: older libubox (blobmsg_add_json) refuses JSON doubles.
"""

from __future__ import annotations

import os
from _signal import SIGHUP, SIGUSR1

from . import jsontext, state
from .charset import HEX, NAME, is_wg_key, made_of

DEFAULT_RUNDIR = "/var/run/bmx7wg"

# python-ubus 0.1.3 checks argument names against this signature strictly.
METHODS = {
    "status": {"interface": "string"},
    "peers": {"interface": "string"},
    "reload": {"interface": "string"},
    "rotate_key": {"interface": "string"},
}

PEER_STATES = ("pending", "active", "expired", "rejected")
KEY_MODES = ("persist", "session", "uci")


def _iface_name(name: object) -> bool:
    """UCI section names plus what config.valid_ifname allows; no leading dot (no hidden or
    temp files)."""
    return made_of(name, NAME, 1, 15) and not name.startswith(".")


class ApiError(Exception):
    """One-line message returned as {"error": ...}."""


# ---- value coercion (the allowlist's types) ------------------------------------------------

def _text(value, limit: int = 200) -> str | None:
    if not isinstance(value, str):
        return None
    return value.replace("\n", " ").replace("\r", " ")[:limit]


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 2**63:
        return int(value)
    return None


def _count(value) -> int:
    number = _int(value)
    return number if number is not None and number >= 0 else 0


def _bool(value) -> bool:
    return value is True


def _texts(value, limit: int = 256) -> list[str]:
    if not isinstance(value, list):
        return []
    return [t for t in (_text(v, 64) for v in value[:limit]) if t is not None]


def _key(value) -> str | None:
    text = _text(value, 44)
    return text if is_wg_key(text) else None


def _hex_id(value, length: int) -> str | None:
    text = _text(value, length)
    return text if made_of(text, HEX, length, length) else None


# ---- process checks -----------------------------------------------------------------------

def helper_alive(pid) -> bool:
    """True when `pid` runs and looks like a bmx7wg helper (not a zombie, not a recycled pid)."""
    pid = _int(pid)
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: judge by /proc below
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields and fields[0] in (b"Z", b"X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return not os.path.isdir("/proc/self")  # no procfs at all: trust kill(0)
    # Our own process (ubusadapter inside a helper) or any `bmx7wg ...` / `python3 -m bmx7wg`.
    return pid == os.getpid() or b"bmx7wg" in cmdline


# ---- state files ----------------------------------------------------------------------------

def _load(rundir: str, iface: str) -> dict:
    path = state.path(rundir, iface)
    try:
        with open(path) as fh:
            data = jsontext.loads(fh.read())
    except FileNotFoundError:
        raise ApiError(f"interface '{iface}': no bmx7wg helper state ({path} missing)") from None
    except (OSError, ValueError) as exc:
        why = "not JSON" if isinstance(exc, jsontext.JsonError) else type(exc).__name__
        raise ApiError(f"state file {path}: unreadable ({why})") from None
    if not isinstance(data, dict):
        raise ApiError(f"state file {path}: not a JSON object")
    return data


def _interfaces(rundir: str) -> list[str]:
    return [name for name in state.interfaces(rundir) if _iface_name(name)]


def _named(args) -> str | None:
    """The `interface` argument, validated; None when omitted."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ApiError("arguments must be an object")
    unknown = sorted(set(args) - {"interface"})
    if unknown:
        raise ApiError(f"unknown argument '{str(unknown[0])[:40]}' (only 'interface')")
    iface = args.get("interface")
    if iface in (None, ""):
        return None
    if not _iface_name(iface):
        raise ApiError(f"argument 'interface': invalid value '{str(iface)[:40]}'")
    return iface


def _pick(rundir: str, args) -> str:
    """The interface named in args, or the only one that has a state file."""
    iface = _named(args)
    if iface is not None:
        return iface
    names = _interfaces(rundir)
    if len(names) == 1:
        return names[0]
    if not names:
        raise ApiError(f"no bmx7wg interface is running (no state file in {rundir})")
    raise ApiError(f"several bmx7wg interfaces ({', '.join(names)}): name one with 'interface'")


# ---- replies ----------------------------------------------------------------------------------

def _peer_counts(peers) -> dict:
    counts = {s: 0 for s in PEER_STATES}
    for peer in peers if isinstance(peers, list) else []:
        if isinstance(peer, dict) and peer.get("state") in counts:
            counts[peer["state"]] += 1
    counts["total"] = sum(counts.values())
    return counts


def status(st: dict) -> dict:
    """One interface's status from its state dict (allowlisted fields only)."""
    bmx7 = st.get("bmx7") if isinstance(st.get("bmx7"), dict) else {}
    key_mode = st.get("key_mode")
    backend = st.get("backend")
    return {
        "interface": _text(st.get("interface"), 15),
        "ifname": _text(st.get("ifname"), 15),
        "running": helper_alive(st.get("pid")),
        "updated": _int(st.get("updated")),
        "public_key": _key(st.get("public_key")),
        "listen_port": _int(st.get("listen_port")),
        "key_mode": key_mode if key_mode in KEY_MODES else None,
        "backend": backend if backend in ("kernel", "userspace") else None,
        "node_id": _hex_id(st.get("node_id"), 56),
        "name": _text(st.get("name"), 64),
        "addresses": _texts(st.get("addresses")),
        "announce": _texts(st.get("announce")),
        "bmx7": {
            "running": _bool(bmx7.get("running")),
            "dir": _text(bmx7.get("dir"), 256),
            "sms_name": _text(bmx7.get("sms_name"), 15),
            "published": _bool(bmx7.get("published")),
        },
        "peer_counts": _peer_counts(st.get("peers")),
    }


def _rejected(items) -> list[dict]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and _text(item.get("network"), 64):
            out.append({"network": _text(item.get("network"), 64), "reason": _text(item.get("reason")) or ""})
    return out


def peer(entry: dict) -> dict:
    public_key = _key(entry.get("public_key"))
    state_name = entry.get("state")
    return {
        "node_id": _hex_id(entry.get("node_id"), 56),
        "short_id": _text(entry.get("short_id"), 16),
        "name": _text(entry.get("name"), 64),
        "public_key": public_key,
        "fingerprint": public_key[:8] if public_key else None,
        "endpoint": _text(entry.get("endpoint"), 64),
        "addresses": _texts(entry.get("addresses")),
        "allowed_ips": _texts(entry.get("allowed_ips")),
        "networks_accepted": _texts(entry.get("networks_accepted")),
        "networks_rejected": _rejected(entry.get("networks_rejected")),
        "state": state_name if state_name in PEER_STATES else "pending",
        "reason": _text(entry.get("reason")),
        "latest_handshake": _int(entry.get("latest_handshake")) or None,
        "rx": _count(entry.get("rx")),
        "tx": _count(entry.get("tx")),
    }


def peers(st: dict) -> list[dict]:
    """The peers (one per advertising node) from a state dict (allowlisted fields only)."""
    entries = st.get("peers") if isinstance(st.get("peers"), list) else []
    return [peer(e) for e in entries if isinstance(e, dict)]


def _signal(rundir: str, iface: str, signum: int) -> dict:
    st = _load(rundir, iface)
    pid = _int(st.get("pid"))
    if not helper_alive(pid):
        raise ApiError(f"interface '{iface}': the bmx7wg helper is not running")
    try:
        os.kill(pid, signum)
    except OSError as exc:
        raise ApiError(f"interface '{iface}': cannot signal helper pid {pid} ({exc.strerror})") from None
    return {"ok": True, "interface": iface}


def _status_reply(rundir: str, args) -> dict:
    if _named(args) is None and len(_interfaces(rundir)) > 1:
        return {"interfaces": [_status_of(rundir, name) for name in _interfaces(rundir)]}
    return _status_of(rundir, _pick(rundir, args))


def _status_of(rundir: str, iface: str) -> dict:
    reply = status(_load(rundir, iface))
    reply["interface"] = reply["interface"] or iface
    return reply


def _peers_reply(rundir: str, args) -> dict:
    iface = _pick(rundir, args)
    st = _load(rundir, iface)
    return {"interface": iface, "running": helper_alive(st.get("pid")), "peers": peers(st)}


def handle(method: str, args: dict | None, rundir: str = DEFAULT_RUNDIR) -> dict:
    """Answer one ubus/CLI call. Never raises for bad input: returns {"error": "one line"}.

    status {interface?}: one interface's status; without `interface` and several running,
                         {"interfaces": [status, ...]}.
    peers {interface?}:  {"interface", "running", "peers": [...]}.
    reload / rotate_key {interface?}: signal the helper, {"ok": true, "interface"}.
    """
    try:
        if method == "status":
            return _status_reply(rundir, args)
        if method == "peers":
            return _peers_reply(rundir, args)
        if method == "reload":
            return _signal(rundir, _pick(rundir, args), SIGHUP)
        if method == "rotate_key":
            return _signal(rundir, _pick(rundir, args), SIGUSR1)
        return {"error": f"unknown method '{str(method)[:40]}'"}
    except ApiError as exc:
        return {"error": str(exc)}
