"""libc.py: C functions bound through _ctypes, as ctypes.CDLL(use_errno=True) binds them."""

from __future__ import annotations

import errno
import os
import struct

import _ctypes

import pytest

from bmx7wg import libc


def test_a_function_of_the_process_returns_its_int():
    assert libc.function(None, "getpid")() == os.getpid()


def test_errno_is_kept_for_the_caller():
    close = libc.function(None, "close", libc.INT)
    assert close(-1) == -1
    assert libc.get_errno() == errno.EBADF


def test_arguments_are_converted_by_their_declared_types(tmp_path):
    add = libc.function(None, "inotify_add_watch", libc.INT, libc.CHAR_P, libc.UINT32)
    fd = libc.function(None, "inotify_init1", libc.INT)(os.O_CLOEXEC)
    assert fd >= 0
    try:
        assert add(fd, os.fsencode(tmp_path), 0x100) >= 1             # IN_CREATE
        assert add(fd, b"/nonexistent/dir", 0x100) == -1 and libc.get_errno() == errno.ENOENT
        with pytest.raises(_ctypes.ArgumentError):
            add(fd, str(tmp_path), 0x100)                              # char *: bytes, not str
    finally:
        os.close(fd)


def test_size_t_takes_the_full_unsigned_range():
    strnlen = libc.function(None, "strnlen", libc.CHAR_P, libc.SIZE_T, restype=libc.SIZE_T)
    assert strnlen(b"abcdef", 3) == 3
    assert strnlen(b"abcdef", 2**(8 * struct.calcsize("L")) - 1) == 6       # SIZE_MAX


def test_a_missing_function_or_library_raises_what_the_callers_catch():
    with pytest.raises(AttributeError):
        libc.function(None, "no_such_function_in_libc")
    with pytest.raises(OSError):
        libc.function("libnonexistent.so.9", "close")
