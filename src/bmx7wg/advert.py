"""Versioned, compact binary encoding of `model.Advert` (what a node publishes as bmx7 sms).

bmx7 carries the bytes unchanged and signed by the sender's node key, so this format needs
no checksum or signature; it must be small (sms limit 300 bytes with refSms=0) and safe to
parse from any node of the mesh. Full description: docs/advert-format.md.

Wire format (all integers big-endian):

    offset  size  content
    0       2     magic b"\\xb7\\x77"
    2       1     version: major (high 4 bits) = 1, minor (low 4 bits) = 0
    3       ...   fields, each: type (1 byte), length (1 byte, 0..255), value

    type  name       value                                   rules
    0x01  key        WireGuard public key, 32 raw bytes      required, once
    0x02  port       UDP listen port, 2 bytes                required, once, not 0
    0x03  addresses  prefix entries, host prefixes only      optional, may repeat
    0x04  networks   prefix entries, no host bits set        optional, may repeat
    other (unknown)  skipped: minor versions only add fields

    prefix entry: tag (1 byte) + the first ceil(len/8) bytes of the address
      tag 0..128    IPv6, prefix length = tag
      tag 129..161  IPv4, prefix length = tag - 129
      tag 162..255  invalid

A repeated `addresses`/`networks` field continues the list (a list longer than 255 bytes
needs several fields); entries never straddle two fields, and list order is kept. A reader
rejects (AdvertError with a short reason): more than MAX_SIZE bytes, bad magic, another
major version, a truncated field or entry, trailing bytes too short for a field, a wrong
key/port length, port 0, a repeated key/port field, an empty list field, an invalid tag,
host bits set in a network, an address that is not a host prefix, a duplicate entry, a
missing key or port.
"""

from __future__ import annotations

import binascii
import sys
import ipaddress
from collections.abc import Iterable

from . import cidr, ints
from .model import Advert, IPNetwork

MAGIC = b"\xb7\x77"
VERSION_MAJOR = 1
VERSION_MINOR = 0
MAX_SIZE = 300
HEADER_SIZE = len(MAGIC) + 1
MAX_FIELD = 255                       # one length byte

T_KEY, T_PORT, T_ADDRESSES, T_NETWORKS = 0x01, 0x02, 0x03, 0x04
KEY_SIZE = 32
_IPV4_TAG_BASE = 129                  # tags 129..161: IPv4 /0../32
_MAX_TAG = _IPV4_TAG_BASE + 32
_FIELD_NAMES = {T_KEY: "public key", T_PORT: "port", T_ADDRESSES: "address",
                T_NETWORKS: "network"}
_FIXED_SIZE = HEADER_SIZE + (2 + KEY_SIZE) + (2 + 2)   # header + key + port fields


