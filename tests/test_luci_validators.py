"""The interface form's validators (protocol/bmx7wg.js, run under node) accept exactly what
config.parse accepts, on curated edge cases and on thousands of generated values."""

import ipaddress
import json
import random
import shutil
import subprocess

import pytest

from bmx7wg import config
from conftest import ROOT

PROTOCOL_JS = ROOT / "luci-app-bmx7-wgtun/htdocs/luci-static/resources/protocol/bmx7wg.js"
DRIVER = ROOT / "tests/browser/validators_driver.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node not installed (apt-get install -y nodejs)")

INT_OPTIONS = {"listen_port": (1, 65535), "mtu": (1280, 9000), "fwmark": (0, 0xFFFFFFFF),
               "hold_down": (1, 3600), "keepalive": (0, 65535)}
# Python's str.isspace() and the characters JS's \s / trim() treat differently.
SPACES = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000", "\ufeff"]
EMPTY_CTX = {"addresses": [], "announce": [], "auto_address": True}


def run_js(cases: list[dict]) -> list:
    out = subprocess.run([NODE, str(DRIVER), str(PROTOCOL_JS)], input=json.dumps(cases),
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def py_accepts(options: dict) -> bool:
    try:
        config.parse("wgtest", options)
    except config.ConfigError:
        return False
    return True


def compare(values: dict[str, list[str]]) -> None:
    """Every (option, value): JS true ⇔ config.parse accepts {option: value}."""
    cases = [{"option": opt, "value": v, "ctx": EMPTY_CTX if opt in ("addresses", "announce") else None}
             for opt, vals in values.items() for v in vals if v != ""]
    results = run_js(cases)
    mismatches = [(c["option"], c["value"], r, py_accepts({c["option"]: c["value"]}))
                  for c, r in zip(cases, results) if (r is True) != py_accepts({c["option"]: c["value"]})]
    assert mismatches == [], f"{len(mismatches)} of {len(cases)} differ, e.g. {mismatches[:8]}"


# ---- curated edge cases ----------------------------------------------------------------------

CURATED = {
    "listen_port": ["1", "65535", "0", "65536", "51820", " 51820 ", "+5", "-1", "0x10", "0X1F", "0o17", "0b11",
                    "1_000", "1__0", "_1", "1_", "010", "00", "0_0", "0x_1f", "1e3", "12.0", "abc", "0x",
                    "51820\n", "\x1c42\x1c", "\ufeff42", "4 2", "\x8542\xa0"],
    "mtu": ["1280", "1279", "9000", "9001", "1420", "0x58c", "+1500", " 1500"],
    "fwmark": ["0", "0xffffffff", "0x100000000", "4294967295", "4294967296", "-0", "0xdead_beef", "0b0"],
    "hold_down": ["1", "0", "3600", "3601", "60"],
    "keepalive": ["0", "25", "65535", "65536", "-1"],
    "port_range": ["51820-52819", "1-65535", "0-10", "10-0", "5-5", "51820:52819", " 1 - 2 ", "1 -2", "1--2",
                   "051820-52000", "1-065535", "1-", "-1-2", "a-b", "1_0-20", "1-2-3", "1\u2013 2", "\t1:2\n",
                   "65535-65536", "1-2 ", "\x1c1-2\x1c", "\ufeff1-2"],
    "key_mode": ["persist", "session", "Persist", "uci", " persist", "persist\n"],
    "key_file": ["/etc/bmx7wg/x.key", "etc/x", "./x", " /x", "/"],
    "bmx7_dir": ["/var/run/bmx7", "var/run", "/", "//x", "~/x"],
    "auto_address": ["1", "0", "yes", "no", "on", "off", "true", "false", "enabled", "disabled", "TRUE",
                     " 1 ", "2", "y", "\x851\x85", "\ufeff1"],
    "sms_name": ["wgtun", "a", "a" * 15, "a" * 16, ".a", "a.", "a.b", "a-b_c", "a b", "ä", "a/b", "wgtun\n",
                 "wgtun.\n", "\nwgtun", ".", "-", "_"],
    "auto_prefix": ["fd77::/16", "fd77::/8", "fd00::/8", "fd70::/16", "fd70:1::/32", "fd71::/16", "fc00::/7",
                    "fd77::/64", "fd77::/65", "fd77::1/64", "10.0.0.0/8", "fd77::", "FD77::/16", "fd77::/016",
                    "fd77:0:0:0::/48", "::/8", "fd7f::/16", "fd6f::/16", "fd77::%eth0/16", "fd70::%x/16",
                    "fd77::/ 16", "fd77::/+16", "fd77::/16/1", "fd77::0/16"],
    "addresses": ["10.0.0.1/24", "10.0.0.1", "fd77::1/64", "fd77::1", "10.0.0.1/255.255.255.0",
                  "10.0.0.1/0.0.0.255", "10.0.0.1/255.0.255.0", "10.0.0.1/33", "01.2.3.4", "1.2.3.04",
                  "1.2.3.256", "1.2.3", "::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
                  "1:2:3:4:5:6:7:1.2.3.4", "1::2::3", ":1::", "1::", "::", "::/128", ":::", "12345::",
                  "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "fe80::1%eth0", "fe80::1%",
                  "fe80::1%a%b", "fe80::1%eth0/64", "10.0.0.1 10.0.0.2", "10.0.0.1\t10.0.0.1",
                  "10.0.0.1/32 10.0.0.1/24", "10.0.0.1/", "10.0.0.1//24", "0x1.2.3.4", "1.2.3.4%x"],
    "announce": ["10.1.0.0/24", "10.1.0.1/24", "0.0.0.0/0", "::/0", "fd70::/16", "fd70:1::/48", "fd00::/8",
                 "fd71::/16", "2001:db8::/32", "2001:db8::1/32", "10.1.0.0/255.255.255.0",
                 "10.1.0.0/0.0.0.255", "10.1.0.0/24 10.2.0.0/24", "10.1.0.0/24 10.1.0.0/24",
                 "10.1.0.0/24 10.1.0.0/255.255.255.0", "fe80::%eth0/64", "fe80::%a/64 fe80::%b/64",
                 "fd70::%x/16", "10.1.0.0", "10.1.0.0/32"],
}


def test_curated_edge_cases_agree_with_config_py():
    compare(CURATED)


def test_messages_name_the_problem():
    cases = [("listen_port", "70000", "must be 1..65535"), ("listen_port", "abc", "not a number"),
             ("port_range", "9-1", "LOW is above HIGH"), ("auto_prefix", "fd70::/16", "overlaps bmx7's own fd70::/16"),
             ("announce", "fd70::/16", "overlaps bmx7's fd70::/16: would route the mesh into the tunnel"),
             ("announce", "10.1.0.1/24", "host bits set"), ("mtu", "1000", "must be 1280..9000")]
    got = run_js([{"option": o, "value": v, "ctx": EMPTY_CTX if o == "announce" else None} for o, v, _m in cases])
    assert got == [m for _o, _v, m in cases]
    # and config.py explains the same problems
    for option, value, message in cases:
        with pytest.raises(config.ConfigError, match=message.split(":")[0].replace("(", r"\(").replace(".", r"\.")):
            config.parse("wgtest", {option: value})


# ---- generated values ------------------------------------------------------------------------

def gen_int(rng: random.Random, lo: int, hi: int) -> str:
    n = rng.choice([lo - 1, lo, hi, hi + 1, rng.randint(lo, hi), rng.randint(0, 2 * hi + 2), 0, 1])
    style = rng.randrange(6)
    if style == 0:
        body = format(n, "x") if n >= 0 else "-" + format(-n, "x")
        body = rng.choice(["0x", "0X"]) + body if not body.startswith("-") else "-0x" + body[1:]
    elif style == 1:
        body = ("0o" if rng.random() < 0.5 else "0O") + format(abs(n), "o")
    elif style == 2:
        body = ("0b" if rng.random() < 0.5 else "0B") + format(abs(n), "b")
    else:
        body = str(n)
    if rng.random() < 0.2:
        body = "0" * rng.randint(1, 2) + body.lstrip("-")
    if rng.random() < 0.2:
        pos = rng.randint(0, len(body))
        body = body[:pos] + "_" * rng.choice([1, 1, 2]) + body[pos:]
    if rng.random() < 0.15:
        body = rng.choice(["+", "-"]) + body
    if rng.random() < 0.1:
        pos = rng.randint(0, len(body))
        body = body[:pos] + rng.choice(["e", ".", " ", "x", "g"]) + body[pos:]
    pad = lambda: "".join(rng.choice(SPACES) for _ in range(rng.choice([0, 0, 0, 1, 2])))  # noqa: E731
    return pad() + body + pad()


def gen_port_range(rng: random.Random) -> str:
    def side():
        n = rng.choice([0, 1, 80, 51820, 52819, 65535, 65536, rng.randint(0, 70000)])
        return ("0" if rng.random() < 0.1 else "") + str(n)
    ws = lambda: rng.choice(["", "", " ", "\t", "\xa0", "\x1c", "\ufeff"])  # noqa: E731
    sep = rng.choice(["-", "-", ":", "--", "_", " ", "\u2013"])
    text = ws() + side() + ws() + sep + ws() + side() + ws()
    return text if rng.random() > 0.05 else text[:rng.randint(0, len(text))]


def gen_v4(rng: random.Random) -> str:
    octet = lambda: rng.choice([str(rng.randint(0, 255))] * 6 + ["256", "01", "00", "1000", "", "a", "0"])  # noqa: E731
    return ".".join(octet() for _ in range(rng.choice([4, 4, 4, 4, 3, 5])))


def gen_v6(rng: random.Random) -> str:
    words = [rng.choice([format(rng.randint(0, 0xFFFF), "x"), "0", "fd70", "fd77", "FD77", "fe80", "12345", "g", "",
                         "0000", "ffff"] if rng.random() < 0.15 else [format(rng.randint(0, 0xFFFF), "x")])
             for _ in range(8)]
    if rng.random() < 0.7:
        i = rng.randint(0, 7)
        j = rng.randint(i, 8)
        text = ":".join(words[:i]) + "::" + ":".join(words[j:])
    else:
        text = ":".join(words[:rng.choice([8, 8, 8, 7, 9])])
    if rng.random() < 0.1:
        text = text.rsplit(":", 2)[0] + ":" + gen_v4(rng)
    if rng.random() < 0.1:
        text += rng.choice(["%eth0", "%", "%a%b", "%1"])
    return text


def gen_prefix(rng: random.Random, v4: bool) -> str:
    r = rng.random()
    if r < 0.2:
        return ""
    if r < 0.3 and v4:
        return "/" + rng.choice(["255.255.255.0", "0.0.0.255", "255.0.255.0", "255.255.255.255", "0.0.0.0", "1.2.3"])
    if r < 0.35:
        return rng.choice(["/", "/+8", "/ 8", "/08", "/8/8", "/-1"])
    return "/" + str(rng.randint(0, 140 if not v4 else 40))


def gen_network(rng: random.Random) -> str:
    """Mostly well-formed, host bits often cleared, in all the notations ipaddress knows."""
    r = rng.random()
    if r < 0.35:
        v4 = rng.random() < 0.4
        plen = rng.randint(0, 32 if v4 else 128)
        raw = rng.getrandbits(32 if v4 else 128)
        if rng.random() < 0.3 and not v4:
            raw = (0xFD70 << 112) | (raw >> 16) if rng.random() < 0.5 else (0xFD00 << 112) | (raw >> 16)
        net = (ipaddress.IPv4Network if v4 else ipaddress.IPv6Network)((raw, plen), strict=False)
        addr = net.network_address if rng.random() < 0.8 else net.network_address + 1
        text = addr.exploded if rng.random() < 0.2 else str(addr)
        return (text.upper() if rng.random() < 0.1 else text) + f"/{plen}"
    if r < 0.6:
        v4 = gen_v4(rng)
        return v4 + gen_prefix(rng, True)
    return gen_v6(rng) + gen_prefix(rng, False)


def gen_name(rng: random.Random) -> str:
    alphabet = "aZ09_.-/ %é\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 17)))


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_values_agree_with_config_py(seed):
    rng = random.Random(seed)
    values = {opt: [gen_int(rng, lo, hi) for _ in range(300)] for opt, (lo, hi) in INT_OPTIONS.items()}
    values["port_range"] = [gen_port_range(rng) for _ in range(600)]
    values["auto_prefix"] = [gen_network(rng) for _ in range(900)]
    values["announce"] = [gen_network(rng) for _ in range(900)]
    values["addresses"] = [gen_network(rng) for _ in range(900)]
    for opt in ("sms_name", "key_file", "bmx7_dir", "key_mode", "auto_address"):
        values[opt] = [gen_name(rng) for _ in range(200)]
    compare(values)


def test_advert_size_and_duplicates_agree_with_config_py():
    """Lists built entry by entry in the form: refused at the first entry config.py would refuse."""
    rng = random.Random(7)
    scenarios = []
    for _ in range(60):
        auto = rng.random() < 0.7
        addresses = [rng.choice([f"fd77::{rng.randint(1, 5):x}", f"10.99.0.{rng.randint(1, 4)}/32",
                                 f"10.99.0.{rng.randint(1, 4)}/24", "::", "fe80::1%eth0"])
                     for _ in range(rng.randint(0, 4))]
        size = rng.choice([8, 20, 24, 26, 27, 30, 60, 70])
        announce = [rng.choice([f"2001:db8:{i:x}::/64", f"10.{i // 256}.{i % 256}.0/24", f"2001:db8:{i:x}::/48"])
                    for i in rng.sample(range(400), size)]
        if rng.random() < 0.2 and announce:
            announce.append(rng.choice(announce))          # a duplicate
        scenarios.append((auto, addresses, announce))

    cases, spans = [], []
    for auto, addresses, announce in scenarios:
        start = len(cases)
        ctx = {"addresses": [], "announce": [], "auto_address": auto}
        for option, items in (("addresses", addresses), ("announce", announce)):
            for item in items:
                cases.append({"option": option, "value": item, "ctx": json.loads(json.dumps(ctx))})
                ctx[option].append(item)
        spans.append((start, len(cases)))
    results = run_js(cases)

    accepted_somewhere = refused_somewhere = 0
    for (auto, addresses, announce), (start, end) in zip(scenarios, spans):
        js_ok = all(r is True for r in results[start:end])
        py_ok = py_accepts({"auto_address": "1" if auto else "0", "addresses": addresses, "announce": announce})
        assert js_ok == py_ok, (auto, addresses, announce, [r for r in results[start:end] if r is not True])
        accepted_somewhere += py_ok
        refused_somewhere += not py_ok
    assert accepted_somewhere > 10 and refused_somewhere > 10   # both sides of the limit were exercised
