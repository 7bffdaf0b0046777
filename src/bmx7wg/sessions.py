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
    """Handshakes as dumps showed them, each with the offset that turns it into the
    monotonic time its session goes stale."""

    def __init__(self, wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic):
        self.wall, self.mono = wall, mono
        # public key -> the latest handshake a dump showed (the dump's own int), and what to
        # add to it for the monotonic time that session goes stale; peers with a handshake
        # only. Two dicts changed in place, not a dict of tuples made anew at every dump (0.2
        # to 0.4 MB at 5,000 live sessions); the offsets of one dump are one float shared by
        # every handshake it shows for the first time (a float per session: 0.12 MB more)
        self._handshake: dict[str, int] = {}
        self._offset: dict[str, float] = {}
        # grows whenever a dump shows a session come alive or a live one go: until it does
        # (or a live session's time runs out) the set of live sessions is what it was
        self.moves = 0

    def observe(self, peers: Mapping[str, PeerState]) -> None:
        """A new dump: a handshake not seen before gets its age from the wall clock, now."""
        wall, mono, handshakes, offsets = self.wall(), self.mono(), self._handshake, self._offset
        shared = _recent(wall, mono)                # one float for all this dump shows first
        for key, peer in peers.items():
            handshake = peer.latest_handshake
            if not handshake:
                if key in handshakes:
                    self._forget(key, mono)
            elif handshakes.get(key) != handshake:
                was = handshakes[key] + offsets[key] if key in handshakes else None
                offset = _offset(handshake, wall, mono, shared)
                handshakes[key], offsets[key] = handshake, offset
                if (was is None or was <= mono) and handshake + offset > mono:
                    self.moves += 1
        for key in [k for k in handshakes if k not in peers]:
            self._forget(key, mono)

    def _forget(self, key: str, mono: float) -> None:
        if self._handshake.pop(key) + self._offset.pop(key) > mono:
            self.moves += 1

    def stale_at(self, peer: PeerState) -> float:
        """Monotonic time the peer's session goes (or went) stale; -inf without a handshake."""
        handshake = peer.latest_handshake
        if not handshake:
            return float("-inf")
        if self._handshake.get(peer.public_key) == handshake:
            return handshake + self._offset[peer.public_key]
        # not in a dump yet (a peer only our cache knows): judged as a dump would judge it now
        return handshake + _offset(handshake, self.wall(), self.mono())

    def live(self, peer: PeerState) -> bool:
        return self.mono() < self.stale_at(peer)

    def any_live(self) -> bool:
        mono, offsets = self.mono(), self._offset
        return any(mono < handshake + offsets[key] for key, handshake in self._handshake.items())


def _offset(handshake: int, wall: float, mono: float, shared: float | None = None) -> float:
    """A handshake seen now for the first time: what to add to it for the monotonic time it
    goes stale. `shared`: _recent(wall, mono), made once per dump, for one of the past 180 s; a stamp
    ahead of the wall clock counts as new, one older than 180 s as stale now."""
    age = wall - handshake
    if age < 0:
        return mono + STALE_HANDSHAKE - handshake
    if age > STALE_HANDSHAKE:
        return mono - handshake
    return _recent(wall, mono) if shared is None else shared


def _recent(wall: float, mono: float) -> float:
    """The offset of every handshake of the past STALE_HANDSHAKE seconds."""
    return mono - wall + STALE_HANDSHAKE
