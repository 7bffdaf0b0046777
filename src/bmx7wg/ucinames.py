"""UCI's names, error types and default directories: what both UCI backends need.

The file format itself (uci.py, 0.1 MB of a helper's memory) is only loaded where there
is no libuci: uciadapter.py reads through euci on OpenWrt.
"""

from __future__ import annotations

DEFAULT_CONFDIR = "/etc/config"
DEFAULT_SAVEDIR = "/tmp/.uci"

# Text is the file's bytes as UTF-8 with surrogateescape (uci.py's docstring).
ENCODING, ERRORS = "utf-8", "surrogateescape"


class UciError(Exception):
    """A libuci error (message as libuci names it, e.g. 'Entry not found')."""


class UciNotFoundError(UciError):
    pass


class UciParseError(UciError):
    """Parse error; str() is exactly libuci's `Parse error (<reason>) at line L, byte B`."""

    def __init__(self, reason: str, line: int, byte: int):
        super().__init__(f"Parse error ({reason}) at line {line}, byte {byte}")
        self.reason = reason
        self.line = line
        self.byte = byte


# ---------------------------------------------------------------------------
# validation (util.c)

def valid_bytes(data: bytes | None, name: bool, package: bool) -> bool:
    """libuci's uci_validate_str: a name (`name`), a config name (`package`) or a type."""
    if not data:
        return False
    for c in data:
        if c < 128 and (chr(c).isalnum() or c == 0x5F):
            continue
        if c == 0x2D and package:
            continue
        if name or c < 33 or c > 126:
            return False
    return True


def valid_name(text: str) -> bool:
    """Section and option names: [A-Za-z0-9_]+."""
    return valid_bytes(bytes_or_none(text), True, False)


def valid_type(text: str) -> bool:
    """Section types: printable ASCII without space."""
    return valid_bytes(bytes_or_none(text), False, False)


def valid_config_name(text: str) -> bool:
    """Config (file) names as libuci accepts them, minus path separators."""
    return valid_bytes(bytes_or_none(text), False, True) and "/" not in text and text[0] != "."


def valid_text(text: str) -> bool:
    """Values: no control characters except TAB, LF, CR (libuci's uci_validate_text),
    and representable as file bytes."""
    return bytes_or_none(text) is not None and not any(
        ord(c) < 32 and c not in "\t\n\r" for c in text)


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


def bytes_or_none(text: str) -> bytes | None:
    try:
        return encode(text)
    except UnicodeEncodeError:     # a surrogate that does not stand for a file byte
        return None


def decode(data: bytes) -> str:
    return data.decode(ENCODING, ERRORS)
