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


def test_remembered_port_reused_when_free_and_in_range():
    c = cfg(port_range="53300-53310")
    for seed in range(10):          # any random pick would almost surely differ from 53307
        assert port.choose_port(c, rng=random.Random(seed), remembered=53307) == 53307
    assert port.choose_port(c, current=53301, remembered=53307) == 53301     # the live link's port first
    assert port.choose_port(cfg(listen_port="53400"), remembered=53307) == 53400


def test_remembered_port_replaced_when_busy_failed_or_out_of_range():
    c = cfg(port_range="53320-53321")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        taken.bind(("::", 53320))
        assert port.choose_port(c, remembered=53320) == 53321      # someone took it meanwhile
    assert port.choose_port(c, avoid={53320}, remembered=53320) == 53321   # it failed to bind
    assert port.choose_port(cfg(port_range="53330-53330"), remembered=53320) == 53330   # range changed
