import ipaddress

import pytest

from bmx7wg import config


def parse(**opts):
    return config.parse("wgmesh", {"proto": "bmx7wg", **opts})


def test_defaults():
    cfg = parse()
    assert cfg.ifname == "wgmesh"
    assert cfg.key_mode == "persist"
    assert cfg.key_file == "/etc/bmx7wg/wgmesh.key"
    assert cfg.listen_port is None
    assert cfg.port_range == (51820, 52819)
    assert cfg.auto_address is True
    assert cfg.auto_prefix == ipaddress.ip_network("fd77::/16")
    assert cfg.mtu == 1420 and cfg.hold_down == 60 and cfg.sms_name == "wgtun"
    assert cfg.bmx7_dir == "/var/run/bmx7"


def test_every_option():
    cfg = parse(ifname="wg-x", key_mode="session", key_file="/tmp/k", listen_port="51999",
                port_range="40000-40010", addresses=["10.9.0.1/24", "fd99::1/64"], auto_address="0",
                auto_prefix="fd55::/32", announce=["10.1.0.0/24", "0.0.0.0/0"], mtu="1380",
                fwmark="0x51", bmx7_dir="/run/bmx7/", sms_name="wg.mesh", hold_down="15",
                keepalive="0", allow_node=["nodeA", "nodeB"])
    assert cfg.ifname == "wg-x" and cfg.key_mode == "session" and cfg.listen_port == 51999
    assert cfg.port_range == (40000, 40010)
    assert [str(a) for a in cfg.addresses] == ["10.9.0.1/24", "fd99::1/64"]
    assert not cfg.auto_address and str(cfg.auto_prefix) == "fd55::/32"
    assert [str(n) for n in cfg.announce] == ["10.1.0.0/24", "0.0.0.0/0"]
    assert cfg.mtu == 1380 and cfg.fwmark == 0x51 and cfg.bmx7_dir == "/run/bmx7"
    assert cfg.sms_name == "wg.mesh" and cfg.hold_down == 15 and cfg.keepalive == 0
    assert cfg.allow_nodes == ("nodeA", "nodeB")


def test_space_separated_option_lists():
    cfg = parse(announce="10.1.0.0/24 10.2.0.0/24")
    assert len(cfg.announce) == 2


@pytest.mark.parametrize("option,value,needle", [
    ("listen_port", "abc", "option 'listen_port': invalid value 'abc' (not a number)"),
    ("listen_port", "70000", "must be 1..65535"),
    ("port_range", "5-1", "LOW is above HIGH"),
    ("port_range", "51820", "expected LOW-HIGH"),
    ("key_mode", "forever", "expected persist or session"),
    ("auto_prefix", "10.0.0.0/8", "IPv6 prefix"),
    ("auto_prefix", "fd70::/16", "overlaps bmx7"),
    ("auto_prefix", "fd77::/96", "/8../64"),
    ("announce", "10.1.0.1/24", "has host bits set"),
    ("announce", "fd70:1::/32", "overlaps bmx7"),
    ("addresses", "nonsense", "not an IP address"),
    ("mtu", "100", "must be 1280..9000"),
    ("sms_name", ".hidden", "no leading/trailing"),
    ("sms_name", "a" * 16, "1-15 chars"),
    ("hold_down", "0", "must be 1..3600"),
    ("auto_address", "maybe", "expected 0 or 1"),
    ("bmx7_dir", "relative/dir", "absolute path"),
    ("ifname", "much-too-long-name", "1-15 chars"),
])
def test_bad_values_give_one_line_naming_option(option, value, needle):
    with pytest.raises(config.ConfigError) as exc:
        parse(**{option: value})
    text = str(exc.value)
    assert "\n" not in text
    assert f"'{option}'" in text and needle in text


def test_private_key_never_echoed():
    secret = "not-a-key-but-secret-looking-material"
    with pytest.raises(config.ConfigError) as exc:
        parse(private_key=secret)
    assert secret not in str(exc.value) and "'private_key'" in str(exc.value)


def test_wrong_proto_refused():
    with pytest.raises(config.ConfigError, match="'proto'"):
        config.parse("lan", {"proto": "static"})


def test_advert_that_cannot_fit_is_refused():
    many = [f"fd12:3456:{i:x}::/64" for i in range(40)]
    with pytest.raises(config.ConfigError, match="would not fit"):
        parse(announce=many)
