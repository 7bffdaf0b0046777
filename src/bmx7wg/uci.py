"""UCI config files read and written exactly as libuci does (for hosts without libuci).

The reader emulates libuci's line-buffer parser (file.c) step by step, including its
quirks, so values, anonymous section names and parse error positions agree with real
libuci byte for byte (fixtures: ../shared/uci). The writer produces what `uci export`
and `uci commit` produce. Pending changes live in a save directory as libuci delta lines
(`cfg.s.o='v'`, `+`, `-`, `@`, `|`, `~`, `^`); loading a config applies them.

Text representation: UCI files are bytes and libuci never checks value encoding. Every
string here is the file's bytes decoded as UTF-8 with errors="surrogateescape", so a
non-UTF-8 byte (e.g. Latin-1 0xFC) becomes the lone surrogate U+DCFC and is written
back as the same byte. Names and types are ASCII by libuci's own rules.

Deliberate differences from libuci's C API (the file formats are identical):
* the public write methods refuse what libuci would accept but could not read back from
  its own delta file: invalid option/section names, invalid types, control characters;
* commit renames the new file into place before truncating the delta file (libuci
  truncates first), so a crash can repeat a change instead of losing it;
* renaming an option onto an existing option name keeps one entry (libuci keeps two);
* the config override dir /var/run/uci (conf2dir) is not consulted.
"""

from __future__ import annotations

import fcntl
import os
from collections import namedtuple

from .charset import BLANKS, leading_int
from .fsutil import unlink_quietly
from .record import record, field
from .ucinames import decode as _decode, encode as _encode, valid_bytes
# names callers find here as uci.X, as before ucinames.py held them
from .ucinames import (DEFAULT_CONFDIR, DEFAULT_SAVEDIR, UciError, UciNotFoundError,  # noqa: F401
                       UciParseError, valid_config_name, valid_name, valid_text, valid_type)

_LINEBUF = 32                       # libuci's initial line buffer size
_SPACE = frozenset(b" \t\n\r\x0b\x0c")   # C isspace() in the C locale
_TOKEN_DELIM = (0x20, 0x09)         # strtok(" \t") for command words

Value = str | list[str]


# ---------------------------------------------------------------------------
# data model

@record(eq=False)
class Section:
    name: str
    type: str
    anonymous: bool = False
    options: dict[str, Value] = field(default_factory=dict)


# (collections.namedtuple, not typing.NamedTuple: typing alone is 0.5 MB of the helper's memory)
Delta = namedtuple("Delta", "cmd section option value")
Delta.__doc__ = "One pending change; cmd is one of '+', '-', '' (change), '@', '^', '|', '~'."

Ptr = namedtuple("Ptr", "package section option value")
Ptr.__doc__ = "`config.section.option=value` as libuci's uci_parse_ptr splits it (None: absent)."


def _djb_hash(text: str) -> int:
    h = 5381
    for b in _encode(text):
        h = (h * 33 + (b - 256 if b > 127 else b)) & 0xFFFFFFFF   # C char is signed here
    return h & 0x7FFFFFFF


def _sscanf_int(text: str) -> int | None:
    read = leading_int(text)
    return read[0] if read else None


def _strtoul_int(text: str) -> int:
    """strtoul() cast to int, as `uci reorder` does."""
    text = text.lstrip(BLANKS)
    negative = text.startswith("-")
    if text.startswith(("+", "-")):
        text = text[1:]
    digits = text[:len(text) - len(text.lstrip("0123456789"))]
    n = int(digits or 0) & 0xFFFFFFFFFFFFFFFF
    if negative:
        n = (-n) & 0xFFFFFFFFFFFFFFFF
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n & 0x80000000 else n


