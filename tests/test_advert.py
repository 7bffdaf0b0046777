import base64
import ipaddress
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import fuzz_advert
from bmx7wg import advert
from bmx7wg.advert import MAX_SIZE, AdvertError, decode, encode, encoded_size, max_networks
from bmx7wg.model import Advert

KEY_RAW = bytes(range(32))
KEY = base64.b64encode(KEY_RAW).decode()
net = ipaddress.ip_network


def adv(addresses=("fd77::1/128",), networks=("10.1.0.0/24",), port=51820, key=KEY):
    return Advert(public_key=key, port=port, addresses=tuple(net(a) for a in addresses),
                  networks=tuple(net(n) for n in networks))


def field(ftype, value):
    return bytes([ftype, len(value)]) + value


HEAD = b"\xb7\x77\x10"
KEYF = field(1, KEY_RAW)
PORTF = field(2, struct.pack(">H", 51820))


# ---------------------------------------------------------------- exact bytes

def test_exact_encoding():
    data = encode(adv(addresses=["fd77::1/128", "10.9.0.1/32"],
                      networks=["10.1.0.0/24", "fd00:1::/48", "0.0.0.0/0"]))
    expected = (HEAD + KEYF + PORTF
                + field(3, b"\x80" + bytes.fromhex("fd77" + "00" * 13 + "01")
                        + b"\xa1\x0a\x09\x00\x01")
                + field(4, b"\x99\x0a\x01\x00" + b"\x30\xfd\x00\x00\x01\x00\x00" + b"\x81"))
    assert data == expected
    assert len(data) == 41 + 2 + 17 + 5 + 2 + 4 + 7 + 1


def test_minimal_advert():
    a = adv(addresses=(), networks=())
    assert encode(a) == HEAD + KEYF + PORTF
    assert decode(HEAD + KEYF + PORTF) == a
    # fields in any order
    assert decode(HEAD + PORTF + KEYF) == a


def test_decoded_values():
    a = decode(encode(adv()))
    assert a.public_key == KEY and a.port == 51820 and a.version == 1
    assert a.addresses == ("fd77::1/128",)
    assert a.networks == ("10.1.0.0/24",)


def test_entries_are_the_text_ipaddress_prints():
    # an advert holds each entry as one canonical string (cidr.py), whether decoded or built
    # from ipaddress networks (the own advert, from the config)
    nets = [ipaddress.ip_network(n) for n in ("fd77:0:0:1::1/128", "::ffff:a01:203/128", "10.1.0.1/32",
                                              "2001:db8::/32", "0.0.0.0/0")]
    built = Advert(KEY, 51820, tuple(nets[:3]), tuple(nets[3:]))
    decoded = decode(encode(built))
    assert decoded == built
    for a in (built, decoded):
        assert [*a.addresses, *a.networks] == [str(n) for n in nets]
        assert all(type(e) is str for e in (*a.addresses, *a.networks))


# ---------------------------------------------------------------- round trips

def _networks(host: bool):
    def build(v6, bits, plen):
        width = 128 if v6 else 32
        plen = width if host else plen % (width + 1)
        cls = ipaddress.IPv6Network if v6 else ipaddress.IPv4Network
        value = bits % (1 << width)
        return cls((value >> (width - plen) << (width - plen) if plen else 0, plen))
    return st.builds(build, st.booleans(), st.integers(min_value=0, max_value=(1 << 128) - 1),
                     st.integers(min_value=0, max_value=128))


adverts = st.builds(
    lambda key, port, addrs, nets: Advert(base64.b64encode(key).decode(), port,
                                          tuple(dict.fromkeys(addrs)), tuple(dict.fromkeys(nets))),
    st.binary(min_size=32, max_size=32), st.integers(min_value=1, max_value=65535),
    st.lists(_networks(True), max_size=4), st.lists(_networks(False), max_size=40))


@settings(max_examples=300, deadline=None)
@given(adverts)
def test_round_trip(a):
    size = encoded_size(a.addresses, a.networks)
    if size > MAX_SIZE:
        with pytest.raises(AdvertError, match=f"advert is {size} bytes, limit 300"):
            encode(a)
        return
    data = encode(a)
    assert len(data) == size
    assert decode(data) == a
    assert decode(bytearray(data)) == a and decode(memoryview(data)) == a


@settings(max_examples=100, deadline=None)
@given(adverts, st.integers(min_value=5, max_value=0xFF), st.binary(max_size=40))
def test_unknown_field_is_skipped_anywhere(a, ftype, value):
    data = encode(adv(networks=a.networks[:5]))
    unknown = field(ftype, value)
    # at the end, and between the header and the first field
    for mutated in (data + unknown, data[:3] + unknown + data[3:]):
        if len(mutated) <= MAX_SIZE:
            assert decode(mutated) == decode(data)


def test_newer_minor_version_accepted_with_unknown_field():
    data = b"\xb7\x77\x1f" + KEYF + field(0x42, b"future stuff") + PORTF
    assert decode(data) == adv(addresses=(), networks=())


