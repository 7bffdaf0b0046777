"""File removal shared by the helper, its UCI writer and the lab, which must not import
each other (bmx7.py and wg.py stay free of uci.py's weight)."""

from __future__ import annotations

import os


def unlink_quietly(path: str, ignore: type[OSError] | tuple[type[OSError], ...] = FileNotFoundError) -> None:
    """Remove a file; one already gone (or, where the caller says so, any error in `ignore`)
    is what the caller wanted anyway."""
    try:
        os.unlink(path)
    except ignore:
        pass