class Package:
    """One config: sections in file order plus libuci's bookkeeping.

    Write methods take (section, option, value) like libuci's uci_ptr; `section` may be
    a name or an extended reference `@type[i]` / `@type[-1]`. Each change is recorded in
    `changes` (libuci's p->delta) so a store can append it to the save directory.
    """

    def __init__(self, name: str):
        self.name = name
        self.sections: list[Section] = []
        self.n_section = 0                    # libuci's counter used in anonymous names
        self.changes: list[Delta] = []        # made here, not yet saved
        self.saved_changes: list[Delta] = []  # pending in the save dirs when loaded
        self._internal = False                # replaying deltas: record nothing

    # -- lookup -------------------------------------------------------------

    def find(self, ref: str) -> Section | None:
        """Section by name (first match) or by extended reference `@type[i]`."""
        if valid_name(ref):
            return next((s for s in self.sections if s.name == ref), None)
        return self._find_extended(ref)

    def _find_extended(self, ref: str) -> Section | None:
        # libuci: first '[', the first ']' after it ends the ref, strtol() must use all
        stype, bracket, rest = ref[1:].partition("[")
        idxstr = rest[:-1]
        read = leading_int(idxstr) if idxstr else (0, 0)
        if not ref.startswith("@") or not bracket or not rest.endswith("]") or "]" in idxstr \
                or not read or read[1] != len(idxstr) or (stype and not valid_type(stype)):
            raise UciError(f"Invalid argument: bad section reference {ref!r}")
        idx = read[0]
        matching = [s for s in self.sections if not stype or s.type == stype]
        if idx < 0:
            idx += len(matching)
        return matching[idx] if 0 <= idx < len(matching) else None

    def get(self, section: str, option: str | None = None) -> Value | None:
        s = self.find(section)
        if s is None:
            return None
        return s.type if option is None else s.options.get(option)

    def _require(self, section: str, option: str | None = None) -> Section:
        s = self.find(section)
        if s is None or (option is not None and option not in s.options):
            path = ".".join(p for p in (self.name, section, option) if p is not None)
            raise UciNotFoundError(f"Entry not found: {path}")
        return s

    def _record(self, cmd: str, section: str, option: str | None, value: str | None) -> None:
        if not self._internal:
            self.changes.append(Delta(cmd, section, option, value))

    def _check_public(self, option: str | None = None, value: str | None = None) -> None:
        if self._internal:
            return
        if option is not None and not valid_name(option):
            raise UciError(f"Invalid argument: bad option name {option!r}")
        if value is not None and not valid_text(value):
            raise UciError("Invalid argument: control character in value")

    # -- write operations (list.c) -------------------------------------------

    def set(self, section: str, option: str | None, value: str) -> None:
        """Set an option, or (option None) create a named section / change its type.
        An empty value deletes, as in libuci."""
        self._check_public(option, value)
        s = self.find(section)
        if s is None and (option is not None or not valid_name(section)):
            raise UciError(f"Invalid argument: no section {section!r} in {self.name}")
        if option is None and value and not valid_type(value):
            raise UciError(f"Invalid argument: bad section type {value!r}")
        if value == "":
            if s is not None and (option is None or option in s.options):
                self.delete(section, option)
            return
        if option is not None:
            cur = s.options.get(option)
            if isinstance(cur, str) and cur == value:
                return
            s.options[option] = value
        elif s is None:
            self.n_section += 1
            s = Section(section, value)
            self.sections.append(s)
        else:
            if s.type == value:
                return
            if len(_encode(s.type)) != len(_encode(value)):
                s.anonymous = False   # libuci re-allocates the section under its name
            s.type = value
        self._record("", s.name, option, value)

    def add(self, stype: str) -> str:
        """Append an anonymous section; returns its generated name `cfgNNhhhh`."""
        if not self._internal and not valid_type(stype):
            raise UciError(f"Invalid argument: bad section type {stype!r}")
        self.n_section += 1
        name = f"cfg{self.n_section:02x}{_djb_hash(stype) % 65536:04x}"
        self.sections.append(Section(name, stype, anonymous=True))
        self._record("+", name, None, stype)
        return name

    def delete(self, section: str, option: str | None = None, value: str | None = None) -> None:
        """Delete a section or option; with `value` on a list, delete the item at that index."""
        s = self._require(section, option)
        cur = s.options.get(option) if option is not None else None
        if isinstance(cur, list) and value:
            index = _sscanf_int(value)
            if index is None:
                raise UciError(f"Invalid argument: list index {value!r}")
            if 0 <= index < len(cur):
                self._record("-", s.name, option, value)
                del cur[index]
            return
        self._record("-", s.name, option, None)
        if option is not None:
            del s.options[option]
        else:
            self.sections.remove(s)

    def add_list(self, section: str, option: str, value: str) -> None:
        self._check_public(option, value)
        s = self.find(section)
        if s is None:
            raise UciError(f"Invalid argument: no section {section!r} in {self.name}")
        cur = s.options.get(option)
        if cur is None:
            s.options[option] = [value]
        elif isinstance(cur, str):
            s.options[option] = [cur, value]
        else:
            cur.append(value)
        self._record("|", s.name, option, value)

    def del_list(self, section: str, option: str, value: str) -> None:
        """Remove every item equal to value; a plain option is left alone (as libuci)."""
        s = self.find(section)
        if s is None:
            raise UciError(f"Invalid argument: no section {section!r} in {self.name}")
        cur = s.options.get(option)
        if not isinstance(cur, list):
            return
        self._record("~", s.name, option, value)
        s.options[option] = [item for item in cur if item != value]

    def rename(self, section: str, option: str | None, name: str) -> None:
        """Rename a section (it becomes named) or an option, keeping its position."""
        if not self._internal and not valid_name(name):
            raise UciError(f"Invalid argument: bad name {name!r}")
        s = self._require(section, option)
        self._record("@", s.name, option, name)
        if option is None:
            s.name = name
            s.anonymous = False
            return
        renamed: dict[str, Value] = {}
        for key, val in s.options.items():
            key = name if key == option else key
            renamed.setdefault(key, val)
        s.options = renamed

    def reorder(self, section: str, position: int) -> None:
        """Move a section to index `position` (clamped), as `uci reorder`."""
        s = self._require(section)
        old = self.sections.index(s)
        before = self.sections[old - 1] if old > 0 else None
        self.sections.remove(s)
        new = max(0, min(position, len(self.sections)))
        self.sections.insert(new, s)
        after = self.sections[new - 1] if new > 0 else None
        if before is not after:
            self._record("^", s.name, None, str(position))

    # -- deltas (delta.c) ------------------------------------------------------

    def apply_delta(self, d: Delta) -> None:
        """Apply one change read from a delta file without recording it again."""
        self._internal = True
        try:
            self._apply(d)
        finally:
            self._internal = False

    def _apply(self, d: Delta) -> None:
        if d.cmd == "^":
            self.reorder(d.section, _strtoul_int(d.value))
        elif d.cmd == "@":
            self.rename(d.section, d.option, d.value)
        elif d.cmd == "-":
            self.delete(d.section, d.option, d.value)
        elif d.cmd == "|":
            self.add_list(d.section, d.option, d.value)
        elif d.cmd == "~":
            self.del_list(d.section, d.option, d.value)
        else:
            self.set(d.section, d.option, d.value)
            if d.cmd == "+" and d.option is None:
                s = self.find(d.section)
                if s is not None:
                    s.anonymous = True


