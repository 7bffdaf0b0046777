"""Which WireGuard sessions are live, aged on the monotonic clock.

WireGuard stamps a handshake with the wall clock of its moment (`latest_handshake`, unix
seconds). Compared with the wall clock later, it is wrong by every step in between, and
routers step by days: NTP sets the clock at boot on a router without an RTC. Forward, every
session would look dead (a roamed endpoint overwritten, handshake proofs of keys gone, peers
shown as pending); backward, dead ones would look live for the size of the step (a stale
endpoint kept, a peer shown active). So a handshake's age is read once, when a dump first
shows it, and counted on from there on the monotonic clock. A step between a handshake and
the dump that first shows it (seconds: dumps come every STATS_EVERY) still counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .model import PeerState

STALE_HANDSHAKE = 180        # seconds; WireGuard's REJECT_AFTER_TIME


def wall_live(peer: PeerState, wall_now: float | None = None) -> bool:
    """Live by the wall clock alone: for a one-off look with no earlier dump to go by."""
    now = time.time() if wall_now is None else wall_now
    return peer.latest_handshake is not None and now - peer.latest_handshake < STALE_HANDSHAKE


class Sessions:
    """Handshakes as dumps showed them, each with the monotonic time its session goes stale."""

    def __init__(self, wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic):
        self.wall, self.mono = wall, mono
        # public key -> (latest_handshake, monotonic time it goes stale); peers with a handshake
        self._stale_at: dict[str, tuple[int, float]] = {}

    def observe(self, peers: Mapping[str, PeerState]) -> None:
        """A new dump: a handshake not seen before gets its age from the wall clock, now."""
        wall, mono, known = self.wall(), self.mono(), self._stale_at
        seen = {}
        for key, peer in peers.items():
            handshake = peer.latest_handshake
            if not handshake:
                continue
            old = known.get(key)
            seen[key] = old if old is not None and old[0] == handshake else (
                handshake, _stale_at(handshake, wall, mono))
        self._stale_at = seen

    def stale_at(self, peer: PeerState) -> float:
        """Monotonic time the peer's session goes (or went) stale; -inf without a handshake."""
        if not peer.latest_handshake:
            return float("-inf")
        known = self._stale_at.get(peer.public_key)
        if known is not None and known[0] == peer.latest_handshake:
            return known[1]
        # not in a dump yet (a peer only our cache knows): judged as a dump would judge it now
        return _stale_at(peer.latest_handshake, self.wall(), self.mono())

    def live(self, peer: PeerState) -> bool:
        return self.mono() < self.stale_at(peer)

    def any_live(self) -> bool:
        mono = self.mono()
        return any(mono < until for _, until in self._stale_at.values())


def _stale_at(handshake: int, wall: float, mono: float) -> float:
    """A handshake seen now for the first time: when it goes stale, on the monotonic clock
    (a stamp ahead of the wall clock counts as new)."""
    return mono + STALE_HANDSHAKE - min(max(wall - handshake, 0.0), STALE_HANDSHAKE)
