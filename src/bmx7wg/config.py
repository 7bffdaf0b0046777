"""The interface's UCI options: parsed and validated in one place.

Every check raises ConfigError with one line naming the option and the bad value,
so netifd (INVALID_CONFIG), the CLI and LuCI's validators all say the same thing.
"""

from __future__ import annotations

import ipaddress

from . import charset
from .charset import made_of
from .record import record, field

from .bmx7 import valid_sms_name
from .model import IPNetwork

DEFAULT_PORT_RANGE = (51820, 52819)
DEFAULT_AUTO_PREFIX = "fd77::/16"
BMX7_PREFIX = ipaddress.ip_network("fd70::/16")


class ConfigError(ValueError):
    """One-line, admin-readable description of a bad option."""


def valid_ifname(name: object) -> bool:
    """1-15 characters of A-Z a-z 0-9 _ . - (the kernel's IFNAMSIZ)."""
    return made_of(name, charset.NAME, 1, 15)


@record(frozen=True)
class IfaceConfig:
    iface: str
    ifname: str
    private_key: str | None = None          # only when the admin put it in UCI
    key_mode: str = "persist"
    key_file: str = ""
    listen_port: int | None = None
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()
    auto_address: bool = True
    auto_prefix: ipaddress.IPv6Network = ipaddress.IPv6Network(DEFAULT_AUTO_PREFIX)
    announce: tuple[IPNetwork, ...] = ()
    mtu: int = 1420
    fwmark: int | None = None
    bmx7_dir: str = "/var/run/bmx7"
    sms_name: str = "wgtun"
    hold_down: int = 60
    keepalive: int = 25
    allow_nodes: tuple[str, ...] = ()       # interface-wide allowlist of nodeIds/names (empty = all)
    rules: tuple = field(default=())        # policy search rules (bmx7wg_out sections), see policy.py


def _fail(option: str, value, why: str) -> ConfigError:
    return ConfigError(f"option '{option}': invalid value '{value}' ({why})")


def _int(option, raw, lo, hi):
    try:
        value = int(str(raw), 0)
    except ValueError:
        raise _fail(option, raw, "not a number") from None
    if not lo <= value <= hi:
        raise _fail(option, raw, f"must be {lo}..{hi}")
    return value


def _bool(option, raw):
    text = str(raw).strip().lower()
    if text in ("1", "yes", "on", "true", "enabled"):
        return True
    if text in ("0", "no", "off", "false", "disabled"):
        return False
    raise _fail(option, raw, "expected 0 or 1")


def _as_list(raw) -> list[str]:
    """UCI lists arrive as lists; admins also write space-separated options."""
    if raw is None:
        return []
    if isinstance(raw, (list, tuple)):
        items = []
        for item in raw:
            items.extend(str(item).split())
        return items
    return str(raw).split()


def _network(option, raw) -> IPNetwork:
    try:
        return ipaddress.ip_network(raw, strict=True)
    except ValueError as exc:
        raise _fail(option, raw, str(exc).split("\n")[0]) from None


def _interface_addr(option, raw):
    try:
        return ipaddress.ip_interface(raw)
    except ValueError:
        raise _fail(option, raw, "not an IP address with optional /prefix") from None


def _port_range(raw) -> tuple[int, int]:
    text = str(raw)
    low, sep, high = text.partition("-")
    if not sep:
        low, sep, high = text.partition(":")
    low, high = low.strip(charset.BLANKS), high.strip(charset.BLANKS)
    if not made_of(low, charset.DIGITS) or not made_of(high, charset.DIGITS):
        raise _fail("port_range", raw, "expected LOW-HIGH, e.g. 51820-52819")
    lo, hi = _int("port_range", low, 1, 65535), _int("port_range", high, 1, 65535)
    if lo > hi:
        raise _fail("port_range", raw, "LOW is above HIGH")
    return lo, hi