def test_long_lists_split_into_several_fields():
    nets = [f"fd00:{i:x}::/64" for i in range(1, 27)]       # 26 x 9 = 234 B: one field
    data = encode(adv(networks=nets))
    assert len(data) == 41 + 19 + 2 + 234 == 296
    # a list above 255 bytes needs a second field (2 more bytes): 41 + 4 + 256 = 301
    v4 = [f"10.{i}.0.0/16" for i in range(80)]               # 80 x 3 = 240 B
    v4 += [f"10.{i}.1.0/24" for i in range(4)]              # +16 B = 256 > 255
    assert encoded_size((), v4) == 301
    assert encoded_size((), v4[:-1]) == 41 + 2 + 252
    with pytest.raises(AdvertError, match="advert is 301 bytes, limit 300"):
        encode(adv(addresses=(), networks=v4))
    # a reader joins repeated list fields, in order
    split = HEAD + KEYF + PORTF + field(4, b"\x99\x0a\x01\x00") + field(4, b"\x99\x0a\x02\x00")
    assert decode(split).networks == ("10.1.0.0/24", "10.2.0.0/24")


# ---------------------------------------------------------------- size limit

def test_encode_refuses_above_300_bytes():
    nets = [f"fd00:{i:x}::/64" for i in range(1, 28)]       # one more than fits
    with pytest.raises(AdvertError) as e:
        encode(adv(networks=nets))
    assert e.value.reason == "advert is 305 bytes, limit 300 (1 addresses, 27 networks)"
    assert "\n" not in str(e.value)


def test_max_networks_matches_encode():
    for n_addr in range(4):
        addrs = [f"fd77::{i + 1}/128" for i in range(n_addr)]
        for like, make in (("::/64", lambda i: f"fd00:{i + 1:x}::/64"),
                           ("10.0.0.0/24", lambda i: f"10.{i // 256}.{i % 256}.0/24"),
                           ("2001:db8::/48", lambda i: f"2001:{i + 1:x}::/48")):
            fit = max_networks(n_addr, like)
            assert fit == max_networks(addrs, like)
            encode(adv(addresses=addrs, networks=[make(i) for i in range(fit)]))
            with pytest.raises(AdvertError, match="limit 300"):
                encode(adv(addresses=addrs, networks=[make(i) for i in range(fit + 1)]))
    assert max_networks(1) == 26
    assert max_networks(20) == 0


def test_decode_refuses_above_300_bytes():
    data = HEAD + KEYF + PORTF + field(0x30, bytes(255))
    assert len(data) == 298
    assert decode(data).port == 51820
    data += field(0x30, b"")
    assert decode(data).port == 51820                      # exactly 300
    with pytest.raises(AdvertError, match=r"^advert is 301 bytes, limit 300$"):
        decode(data + b"\x00")
    with pytest.raises(AdvertError, match=r"^advert is 412 bytes, limit 300$"):
        decode(bytes(412))


# ---------------------------------------------------------------- every rejection

BODY = KEYF + PORTF


