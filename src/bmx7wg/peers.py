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
from .model import Advert, Originator


@record(slots=True)
class Advertiser:
    """One advertiser (its nodeId is the table's key, what adverts() shows of it is in the
    table's view: no slot here for either, thousands of times)."""

    raw: bytes = b""
    good: Advert | None = None            # last advert that decoded; kept through bad ones
    error: str | None = None              # why the latest raw bytes were rejected
    # None while present (in the latest update: file there, node reachable); while absent,
    # the last update that saw it present
    last_seen: float | None = 0.0

    @property
    def present(self) -> bool:
        return self.last_seen is None


@record
class PeerTable:
    hold_down: float
    nodes: dict[str, Advertiser] = field(default_factory=dict)
    changed_ids: set[str] = field(default_factory=set)    # adverts() entries the last update changed
    presence_changed: bool = False        # the last update saw a node go or come back
    _absent: set[str] = field(default_factory=set)
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
        self.changed_ids = set()
        self.presence_changed = False
        raw_changed = False
        for node_id in (received.keys() | self.nodes.keys()) if changed is None else changed:
            if node_id == own_id:
                continue
            raw = received.get(node_id)
            entry = self.nodes.get(node_id)
            if raw is None:
                if entry is not None and entry.present:
                    self._gone(node_id, entry)
                continue
            if entry is None:
                entry = self.nodes[node_id] = Advertiser()
                self._absent.add(node_id)
                self._show(node_id, entry)
            if raw != entry.raw:
                entry.raw = raw
                raw_changed = True
                self._decode(node_id, entry)
            entry.raw = raw                   # the caller's object: it tells changes by identity
            orig = originators.get(node_id)
            # Unknown to json/originators yet (files race): trust the file for now.
            if orig is None or orig.reachable:
                if not entry.present:
                    entry.last_seen = None
                    self._absent.discard(node_id)
                    self.presence_changed = True
            elif entry.present:
                self._gone(node_id, entry)
        for node_id in [n for n in self._absent if now - self.nodes[n].last_seen > self.hold_down]:
            del self.nodes[node_id]
            del self._shown[node_id]
            self._absent.discard(node_id)
            self.changed_ids.add(node_id)
        self._last_update = now
        return raw_changed or bool(self.changed_ids)

    def _gone(self, node_id: str, entry: Advertiser) -> None:
        """Present until the previous update: its hold-down clock starts from then."""
        entry.last_seen = self._last_update
        self._absent.add(node_id)
        self.presence_changed = True

    def _decode(self, node_id: str, entry: Advertiser) -> None:
        try:
            entry.good, entry.error = advert.decode(entry.raw), None
        except advert.AdvertError as exc:
            # A broken advert never removes what the node advertised before.
            entry.error = str(exc)
        self._show(node_id, entry)

    def _show(self, node_id: str, entry: Advertiser) -> None:
        before = self._shown.get(node_id)
        if entry.good is not None:
            shown = entry.good
        elif isinstance(before, advert.AdvertError) and str(before) == entry.error:
            shown = before
        else:
            shown = advert.AdvertError(entry.error or "no advert")
        if shown is not before:
            self._shown[node_id] = shown
            self.changed_ids.add(node_id)

    def absent_since(self, now: float, node_id: str) -> float | None:
        """Seconds a node has been missing, None if it is present right now."""
        entry = self.nodes.get(node_id)
        if entry is None or entry.present:
            return None
        return now - entry.last_seen

    def adverts(self) -> dict[str, Advert | advert.AdvertError]:
        """Input for the policy: last good advert per live node, or why it has none. The
        objects stay the same while a node's advert does (the policy relies on that)."""
        return dict(self._shown)

    def adverts_view(self):
        """adverts() without the copy: read-only, and it follows the table's updates."""
        return self._view
