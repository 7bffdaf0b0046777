#!/usr/bin/env python3
"""Write the LuCI app's translation template from its sources.

    python3 tools/mkpot.py           # (re)write luci-app-bmx7-wgtun/po/templates/bmx7wg.pot
    python3 tools/mkpot.py --check   # exit 1 if the committed .pot is out of date

Collected like LuCI's i18n-scan: every `_('literal')` in htdocs/**/*.js, the "title" of
menu.d entries and the "description" of acl.d groups. A `_()` whose argument is not a
string literal cannot be translated and is an error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "luci-app-bmx7-wgtun"
POT = APP / "po" / "templates" / "bmx7wg.pot"
FEED_PREFIX = "applications/luci-app-bmx7-wgtun"   # where the app sits in the luci feed

CALL_RE = re.compile(r"(?<![\w$.])_\(")
LITERAL_RE = re.compile(r"""\s*('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")\s*[,)]""")
JS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


class PotError(Exception):
    pass


def _unquote(literal: str) -> str:
    body = literal[1:-1]

    def escape(m: re.Match) -> str:
        seq = m.group(1)
        if seq[0] == "u":
            return chr(int(seq[1:], 16))
        if seq[0] == "x":
            return chr(int(seq[1:], 16))
        return JS_ESCAPES.get(seq, seq)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", escape, body)


def js_strings(text: str, where: str) -> list[tuple[str, int]]:
    """(msgid, line) of every _() call; PotError for a call without a literal argument."""
    found = []
    for call in CALL_RE.finditer(text):
        line = text.count("\n", 0, call.start()) + 1
        m = LITERAL_RE.match(text, call.end())
        if not m:
            raise PotError(f"{where}:{line}: _() needs a string literal argument")
        found.append((_unquote(m.group(1)), line))
    return found


def collect(app: Path = APP) -> dict[str, list[str]]:
    """msgid → references ("path:line"), paths as in the luci feed."""
    refs: dict[str, list[str]] = {}

    def add(msgid: str, ref: str) -> None:
        if msgid:
            refs.setdefault(msgid, []).append(ref)

    for path in sorted((app / "htdocs").rglob("*.js")):
        rel = f"{FEED_PREFIX}/{path.relative_to(app)}"
        for msgid, line in js_strings(path.read_text(encoding="utf-8"), rel):
            add(msgid, f"{rel}:{line}")
    for path in sorted((app / "root" / "usr" / "share" / "luci" / "menu.d").glob("*.json")):
        for entry in json.loads(path.read_text()).values():
            add(entry.get("title", ""), f"{FEED_PREFIX}/{path.relative_to(app)}")
    for path in sorted((app / "root" / "usr" / "share" / "rpcd" / "acl.d").glob("*.json")):
        for group in json.loads(path.read_text()).values():
            add(group.get("description", ""), f"{FEED_PREFIX}/{path.relative_to(app)}")
    return refs


def _po_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def render(refs: dict[str, list[str]]) -> str:
    out = ['msgid ""', 'msgstr "Content-Type: text/plain; charset=UTF-8"', ""]
    for msgid in sorted(refs):
        out.extend(f"#: {ref}" for ref in sorted(set(refs[msgid])))
        out.append(f"msgid {_po_quote(msgid)}")
        out.append('msgstr ""')
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the .pot is up to date")
    args = parser.parse_args(argv)
    try:
        text = render(collect())
    except PotError as exc:
        print(f"mkpot: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if not POT.exists() or POT.read_text(encoding="utf-8") != text:
            print(f"mkpot: {POT.relative_to(ROOT)} is out of date: run python3 tools/mkpot.py", file=sys.stderr)
            return 1
        return 0
    POT.parent.mkdir(parents=True, exist_ok=True)
    POT.write_text(text, encoding="utf-8")
    print(f"{POT.relative_to(ROOT)}: {len(text.split(chr(10) + 'msgid ')) - 2} strings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