@pytest.mark.parametrize("data,reason", [
    (b"", "empty advert"),
    (b"\xb7\x77", "truncated header"),
    (b"{\"v\":1}", "not a bmx7wg advert (bad magic)"),
    (b"\xb7\x78\x10" + BODY, "not a bmx7wg advert (bad magic)"),
    (b"\xb7\x77\x20" + BODY, "unsupported advert version 2.0"),
    (b"\xb7\x77\x03" + BODY, "unsupported advert version 0.3"),
    (HEAD + BODY + b"\x04", "trailing garbage: 1 byte after last field"),
    (HEAD + BODY + b"\x04\x04\x99\x0a", "truncated network field"),
    (HEAD + BODY + b"\x09\x05abc", "truncated unknown (type 0x09) field"),
    (HEAD + KEYF[:20], "truncated public key field"),
    (HEAD + KEYF + b"\x02\x02\xca", "truncated port field"),
    (HEAD + field(1, bytes(31)) + PORTF, "bad public key length 31, want 32"),
    (HEAD + field(1, bytes(33)) + PORTF, "bad public key length 33, want 32"),
    (HEAD + KEYF + field(2, b"\x00\xca\x6c"), "bad port field length 3, want 2"),
    (HEAD + KEYF + field(2, b"\x00\x00"), "port 0"),
    (HEAD + BODY + KEYF, "duplicate public key field"),
    (HEAD + BODY + PORTF, "duplicate port field"),
    (HEAD + BODY + field(3, b""), "empty address field"),
    (HEAD + BODY + field(4, b""), "empty network field"),
    (HEAD + BODY + field(4, b"\xc8\x00"), "bad prefix tag 200 in network field"),
    (HEAD + BODY + field(4, b"\xa2" + bytes(5)), "bad prefix tag 162 in network field"),
    (HEAD + BODY + field(4, b"\x99\x0a\x01"), "truncated network field"),
    (HEAD + BODY + field(3, b"\x80" + bytes(15)), "truncated address field"),
    (HEAD + BODY + field(4, b"\x98\x0a\x01\x01"), "network 10.1.1.0/23 has host bits set"),
    (HEAD + BODY + field(4, b"\x8c\x0a\x0f"), "network 10.15.0.0/11 has host bits set"),
    (HEAD + BODY + field(4, b"\x81\x00" + b"\x01\xff"), "network ff00::/1 has host bits set"),
    (HEAD + BODY + field(4, b"\x40" + bytes.fromhex("fd00000100000001")),
     None),  # fd00:1:0:1::/64 is fine (control)
    (HEAD + BODY + field(3, b"\x40" + bytes(8)), "address ::/64 is not a host prefix (/32 or /128)"),
    (HEAD + BODY + field(3, b"\xa0" + bytes(4)), "address 0.0.0.0/31 is not a host prefix (/32 or /128)"),
    (HEAD + BODY + field(4, b"\x99\x0a\x01\x00" * 2), "duplicate network 10.1.0.0/24"),
    (HEAD + BODY + field(4, b"\x99\x0a\x01\x00") + field(4, b"\x99\x0a\x01\x00"),
     "duplicate network 10.1.0.0/24"),
    (HEAD + BODY + field(3, b"\xa1\x0a\x00\x00\x01") * 2, "duplicate address 10.0.0.1/32"),
    (HEAD + PORTF, "missing public key"),
    (HEAD + KEYF, "missing port"),
    (HEAD, "missing public key"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_rejections(data, reason):
    if reason is None:
        assert decode(data).networks == ("fd00:1:0:1::/64",)
        return
    with pytest.raises(AdvertError) as e:
        decode(data)
    assert e.value.reason == reason
    assert str(e.value) == reason


def test_network_entry_straddling_two_fields_is_rejected():
    entry = b"\x99\x0a\x01\x00"
    with pytest.raises(AdvertError, match="truncated network field"):
        decode(HEAD + BODY + field(4, entry[:2]) + field(4, entry[2:]))


@pytest.mark.parametrize("thing", ["text", None, 42, [1, 2], bytearray(b"\xb7")])
def test_non_bytes_and_odd_inputs(thing):
    with pytest.raises(AdvertError):
        decode(thing)


@pytest.mark.parametrize("bad,reason", [
    (adv(key="not base64!"), "bad public key: not base64"),
    (adv(key=base64.b64encode(bytes(31)).decode()), "bad public key: want 32 bytes"),
    (adv(key=KEY.rstrip("=")), "bad public key"),
    (adv(port=0), "bad port 0"),
    (adv(port=65536), "bad port 65536"),
    (Advert(KEY, True), "bad port True"),
    (Advert(KEY, 51820, version=2), "cannot encode advert version 2"),
    (Advert(KEY, 51820, addresses=(net("fd77::/64"),)), "address fd77::/64 is not a host prefix"),
    (Advert(KEY, 51820, networks=("10.1.0.1/24",)), "bad network '10.1.0.1/24'"),
    (Advert(KEY, 51820, networks=("bogus",)), "bad network 'bogus'"),
    (adv(networks=("10.1.0.0/24", "10.1.0.0/24")), "duplicate network 10.1.0.0/24"),
    (adv(addresses=("fd77::1/128", "fd77::1/128")), "duplicate address fd77::1/128"),
    ("not an advert", "cannot encode str"),
])
def test_encode_rejections(bad, reason):
    with pytest.raises(AdvertError) as e:
        encode(bad)
    assert e.value.reason.startswith(reason)
    assert "\n" not in e.value.reason


def test_error_is_value_error_with_reason():
    e = AdvertError("port 0")
    assert isinstance(e, ValueError) and e.reason == "port 0"


# ---------------------------------------------------------------- fuzzing

def test_short_fuzz_run():
    stats = fuzz_advert.run(5000, seed=20241125)
    assert stats.failures == []
    assert stats.runs == 5000
    # the mix must exercise both paths, or the run proves little
    assert stats.accepted > 200 and stats.rejected > 2000
    assert len(stats.reasons) >= 10


def test_fuzz_harness_catches_a_broken_decoder(monkeypatch):
    def broken(data):
        if len(data) > 50:
            raise IndexError("boom")
        return advert.decode(data)
    monkeypatch.setattr(fuzz_advert, "decode", broken)
    stats = fuzz_advert.run(300, seed=1, max_failures=3)
    assert len(stats.failures) == 3 and "IndexError" in stats.failures[0]


def test_fuzz_cli_exit_status_and_rate():
    script = Path(__file__).with_name("fuzz_advert.py")
    out = subprocess.run([sys.executable, str(script), "--runs", "500", "--seed", "7"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "500 runs in" in out.stdout and "runs/s" in out.stdout
