"""The few socket calls the daemon makes, from `_socket`, the C module socket.py wraps.

socket.py adds enums built from hundreds of constants (AddressFamily, SocketKind, ...),
makefile() and sendfile(), none of which the helper uses. Its import is 0.44-0.52 MB of RSS
on a 64-bit python3 (3.11 and 3.13, glibc and musl), 0.33 MB on 32-bit; the helper's RSS at
5,000 advertisers fell 0.2-0.3 MB without it. Every CPython that has socket.py has
`_socket`; where it is missing, socket.py itself serves.
"""

from __future__ import annotations

try:
    import _socket as _core
except ImportError:                                  # pragma: no cover - not CPython
    import socket as _core

AF_INET, AF_INET6, AF_UNIX = _core.AF_INET, _core.AF_INET6, _core.AF_UNIX
SOCK_DGRAM, SOCK_STREAM = _core.SOCK_DGRAM, _core.SOCK_STREAM
IPPROTO_IPV6, IPV6_V6ONLY = _core.IPPROTO_IPV6, _core.IPV6_V6ONLY
inet_pton, if_nametoindex = _core.inet_pton, _core.if_nametoindex
socketpair = _core.socketpair                        # AF_UNIX, SOCK_STREAM


class Socket(_core.socket):
    """A socket that closes at the end of a `with` block, as socket.socket does."""

    __slots__ = ()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
