import pytest

from bmx7wg import advert, ints
from bmx7wg.bmx7 import parse_metric
from bmx7wg.model import Advert


@pytest.fixture
def empty_table(monkeypatch):
    monkeypatch.setattr(ints, "_table", {})


def test_equal_values_come_back_as_one_object(empty_table):
    a, b = int("51820"), int("51820")
    assert a is not b                  # CPython makes two objects above 256
    assert ints.shared(a) is a
    assert ints.shared(b) is a


def test_the_table_stops_growing_at_its_cap(empty_table, monkeypatch):
    monkeypatch.setattr(ints, "CAP", 3)
    for v in range(1000, 1010):
        assert ints.shared(v) == v
    assert len(ints._table) == 3
    late = int("1009")
    assert ints.shared(late) is late   # past the cap: handed back as it came


def test_decoded_ports_and_parsed_metrics_are_shared(empty_table):
    raw = advert.encode(Advert(public_key="A" * 43 + "=", port=51820, addresses=("fd77::1/128",)))
    assert advert.decode(raw).port is advert.decode(bytes(raw)).port
    assert parse_metric("999M") is parse_metric("999M".lower().upper())
