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
        self.items = sum(len(items) for items, _ in (tails or {}).values())
        self._texts = _texts(head, tails or {})
        self._fh = open(self.tmp, "w")

    def step(self) -> bool:
        """Encode the next SLICE list items; True once the file is in place. On an error
        the temp file is removed and the previous file stays."""
        try:
            for _ in range(self.SLICE):
                text = next(self._texts, None)
                if text is None:
                    self._fh.close()
                    os.chmod(self.tmp, 0o644)
                    os.replace(self.tmp, self.target)
                    return True
                self._fh.write(text)
            return False
        except BaseException:
            self.abandon()
            raise

    def finish(self) -> None:
        while not self.step():
            pass

    def abandon(self) -> None:
        """Stop here: no file written, the previous one stays."""
        self._fh.close()
        unlink_quietly(self.tmp)


def _texts(head: dict, tails: dict):
    """The file's text: one piece per list item (with what comes before it), then the end."""
    pending = jsontext.dumps(head, sort_keys=True)[:-1]
    sep = "," if head else ""
    for name, (items, entry) in tails.items():
        pending += f"{sep}{jsontext.dumps(name)}:["
        sep, comma = ",", ""
        for item in items:
            obj = item if entry is None else entry(item)
            if obj is not None:
                pending += comma + jsontext.dumps(obj, sort_keys=True)
                comma = ","
            yield pending
            pending = ""
        pending += "]"
    yield pending + "}"


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
