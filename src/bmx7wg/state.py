"""The helper's state file: `<rundir>/<iface>.json`, 0644, never a secret in it."""

from __future__ import annotations

import json
import os


def path(rundir: str, iface: str) -> str:
    return os.path.join(rundir, f"{iface}.json")


def write(rundir: str, iface: str, state: dict) -> None:
    """Atomic replace so readers (ubus, CLI, LuCI) never see half a file."""
    os.makedirs(rundir, mode=0o755, exist_ok=True)
    target = path(rundir, iface)
    tmp = f"{target}.tmp"
    with open(tmp, "w") as fh:
        # compact: the C encoder only runs without indent (3x faster on big meshes)
        json.dump(state, fh, separators=(",", ":"), sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


def read(rundir: str, iface: str) -> dict | None:
    try:
        with open(path(rundir, iface)) as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def interfaces(rundir: str) -> list[str]:
    """Interfaces that have a state file, sorted."""
    try:
        names = os.listdir(rundir)
    except FileNotFoundError:
        return []
    return sorted(n[:-5] for n in names if n.endswith(".json"))