class AdvertError(ValueError):
    """An advert that cannot be encoded or decoded; `reason` is short and one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- encoding

def encode(advert: Advert) -> bytes:
    """Bytes to publish; AdvertError if the advert is invalid or above MAX_SIZE."""
    if not isinstance(advert, Advert):
        raise AdvertError(f"cannot encode {type(advert).__name__}, want Advert")
    if advert.version != VERSION_MAJOR:
        raise AdvertError(f"cannot encode advert version {advert.version!r}")
    key = _key_bytes(advert.public_key)
    port = advert.port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise AdvertError(f"bad port {port!r}")
    addresses = _checked(advert.addresses, "address")
    networks = _checked(advert.networks, "network")
    out = b"".join([MAGIC, bytes([VERSION_MAJOR << 4 | VERSION_MINOR]),
                    _field(T_KEY, key), _field(T_PORT, port.to_bytes(2, "big")),
                    _list_fields(T_ADDRESSES, addresses), _list_fields(T_NETWORKS, networks)])
    if len(out) > MAX_SIZE:
        raise AdvertError(f"advert is {len(out)} bytes, limit {MAX_SIZE} "
                          f"({len(addresses)} addresses, {len(networks)} networks)")
    return out


def encoded_size(addresses: Iterable = (), networks: Iterable = ()) -> int:
    """Size in bytes of an advert with these addresses and networks (no limit applied)."""
    return (_FIXED_SIZE + len(_list_fields(T_ADDRESSES, _checked(addresses, "address")))
            + len(_list_fields(T_NETWORKS, _checked(networks, "network"))))


def max_networks(addresses: int | Iterable = 1, like: str | IPNetwork = "::/64") -> int:
    """How many networks of the size of `like` fit beside `addresses` within MAX_SIZE.

    `addresses` is a list of tunnel addresses or a count of IPv6 /128 addresses. Returns
    0 when even the addresses alone do not fit (or exactly fill the advert).
    """
    if isinstance(addresses, int):
        addresses = [ipaddress.IPv6Network((i + 1, 128)) for i in range(addresses)]
    used = _FIXED_SIZE + _packed_size([len(_entry(a)) for a in _checked(addresses, "address")])
    entry = len(_entry(_checked([like], "network")[0]))
    fit = 0
    while used + _packed_size([entry] * (fit + 1)) <= MAX_SIZE:
        fit += 1
    return fit


def _packed_size(entry_sizes: list[int]) -> int:
    """Bytes taken by list fields holding entries of these sizes (see _list_fields)."""
    total = chunk = 0
    for size in entry_sizes:
        if chunk + size > MAX_FIELD:
            total, chunk = total + 2 + chunk, 0
        chunk += size
    return total + (2 + chunk if chunk else 0)


def _key_bytes(public_key: object) -> bytes:
    try:
        raw = binascii.a2b_base64(public_key, strict_mode=True)  # base64.b64decode(validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise AdvertError("bad public key: not base64") from None
    if len(raw) != KEY_SIZE or _b64(raw) != public_key:
        raise AdvertError(f"bad public key: want {KEY_SIZE} bytes in base64 (44 chars)")
    return raw


def _checked(items: Iterable, what: str) -> list[IPNetwork]:
    """Parse to networks; addresses must be host prefixes; no duplicates."""
    out: list[IPNetwork] = []
    seen: set[IPNetwork] = set()
    for item in items:
        try:
            net = ipaddress.ip_network(item, strict=True)
        except (ValueError, TypeError) as e:
            raise AdvertError(f"bad {what} {item!r}: {e}") from None
        if what == "address" and net.prefixlen != net.max_prefixlen:
            raise AdvertError(f"address {net} is not a host prefix (/32 or /128)")
        if net in seen:
            raise AdvertError(f"duplicate {what} {net}")
        seen.add(net)
        out.append(net)
    return out


def _entry(net: IPNetwork) -> bytes:
    tag = net.prefixlen if net.version == 6 else _IPV4_TAG_BASE + net.prefixlen
    return bytes([tag]) + net.network_address.packed[:(net.prefixlen + 7) // 8]


def _field(ftype: int, value: bytes) -> bytes:
    return bytes([ftype, len(value)]) + value


def _list_fields(ftype: int, nets: list[IPNetwork]) -> bytes:
    """Entries packed greedily into as few fields of <= 255 bytes as possible."""
    fields, chunk = [], b""
    for net in nets:
        entry = _entry(net)
        if len(chunk) + len(entry) > MAX_FIELD:
            fields.append(_field(ftype, chunk))
            chunk = b""
        chunk += entry
    if chunk:
        fields.append(_field(ftype, chunk))
    return b"".join(fields)


# ---------------------------------------------------------------- decoding

def decode(data: bytes) -> Advert:
    """Parse received bytes. Raises only AdvertError, whatever the input."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AdvertError(f"advert must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_SIZE:
        raise AdvertError(f"advert is {len(data)} bytes, limit {MAX_SIZE}")
    if not data:
        raise AdvertError("empty advert")
    if len(data) < HEADER_SIZE:
        raise AdvertError("truncated header")
    if data[:len(MAGIC)] != MAGIC:
        raise AdvertError("not a bmx7wg advert (bad magic)")
    major, minor = data[2] >> 4, data[2] & 0x0F
    if major != VERSION_MAJOR:
        raise AdvertError(f"unsupported advert version {major}.{minor}")

    key = port = None
    lists: dict[int, list[str]] = {T_ADDRESSES: [], T_NETWORKS: []}
    pos = HEADER_SIZE
    while pos < len(data):
        if len(data) - pos < 2:
            raise AdvertError(f"trailing garbage: {len(data) - pos} byte after last field")
        ftype, flen = data[pos], data[pos + 1]
        value = data[pos + 2:pos + 2 + flen]
        name = _FIELD_NAMES.get(ftype, f"unknown (type {ftype:#04x})")
        if len(value) < flen:
            raise AdvertError(f"truncated {name} field")
        pos += 2 + flen
        if ftype == T_KEY:
            if key is not None:
                raise AdvertError("duplicate public key field")
            if flen != KEY_SIZE:
                raise AdvertError(f"bad public key length {flen}, want {KEY_SIZE}")
            key = value
        elif ftype == T_PORT:
            if port is not None:
                raise AdvertError("duplicate port field")
            if flen != 2:
                raise AdvertError(f"bad port field length {flen}, want 2")
            port = ints.shared(int.from_bytes(value, "big"))
            if port == 0:
                raise AdvertError("port 0")
        elif ftype in lists:
            if not value:
                raise AdvertError(f"empty {name} field")
            _append_entries(lists[ftype], value, name)
        # any other type: a field from a newer minor version, skipped

    if key is None:
        raise AdvertError("missing public key")
    if port is None:
        raise AdvertError("missing port")
    # interned: the same key string then serves the advert, the desired peer and the dump
    return Advert(public_key=sys.intern(_b64(key)), port=port,
                  addresses=tuple(lists[T_ADDRESSES]), networks=tuple(lists[T_NETWORKS]),
                  version=VERSION_MAJOR)


def _b64(raw: bytes) -> str:
    # binascii, not base64: the base64 module is 0.1 MB of the helper's memory for two calls
    return binascii.b2a_base64(raw, newline=False).decode()


def _append_entries(out: list[str], value: bytes, name: str) -> None:
    i = 0
    while i < len(value):
        tag = value[i]
        i += 1
        if tag > _MAX_TAG:
            raise AdvertError(f"bad prefix tag {tag} in {name} field")
        if tag >= _IPV4_TAG_BASE:
            plen, size, version = tag - _IPV4_TAG_BASE, 4, 4
        else:
            plen, size, version = tag, 16, 6
        nbytes = (plen + 7) // 8
        raw = value[i:i + nbytes]
        if len(raw) < nbytes:
            raise AdvertError(f"truncated {name} field")
        i += nbytes
        addr = int.from_bytes(raw + bytes(size - nbytes), "big")
        text = cidr.net_text(version, addr, plen)
        if addr & ((1 << (size * 8 - plen)) - 1):
            raise AdvertError(f"{name} {text} has host bits set")
        if name == "address" and plen != size * 8:
            raise AdvertError(f"address {text} is not a host prefix (/32 or /128)")
        if text in out:                    # canonical text: equal exactly for equal networks
            raise AdvertError(f"duplicate {name} {text}")
        out.append(text)
