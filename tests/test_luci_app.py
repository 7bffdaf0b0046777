"""luci-app-bmx7-wgtun as a package: JavaScript that parses and lints, menu and ACL that fit together."""

import json
import os
import re
import shutil
import subprocess

import pytest

from bmx7wg import api
from conftest import ROOT

APP = ROOT / "luci-app-bmx7-wgtun"
MENU = APP / "root/usr/share/luci/menu.d/luci-app-bmx7-wgtun.json"
ACL = APP / "root/usr/share/rpcd/acl.d/luci-app-bmx7-wgtun.json"
JS_FILES = sorted(APP.rglob("*.js")) + sorted((ROOT / "tests" / "browser").glob("*.js"))
NODE = shutil.which("node")


def eslint() -> list[str] | None:
    local = ROOT / "node_modules" / ".bin" / "eslint"
    if os.environ.get("ESLINT"):
        return [os.environ["ESLINT"]]
    if local.exists():
        return [str(local)]
    return [shutil.which("eslint")] if shutil.which("eslint") else None


@pytest.mark.skipif(NODE is None, reason="node not installed")
@pytest.mark.parametrize("path", JS_FILES, ids=lambda p: p.name)
def test_javascript_parses(path):
    out = subprocess.run([NODE, "--check", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(eslint() is None, reason="eslint not installed (npm install --no-save eslint@9)")
def test_eslint_is_clean():
    out = subprocess.run([*eslint(), "-c", "tools/eslint.config.mjs", "luci-app-bmx7-wgtun", "tests/browser"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_acl_grants_only_the_bmx7wg_methods_needed():
    groups = json.loads(ACL.read_text())
    assert list(groups) == ["luci-app-bmx7-wgtun"]
    group = groups["luci-app-bmx7-wgtun"]
    assert group["read"]["ubus"] == {"bmx7wg": ["status", "peers"]}
    assert group["write"]["ubus"] == {"bmx7wg": ["reload", "rotate_key"]}
    granted = set(group["read"]["ubus"]["bmx7wg"]) | set(group["write"]["ubus"]["bmx7wg"])
    assert granted == set(api.METHODS)
    text = ACL.read_text()
    for forbidden in ('"file"', '"exec"', "cgi-io", "luci.wireguard", '"*"'):
        assert forbidden not in text
    assert set(group["read"]) <= {"ubus", "uci"} and set(group["write"]) == {"ubus"}


def test_menu_points_at_the_view_and_an_existing_acl():
    menu = json.loads(MENU.read_text())
    entry = menu["admin/status/bmx7wg"]
    assert entry["action"]["type"] == "view"
    view = APP / "htdocs/luci-static/resources/view" / (entry["action"]["path"] + ".js")
    assert view.is_file()
    assert set(entry["depends"]["acl"]) <= set(json.loads(ACL.read_text()))


def test_views_declare_their_rpcs_once_at_the_top():
    for path in (APP / "htdocs").rglob("*.js"):
        text = path.read_text()
        first_code = re.search(r"^(?!'use strict'|'require |/\*| \*|\s*$).*", text, re.M)
        declares = [m.start() for m in re.finditer(r"rpc\.declare\(", text)]
        assert declares, path
        assert first_code.group(0).startswith("var call"), (path, first_code.group(0))
        # nothing but declarations before the last rpc.declare: no calls made from inside functions
        assert "function" not in text[:declares[-1]], path


def test_makefile_builds_inside_the_luci_feed():
    text = (APP / "Makefile").read_text()
    assert re.search(r"^LUCI_TITLE:=\S", text, re.M)
    assert re.search(r"^LUCI_DEPENDS:=\+bmx7-wgtun$", text, re.M)
    assert re.search(r"^LUCI_PKGARCH:=all$", text, re.M)
    assert "include ../../luci.mk" in text and "luci feed" in text.lower()