# ---------------------------------------------------------------------------
# the line-buffer reader (file.c), emulated byte for byte

class _Reader:
    """libuci's parse context: a growing line buffer filled by fgets, a cursor and a
    line counter. Strings are NUL-terminated inside the buffer, as in C."""

    def __init__(self, data: bytes):
        self.data = data
        self.fpos = 0
        self.eof = False
        self.bufsz = _LINEBUF
        self.buf = bytearray(_LINEBUF)
        self.filled = 0
        self.pos = 0
        self.line = 0

    # -- stdio --

    def _fgets(self, n: int) -> bytes | None:
        if self.fpos >= len(self.data):
            self.eof = True
            return None
        limit = n - 1
        stop = min(len(self.data), self.fpos + limit)
        nl = self.data.find(b"\n", self.fpos, stop)
        if nl >= 0:
            end = nl + 1
        else:
            end = stop
            if end - self.fpos < limit:
                self.eof = True
        chunk = self.data[self.fpos:end]
        self.fpos = end
        return chunk

    def _grow(self) -> None:
        self.bufsz *= 2
        self.buf.extend(bytes(self.bufsz - len(self.buf)))

    def getln(self, offset: int) -> None:
        """uci_getln: read the next line into the buffer at offset."""
        if offset >= self.bufsz - 1:
            self._grow()
        ofs = offset
        while True:
            self.buf[ofs] = 0
            chunk = self._fgets(self.bufsz - ofs)
            if chunk is None:
                return
            self.buf[ofs:ofs + len(chunk)] = chunk
            self.buf[ofs + len(chunk)] = 0
            if chunk[0] == 0:
                return
            nul = chunk.find(b"\0")
            ofs += len(chunk) if nul < 0 else nul
            self.filled = ofs
            if self.buf[ofs - 1] == 0x0A:
                self.line += 1
                return
            self._grow()

    # -- helpers --

    def error(self, reason: str) -> None:
        raise UciParseError(reason, self.line, self.pos)

    def cur(self) -> int:
        return self.buf[self.pos]

    def cstr(self, at: int) -> bytes:
        return bytes(self.buf[at:self.buf.index(0, at)])

    def skip_whitespace(self) -> None:
        while self.buf[self.pos] and self.buf[self.pos] in _SPACE:
            self.pos += 1

    def _addc(self, target: int) -> int:
        self.buf[target] = self.buf[self.pos]
        self.pos += 1
        return target + 1

    def _backslash(self) -> bool:
        """parse_backslash: False when it joined the next line instead."""
        self.pos += 1
        c, b = self.cur(), self.buf
        if not c or c == 0x0A or (c == 0x0D and b[self.pos + 1] == 0x0A and not b[self.pos + 2]):
            self.getln(self.pos)
            return False
        return True

    def _double_quote(self, target: int) -> int:
        self.pos += 1
        while True:
            c = self.cur()
            if c == 0x22:
                self.pos += 1
                return target
            if c == 0:
                self.getln(self.pos)
                if not self.cur():
                    self.error('EOF with unterminated "')
                continue
            if c == 0x5C and not self._backslash():
                continue
            target = self._addc(target)

    def _single_quote(self, target: int) -> int:
        self.pos += 1
        while True:
            c = self.cur()
            if c == 0x27:
                self.pos += 1
                return target
            if c == 0:
                self.getln(self.pos)
                if not self.cur():
                    self.error("EOF with unterminated '")
                continue
            target = self._addc(target)

    def _parse_str(self, target: int) -> None:
        more = True
        while True:
            c = self.cur()
            if c == 0x27:
                target = self._single_quote(target)
            elif c == 0x22:
                target = self._double_quote(target)
            elif c == 0x23:        # '#': the rest of the line is a comment
                self.buf[self.pos] = 0
                break
            elif c == 0:
                break
            elif c == 0x3B:        # ';' ends the command (and may eat the rest, see below)
                more = False
                break
            elif c == 0x5C and not self._backslash():
                pass               # joined lines: re-check the loop condition
            else:                  # plain byte, or the byte after a backslash
                target = self._addc(target)
            if not self.cur() or self.cur() in _SPACE:
                break
        if self.cur() and more:
            self.pos += 1
        self.buf[target] = 0       # may overwrite a glued ';' -> rest of line dropped

    def next_arg(self, required: bool, name: bool, package: bool) -> int:
        self.skip_whitespace()
        val = self.pos
        if self.cur() == 0x3B:
            self.buf[self.pos] = 0
            self.pos += 1
        else:
            self._parse_str(val)
        if not self.buf[val]:
            if required:
                self.error("insufficient arguments")
            return val
        if name and not valid_bytes(self.cstr(val), True, package):
            self.error("invalid character in name field")
        return val


