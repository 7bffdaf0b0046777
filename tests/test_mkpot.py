"""tools/mkpot.py: extraction rules and the committed .pot being current."""

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import mkpot  # noqa: E402


def test_committed_pot_is_up_to_date():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "mkpot.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_translation_call_in_the_app_is_extracted():
    pot = mkpot.POT.read_text()
    for path in (mkpot.APP / "htdocs").rglob("*.js"):
        text = path.read_text()
        calls = len(mkpot.CALL_RE.findall(text))
        found = mkpot.js_strings(text, str(path))
        assert len(found) == calls > 0
        for msgid, _line in found:
            assert f"msgid {mkpot._po_quote(msgid)}" in pot


def test_menu_title_and_acl_description_are_in_the_pot():
    pot = mkpot.POT.read_text()
    menu = json.loads((mkpot.APP / "root/usr/share/luci/menu.d/luci-app-bmx7-wgtun.json").read_text())
    acl = json.loads((mkpot.APP / "root/usr/share/rpcd/acl.d/luci-app-bmx7-wgtun.json").read_text())
    for text in [e["title"] for e in menu.values()] + [g["description"] for g in acl.values()]:
        assert f"msgid {json.dumps(text)}" in pot


def test_literals_escapes_and_lines():
    src = ("var a = _('It\\'s %d'), b = _(\"say \\\"hi\\\"\");\n"
           "x.format(_( 'tab\\there' ));\n"
           "foo_('not mine'); obj._('neither'); _('caf\\u00e9')\n")
    assert mkpot.js_strings(src, "t.js") == [("It's %d", 1), ('say "hi"', 1), ("tab\there", 2), ("café", 3)]


def test_non_literal_argument_is_an_error():
    with pytest.raises(mkpot.PotError, match=r"t\.js:2: _\(\) needs a string literal"):
        mkpot.js_strings("ok(_('fine'));\nbad(_(name));\n", "t.js")


def test_render_is_a_valid_sorted_pot(tmp_path):
    text = mkpot.render({"b \"q\"\n": ["x.js:2"], "a": ["x.js:9", "y.js:1", "x.js:9"]})
    assert text.startswith('msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n')
    entries = re.findall(r'((?:#: .*\n)+)msgid (".*")\nmsgstr ""\n', text)
    assert entries == [("#: x.js:9\n#: y.js:1\n", '"a"'), ("#: x.js:2\n", r'"b \"q\"\n"')]
    # msgfmt-compatible when gettext is installed
    po = tmp_path / "t.po"
    po.write_text(text)
    if subprocess.run(["sh", "-c", "command -v msgfmt"], capture_output=True).returncode == 0:
        assert subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(po)]).returncode == 0
