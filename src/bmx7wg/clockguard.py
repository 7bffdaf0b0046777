"""Reboot with the clock behind (routers without an RTC).

A WireGuard responder drops handshake initiations whose TAI64N timestamp is not newer than
the last one it saw for that public key. A router that boots with an old clock and its
persisted key is therefore ignored by every peer until its clock passes the time it last
ran. We record that time next to the key (flash-friendly: at start, every half hour and at
stop) and, while the clock is behind it, advertise a session key nobody has timestamps for.
"""

from __future__ import annotations

import os

RECORD_EVERY = 1800.0


def record_path(key_file: str) -> str:
    return f"{key_file}.lastrun"


def last_run(path: str) -> float | None:
    try:
        with open(path) as fh:
            return float(fh.read().strip())
    except (OSError, ValueError):
        return None


def record(path: str, now: float) -> None:
    """Remember `now` unless a later time is already recorded (the clock may be behind)."""
    previous = last_run(path)
    if previous is not None and previous >= now:
        return
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{now:.3f}\n")     # not rounded: a restart within the same second is not "behind"
    os.replace(tmp, path)


def behind_until(path: str, now: float) -> float | None:
    """The recorded time if the clock is earlier than it, else None."""
    previous = last_run(path)
    return previous if previous is not None and now < previous else None
