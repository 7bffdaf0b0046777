"""The helper's log: one line per message on stderr, which procd and netifd hand to syslog.

Not the logging module: on OpenWrt it is a package of its own (python3-logging), and in the
helper it costs 0.6 MB of memory (its handlers, locks, traceback and tokenize) for what
is here a line with a level. The methods are logging's, so call sites read the same:
log.info("%s: peer %s added", iface, short_id). A message that fails to format is shown
with its arguments, never raised: logging never breaks the helper.
"""

from __future__ import annotations

import sys

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
PREFIX = "bmx7wg: "          # no timestamp: syslog adds its own


class Log:
    def __init__(self):
        self.level = WARNING      # until setup(): what logging shows when nothing is configured
        self.sink: list[tuple[int, str]] | None = None     # tests: every message kept, any level

    def setup(self, verbose: bool) -> None:
        self.level = DEBUG if verbose else INFO

    def debug(self, msg: str, *args) -> None:
        self._emit(DEBUG, msg, args)

    def info(self, msg: str, *args) -> None:
        self._emit(INFO, msg, args)

    def warning(self, msg: str, *args) -> None:
        self._emit(WARNING, msg, args)

    def error(self, msg: str, *args) -> None:
        self._emit(ERROR, msg, args)

    def _emit(self, level: int, msg: str, args: tuple) -> None:
        if level < self.level and self.sink is None:
            return
        try:
            text = msg % args if args else msg
        except (TypeError, ValueError, KeyError):
            text = f"{msg} {args!r}"
        if self.sink is not None:
            self.sink.append((level, text))
            if level < self.level:
                return
        try:
            sys.stderr.write(PREFIX + text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):     # stderr closed or gone: nothing else to tell
            pass


log = Log()