def parse(iface: str, options: dict, rules: tuple = ()) -> IfaceConfig:
    """Validate one `config interface` section (its options dict) into an IfaceConfig."""
    if not valid_ifname(iface):
        raise ConfigError(f"interface '{iface}': name must be 1-15 chars of A-Z a-z 0-9 _ . -")
    get = options.get
    proto = get("proto")
    if proto is not None and proto != "bmx7wg":
        raise _fail("proto", proto, "this interface is not a bmx7wg interface")
    kw: dict = {"iface": iface, "rules": rules}

    ifname = get("ifname", iface)
    if not valid_ifname(str(ifname)):
        raise _fail("ifname", ifname, "1-15 chars of A-Z a-z 0-9 _ . -")
    kw["ifname"] = str(ifname)

    if get("private_key") is not None:
        if not charset.is_wg_key(str(get("private_key"))):
            # Never echo a private key, not even a broken one.
            raise ConfigError("option 'private_key': invalid value (not a base64 WireGuard key)")
        kw["private_key"] = str(get("private_key"))
    key_mode = str(get("key_mode", "persist"))
    if key_mode not in ("persist", "session"):
        raise _fail("key_mode", key_mode, "expected persist or session")
    kw["key_mode"] = key_mode
    kw["key_file"] = str(get("key_file", f"/etc/bmx7wg/{iface}.key"))
    if not kw["key_file"].startswith("/"):
        raise _fail("key_file", kw["key_file"], "must be an absolute path")

    if get("listen_port") not in (None, ""):
        kw["listen_port"] = _int("listen_port", get("listen_port"), 1, 65535)
    if get("port_range") is not None:
        kw["port_range"] = _port_range(get("port_range"))

    kw["addresses"] = tuple(_interface_addr("addresses", a) for a in _as_list(get("addresses")))
    if get("auto_address") is not None:
        kw["auto_address"] = _bool("auto_address", get("auto_address"))
    if get("auto_prefix") is not None:
        prefix = _network("auto_prefix", get("auto_prefix"))
        if prefix.version != 6 or not 8 <= prefix.prefixlen <= 64:
            raise _fail("auto_prefix", get("auto_prefix"), "must be an IPv6 prefix /8../64")
        if prefix.overlaps(BMX7_PREFIX):
            raise _fail("auto_prefix", get("auto_prefix"), "overlaps bmx7's own fd70::/16")
        kw["auto_prefix"] = prefix
    announce = []
    for item in _as_list(get("announce")):
        net = _network("announce", item)
        if net.overlaps(BMX7_PREFIX):
            raise _fail("announce", item, "overlaps bmx7's fd70::/16: would route the mesh into the tunnel")
        announce.append(net)
    kw["announce"] = tuple(announce)

    if get("mtu") is not None:
        kw["mtu"] = _int("mtu", get("mtu"), 1280, 9000)
    if get("fwmark") not in (None, ""):
        kw["fwmark"] = _int("fwmark", get("fwmark"), 0, 0xFFFFFFFF)
    bmx7_dir = str(get("bmx7_dir", "/var/run/bmx7"))
    if not bmx7_dir.startswith("/"):
        raise _fail("bmx7_dir", bmx7_dir, "must be an absolute path")
    kw["bmx7_dir"] = bmx7_dir.rstrip("/") or "/"
    sms_name = str(get("sms_name", "wgtun"))
    if not valid_sms_name(sms_name):
        raise _fail("sms_name", sms_name, "1-15 chars of A-Z a-z 0-9 _ . -, no leading/trailing '.'")
    kw["sms_name"] = sms_name
    if get("hold_down") is not None:
        kw["hold_down"] = _int("hold_down", get("hold_down"), 1, 3600)
    if get("keepalive") is not None:
        kw["keepalive"] = _int("keepalive", get("keepalive"), 0, 65535)
    kw["allow_nodes"] = tuple(_as_list(get("allow_node")))

    cfg = IfaceConfig(**kw)
    _check_advert_fits(cfg)
    return cfg


def _check_advert_fits(cfg: IfaceConfig) -> None:
    """Refuse configs whose advertisement would not fit bmx7's 300-byte inline sms."""
    from . import advert  # local import: advert depends on nothing here
    from .model import Advert

    addrs = [ipaddress.ip_network(a.ip) for a in cfg.addresses]
    if cfg.auto_address:
        addrs.append(ipaddress.ip_network("::/128"))  # same size as the derived /128
    sample = Advert(public_key="A" * 43 + "=", port=65535, addresses=tuple(addrs),
                    networks=cfg.announce)
    try:
        advert.encode(sample)
    except advert.AdvertError as exc:
        raise ConfigError(f"options 'addresses'/'announce': too many entries, advertisement would not fit ({exc})") from None


def load(store, iface: str, config: str = "network") -> IfaceConfig:
    """Read `config interface '<iface>'` (+ its policy rules) from a UciStore."""
    try:
        stype = store.section_type(config, iface)
    except Exception as exc:  # the adapter names the file in its message
        raise ConfigError(f"{config}: {exc}") from None
    if stype is None:
        raise ConfigError(f"interface '{iface}': no section 'config interface {iface}' in {config}")
    options = store.get_all(config, iface)
    from . import policy  # rules are validated where the policy that uses them lives

    rules = policy.parse_rules(store.sections(config, "bmx7wg_out"), iface)
    cfg = parse(iface, options, rules)
    _check_earlier_interfaces(store.sections(config, "interface"), cfg)
    return cfg


def _check_earlier_interfaces(sections: list, cfg: IfaceConfig) -> None:
    """Two bmx7wg interfaces must not share a link, an sms name on one bmx7 (each would
    overwrite the other's advert and take it for a peer's) or tunnel addresses. The one
    earlier in the file keeps running; the later one is refused."""
    for name, _, options in sections:
        if name == cfg.iface:
            return
        if options.get("proto") != "bmx7wg":
            continue
        try:
            if _bool("disabled", options.get("disabled", "0")):
                continue
            other = parse(name, options)
        except ConfigError:
            continue                      # its own error, reported by its own helper
        if other.ifname == cfg.ifname:
            raise _fail("ifname", cfg.ifname, f"interface '{name}' uses this link already")
        if (other.bmx7_dir, other.sms_name) == (cfg.bmx7_dir, cfg.sms_name):
            raise _fail("sms_name", cfg.sms_name, f"interface '{name}' publishes it in {cfg.bmx7_dir} already")
        if cfg.auto_address and other.auto_address and other.auto_prefix.overlaps(cfg.auto_prefix):
            raise _fail("auto_prefix", cfg.auto_prefix, f"overlaps {other.auto_prefix} of interface '{name}': "
                        "the same tunnel addresses on both")
