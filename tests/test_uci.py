"""uci.py against every fixture recorded from real libuci (../shared/uci, see its INDEX.md)."""

import json
import re
import shlex
import stat

import pytest
from conftest import SHARED
from hypothesis import given, settings
from hypothesis import strategies as st

from bmx7wg import uci

FIXTURES = SHARED / "uci"
CASES = sorted(p.name for p in FIXTURES.iterdir() if re.fullmatch(r"case-\d\d-[a-z0-9-]+", p.name))
WRITE_CASES = sorted(p.name[: -len(".ops.txt")] for p in FIXTURES.glob("case-*.ops.txt"))


def enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def read_transcript(path):
    """`# command`, `# exit`, `# stderr` lines, then exactly N bytes of stdout."""
    data = path.read_bytes()
    header = {"stderr": []}
    pos = 0
    while True:
        end = data.index(b"\n", pos)
        line = data[pos:end].decode()
        pos = end + 1
        if line.startswith("# exit: "):
            header["exit"] = int(line[len("# exit: "):])
        elif line.startswith("# stderr: "):
            if line != "# stderr: (empty)":
                header["stderr"].append(line[len("# stderr: "):])
        elif m := re.fullmatch(r"# stdout \((\d+) bytes\) follows verbatim:", line):
            size = int(m.group(1))
            assert len(data) - pos == size, f"{path.name}: stdout is not exactly {size} bytes"
            header["stdout"] = data[pos:]
            return header


def read_ops_result(path):
    """Blocks of `$ uci ...` with exit code and '| ' output, plus the delta file dumps."""
    blocks, delta = [], {}
    target = None
    for line in path.read_bytes().split(b"\n"):
        if line.startswith(b"$ "):
            text = line[2:].decode()
            command, _, note = text.partition("   # ")
            block = {"argv": shlex.split(command), "extra": bool(note), "exit": None, "out": []}
            blocks.append(block)
            target = block["out"]
        elif line.startswith(b"# exit: "):
            blocks[-1]["exit"] = int(line[len(b"# exit: "):])
        elif m := re.fullmatch(rb"# delta file SAVEDIR/\S+ before commit \((\d+) bytes\):", line):
            delta["size"] = int(m.group(1))
            delta["lines"] = target = []
        elif m := re.fullmatch(rb"# delta file after commit: (\d+) bytes", line):
            delta["after"] = int(m.group(1))
        elif line[:2] == b"| " or line == b"|":
            target.append(line[2:])
        elif line[:2] == b"! ":
            blocks[-1].setdefault("stderr", []).append(line[2:])
    return blocks, delta


def joined(lines) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def as_listed(data: bytes) -> bytes:
    """Output as the ops-result transcript lists it: its writer split lines with
    splitlines(), so a CR inside a value (case-12) shows up as a line break."""
    return joined(data.splitlines())


def parse_case(name):
    return uci.parse((FIXTURES / name).read_bytes(), name)


def as_json(pkg):
    return [{"name": s.name, "type": s.type, "anonymous": s.anonymous, "options": s.options}
            for s in pkg.sections]


def libuci_error(name):
    """Expected (reason, line, byte) from the pyuci/ctypes record."""
    message = json.loads((FIXTURES / f"{name}.json").read_text())["libuci_error"]
    m = re.fullmatch(r"Parse error \((.*)\) at line (\d+), byte (\d+)", message)
    return message, m.group(1), int(m.group(2)), int(m.group(3))


# ---------------------------------------------------------------------------
# reading: data, show, export, errors


def test_every_case_is_covered():
    assert len(CASES) == 35
    assert len(WRITE_CASES) == 8


@pytest.mark.parametrize("name", CASES)
def test_parse_matches_libuci_data(name):
    record = json.loads((FIXTURES / f"{name}.json").read_text())
    if "libuci_error" in record:
        message, reason, line, byte = libuci_error(name)
        with pytest.raises(uci.UciParseError) as err:
            parse_case(name)
        assert (err.value.reason, err.value.line, err.value.byte) == (reason, line, byte)
        assert str(err.value) == message
        return
    pkg = parse_case(name)
    assert pkg.name == name
    if record["ok"]:
        assert as_json(pkg) == record["sections"]
    else:
        # case-23: pyuci could not decode; the raw libuci view has bytes as \xNN
        def raw(value):
            return enc(value).decode("utf-8", "backslashreplace")
        got = [{**s, "options": {k: raw(v) if isinstance(v, str) else [raw(i) for i in v]
                                 for k, v in s["options"].items()}} for s in as_json(pkg)]
        assert got == record["libuci_sections"]


@pytest.mark.parametrize("kind", ["show", "export"])
@pytest.mark.parametrize("name", CASES)
def test_output_matches_cli(name, kind):
    expected = read_transcript(FIXTURES / f"{name}.{kind}.txt")
    try:
        pkg = parse_case(name)
    except uci.UciParseError as err:
        assert expected["exit"] == 1
        assert expected["stderr"] == [f"uci: {err}"]
        assert expected["stdout"] == b""
        return
    assert expected["exit"] == 0 and expected["stderr"] == []
    render = uci.show if kind == "show" else uci.export
    assert enc(render(pkg)) == expected["stdout"]


