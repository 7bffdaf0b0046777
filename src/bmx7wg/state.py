"""The helper's state file: `<rundir>/<iface>.json`, 0644, never a secret in it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from . import jsontext
from .fsutil import unlink_quietly


def path(rundir: str, iface: str) -> str:
    return os.path.join(rundir, f"{iface}.json")


class Writer:
    """`<rundir>/<iface>.json`, written a slice at a time, then renamed into place: readers
    (ubus, CLI, LuCI) only ever see whole files.

    On a 5,000-peer mesh building and encoding the file takes ~120 ms: in one go it would
    stall every event arriving meanwhile, and make its text and objects all at once. The
    daemon calls step() between events instead. (A forked child did it before: it copied
    the helper's pages as it touched their reference counts, 16.5 MB for 150 ms at 5,000
    peers, once a second.)

    `head`: the file's small members. `tails`: the long lists, written after them in the
    given order, name -> (items, entry): each list holds what `entry` makes of each item,
    leaving out those it returns None for (a node gone meanwhile); entry None: the items
    themselves."""

    SLICE = 20                # list items per step(): about 0.5 ms of peers at 5,000

    def __init__(self, rundir: str, iface: str, head: dict,
                 tails: dict[str, tuple[Sequence, Callable | None]] | None = None):
        os.makedirs(rundir, mode=0o755, exist_ok=True)
        self.target = path(rundir, iface)
        self.tmp = f"{self.target}.tmp"
        self._tails = list((tails or {}).items())
        self.items = sum(len(items) for _, (items, _) in self._tails)
        self._tail, self._next, self._written = -1, 0, 0
        self._fh = open(self.tmp, "w")
        self._fh.write(jsontext.dumps(head, sort_keys=True)[:-1])
        self._comma = "," if head else ""

    def step(self) -> bool:
        """Encode the next SLICE list items; True once the file is in place. On an error
        the temp file is removed and the previous file stays."""
        try:
            budget = self.SLICE
            while budget > 0:
                if self._tail < 0 or self._next >= len(self._tails[self._tail][1][0]):
                    if self._tail >= 0:
                        self._fh.write("]")
                    self._tail, self._next, self._written = self._tail + 1, 0, 0
                    if self._tail == len(self._tails):
                        return self._close()
                    self._fh.write(f"{self._comma}{jsontext.dumps(self._tails[self._tail][0])}:[")
                    self._comma = ","
                    continue
                items, entry = self._tails[self._tail][1]
                end = min(self._next + budget, len(items))
                for item in items[self._next:end]:
                    obj = item if entry is None else entry(item)
                    if obj is not None:
                        self._fh.write(("," if self._written else "") + jsontext.dumps(obj, sort_keys=True))
                        self._written += 1
                budget -= end - self._next
                self._next = end
            return False
        except BaseException:
            self.abandon()
            raise

    def _close(self) -> bool:
        self._fh.write("}")
        self._fh.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.target)
        return True

    def finish(self) -> None:
        while not self.step():
            pass

    def abandon(self) -> None:
        """Stop here: no file written, the previous one stays."""
        self._fh.close()
        unlink_quietly(self.tmp)


def write(rundir: str, iface: str, state: dict) -> None:
    """The whole file at once, as a Writer writes it ("peers" last, [] when absent)."""
    Writer(rundir, iface, {k: v for k, v in state.items() if k != "peers"},
           {"peers": (state.get("peers", ()), None)}).finish()


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
