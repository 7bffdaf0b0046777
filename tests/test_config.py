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


def _two_interfaces(tmp_path, second: str, first_extra: str = "") -> str:
    """A real network file: wgmesh first, then wgtwo with `second`'s options."""
    (tmp_path / "network").write_text(
        "config interface 'wgmesh'\n\toption proto 'bmx7wg'\n" + first_extra +
        "\nconfig interface 'lan'\n\toption proto 'static'\n\toption ifname 'wgtwo'\n"
        "\nconfig interface 'wgtwo'\n\toption proto 'bmx7wg'\n" + second)
    return str(tmp_path)


@pytest.mark.parametrize("second,error", [
    ("\toption auto_prefix 'fd78::/16'\n", "option 'sms_name': invalid value 'wgtun' (interface 'wgmesh' "
                                            "publishes it in /var/run/bmx7 already)"),
    ("\toption sms_name 'wg2'\n", "option 'auto_prefix': invalid value 'fd77::/16' (overlaps fd77::/16 of "
                                   "interface 'wgmesh': the same tunnel addresses on both)"),
    ("\toption sms_name 'wg2'\n\toption auto_prefix 'fd77:1::/32'\n", "option 'auto_prefix': invalid value "
     "'fd77:1::/32' (overlaps fd77::/16 of interface 'wgmesh': the same tunnel addresses on both)"),
    ("\toption ifname 'wgmesh'\n\toption sms_name 'wg2'\n\toption auto_address '0'\n",
     "option 'ifname': invalid value 'wgmesh' (interface 'wgmesh' uses this link already)"),
])
def test_a_second_interface_sharing_link_sms_name_or_tunnel_addresses_is_refused(tmp_path, second, error):
    from bmx7wg.uciadapter import open_uci
    store = open_uci(_two_interfaces(tmp_path, second), str(tmp_path / "save"))
    assert config.load(store, "wgmesh").iface == "wgmesh"          # the first one keeps running
    with pytest.raises(config.ConfigError) as exc:
        config.load(store, "wgtwo")
    assert str(exc.value) == error


@pytest.mark.parametrize("second,first_extra", [
    ("\toption sms_name 'wg2'\n\toption auto_prefix 'fd78::/16'\n", ""),
    ("\toption bmx7_dir '/var/run/bmx7b'\n\toption auto_address '0'\n", ""),     # another bmx7
    ("", "\toption disabled '1'\n"),                                            # the first is off
])
def test_second_interfaces_that_share_nothing_are_accepted(tmp_path, second, first_extra):
    from bmx7wg.uciadapter import open_uci
    store = open_uci(_two_interfaces(tmp_path, second, first_extra), str(tmp_path / "save"))
    assert config.load(store, "wgtwo").iface == "wgtwo"
