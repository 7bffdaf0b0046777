"""JSON read and written through `_json`, the C module under the json package, alone.

The json package imports re, and re imports enum: with them, 0.6 MB of a 64-bit helper's
memory, for what `_json` does by itself. This is the little json.loads and json.dumps add
around it: blanks and trailing data checked, one error type, compact output.

When the C scanner meets malformed text it raises json.decoder.JSONDecodeError, which it
looks up in sys.modules (python 3.11) or imports, json, re, enum and all (3.13: `json`
first, then `json.decoder`). Unless the real json is loaded already, stand-ins for both are
lent to sys.modules for the call: a half-written bmx7 file is an everyday thing, and must
not cost what this module saves.
"""

from __future__ import annotations

import sys

import _json

_BLANKS = " \t\n\r"


class JsonError(ValueError):
    """Text that is not JSON: one line saying where."""


class _ScanError(ValueError):
    """What the C scanner raises for malformed text, while the stand-in module is lent."""

    def __init__(self, msg: str, doc: str, pos: int):
        super().__init__(f"{msg} at char {pos}")


_STAND_INS = {"json": type(sys)("json"), "json.decoder": type(sys)("json.decoder")}
_STAND_INS["json.decoder"].JSONDecodeError = _ScanError


class _Settings:
    """The attributes _json.make_scanner reads: json.loads' defaults (NaN and Infinity
    accepted as json.loads accepts them)."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


_scan = _json.make_scanner(_Settings())


def loads(text: str | bytes) -> object:
    """json.loads for str or UTF-8 bytes; JsonError when it is not one JSON value."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise JsonError(f"not UTF-8 at byte {exc.start}") from None
    lent = [name for name in _STAND_INS if name not in sys.modules]
    for name in lent:
        sys.modules[name] = _STAND_INS[name]
    try:
        value, end = _scan(text, len(text) - len(text.lstrip(_BLANKS)))
    except StopIteration as exc:
        raise JsonError(f"expecting a value at char {exc.value}") from None
    except ValueError as exc:            # the stand-in's error, or json's own when json is loaded
        raise JsonError(str(exc)) from None
    finally:
        for name in lent:
            del sys.modules[name]
    if text[end:].strip(_BLANKS):
        raise JsonError(f"extra data at char {end}")
    return value


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: object, sort_keys: bool = False) -> str:
    """json.dumps(value, separators=(",", ":"), sort_keys=sort_keys): ASCII, no blanks."""
    encode = _json.make_encoder({}, _unencodable, _json.encode_basestring_ascii, None, ":", ",",
                                sort_keys, False, True)
    return "".join(encode(value, 0))