class _ConfigParser(_Reader):
    """uci_import in strict mode: the first error rejects the whole file."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.package = Package(name)
        self.section: Section | None = None

    def run(self) -> Package:
        while not self.eof:
            self.pos = 0
            self.getln(0)
            if self.buf[0]:
                self._parse_line()
        return self.package

    def _strtok(self) -> bytes | None:
        p, b = self.pos, self.buf
        while b[p] in _TOKEN_DELIM:
            p += 1
        if not b[p]:
            return None
        start = p
        while b[p] and b[p] not in _TOKEN_DELIM:
            p += 1
        word = bytes(b[start:p])
        b[p] = 0
        return word

    def _parse_line(self) -> None:
        self.skip_whitespace()
        while True:
            word = self._strtok()
            if word is None or word[:1] == b"#":
                return
            rest = word[1:]
            if word[:1] == b"p" and rest in (b"", b"ackage"):
                self._parse_package()
            elif word[:1] == b"c" and rest in (b"", b"onfig"):
                self._parse_config()
            elif word[:1] == b"o" and rest in (b"", b"ption"):
                self._parse_option(False)
            elif word[:1] == b"l" and rest in (b"", b"ist"):
                self._parse_option(True)
            else:
                self.error("invalid command")

    def _skip_command(self, reason: str) -> None:
        add = len(self.cstr(self.pos)) + 1
        if self.pos + add > self.filled:
            self.error(reason)
        self.pos += add

    def _assert_eol(self) -> None:
        self.skip_whitespace()
        if self.buf[self.next_arg(False, False, False)]:
            self.error("too many arguments")

    def _parse_package(self) -> None:
        # `package` lines are checked but ignored when loading one config file
        self._skip_command("package without name")
        self.next_arg(True, True, True)
        self._assert_eol()

    def _parse_config(self) -> None:
        self._skip_command("config without name")
        ofs_type = self.next_arg(True, False, False)
        if not valid_bytes(self.cstr(ofs_type), False, False):
            self.error("invalid character in type field")
        ofs_name = self.next_arg(False, True, False)
        self._assert_eol()
        stype = self.cstr(ofs_type).decode("ascii")
        name = self.cstr(ofs_name).decode("ascii")
        pkg = self.package
        pkg._internal = True
        try:
            if not name:
                pkg.add(stype)
                self.section = pkg.sections[-1]
                return
            existing = pkg.find(name)
            if existing is not None and existing.type != stype:
                self.error("section of different type overwrites prior section with same name")
            pkg.set(name, None, stype)
            self.section = pkg.find(name)
        finally:
            pkg._internal = False

    def _parse_option(self, is_list: bool) -> None:
        if self.section is None:
            self.error("option/list command found before the first section")
        self._skip_command("option without name")
        ofs_name = self.next_arg(True, True, False)
        ofs_value = self.next_arg(False, False, False)
        self._assert_eol()
        name = self.cstr(ofs_name).decode("ascii")
        value = _decode(self.cstr(ofs_value))
        options = self.section.options
        cur = options.get(name)
        if is_list:
            if cur is None:
                options[name] = [value]
            elif isinstance(cur, str):
                options[name] = [cur, value]
            else:
                cur.append(value)
        elif value:    # an empty option value is dropped and clears nothing
            options[name] = value


def parse(data: bytes, name: str) -> Package:
    """Parse a config file's bytes as libuci does; raises UciParseError like strict libuci."""
    if not name or not valid_config_name(name):
        raise UciError(f"Invalid argument: bad config name {name!r}")
    return _ConfigParser(bytes(data), name).run()


