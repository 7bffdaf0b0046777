"""sessions.py: a WireGuard session's liveness survives wall-clock steps in both directions."""

import pytest

from bmx7wg.model import PeerState
from bmx7wg.sessions import STALE_HANDSHAKE, Sessions, wall_live

DAY = 86400
KEY = "k" * 43 + "="


class Clocks:
    """A wall clock that steps and a monotonic one that only moves forward."""

    def __init__(self):
        self.wall_now, self.mono_now = 1_800_000_000.0, 5_000.0

    def wall(self):
        return self.wall_now

    def mono(self):
        return self.mono_now

    def run(self, seconds, step=0):
        self.mono_now += seconds
        self.wall_now += seconds + step


def peer(handshake):
    return PeerState(public_key=KEY, endpoint="[fd70::1]:51820", allowed_ips=(), latest_handshake=handshake,
                     rx=1, tx=1)


def watched(age):
    clocks = Clocks()
    sessions = Sessions(clocks.wall, clocks.mono)
    p = peer(int(clocks.wall_now - age))
    sessions.observe({KEY: p})
    return clocks, sessions, p


@pytest.mark.parametrize("step", [DAY, -DAY], ids=["forward-a-day", "back-a-day"])
def test_a_live_session_stays_live_across_a_step_and_goes_stale_on_time(step):
    clocks, sessions, p = watched(age=30)
    clocks.run(10, step)
    sessions.observe({KEY: p})                     # later dumps show the same handshake
    assert sessions.live(p)
    assert sessions.any_live()
    assert wall_live(p, clocks.wall_now) is (step < 0)      # what the wall clock alone would say
    clocks.run(STALE_HANDSHAKE - 30 - 10 - 1)
    sessions.observe({KEY: p})
    assert sessions.live(p)
    clocks.run(2)
    assert not sessions.live(p) and not sessions.any_live()


def test_a_new_handshake_after_a_step_is_aged_from_when_a_dump_shows_it():
    clocks, sessions, old = watched(age=100)
    clocks.run(STALE_HANDSHAKE, DAY)
    assert not sessions.live(old)
    fresh = peer(int(clocks.wall_now - 5))         # WireGuard stamps it with the stepped clock
    sessions.observe({KEY: fresh})
    assert sessions.live(fresh)
    clocks.run(STALE_HANDSHAKE - 5 - 1)
    assert sessions.live(fresh)
    clocks.run(2)
    assert not sessions.live(fresh)


def test_no_handshake_or_an_old_one_is_not_live():
    clocks = Clocks()
    sessions = Sessions(clocks.wall, clocks.mono)
    never = peer(None)
    sessions.observe({KEY: never})
    assert not sessions.live(never) and not sessions.any_live()
    _, sessions, stale = watched(age=STALE_HANDSHAKE + 1)
    assert not sessions.live(stale) and not sessions.any_live()


def test_a_handshake_no_dump_showed_yet_is_judged_by_the_wall_clock_now():
    clocks, sessions, _ = watched(age=30)
    unseen = PeerState(public_key="u" * 43 + "=", endpoint=None, allowed_ips=(),
                       latest_handshake=int(clocks.wall_now - 20), rx=0, tx=0)
    assert sessions.live(unseen)
    assert not sessions.live(peer(int(clocks.wall_now - STALE_HANDSHAKE - 1)))   # not the one observed


def test_peers_gone_from_a_dump_or_their_handshake_are_forgotten_and_aged_anew_when_back():
    clocks, sessions, p = watched(age=30)
    clocks.run(10, DAY)                            # a step while the peer is away
    sessions.observe({})
    assert not sessions.any_live()
    sessions.observe({KEY: p})                     # back with the same stamp: read as a new one
    assert not sessions.live(p)                    # now a day and 40 s old by the wall clock
    clocks, sessions, p = watched(age=30)
    sessions.observe({KEY: peer(None)})
    assert not sessions.any_live()
    sessions.observe({KEY: p})
    assert sessions.live(p)


def test_handshakes_first_shown_by_one_dump_share_one_offset_and_keep_their_own_stale_times():
    """A float per session is 0.12 MB at 5,000: one dump's new handshakes share theirs."""
    clocks = Clocks()
    sessions = Sessions(clocks.wall, clocks.mono)
    keys = [f"{i:043d}=" for i in range(4)]
    ages = [10, 100, 400, -30]                  # two recent, one long stale, one stamped ahead
    peers = {k: PeerState(public_key=k, endpoint=None, allowed_ips=(), latest_handshake=int(clocks.wall_now - a),
                          rx=1, tx=1) for k, a in zip(keys, ages)}
    sessions.observe(peers)
    assert sessions._offset[keys[0]] is sessions._offset[keys[1]]
    stale = [sessions.stale_at(peers[k]) for k in keys]
    assert stale == [clocks.mono_now + STALE_HANDSHAKE - 10, clocks.mono_now + STALE_HANDSHAKE - 100,
                     clocks.mono_now, clocks.mono_now + STALE_HANDSHAKE]
    assert [sessions.live(peers[k]) for k in keys] == [True, True, False, True]
