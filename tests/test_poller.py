"""poller.py: which named descriptors are readable."""

from __future__ import annotations

import os
import time

from bmx7wg.poller import Poller


def test_names_come_back_when_their_descriptor_is_readable():
    (r1, w1), (r2, w2) = os.pipe(), os.pipe()
    try:
        poller = Poller()
        poller.register(r1, "one")
        poller.register(r2, "two")
        assert poller.ready(0) == []
        os.write(w2, b"x")
        assert poller.ready(1) == ["two"]
        os.write(w1, b"x")
        assert sorted(poller.ready(1)) == ["one", "two"]
        poller.unregister(r2)
        assert poller.ready(0) == ["one"]
        os.close(w1)
        os.read(r1, 1)
        assert poller.ready(0) == ["one"]                    # hung up: a read will say so
    finally:
        for fd in (r1, w2, r2):
            os.close(fd)


def test_a_wait_under_a_millisecond_is_rounded_up_not_down():
    r, w = os.pipe()
    try:
        poller = Poller()
        poller.register(r, "r")
        began = time.monotonic()
        assert poller.ready(0.0001) == []
        assert time.monotonic() - began >= 0.0009            # waited 1 ms: a loop over it cannot spin
    finally:
        os.close(r)
        os.close(w)
