"""nodeId -> addresses, following bmx7's own derivation.

bmx7 builds a node's primaryIp from `ipAutoPrefix` (default fd70::/16) followed by the
leading bits of the nodeId (for a /16: the first 28 hex digits). The WireGuard tunnel
address uses the same rule under its own prefix (fd77::/16 by default, as the 2019 bmx7
wg_tun plugin did), so any node can compute every other node's tunnel address from the
nodeId bmx7 has already authenticated.
"""

from __future__ import annotations

import ipaddress

from . import cidr
from .charset import HEX_UPPER, made_of

NODE_ID_HEX = 56                       # SHA-224 of the node's RSA key, uppercase hex
SHORT_ID_HEX = 8
PRIMARY_PREFIX = "fd70::/16"
AUTO_PREFIX = "fd77::/16"
MIN_PREFIXLEN, MAX_PREFIXLEN = 8, 64   # host part: 64..120 bits, all from the nodeId
_PRIMARY_NET = 0xFD70 << 112            # PRIMARY_PREFIX as an int

class AddressError(ValueError):
    """A bad nodeId or prefix; the message is one line naming the value."""


def is_node_id(s: object) -> bool:
    """True for exactly 56 uppercase hex digits (bmx7's spelling of a nodeId)."""
    return made_of(s, HEX_UPPER, NODE_ID_HEX, NODE_ID_HEX)


def short_id(node_id: str) -> str:
    """The first 8 hex digits, as bmx7 shows them (shortId)."""
    _require_node_id(node_id)
    return node_id[:SHORT_ID_HEX]


def parse_prefix(prefix: str | ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    """Validate an address prefix: IPv6, length 8..64, no bits set after the prefix."""
    try:
        net = ipaddress.ip_network(prefix, strict=True)
    except (ValueError, TypeError) as e:
        raise AddressError(f"bad prefix {prefix!r}: {e}") from None
    if net.version != 6:
        raise AddressError(f"prefix {prefix} is not IPv6")
    if not MIN_PREFIXLEN <= net.prefixlen <= MAX_PREFIXLEN:
        raise AddressError(
            f"prefix {prefix} must have a length of {MIN_PREFIXLEN}..{MAX_PREFIXLEN}")
    return net


def derive(node_id: str, prefix: str | ipaddress.IPv6Network) -> ipaddress.IPv6Address:
    """Prefix bits, then the host bits filled with the leading bits of the nodeId."""
    _require_node_id(node_id)
    net = parse_prefix(prefix)
    host_bits = 128 - net.prefixlen
    node_bits = int(node_id, 16) >> (NODE_ID_HEX * 4 - host_bits)
    return ipaddress.IPv6Address(int(net.network_address) | node_bits)


def primary_ip(node_id: str, prefix: str | ipaddress.IPv6Network = PRIMARY_PREFIX
               ) -> ipaddress.IPv6Address:
    """bmx7's primaryIp of a node (str() gives bmx7's spelling)."""
    return derive(node_id, prefix)


def primary_ip_value(node_id: str) -> int:
    """primary_ip(node_id) under bmx7's default fd70::/16 as an int (cidr.address_key's)."""
    return _PRIMARY_NET | int(node_id, 16) >> (NODE_ID_HEX * 4 - 112)


def primary_ip_text(node_id: str) -> str:
    """str(primary_ip(node_id)) under bmx7's default fd70::/16, without ipaddress objects
    (model.Originator works it out whenever asked)."""
    return cidr.ip_text(6, primary_ip_value(node_id))


def auto_address(node_id: str, prefix: str | ipaddress.IPv6Network = AUTO_PREFIX
                 ) -> ipaddress.IPv6Address:
    """The node's WireGuard tunnel address under `prefix`."""
    return derive(node_id, prefix)


def verify_auto_address(node_id: str, addr: object,
                        prefix: str | ipaddress.IPv6Network = AUTO_PREFIX) -> bool:
    """True if `addr` (address, or host /128 network) is node_id's address under prefix.

    A bad prefix raises AddressError (it is our configuration); a bad node_id or an
    address that does not parse is simply not a match (it came from the mesh).
    """
    net = parse_prefix(prefix)
    if not is_node_id(node_id):
        return False
    try:
        if isinstance(addr, ipaddress.IPv6Address):
            ip = addr
        else:
            iface = ipaddress.ip_interface(addr)
            if iface.network.prefixlen != iface.max_prefixlen:
                return False
            ip = iface.ip
    except (ValueError, TypeError):
        return False
    return ip.version == 6 and ip == derive(node_id, net)


def _require_node_id(node_id: object) -> None:
    if not is_node_id(node_id):
        raise AddressError(f"bad nodeId {node_id!r}: want {NODE_ID_HEX} uppercase hex digits")