# ---------------------------------------------------------------------------
# delta lines

_COMMANDS = "+-@^|~"


def parse_ptr(text: str) -> Ptr:
    """uci_parse_ptr: `config[.section[.option]][=value]`; section may be `@type[i]`."""
    value = None
    if "=" in text:
        text, value = text.split("=", 1)
    parts = text.split(".")
    if len(parts) > 3:
        raise UciError(f"Parse error: bad uci path {text!r}")
    package, section, option = (parts + [None, None])[:3]
    if not valid_config_name(package) or (option is not None and not valid_name(option)):
        raise UciError(f"Parse error: bad uci path {text!r}")
    if value is not None and (not valid_text(value) or "\0" in value):
        raise UciError(f"Parse error: bad value for {text!r}")
    return Ptr(package, section, option, value)


def _parse_delta_line(reader: _Reader) -> tuple[str, Delta]:
    """uci_parse_delta_tuple; raises UciError for a line libuci would skip."""
    arg = reader.cstr(reader.next_arg(False, False, False))
    if reader.cur():
        raise UciError("Invalid argument: trailing text in delta line")
    cmd = chr(arg[0]) if arg and chr(arg[0]) in _COMMANDS else ""
    ptr = parse_ptr(_decode(arg[1:] if cmd else arg))
    if ptr.section is None or not valid_name(ptr.section):
        raise UciError("Invalid argument: bad section in delta line")
    if cmd != "-" and ptr.value is None:
        raise UciError("Invalid argument: delta line without value")
    if (cmd == "^" and ptr.option is not None) or (cmd == "@" and not valid_name(ptr.value)):
        raise UciError("Invalid argument: bad delta line")
    if cmd in ("|", "~") and ptr.option is None:
        raise UciError("Invalid argument: list delta without option")
    return ptr.package, Delta(cmd, ptr.section, ptr.option, ptr.value)


