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
    node_id: str
    raw: bytes = b""
    good: Advert | None = None            # last advert that decoded; kept through bad ones
    error: str | None = None              # why the latest raw bytes were rejected
    last_seen: float = 0.0                # while absent: the last update that saw it present
    present: bool = False                 # in the latest update: file there, node reachable
    shown: Advert | advert.AdvertError | None = None   # what adverts() gives the policy


@record
class PeerTable:
    hold_down: float
    nodes: dict[str, Advertiser] = field(default_factory=dict)
    changed_ids: set[str] = field(default_factory=set)    # adverts() entries the last update changed
    presence_changed: bool = False        # the last update saw a node go or come back
    _absent: set[str] = field(default_factory=set)
    _last_update: float = 0.0
    _shown: dict = field(default_factory=dict)       # node_id -> Advertiser.shown

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
                    self._gone(entry)
                continue
            if entry is None:
                entry = self.nodes[node_id] = Advertiser(node_id)
                self._absent.add(node_id)
                self._show(entry)
            if raw != entry.raw:
                entry.raw = raw
                raw_changed = True
                self._decode(entry)
            entry.raw = raw                   # the caller's object: it tells changes by identity
            orig = originators.get(node_id)
            # Unknown to json/originators yet (files race): trust the file for now.
            if orig is None or orig.reachable:
                if not entry.present:
                    entry.present = True
                    self._absent.discard(node_id)
                    self.presence_changed = True
            elif entry.present:
                self._gone(entry)
        for node_id in [n for n in self._absent if now - self.nodes[n].last_seen > self.hold_down]:
            del self.nodes[node_id]
            del self._shown[node_id]
            self._absent.discard(node_id)
            self.changed_ids.add(node_id)
        self._last_update = now
        return raw_changed or bool(self.changed_ids)

    def _gone(self, entry: Advertiser) -> None:
        """Present until the previous update: its hold-down clock starts from then."""
        entry.present, entry.last_seen = False, self._last_update
        self._absent.add(entry.node_id)
        self.presence_changed = True

    def _decode(self, entry: Advertiser) -> None:
        try:
            entry.good, entry.error = advert.decode(entry.raw), None
        except advert.AdvertError as exc:
            # A broken advert never removes what the node advertised before.
            entry.error = str(exc)
        self._show(entry)

    def _show(self, entry: Advertiser) -> None:
        if entry.good is not None:
            shown = entry.good
        elif isinstance(entry.shown, advert.AdvertError) and str(entry.shown) == entry.error:
            shown = entry.shown
        else:
            shown = advert.AdvertError(entry.error or "no advert")
        if shown is not entry.shown:
            entry.shown = self._shown[entry.node_id] = shown
            self.changed_ids.add(entry.node_id)

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
