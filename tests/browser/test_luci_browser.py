"""The LuCI app in a real headless Chromium: status view and interface form.

The pages are our real files (luci-app-bmx7-wgtun/htdocs) on top of a small LuCI stand-in
(luci_shim.js); `/ubus` is answered by api.handle() over a helper's state directory:

- test_lab_*: node n1 of a 3-node lab (bmx7wg.lab: namespaces, bmx7 emulator, the REAL
  helper, wireguard-go); its policy rejects n3 (allow_node) and both networks n2 offers
  (one overlaps n1's own, no rule accepts the other).
- the others: bmx7wg_standin.py, which writes the documented state shape with every peer
  state and rejection kind at once (and plants its private key in the state file, which
  api.py must drop).

Screenshots go to tests/artifacts/; BMX7WG_UPDATE_SCREENSHOT=1 also refreshes
docs/img/status.png.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bmx7wg import address, api, config
from bmx7wg.uciadapter import open_uci

from . import cdp
from .server import Server, Site

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
POT = ROOT / "luci-app-bmx7-wgtun" / "po" / "templates" / "bmx7wg.pot"
SESSION = "0123456789abcdef0123456789abcdef"
IFACE = "wgmesh"

CHROMIUM = cdp.find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


def node_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:56].upper()


def wg(*args, data=None) -> str:
    return subprocess.run(["wg", *args], input=data, capture_output=True, check=True).stdout.decode().strip()


def peer(name, state, handshake_ago=None, rx=0, tx=0, accepted=(), rejected=(), reason=None, advert=True):
    nid = node_id(name)
    key = wg("pubkey", data=wg("genkey").encode()) if advert else None
    host = f"{address.auto_address(nid)}/128"
    return {
        "node_id": nid, "short_id": address.short_id(nid), "name": name, "public_key": key,
        "fingerprint": key[:8] if key else None,
        "endpoint": f"[{address.primary_ip(nid)}]:51820" if advert else None,
        "addresses": [host] if advert else [], "allowed_ips": [host, *accepted] if state == "active" else [],
        "networks_accepted": list(accepted), "state": state, "reason": reason,
        "networks_rejected": [{"network": n, "reason": r} for n, r in rejected],
        "handshake_ago": handshake_ago, "rx": rx, "tx": tx,
    }


def mesh_peers() -> list[dict]:
    return [
        peer("nodeB", "active", 12, 1234567, 345678, accepted=["10.2.0.0/24"]),
        peer("nodeC", "pending"),
        peer("nodeD", "rejected", reason="unsupported advert version 2.0", advert=False),
        peer("nodeE", "active", 95, 52000, 48000, accepted=["10.5.0.0/24"],
             rejected=[("10.1.0.0/24", "overlaps this node's own network 10.1.0.0/24")]),
        peer("nodeF", "expired", 400, 900, 800, reason="advertisement gone for 20 s (hold-down 60 s)"),
    ]


class StandinNode:
    """One router as LuCI sees it: key file, helper process, state dir (see bmx7wg_standin.py)."""

    def __init__(self, root: Path, iface: str, peers: list[dict], **spec):
        self.root, self.iface = root, iface
        self.rundir = root / "run" / "bmx7wg"
        self.key_file = root / "etc" / "bmx7wg" / f"{iface}.key"
        self.peers_file = root / f"{iface}.peers.json"
        self.seen_private_keys: set[str] = set()
        root.mkdir(parents=True, exist_ok=True)
        self.spec = {"node_id": node_id(f"self-{iface}"), "name": "nodeA", "listen_port": 51820,
                     "announce": ["10.1.0.0/24"], **spec}
        self.spec["addresses"] = [f"{address.auto_address(self.spec['node_id'])}/128"]
        self.write_peers(peers)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "bmx7wg_standin.py"), str(self.rundir), iface, str(self.key_file),
             str(self.peers_file), "--plant-private-key"],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        self.wait_state(lambda st: st.get("pid") == self.proc.pid)
        # the key is planted in the state file on purpose: api.py must keep it out of every reply
        assert self.remember_private_key() in (self.rundir / f"{iface}.json").read_text()

    def write_peers(self, peers: list[dict]) -> None:
        self.peers_file.write_text(json.dumps({**self.spec, "peers": peers}))

    def state(self) -> dict:
        try:
            return json.loads((self.rundir / f"{self.iface}.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def wait_state(self, predicate, timeout=10) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.state()
            if st and predicate(st):
                return st
            time.sleep(0.05)
        raise TimeoutError("state file did not change")

    def remember_private_key(self) -> str:
        private = self.key_file.read_text().strip()
        self.seen_private_keys.add(private)
        return private

    def reload(self, peers: list[dict]) -> None:
        """New peers, as if the helper re-read everything (SIGHUP through the API)."""
        before = self.state()["updated"]
        self.write_peers(peers)
        assert api.handle("reload", {"interface": self.iface}, str(self.rundir)).get("ok")
        self.wait_state(lambda st: st["updated"] != before)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    b = cdp.Browser(CHROMIUM)
    yield b
    b.close()


@pytest.fixture
def node(tmp_path):
    n = StandinNode(tmp_path / "nodeA", IFACE, mesh_peers())
    yield n
    n.stop()


@pytest.fixture
def site(node):
    network = {
        "loopback": {".type": "interface", "proto": "static", "device": "lo"},
        IFACE: {".type": "interface", "proto": "bmx7wg", "key_file": str(node.key_file)},
    }
    s = Site(str(node.rundir), network, SESSION)
    with Server(s) as server:
        s.url = server.url
        yield s


def page(site, **query) -> str:
    return f"{site.url}/harness.html?sid={SESSION}&" + "&".join(f"{k}={v}" for k, v in query.items())


def assert_no_private_key(browser, site, node) -> None:
    """What a person (or a proxy) could see: DOM, input values, every HTTP response."""
    node.remember_private_key()
    assert_absent(browser, site, node.seen_private_keys)


def assert_absent(browser, site, private_keys) -> None:
    seen_by_browser = browser.response_bodies("/ubus")
    assert any('"public_key"' in b for b in seen_by_browser)   # the ubus replies were captured
    bodies = browser.response_bodies() + site.bodies
    texts = bodies + [
        browser.evaluate("document.documentElement.outerHTML"),
        browser.evaluate("document.body.innerText"),
        browser.evaluate("JSON.stringify(Array.from(document.querySelectorAll('input,textarea,select')).map(e => e.value))"),
    ]
    for private in private_keys:
        assert len(private) == 44
        for text in texts:
            assert private not in text
    for body in bodies:
        assert '"private_key"' not in body


def peer_rows(browser) -> dict:
    return {r["name"]: r for r in browser.evaluate("""
        Array.from(document.querySelectorAll('[data-bmx7wg-peers] tr[data-node-id]')).map(tr => ({
            name: tr.cells[0].innerText, short: tr.cells[1].innerText, endpoint: tr.cells[2].innerText,
            addresses: tr.cells[3].innerText, accepted: tr.cells[4].innerText,
            badge: tr.querySelector('.bmx7wg-badge').innerText, state: tr.getAttribute('data-state'),
            handshake: tr.cells[6].innerText, traffic: tr.cells[7].innerText }))""")}


def test_status_view_shows_peers_states_and_rejections(browser, site, node):
    browser.navigate(page(site, page="status"))
    assert browser.evaluate("document.body.getAttribute('data-view-ready')") == "1"
    st = node.state()
    rows = peer_rows(browser)
    assert set(rows) == {"nodeB", "nodeC", "nodeD", "nodeE", "nodeF"}
    for p in st["peers"]:
        row = rows[p["name"]]
        assert row["state"] == p["state"] and row["badge"] == p["state"]
        assert row["short"] == p["short_id"]
    b = rows["nodeB"]
    assert b["endpoint"] == f"[{address.primary_ip(node_id('nodeB'))}]:51820"
    assert b["accepted"] == "10.2.0.0/24"
    assert re.fullmatch(r"1[2-9]s ago", b["handshake"]), b["handshake"]
    assert b["traffic"] == "1.2 MiB / 337.6 KiB"
    assert rows["nodeC"]["handshake"] == "Never" and rows["nodeC"]["traffic"] == "0 B / 0 B"
    assert rows["nodeE"]["handshake"] == "1m ago"
    assert rows["nodeF"]["handshake"] == "6m ago"

    rejected = browser.evaluate("""Array.from(document.querySelectorAll('[data-bmx7wg-rejected] tr[data-node-id]'))
        .map(tr => Array.from(tr.cells).map(c => c.innerText))""")
    assert [f"nodeD ({address.short_id(node_id('nodeD'))})", "whole advertisement",
            "unsupported advert version 2.0"] in rejected
    assert [f"nodeE ({address.short_id(node_id('nodeE'))})", "10.1.0.0/24",
            "overlaps this node's own network 10.1.0.0/24"] in rejected

    status_text = browser.evaluate("document.querySelector('[data-bmx7wg-status]').innerText")
    assert st["public_key"] in status_text and "51820" in status_text and "10.1.0.0/24" in status_text
    assert "running" in status_text
    # read-only page: no Save/Apply/Reset, refreshed every 5 s, topology drawn
    assert browser.evaluate("document.querySelectorAll('.cbi-page-actions button').length") == 0
    assert browser.evaluate("window.__pollIntervals") == [5]
    assert browser.evaluate("document.querySelectorAll('.bmx7wg-topology svg g[data-node]').length") == 5
    assert not browser.evaluate("document.querySelectorAll('[data-bmx7wg-alert]').length")

    browser.screenshot(str(ARTIFACTS / "status.png"))
    if os.environ.get("BMX7WG_UPDATE_SCREENSHOT") == "1":
        browser.screenshot(str(ROOT / "docs" / "img" / "status.png"))
    assert_no_private_key(browser, site, node)


def test_status_view_follows_the_helper_every_5s(browser, site, node):
    browser.navigate(page(site, page="status"))
    assert peer_rows(browser)["nodeC"]["state"] == "pending"
    peers = mesh_peers()
    peers[1].update(state="active", handshake_ago=3, rx=4096, tx=2048)
    node.reload(peers)
    browser.wait_for("(document.querySelector('[data-bmx7wg-peers] tr[data-state=\"active\"] td')||{}).innerText"
                     " && Array.from(document.querySelectorAll('[data-bmx7wg-peers] tr[data-state=active]')).length == 3",
                     timeout=12)
    row = peer_rows(browser)["nodeC"]
    assert row["badge"] == "active" and row["traffic"] == "4.0 KiB / 2.0 KiB"


def test_status_view_empty_and_error_states(browser, site, node, tmp_path):
    quiet = StandinNode(tmp_path / "quiet", "wgquiet", [], bmx7_running=False)
    try:
        # a second helper with nobody around and bmx7 down, a third interface with no helper
        site.rundir = str(node.rundir)
        os.replace(quiet.rundir / "wgquiet.json", node.rundir / "wgquiet.json")
        site.network["wgquiet"] = {".type": "interface", "proto": "bmx7wg"}
        site.network["wgdown"] = {".type": "interface", "proto": "bmx7wg"}
        browser.navigate(page(site, page="status"))
        quiet_text = browser.evaluate("document.querySelector('[data-bmx7wg-iface=wgquiet]').innerText")
        assert "bmx7 is not running" in quiet_text
        assert "No other node advertises yet." in quiet_text
        down_text = browser.evaluate("document.querySelector('[data-bmx7wg-iface=wgdown]').innerText")
        assert "helper is not running for this interface" in down_text and "wgdown" in down_text
        assert len(peer_rows(browser)) == 5      # wgmesh still shown in full

        site.ubus_status = 9                      # UBUS_STATUS_UNKNOWN_ERROR: the handler failed
        browser.navigate(page(site, page="status"))
        texts = browser.evaluate("Array.from(document.querySelectorAll('[data-bmx7wg-alert]')).map(e => e.innerText)")
        assert texts == ["The bmx7wg helper gave no status for this interface."] * 3

        site.ubus_status = 0
        site.ubus_object_up = False               # no helper registered the ubus object at all
        browser.navigate(page(site, page="status"))
        texts = browser.evaluate("Array.from(document.querySelectorAll('[data-bmx7wg-alert]')).map(e => e.innerText)")
        assert len(texts) == 3 and all("Object not found" in t for t in texts)
    finally:
        quiet.stop()


def form_error(browser, option):
    return browser.evaluate(f"document.getElementById('cbid.network.{IFACE}.{option}-error').textContent")


def type_into(browser, element_id, text):
    browser.evaluate(f"""(() => {{ const el = document.getElementById({json.dumps(element_id)});
        el.focus(); el.value = {json.dumps(text)};
        el.dispatchEvent(new KeyboardEvent('keyup', {{key: 'x'}})); el.blur(); return true; }})()""")


def click(browser, element_id):
    browser.evaluate(f"document.getElementById({json.dumps(element_id)}).click()")


def test_protocol_form_validates_like_the_helper(browser, site, node):
    browser.navigate(page(site, page="proto", iface=IFACE))
    shown_key = browser.wait_for(f"document.querySelector('[data-bmx7wg-public-key={IFACE}]').innerText")
    assert shown_key == node.state()["public_key"]

    port_id = f"cbid.network.{IFACE}.listen_port"
    type_into(browser, port_id, "70000")
    assert form_error(browser, "listen_port") == "must be 1..65535"
    assert browser.evaluate(f"document.getElementById('{port_id}').classList.contains('cbi-input-invalid')")
    click(browser, "save")
    browser.wait_for("!!document.querySelector('#notifications .invalid')")
    assert "listen_port" in browser.evaluate("document.querySelector('#notifications .invalid').innerText")
    assert site.uci_writes == []

    type_into(browser, port_id, "51999")
    assert form_error(browser, "listen_port") == ""
    # an announced network inside bmx7's own prefix is refused when added to the list
    type_into(browser, f"cbid.network.{IFACE}.announce-add", "fd70:1::/32")
    assert "overlaps bmx7" in form_error(browser, "announce")
    type_into(browser, f"cbid.network.{IFACE}.announce-add", "10.1.0.0/24")
    click(browser, f"cbid.network.{IFACE}.announce-addbtn")
    click(browser, "save")
    browser.wait_for("!!document.querySelector('#notifications .saved')")
    assert ("set", IFACE, {"listen_port": "51999"}) in site.uci_writes
    assert ("set", IFACE, {"announce": ["10.1.0.0/24"]}) in site.uci_writes
    saved = {k: v for k, v in site.network[IFACE].items() if not k.startswith(".")}
    cfg = config.parse(IFACE, saved)          # what the helper will read
    assert cfg.listen_port == 51999 and [str(n) for n in cfg.announce] == ["10.1.0.0/24"]

    browser.screenshot(str(ARTIFACTS / "proto.png"))
    assert_no_private_key(browser, site, node)


def test_generate_new_key_pair_goes_through_the_helper(browser, site, node):
    browser.navigate(page(site, page="proto", iface=IFACE))
    old_key = browser.wait_for(f"document.querySelector('[data-bmx7wg-public-key={IFACE}]').innerText")
    browser.evaluate("window.confirm = () => true")
    click(browser, f"cbid.network.{IFACE}._rotate_key")
    new_key = browser.wait_for(f"""(() => {{ const t = document.querySelector('[data-bmx7wg-public-key={IFACE}]').innerText;
        return t != {json.dumps(old_key)} && t; }})()""", timeout=15)
    node.remember_private_key()
    assert new_key == node.state()["public_key"] == wg("pubkey", data=node.key_file.read_bytes())
    assert len(node.seen_private_keys) == 2
    assert_no_private_key(browser, site, node)


def test_every_runtime_string_is_in_the_pot(browser, site, node):
    pot = POT.read_text()
    used = set()
    for query in ({"page": "status"}, {"page": "proto", "iface": IFACE}):
        browser.navigate(page(site, **query))
        used |= set(browser.evaluate("Object.keys(window.__msgids)"))
    assert len(used) > 30
    missing = [s for s in used if f"msgid {json.dumps(s, ensure_ascii=False)}" not in pot]
    assert missing == []


# ---- the lab: the real helper on node n1 of a virtual mesh ------------------------------------------

LAB_PREFIX = "blu"      # namespaces bluN1.., links wg-blun1..
LAB_DIR = "/tmp/bmx7wg-test-luci-lab"
LAB_EMU = {"hop_delay": 0.05, "purge_timeout": 40, "refill_delay": 3}


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def lab_ready(lab) -> dict | None:
    st = lab.helper_state("n1") or {}
    peers = {p.get("name"): p for p in st.get("peers", [])}
    n2, n3 = peers.get("n2", {}), peers.get("n3", {})
    if n2.get("state") == "active" and n3.get("state") == "rejected" and len(n2.get("networks_rejected", [])) == 2:
        return st
    return None


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces)")
    from bmx7wg.lab import mesh
    lab = mesh.up(nodes=3, topology="line", prefix=LAB_PREFIX, workdir=LAB_DIR, emulator_options=LAB_EMU)
    try:
        # a helper's SIGHUP handler exists once it wrote its state; before that HUP would kill it
        wait_until(lambda: all((lab.helper_state(n) or {}).get("pid") for n in ("n1", "n2")), 30, "helpers up")
        # n1 offers 10.77.0.0/24 and trusts only n2; n2 offers the same network and one more
        # (no bmx7wg_out rule on n1, so that one is outside every rule).
        lab.set_option("n1", "announce", "10.77.0.0/24")
        lab.set_option("n1", "allow_node", ["n2"])
        lab.set_option("n2", "announce", ["10.77.0.0/24", "10.88.0.0/24"])
        lab.reload_helper("n1")
        lab.reload_helper("n2")
        wait_until(lambda: lab_ready(lab), 60, "n1 to see n2 active (its networks refused) and n3 rejected")
        yield lab
    finally:
        lab.down()


@pytest.fixture
def lab_site(lab):
    node = lab.node("n1")
    sections = open_uci(node["confdir"], node["savedir"]).sections("network")
    network = {name: {".type": stype, **options} for name, stype, options in sections}
    s = Site(lab.rundir("n1"), network, SESSION)
    with Server(s) as server:
        s.url = server.url
        yield s


def lab_private_key(lab, name="n1") -> str:
    return Path(lab.node(name)["dir"], "etc", "bmx7wg", f"{IFACE}.key").read_text().strip()


def test_lab_status_view_shows_the_real_helpers_peers(browser, lab, lab_site):
    private = lab_private_key(lab)
    browser.navigate(page(lab_site, page="status"))
    st = lab.helper_state("n1")
    rows = peer_rows(browser)
    assert set(rows) == {"n2", "n3"}
    for p in st["peers"]:
        assert rows[p["name"]]["badge"] == p["state"] and rows[p["name"]]["short"] == p["short_id"]
    assert re.fullmatch(r"\d+s ago|\dm ago", rows["n2"]["handshake"])
    assert rows["n2"]["endpoint"] == next(p["endpoint"] for p in st["peers"] if p["name"] == "n2")
    assert rows["n2"]["accepted"] == "-"

    n2 = next(p for p in st["peers"] if p["name"] == "n2")
    n3 = next(p for p in st["peers"] if p["name"] == "n3")
    rejected = browser.evaluate("""Array.from(document.querySelectorAll('[data-bmx7wg-rejected] tr[data-node-id]'))
        .map(tr => Array.from(tr.cells).map(c => c.innerText))""")
    assert [f"n3 ({n3['short_id']})", "whole advertisement", "node not in allow_node"] in rejected
    assert sorted(r["network"] for r in n2["networks_rejected"]) == ["10.77.0.0/24", "10.88.0.0/24"]
    for bad in n2["networks_rejected"]:
        assert [f"n2 ({n2['short_id']})", bad["network"], bad["reason"]] in rejected
    assert len(rejected) == 3

    status_text = browser.evaluate("document.querySelector('[data-bmx7wg-status]').innerText")
    assert st["public_key"] in status_text and str(st["listen_port"]) in status_text
    browser.screenshot(str(ARTIFACTS / "status-lab.png"))
    assert_absent(browser, lab_site, {private})


def test_lab_generate_new_key_pair_rotates_the_real_key(browser, lab, lab_site):
    old_private = lab_private_key(lab)
    browser.navigate(page(lab_site, page="proto", iface=IFACE))
    old_key = browser.wait_for(f"document.querySelector('[data-bmx7wg-public-key={IFACE}]').innerText")
    assert old_key == lab.helper_state("n1")["public_key"]
    browser.evaluate("window.confirm = () => true")
    click(browser, f"cbid.network.{IFACE}._rotate_key")
    new_key = browser.wait_for(f"""(() => {{ const t = document.querySelector('[data-bmx7wg-public-key={IFACE}]').innerText;
        return t != {json.dumps(old_key)} && t; }})()""", timeout=20)
    new_private = lab_private_key(lab)
    assert new_private != old_private
    live = lab.exec("n1", ["wg", "show", lab.ifname("n1"), "public-key"]).stdout.strip()
    assert new_key == live == wg("pubkey", data=new_private.encode())
    assert_absent(browser, lab_site, {old_private, new_private})
    # the mesh learns the new key through bmx7: n2 shakes hands with it again
    wait_until(lambda: any(p.get("public_key") == new_key and p.get("state") == "active"
                           for p in (lab.helper_state("n2") or {}).get("peers", [])), 60, "n2 to use n1's new key")
