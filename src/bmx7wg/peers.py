"""Which advertisers are still "here": decoded-advert cache plus hold-down.

bmx7 deletes and rewrites a sender's sms files on every new description, wipes rcvdSms
when it restarts, and keeps a dead node's files for ~70 s. So a missing file means
nothing by itself: a node counts as gone only after it has been absent (or unreachable)
for the whole hold-down time, and a node that comes back inside it is never touched.

An update costs what changed, not the table size: the caller may name the node ids whose
sms bytes or originator changed since the previous update, and only nodes that are absent
have a clock running.
"""

from __future__ import annotations

from .record import record, field
from types import MappingProxyType

from . import advert
from .keyset import KeySet
from .model import Advert, Originator


@record
class PeerTable:
    """Per advertiser, in dicts keyed by nodeId and no object of its own (thousands of them,
    each worth less than its header): the raw sms bytes last fed (the caller's object: it tells
    changes by identity), what adverts() shows the policy (the last advert that decoded, kept
    through bad ones, else why there is none), why the latest bytes were rejected (rare), and
    the hold-down clock of the absent ones."""

    hold_down: float
    raws: dict[str, bytes] = field(default_factory=dict)   # every node in the table
    changed_ids: KeySet = field(default_factory=KeySet)   # adverts() entries the last update changed
    presence_changed: bool = False        # the last update saw a node go or come back
    _errors: dict[str, str] = field(default_factory=dict)
    # absent nodes (in the latest update the file was missing or the node unreachable): the
    # last update that saw each present; 0.0 for one never seen present
    _absent: dict[str, float] = field(default_factory=dict)
    _last_update: float = 0.0
    _shown: dict = field(default_factory=dict)       # node_id -> what adverts() gives the policy

    def __post_init__(self):
        self._view = MappingProxyType(self._shown)

    def update(self, now: float, received: dict[str, bytes], originators: dict[str, Originator],
               own_id: str | None, changed: set[str] | None = None) -> bool:
        """Feed the current rcvdSms view; return True if any decoded advert changed.

        `changed`: node ids whose received bytes or originator may differ from the previous
        update (None: look at all of them). The result is the same either way.
        """
        self.changed_ids = KeySet()
        self.presence_changed = False
        raw_changed = False
        raws, absent = self.raws, self._absent
        for node_id in (received.keys() | raws.keys()) if changed is None else changed:
            if node_id == own_id:
                continue
            raw = received.get(node_id)
            if raw is None:
                if node_id in raws and node_id not in absent:
                    self._gone(node_id)
                continue
            before = raws.get(node_id)
            if before is None:
                absent[node_id] = 0.0
            raws[node_id] = raw                   # the caller's object: it tells changes by identity
            if raw != before:
                raw_changed = True
                self._decode(node_id, raw)
            orig = originators.get(node_id)
            # Unknown to json/originators yet (files race): trust the file for now.
            if orig is None or orig.reachable:
                if absent.pop(node_id, None) is not None:
                    self.presence_changed = True
            elif node_id not in absent:
                self._gone(node_id)
        for node_id in [n for n, seen in absent.items() if now - seen > self.hold_down]:
            del raws[node_id], self._shown[node_id], absent[node_id]
            self._errors.pop(node_id, None)
            self.changed_ids.add(node_id)
        self._last_update = now
        return raw_changed or bool(self.changed_ids)

    def _gone(self, node_id: str) -> None:
        """Present until the previous update: its hold-down clock starts from then."""
        self._absent[node_id] = self._last_update
        self.presence_changed = True

    def _decode(self, node_id: str, raw: bytes) -> None:
        before = self._shown.get(node_id)
        try:
            shown = advert.decode(raw)
            self._errors.pop(node_id, None)
        except advert.AdvertError as exc:
            # A broken advert never removes what the node advertised before.
            error = self._errors[node_id] = str(exc)
            if isinstance(before, Advert):
                return
            shown = before if isinstance(before, advert.AdvertError) and str(before) == error \
                else advert.AdvertError(error)
        if shown is not before:
            self._shown[node_id] = shown
            self.changed_ids.add(node_id)

    def good(self, node_id: str) -> Advert | None:
        """The last advert that decoded, kept through bad ones."""
        shown = self._shown.get(node_id)
        return shown if isinstance(shown, Advert) else None

    def error(self, node_id: str) -> str | None:
        """Why the latest bytes were rejected, None if they decoded."""
        return self._errors.get(node_id)

    def present(self, node_id: str) -> bool:
        """In the table, with its file there and reachable at the latest update."""
        return node_id in self.raws and node_id not in self._absent

    def absent_since(self, now: float, node_id: str) -> float | None:
        """Seconds a node has been missing, None if it is present right now."""
        seen = self._absent.get(node_id)
        return None if seen is None else now - seen

    def adverts(self) -> dict[str, Advert | advert.AdvertError]:
        """Input for the policy: last good advert per live node, or why it has none. The
        objects stay the same while a node's advert does (the policy relies on that)."""
        return dict(self._shown)

    def adverts_view(self):
        """adverts() without the copy: read-only, and it follows the table's updates."""
        return self._view
