"""Which advertisers are still "here": decoded-advert cache plus hold-down.

bmx7 deletes and rewrites a sender's sms files on every new description, wipes rcvdSms
when it restarts, and keeps a dead node's files for ~70 s. So a missing file means
nothing by itself: a node counts as gone only after it has been absent (or unreachable)
for the whole hold-down time, and a node that comes back inside it is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import advert
from .model import Advert, Originator


@dataclass
class Advertiser:
    node_id: str
    raw: bytes = b""
    good: Advert | None = None            # last advert that decoded; kept through bad ones
    error: str | None = None              # why the latest raw bytes were rejected
    last_seen: float = 0.0                # last time file present and node reachable
    first_seen: float = 0.0
    present: bool = False                 # in the latest update


@dataclass
class PeerTable:
    hold_down: float
    nodes: dict[str, Advertiser] = field(default_factory=dict)

    def update(self, now: float, received: dict[str, bytes],
               originators: dict[str, Originator], own_id: str | None) -> bool:
        """Feed the current rcvdSms view; return True if any decoded advert changed."""
        changed = False
        for entry in self.nodes.values():
            entry.present = False
        for node_id, raw in received.items():
            if node_id == own_id:
                continue
            entry = self.nodes.get(node_id)
            if entry is None:
                entry = self.nodes[node_id] = Advertiser(node_id, first_seen=now)
            if raw != entry.raw:
                entry.raw = raw
                changed = True
                try:
                    entry.good, entry.error = advert.decode(raw), None
                except advert.AdvertError as exc:
                    # A broken advert never removes what the node advertised before.
                    entry.error = str(exc)
            orig = originators.get(node_id)
            # Unknown to json/originators yet (files race): trust the file for now.
            if orig is None or orig.reachable:
                entry.last_seen, entry.present = now, True
        for node_id in list(self.nodes):
            if now - self.nodes[node_id].last_seen > self.hold_down:
                del self.nodes[node_id]
                changed = True
        return changed

    def absent_since(self, now: float, node_id: str) -> float | None:
        """Seconds a node has been missing, None if it is present right now."""
        entry = self.nodes.get(node_id)
        if entry is None or entry.present:
            return None
        return now - entry.last_seen

    def adverts(self) -> dict[str, Advert | advert.AdvertError]:
        """Input for the policy: last good advert per live node, or why it has none."""
        return {nid: (e.good if e.good is not None else advert.AdvertError(e.error or "no advert"))
                for nid, e in self.nodes.items()}
