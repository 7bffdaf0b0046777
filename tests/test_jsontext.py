"""jsontext.py: json.loads and json.dumps through _json alone, with the same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bmx7wg import jsontext

SRC = Path(__file__).resolve().parents[1] / "src"

VALID = ['{"a": [1, 2.5, "x\\u00e9\\/", null, true, false]}', ' [] ', '\n{"nested": {"k": [{}]}}\r\n',
         '"text"', '-0.5e3', '12345678901234567890', 'NaN', '[Infinity, -Infinity]', '{"a": 1, "a": 2}']
MALFORMED = ['', '   ', '{"a": ', '{"a" 1}', '[1,]', '{"a": 1} x', '[1] [2]', "{'a': 1}", '"unterminated',
             '{"a": "tab\tin string"}', '\ufeff{}', '[01]']


@pytest.mark.parametrize("text", VALID)
def test_loads_reads_what_json_reads(text):
    got, want = jsontext.loads(text), json.loads(text)
    assert repr(got) == repr(want)                        # repr: NaN != NaN
    assert repr(jsontext.loads(text.encode())) == repr(want)


@pytest.mark.parametrize("text", MALFORMED)
def test_loads_refuses_what_json_refuses_with_one_error(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(jsontext.JsonError) as err:
        jsontext.loads(text)
    assert "\n" not in str(err.value)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(jsontext.JsonError, match="not UTF-8 at byte 1"):
        jsontext.loads(b'"\xff"')


@pytest.mark.parametrize("value", [{"b": 1, "a": [1.5, None, "é\u2028", True, {"x": -2}]}, [], "s", 3, None,
                                   {"nested": {"z": {"y": [float("inf")]}}}])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_dumps_writes_what_json_writes_compact(value, sort_keys):
    assert jsontext.dumps(value, sort_keys=sort_keys) == json.dumps(value, separators=(",", ":"), sort_keys=sort_keys)


def test_dumps_refuses_what_json_cannot_write():
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        jsontext.dumps({"a": {1}})


def test_malformed_text_does_not_load_json_in_a_process_without_it():
    """The C scanner's error class lives in json.decoder: without the stand-ins python 3.11
    raises SystemError and 3.13 imports json, re and enum (0.6 MB) on the first torn file."""
    code = ("import sys; from bmx7wg import jsontext\n"
            "for text in ('{\"a\" 1}', '[1,', '\"\\\\x\"'):\n"
            "    try:\n        jsontext.loads(text)\n"
            "    except jsontext.JsonError as e:\n        print(e)\n"
            "print(sorted({'json', 'json.decoder', 're', 'enum'} & sys.modules.keys()))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Expecting ':' delimiter at char 5", "expecting a value at char 3",
                                       "Invalid \\escape at char 1", "[]"]