def apply_deltas(pkg: Package, data: bytes) -> int:
    """Apply a delta file to pkg as uci_parse_delta does: bad lines are skipped.
    Returns the number of lines applied without error."""
    reader = _Reader(data)
    applied = 0
    while not reader.eof:
        reader.pos = 0
        reader.getln(0)
        if not reader.buf[0]:
            continue
        try:
            package, delta = _parse_delta_line(reader)
            if package != pkg.name:
                continue
            pkg.saved_changes.append(delta)
            pkg.apply_delta(delta)
        except UciError:
            continue
        applied += 1
    return applied


def _escape(text: str) -> str:
    return text.replace("'", "'\\''")


def _quote(value: str) -> str:
    return f"'{_escape(value)}'"


def format_delta(config: str, d: Delta) -> str:
    """One line of a savedir delta file (uci_delta_save)."""
    path = f"{d.cmd}{config}.{d.section}" + (f".{d.option}" if d.option is not None else "")
    if d.cmd == "-" and d.value is None:
        return path + "\n"
    return f"{path}={_quote(d.value)}\n"


def format_change(config: str, d: Delta) -> str:
    """One line of `uci changes`."""
    path = f"{config}.{d.section}" + (f".{d.option}" if d.option is not None else "")
    if d.cmd == "-":
        return f"-{path}\n"
    op = {"|": "+=", "~": "-="}.get(d.cmd, "=")
    return f"{path}{op}{_quote(d.value)}\n"


def changes_text(pkg: Package) -> str:
    """`uci changes <config>`: saved changes, then unsaved ones made on this object."""
    return "".join(format_change(pkg.name, d) for d in pkg.saved_changes + pkg.changes)


# ---------------------------------------------------------------------------
# output

def _body(pkg: Package) -> str:
    out = []
    for s in pkg.sections:
        out.append(f"\nconfig {_escape(s.type)}")   # libuci writes the type unquoted
        if not s.anonymous:
            out.append(f" {_quote(s.name)}")
        out.append("\n")
        for name, value in s.options.items():
            items = [value] if isinstance(value, str) else value
            keyword = "option" if isinstance(value, str) else "list"
            out.extend(f"\t{keyword} {name} {_quote(item)}\n" for item in items)
    out.append("\n")
    return "".join(out)


def export(pkg: Package) -> str:
    """`uci export <config>` output."""
    return f"package {_escape(pkg.name)}\n" + _body(pkg)


def commit_text(pkg: Package) -> str:
    """The file `uci commit` writes (export without the package line)."""
    return _body(pkg)


def show(pkg: Package) -> str:
    """`uci show <config>` output; anonymous sections appear as @type[i]."""
    seen: dict[str, int] = {}
    out = []
    for s in pkg.sections:
        index = seen.get(s.type, 0)
        seen[s.type] = index + 1
        ref = f"@{s.type}[{index}]" if s.anonymous else s.name
        out.append(f"{pkg.name}.{ref}={s.type}\n")
        for name, value in s.options.items():
            shown = _quote(value) if isinstance(value, str) else " ".join(map(_quote, value))
            out.append(f"{pkg.name}.{ref}.{name}={shown}\n")
    return "".join(out)


# ---------------------------------------------------------------------------
# files: confdir + savedir, as libuci's file backend

