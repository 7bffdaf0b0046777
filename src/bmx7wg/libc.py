"""The few C library functions the helper calls: inotify (watch.py) and malloc_trim (heap.py).

Bound through `_ctypes`, the C module ctypes is built on, as ctypes.CDLL binds them:
ctypes/__init__.py also defines some fifty types and more (0.15-0.18 MB of a 64-bit
helper's memory) for these three calls.
"""

from __future__ import annotations

import _ctypes


class _Int(_ctypes._SimpleCData):
    _type_ = "i"


class _UInt32(_ctypes._SimpleCData):
    _type_ = "I"


class _SizeT(_ctypes._SimpleCData):
    _type_ = "L"          # unsigned long: size_t on Linux, 32-bit and 64-bit


class _CharP(_ctypes._SimpleCData):
    _type_ = "z"


INT, UINT32, SIZE_T, CHAR_P = _Int, _UInt32, _SizeT, _CharP


class _Function(_ctypes.CFuncPtr):
    """A C function returning int, errno kept for get_errno() (ctypes' use_errno=True)."""
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _Library:
    """What _ctypes.CFuncPtr looks a function up in: a dlopen() handle."""

    def __init__(self, name: str | None):
        self._handle = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)


def function(library: str | None, name: str, *argtypes, restype=_Int):
    """C function `name` of `library` (None: the process and its libraries). OSError when
    the library does not load, AttributeError when it lacks the function."""
    func = _Function((name, _Library(library)))
    func.argtypes, func.restype = argtypes, restype
    return func


def get_errno() -> int:
    """errno as the last call through function() left it."""
    return _ctypes.get_errno()
