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
        # public key -> the latest handshake a dump showed, and the monotonic time that
        # session goes stale; peers with a handshake only. Two dicts changed in place, not a
        # dict of (handshake, stale time) tuples made anew at every dump, which held two such
        # dicts at once and a tuple per peer (0.2 to 0.4 MB of RSS at 5,000 live sessions)
        self._handshake: dict[str, int] = {}
        self._stale_at: dict[str, float] = {}
        # grows whenever a dump shows a session come alive or a live one go: until it does
        # (or a live session's time runs out) the set of live sessions is what it was
        self.moves = 0

    def observe(self, peers: Mapping[str, PeerState]) -> None:
        """A new dump: a handshake not seen before gets its age from the wall clock, now."""
        wall, mono, handshakes, stale_at = self.wall(), self.mono(), self._handshake, self._stale_at
        for key, peer in peers.items():
            handshake = peer.latest_handshake
            if not handshake:
                if key in handshakes:
                    self._forget(key, mono)
            elif handshakes.get(key) != handshake:
                was, now = stale_at.get(key), _stale_at(handshake, wall, mono)
                handshakes[key], stale_at[key] = handshake, now
                if (was is None or was <= mono) and now > mono:
                    self.moves += 1
        for key in [k for k in handshakes if k not in peers]:
            self._forget(key, mono)

    def _forget(self, key: str, mono: float) -> None:
        del self._handshake[key]
        if self._stale_at.pop(key) > mono:
            self.moves += 1

    def stale_at(self, peer: PeerState) -> float:
        """Monotonic time the peer's session goes (or went) stale; -inf without a handshake."""
        if not peer.latest_handshake:
            return float("-inf")
        if self._handshake.get(peer.public_key) == peer.latest_handshake:
            return self._stale_at[peer.public_key]
        # not in a dump yet (a peer only our cache knows): judged as a dump would judge it now
        return _stale_at(peer.latest_handshake, self.wall(), self.mono())

    def live(self, peer: PeerState) -> bool:
        return self.mono() < self.stale_at(peer)

    def any_live(self) -> bool:
        mono = self.mono()
        return any(mono < until for until in self._stale_at.values())


def _stale_at(handshake: int, wall: float, mono: float) -> float:
    """A handshake seen now for the first time: when it goes stale, on the monotonic clock
    (a stamp ahead of the wall clock counts as new)."""
    return mono + STALE_HANDSHAKE - min(max(wall - handshake, 0.0), STALE_HANDSHAKE)