@pytest.mark.parametrize("name", [c for c in CASES if "libuci_error" not in
                                  json.loads((FIXTURES / f"{c}.json").read_text())])
def test_export_reparses_like_libuci(name):
    pkg = parse_case(name)
    text = enc(uci.export(pkg))
    if name == "case-17-section-type-punctuation":
        # types are written unquoted, so libuci cannot read its own export back
        with pytest.raises(uci.UciParseError) as err:
            uci.parse(text, name)
        assert (err.value.reason, err.value.line) == ("invalid character in type field", 24)
        return
    again = uci.parse(text, name)
    assert as_json(again) == as_json(pkg)
    assert enc(uci.commit_text(pkg)) == text.split(b"\n", 1)[1]


# ---------------------------------------------------------------------------
# writing: replay of the recorded `uci` commands


def run_uci(files, argv):
    """One `uci -c CONFDIR -t SAVEDIR <argv>` run: load, change, save (like the CLI)."""
    assert argv[0] == "uci"
    command, args = argv[1], argv[2:]
    if command == "commit":
        files.commit(args[0])
        return b""
    if command == "changes":
        return enc(uci.changes_text(files.load(args[0])))
    if command == "show":
        return enc(uci.show(files.load(args[0])))
    if command == "add":
        pkg = files.load(args[0])
        name = pkg.add(args[1])
        files.save(pkg)
        return enc(name + "\n")
    ptr = uci.parse_ptr(args[0])
    pkg = files.load(ptr.package)
    if command == "set":
        pkg.set(ptr.section, ptr.option, ptr.value)
    elif command == "delete":
        pkg.delete(ptr.section, ptr.option, ptr.value)
    elif command == "add_list":
        pkg.add_list(ptr.section, ptr.option, ptr.value)
    elif command == "del_list":
        pkg.del_list(ptr.section, ptr.option, ptr.value)
    elif command == "rename":
        pkg.rename(ptr.section, ptr.option, ptr.value)
    elif command == "reorder":
        pkg.reorder(ptr.section, int(ptr.value))
    else:
        raise AssertionError(f"unknown command {command}")
    files.save(pkg)
    return b""


@pytest.fixture
def dirs(tmp_path):
    confdir, savedir = tmp_path / "config", tmp_path / "save"
    confdir.mkdir()
    return confdir, savedir


@pytest.mark.parametrize("name", WRITE_CASES)
def test_write_replay_matches_libuci(name, dirs):
    confdir, savedir = dirs
    (confdir / name).write_bytes((FIXTURES / name).read_bytes())
    files = uci.ConfigFiles(str(confdir), str(savedir), delta_paths=[])
    blocks, delta = read_ops_result(FIXTURES / f"{name}.ops-result.txt")
    ops = [shlex.split(line) for line in (FIXTURES / f"{name}.ops.txt").read_text().splitlines()]
    assert [b["argv"] for b in blocks if not b["extra"]] == ops

    for block in blocks:
        if block["argv"][1] == "commit":
            before = (savedir / name).read_bytes()
            assert as_listed(before) == joined(delta["lines"])
            assert len(before) == delta["size"]
        try:
            out, code = run_uci(files, block["argv"]), 0
        except uci.UciError:
            out, code = b"", 1
        assert code == block["exit"], block["argv"]
        assert as_listed(out) == joined(block["out"]), block["argv"]

    assert (confdir / name).read_bytes() == (FIXTURES / f"{name}.after-commit").read_bytes()
    assert (savedir / name).stat().st_size == delta["after"] == 0
    assert [p.name for p in confdir.iterdir()] == [name]      # no temp file left behind