class ConfigFiles:
    """Config files in `confdir` with pending changes in `savedir`.

    Like libuci, loading also applies deltas from `delta_paths` (default: /tmp/.uci,
    libuci's built-in save dir, then `savedir`); commit flushes only `savedir`.
    """

    def __init__(self, confdir: str = DEFAULT_CONFDIR, savedir: str = DEFAULT_SAVEDIR,
                 delta_paths: list[str] | None = None):
        self.confdir = confdir
        self.savedir = savedir
        if delta_paths is None:
            delta_paths = [DEFAULT_SAVEDIR]
        self.delta_paths = [p for p in delta_paths if p != savedir] + [savedir]

    def path(self, config: str) -> str:
        if not config or not valid_config_name(config):
            raise UciError(f"Invalid argument: bad config name {config!r}")
        return os.path.join(self.confdir, config)

    def load(self, config: str) -> Package:
        """Parse the config file and apply pending deltas."""
        path = self.path(config)
        if not os.path.isfile(path):       # as libuci: only regular files (never a FIFO)
            raise UciNotFoundError(f"Entry not found: {path}")
        try:
            with open(path, "rb") as f:
                _flock(f.fileno(), fcntl.LOCK_SH)
                pkg = parse(f.read(), config)
                self._apply_saved(pkg)
        except OSError as exc:
            raise UciError(f"I/O error: {path}: {exc.strerror}") from None
        return pkg

    def _apply_saved(self, pkg: Package) -> int:
        applied = 0
        for directory in self.delta_paths:
            data = _read_locked(os.path.join(directory, pkg.name))
            if data is not None:
                applied += apply_deltas(pkg, data)
        return applied

    def save(self, pkg: Package) -> None:
        """Append pkg's unsaved changes to the delta file (uci_save)."""
        if not pkg.changes:
            return
        self._ensure_savedir()
        text = "".join(format_delta(pkg.name, d) for d in pkg.changes)
        path = os.path.join(self.savedir, pkg.name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, self._file_mode(pkg.name))
            with os.fdopen(fd, "ab") as f:
                _flock(f.fileno(), fcntl.LOCK_EX)
                f.write(_encode(text))
        except OSError as exc:
            raise UciError(f"I/O error: {path}: {exc.strerror}") from None
        pkg.changes = []

    def _file_mode(self, config: str) -> int:
        try:
            return os.stat(os.path.join(self.confdir, config)).st_mode & 0o7777
        except OSError:
            return 0o600

    def _ensure_savedir(self) -> None:
        if os.path.isdir(self.savedir):
            return
        try:
            mode = os.stat(self.confdir).st_mode & 0o7777
        except OSError:
            mode = 0o700
        try:
            os.makedirs(self.savedir, mode, exist_ok=True)
        except OSError as exc:
            raise UciError(f"I/O error: {self.savedir}: {exc.strerror}") from None

    def commit(self, pkg: Package | str) -> Package:
        """Write the config with all pending changes (uci commit) and return it re-read.

        The new file is written to a temp file in confdir and renamed into place; the
        delta file is then truncated to 0 bytes. Nothing is written without changes."""
        name = pkg if isinstance(pkg, str) else pkg.name
        path = self.path(name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, self._file_mode(name))
        except OSError as exc:
            raise UciError(f"I/O error: {path}: {exc.strerror}") from None
        with os.fdopen(fd, "r+b") as f:
            _flock(f.fileno(), fcntl.LOCK_EX)     # held until the new file is in place
            if isinstance(pkg, Package):
                self.save(pkg)
            fresh = parse(f.read(), name)
            if self._apply_saved(fresh) == 0:
                return fresh
            self._replace(path, commit_text(fresh))
            self._truncate_delta(name)
        fresh.saved_changes = []
        return fresh

    def _replace(self, path: str, text: str) -> None:
        real = os.path.realpath(path)
        import tempfile    # writes only: the helper reads config and never pays for it
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.uci-", dir=self.confdir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_encode(text))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, os.stat(real).st_mode & 0o7777)
            os.rename(tmp, real)
        except OSError as exc:
            unlink_quietly(tmp, OSError)   # the write's own error is the one to report
            raise UciError(f"I/O error: {path}: {exc.strerror}") from None

    def _truncate_delta(self, config: str) -> None:
        path = os.path.join(self.savedir, config)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return
        with os.fdopen(fd, "r+b") as f:
            _flock(f.fileno(), fcntl.LOCK_EX)
            f.truncate(0)


def _flock(fd: int, op: int) -> None:
    try:
        fcntl.flock(fd, op)
    except OSError:
        pass   # libuci ignores ENOSYS as well; locking is advisory


def _read_locked(path: str) -> bytes | None:
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            _flock(f.fileno(), fcntl.LOCK_SH)
            return f.read()
    except OSError:
        return None
