"""sockets.py: the daemon's socket calls from _socket, behaving as socket.py's do."""

from __future__ import annotations

import os
import socket

import pytest

from bmx7wg import sockets


def test_socket_closes_at_the_end_of_its_with_block():
    with sockets.Socket(sockets.AF_INET, sockets.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        fd = sock.fileno()
        assert fd >= 0 and sock.getsockname()[1] > 0
    assert sock.fileno() == -1
    with pytest.raises(OSError):
        os.fstat(fd)


def test_v6only_udp_socket_binds_as_port_py_asks():
    with sockets.Socket(sockets.AF_INET6, sockets.SOCK_DGRAM) as sock:
        sock.setsockopt(sockets.IPPROTO_IPV6, sockets.IPV6_V6ONLY, 1)
        sock.bind(("::", 0))
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_socketpair_is_a_connected_stream_pair():
    a, b = sockets.socketpair()
    try:
        a.sendall(b"wake")
        assert b.recv(16) == b"wake"
        assert (a.family, a.type) == (socket.AF_UNIX, socket.SOCK_STREAM)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("family, text", [(socket.AF_INET, "10.1.2.3"), (socket.AF_INET6, "fd77::1"),
                                          (socket.AF_INET6, "::ffff:10.0.0.1")])
def test_inet_pton_and_constants_are_socket_pys(family, text):
    assert sockets.inet_pton(family, text) == socket.inet_pton(family, text)
    assert (sockets.AF_INET, sockets.AF_INET6, sockets.AF_UNIX) == (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)
    assert sockets.if_nametoindex("lo") == socket.if_nametoindex("lo")


def test_inet_pton_refuses_what_socket_py_refuses():
    with pytest.raises(OSError):
        sockets.inet_pton(sockets.AF_INET, "10.1.2")
