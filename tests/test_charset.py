"""charset.py: the helper's name, id, key and number checks, with C's digits and blanks."""

from __future__ import annotations

import subprocess

import pytest

from bmx7wg import charset
from bmx7wg.charset import made_of


def test_made_of_checks_type_length_and_every_character():
    assert made_of("wg-mesh_0.1", charset.NAME, 1, 15)
    assert not made_of("wg mesh", charset.NAME)                     # a blank
    assert not made_of("", charset.NAME)                            # shorter than 1
    assert not made_of("a" * 16, charset.NAME, 1, 15)
    assert made_of("a" * 16, charset.NAME)                          # no upper bound given
    assert not made_of("eth0\n", charset.NAME, 1, 15)               # re's `$` let this through
    assert not made_of(None, charset.NAME) and not made_of(b"eth0", charset.NAME)
    assert made_of("C0FFEE", charset.HEX_UPPER, 6, 6) and not made_of("c0ffee", charset.HEX_UPPER)
    assert not made_of("١٢", charset.DIGITS)                        # Arabic-Indic digits: not C's


def test_wireguard_keys_as_wg_makes_them():
    key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    assert charset.is_wg_key(key)
    assert not charset.is_wg_key(key + "\n") and not charset.is_wg_key(key[:-1])
    assert not charset.is_wg_key(key[:42] + "B=")                   # low bits of the last byte set
    assert not charset.is_wg_key(key[:10] + "-" + key[11:])         # base64url is not wg's alphabet
    assert not charset.is_wg_key(None)


@pytest.mark.parametrize("text, read", [
    ("42", (42, 2)), ("  -7 apples", (-7, 4)), ("\t+3]", (3, 3)), ("\v\f\r\n9", (9, 5)),
    ("0x10", (0, 1)), ("", None), ("   ", None), ("-", None), ("+ 1", None), ("x1", None),
    ("\u00a01", None),                                   # no-break space: re's \s, not C's isspace
])
def test_leading_int_reads_as_sscanf_d(text, read):
    assert charset.leading_int(text) == read
