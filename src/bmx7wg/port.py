"""The UDP port WireGuard listens on: fixed, or random and free inside port_range."""

from __future__ import annotations

import errno
import os

from . import sockets
from .config import IfaceConfig


def udp_port_free(port: int) -> bool:
    """True if nothing holds this UDP port on IPv6 or IPv4 (WireGuard binds both)."""
    for family, host in ((sockets.AF_INET6, "::"), (sockets.AF_INET, "0.0.0.0")):
        try:
            with sockets.Socket(family, sockets.SOCK_DGRAM) as sock:
                if family == sockets.AF_INET6:
                    sock.setsockopt(sockets.IPPROTO_IPV6, sockets.IPV6_V6ONLY, 1)
                sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno != errno.EAFNOSUPPORT:
                raise
    return True


def choose_port(cfg: IfaceConfig, current: int | None = None, avoid: set[int] = frozenset(),
                rng=None, tries: int = 64, remembered: int | None = None) -> int:
    """Fixed listen_port, else keep the link's current port when it is in range, else the
    previous run's port when it is in range and free, else a free random one.

    `current` is what the running link already listens on: keeping it means a helper restart
    never changes what other nodes have configured. `remembered` is the port of the previous
    run on a link that is gone (netifd deletes it at teardown, also after a crash): keeping
    it too means other nodes have nothing to relearn but a handshake. `avoid` holds ports that
    failed to bind. `rng`: anything with randint(lo, hi) (tests pass a seeded random.Random).
    """
    if cfg.listen_port:
        return cfg.listen_port
    lo, hi = cfg.port_range
    if current and lo <= current <= hi and current not in avoid:
        return current
    if remembered and lo <= remembered <= hi and remembered not in avoid and udp_port_free(remembered):
        return remembered
    rng = rng or _Urandom()
    for _ in range(tries):
        port = rng.randint(lo, hi)
        if port not in avoid and udp_port_free(port):
            return port
    raise RuntimeError(f"option 'port_range': no free UDP port in {lo}-{hi} after {tries} tries")


class _Urandom:
    """randint from os.urandom, not `random` (0.1 MB of the helper's memory for one pick).
    The modulo bias over 2**32 is below 2e-5 for any port range."""

    @staticmethod
    def randint(lo: int, hi: int) -> int:
        return lo + int.from_bytes(os.urandom(4), "big") % (hi - lo + 1)
