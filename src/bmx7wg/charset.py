"""Character-class checks for names, ids, keys and numbers, without the re module.

Every pattern the helper checks is a run of characters from one class (a name, a hex id,
a key) or a number with C's leading blanks: a set lookup says it as plainly as a regex.
re imports enum; the two are 0.5 MB of a 64-bit helper's memory (json needs re as well:
see jsontext.py). Digits and blanks are ASCII and C's, as bmx7 and libuci read them, not
re's Unicode `\\d` and `\\s`.
"""

from __future__ import annotations

DIGITS = frozenset("0123456789")
HEX = frozenset("0123456789abcdefABCDEF")
HEX_UPPER = frozenset("0123456789ABCDEF")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
NAME = frozenset(_ALNUM + "_.-")          # interface, sms and bmx7 names
BASE64 = frozenset(_ALNUM + "+/")
BLANKS = " \t\n\v\f\r"                     # C isspace()
# The base64 character before a 32-byte key's "=" carries 2 bits of the key and 4 zero bits.
_KEY_LAST = frozenset("AEIMQUYcgkosw048")


def made_of(text: object, chars: frozenset, shortest: int = 1, longest: int | None = None) -> bool:
    """True when `text` is a str of `shortest`..`longest` characters, all from `chars`."""
    return (isinstance(text, str) and shortest <= len(text) <= (len(text) if longest is None else longest)
            and chars.issuperset(text))


def is_wg_key(text: object) -> bool:
    """A WireGuard key as wg prints it: 32 bytes in base64, 44 characters."""
    return (isinstance(text, str) and len(text) == 44 and text[43] == "=" and text[42] in _KEY_LAST
            and BASE64.issuperset(text[:42]))


def leading_int(text: str) -> tuple[int, int] | None:
    """C's `%d`: blanks, an optional sign, ASCII digits. (value, characters used), or None
    when no digit follows."""
    i = len(text) - len(text.lstrip(BLANKS))
    start = i
    if text[i:i + 1] in ("+", "-"):
        i += 1
    j = i
    while j < len(text) and text[j] in DIGITS:
        j += 1
    if j == i:
        return None
    return int(text[start:j]), j