def test_commit_keeps_mode_replaces_inode_and_is_idempotent(dirs):
    confdir, savedir = dirs
    path = confdir / "network"
    path.write_bytes(b"config interface 'lan'\n\toption proto static\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    files = uci.ConfigFiles(str(confdir), str(savedir), delta_paths=[])
    pkg = files.load("network")
    pkg.set("lan", "mtu", "1400")
    fresh = files.commit(pkg)
    assert fresh.get("lan", "mtu") == "1400"
    assert path.read_bytes() == b"\nconfig interface 'lan'\n\toption proto 'static'\n\toption mtu '1400'\n\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode                        # renamed into place
    assert stat.S_IMODE((savedir / "network").stat().st_mode) == 0o640   # as libuci: config's mode

    # nothing pending: commit writes nothing (same inode, same bytes)
    inode = path.stat().st_ino
    files.commit("network")
    assert path.stat().st_ino == inode


def test_pending_deltas_from_every_path_are_applied_only_savedir_flushed(dirs, tmp_path):
    confdir, savedir = dirs
    other = tmp_path / "other"
    other.mkdir()
    savedir.mkdir()
    (confdir / "wg").write_bytes(b"config peer 'a'\n\toption key 'x'\n")
    (other / "wg").write_bytes(b"wg.a.from_other='1'\n")
    (savedir / "wg").write_bytes(b"wg.a.key='y'\nthis is not a delta\nother.a.x='1'\n+wg.cfg0a1234='peer'\n")
    files = uci.ConfigFiles(str(confdir), str(savedir), delta_paths=[str(other)])
    pkg = files.load("wg")
    assert pkg.get("a", "key") == "y" and pkg.get("a", "from_other") == "1"
    assert pkg.find("cfg0a1234").anonymous
    assert uci.changes_text(pkg) == "wg.a.from_other='1'\nwg.a.key='y'\nwg.cfg0a1234='peer'\n"
    files.commit("wg")
    assert (other / "wg").read_bytes() == b"wg.a.from_other='1'\n"
    assert (savedir / "wg").read_bytes() == b""
    assert (confdir / "wg").read_bytes() == (
        b"\nconfig peer 'a'\n\toption key 'y'\n\toption from_other '1'\n\nconfig peer\n\n")


def test_multiline_and_quote_values_survive_the_delta_file(dirs):
    confdir, savedir = dirs
    (confdir / "t").write_bytes(b"config x 's'\n")
    files = uci.ConfigFiles(str(confdir), str(savedir), delta_paths=[])
    pkg = files.load("t")
    pkg.set("s", "v", "it's\nline two\ttab")
    files.save(pkg)
    assert (savedir / "t").read_bytes() == b"t.s.v='it'\\''s\nline two\ttab'\n"
    assert files.load("t").get("s", "v") == "it's\nline two\ttab"


def test_non_utf8_byte_is_written_back_unchanged(dirs):
    confdir, savedir = dirs
    name = "case-23-non-utf8-bytes"
    (confdir / name).write_bytes((FIXTURES / name).read_bytes())
    files = uci.ConfigFiles(str(confdir), str(savedir), delta_paths=[])
    pkg = files.load(name)
    assert pkg.get("latin1", "city") == "M\udcfcnchen"
    pkg.set("latin1", "ascii", "changed")
    files.commit(pkg)
    assert b"\toption city 'M\xfcnchen'\n" in (confdir / name).read_bytes()


def test_package_operations_record_libuci_deltas():
    pkg = uci.parse(b"config a 'one'\nconfig b 'two'\n\tlist l x\n\tlist l y\nconfig a\n", "p")
    pkg.reorder("one", 0)                      # already there: no change recorded
    pkg.reorder("two", 0)
    pkg.delete("two", "l", "1")                # list item by index
    pkg.rename("two", "l", "items")
    pkg.set("@a[-1]", None, "bb")              # longer type: libuci re-creates it as named
    pkg.set("one", None, "")                   # empty value deletes
    assert [uci.format_delta("p", d) for d in pkg.changes] == [
        "^p.two='0'\n", "-p.two.l='1'\n", "@p.two.l='items'\n", "p.cfg03b606='bb'\n", "-p.one\n"]
    assert [(s.name, s.type, s.anonymous) for s in pkg.sections] == [
        ("two", "b", False), ("cfg03b606", "bb", False)]
    assert pkg.find("two").options == {"items": ["x"]}
    assert uci.show(pkg) == "p.two=b\np.two.items='x'\np.cfg03b606=bb\n"


@pytest.mark.parametrize("call", [
    lambda p: p.set("nosuch", "o", "v"),
    lambda p: p.set("s", "bad-name", "v"),
    lambda p: p.set("s", "o", "bell\a"),
    lambda p: p.set("s", "o", "lone \ud800 surrogate"),
    lambda p: p.set("s", "o\ud800", "v"),
    lambda p: p.set("new", None, "bad type"),
    lambda p: p.add("two words"),
    lambda p: p.delete("s", "nosuch"),
    lambda p: p.rename("s", None, "bad-name"),
    lambda p: p.find("@t[x]"),
    lambda p: p.reorder("@t[5]", 0),
])
def test_invalid_writes_raise_uci_error(call):
    pkg = uci.parse(b"config t 's'\n", "p")
    with pytest.raises(uci.UciError):
        call(pkg)
    assert pkg.changes == [] and uci.show(pkg) == "p.s=t\n"


def test_missing_config_and_bad_name(dirs):
    confdir, savedir = dirs
    files = uci.ConfigFiles(str(confdir), str(savedir), delta_paths=[])
    with pytest.raises(uci.UciNotFoundError):
        files.load("absent")
    with pytest.raises(uci.UciError):
        files.load("../etc/passwd")


_value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1) \
    .filter(uci.valid_text)
_name = st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_name, _value, st.booleans()), max_size=6))
def test_export_parse_round_trip(options):
    pkg = uci.Package("rt")
    pkg.add("t")
    for name, value, is_list in options:
        (pkg.add_list if is_list else pkg.set)("@t[0]", name, value)
    again = uci.parse(enc(uci.export(pkg)), "rt")
    assert as_json(again) == as_json(pkg)
