"""Give freed heap back to the kernel after a step that built or dropped many objects.

glibc keeps freed memory in its arenas for reuse: after the first step on a big mesh (or
a stats dump, whose lines are parsed and dropped) the helper's RSS would stay at that
peak. `malloc_trim` returns it. musl (OpenWrt) has no malloc_trim and returns freed
memory by itself: there this does nothing.
"""

from __future__ import annotations

from . import libc

_trim = None


def trim() -> bool:
    """True when the C library had malloc_trim to call."""
    global _trim
    if _trim is None:
        try:
            _trim = libc.function(None, "malloc_trim", libc.SIZE_T)
        except (AttributeError, OSError):
            _trim = False
    if not _trim:
        return False
    _trim(0)
    return True
