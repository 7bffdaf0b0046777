"""CIDR text <-> integers, without ipaddress objects.

An advert's addresses and networks are held as their canonical text ("fd77:1::2/128", what
str() of the ipaddress network prints): that one string is what the advert, the policy's
entry and the peer's allowed-ips share. An ipaddress network would cost three more objects
per entry (network, address, attribute values), thousands of them on a big mesh, and its
text a fourth. Parsing goes through inet_pton: a tenth of ipaddress's cost, and it accepts a
subset of what ipaddress does with the same values (no scope ids).
"""

from __future__ import annotations

import ipaddress

from . import sockets

BITS = {4: 32, 6: 128}


def parse(text) -> tuple[int, int, int, str] | None:
    """(version, prefix length, network address, canonical text) of a network in CIDR
    notation without host bits set, or None. The canonical text is `text` itself when it
    is already canonical (as every decoded advert's is)."""
    if type(text) is not str:
        return None
    addr, sep, length = text.partition("/")
    if not sep or not length.isascii() or not length.isdigit() or len(length) > 3:
        return None
    found = address(addr)
    if found is None:
        return None
    version, value = found
    plen, bits = int(length), BITS[version]
    if plen > bits or value & ((1 << (bits - plen)) - 1):
        return None
    canonical = net_text(version, value, plen)
    return version, plen, value, text if canonical == text else canonical


def address(text: str) -> tuple[int, int] | None:
    """(version, value) of an IPv4 or IPv6 address in inet_pton's spelling, or None."""
    version = 6 if ":" in text else 4
    try:
        return version, int.from_bytes(
            sockets.inet_pton(sockets.AF_INET6 if version == 6 else sockets.AF_INET, text), "big")
    except (OSError, ValueError):
        return None


def address_key(text) -> int | None:
    """An IPv4 or IPv6 address as one int, or None: IPv4 lies above IPv6's whole range, so
    the two never meet. A key for sets and dicts at a fraction of an address object's cost
    (an int, against an ipaddress object plus its int)."""
    found = address(text) if type(text) is str else None
    if found is None:
        return None
    version, value = found
    return value if version == 6 else value | 1 << 128


def span(version: int, plen: int, value: int) -> tuple[int, int, int]:
    """(version, first, last address) of a network: containment tests on integers."""
    return version, value, value | ((1 << (BITS[version] - plen)) - 1)


def is_host(text: str) -> bool:
    """A canonical network text of a /32 or /128."""
    return text.endswith("/128") or (text.endswith("/32") and ":" not in text)


def net_text(version: int, value: int, plen: int) -> str:
    return f"{ip_text(version, value)}/{plen}"


def ip_text(version: int, value: int) -> str:
    """str() of the ipaddress address object, without building it (see _FAST_TEXT)."""
    if version == 4:
        return "%d.%d.%d.%d" % (value >> 24, value >> 16 & 255, value >> 8 & 255, value & 255)
    if not _FAST_TEXT or value >> 32 == 0xFFFF:   # IPv4-mapped: Python versions print it apart
        return str(ipaddress.IPv6Address(value))
    groups = (value >> 112, value >> 96 & 0xFFFF, value >> 80 & 0xFFFF, value >> 64 & 0xFFFF,
              value >> 48 & 0xFFFF, value >> 32 & 0xFFFF, value >> 16 & 0xFFFF, value & 0xFFFF)
    best = best_len = run = 0
    for i, group in enumerate(groups):           # the longest run of zero groups, first on ties
        if group:
            run = 0
        else:
            run += 1
            if run > best_len:
                best, best_len = i - run + 1, run
    if best_len < 2:
        return "%x:%x:%x:%x:%x:%x:%x:%x" % groups
    return (":".join(["%x" % g for g in groups[:best]]) + "::"
            + ":".join(["%x" % g for g in groups[best + best_len:]]))


_FAST_TEXT = True
_FAST_TEXT = all(ip_text(6, v) == str(ipaddress.IPv6Address(v)) for v in (   # this Python agrees
    0, 1, 1 << 127, 0xFD770000000000000000000000000001, 0x20010DB8000000010000000000000000,
    0x00010000000000000000000000000001, 0xFD77000000010000000000010000FFFF,
    0xFFFF0000FFFF0000FFFF0000FFFF0000, (1 << 128) - 1))
