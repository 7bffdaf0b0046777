import random
import socket

import pytest

from bmx7wg import config, port


def cfg(**opts):
    return config.parse("wgm", opts)


def test_fixed_port_wins():
    assert port.choose_port(cfg(listen_port="51900"), current=52000) == 51900


def test_current_port_kept_when_in_range():
    assert port.choose_port(cfg(port_range="52000-52010"), current=52005) == 52005


def test_current_out_of_range_or_failed_is_replaced():
    c = cfg(port_range="52000-52010")
    assert 52000 <= port.choose_port(c, current=40000) <= 52010
    assert port.choose_port(c, current=52005, avoid={52005}) != 52005


def test_bound_ports_are_avoided():
    busy = []
    for p in range(53100, 53104):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", p))
        busy.append(s)
    try:
        c = cfg(port_range="53100-53104")
        for seed in range(20):
            assert port.choose_port(c, rng=random.Random(seed)) == 53104
        assert not port.udp_port_free(53100)
    finally:
        for s in busy:
            s.close()


def test_no_free_port_is_one_line_error():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::", 53200))
    try:
        with pytest.raises(RuntimeError, match="option 'port_range': no free UDP port in 53200-53200"):
            port.choose_port(cfg(port_range="53200-53200"))
    finally:
        s.close()
