"""The `bmx7wg` command's entry point.

`bmx7wg [--confdir D] [--savedir D] [--rundir D] [-v] run [--netifd] IFACE` is the line
netifd starts and the process that lives as long as the interface: it goes straight to the
daemon, without importing click (1.6 MB of the helper's memory). Any other command line, and
any `run` line not made only of those options, goes to click (cli.py), which owns help,
errors and every other command; tests/test_entry.py checks that both read a line alike.
"""

from __future__ import annotations

import os
import sys

from .log import log

# global option -> (key, environment variable, default); the same as cli.main declares
GLOBAL_OPTIONS = {
    "--confdir": ("confdir", "BMX7WG_CONFDIR", None),
    "--savedir": ("savedir", "BMX7WG_SAVEDIR", None),
    "--rundir": ("rundir", "BMX7WG_RUNDIR", "/var/run/bmx7wg"),
}


def parse_run(argv: list[str]) -> dict | None:
    """The `run` command's arguments, or None when the line is anything else."""
    found = {key: os.environ.get(env) or default for key, env, default in GLOBAL_OPTIONS.values()}
    found["verbose"] = False
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if argv[i] in ("-v", "--verbose"):
            found["verbose"] = True
        elif name in GLOBAL_OPTIONS and (eq or i + 1 < len(argv)):
            if not eq:
                i += 1
                value = argv[i]
            found[GLOBAL_OPTIONS[name][0]] = value
        else:
            return None
        i += 1
    if argv[i:i + 1] != ["run"]:
        return None
    rest = argv[i + 1:]
    words = [a for a in rest if a != "--netifd"]
    if len(words) != 1 or words[0].startswith("-") or len(rest) - len(words) > 1:
        return None
    found["iface"], found["netifd"] = words[0], len(rest) > 1
    return found


def main() -> None:
    args = parse_run(sys.argv[1:])
    if args is None:
        from .cli import main as click_main
        click_main()
        return
    log.setup(args["verbose"])
    from . import daemon
    sys.exit(daemon.run(args["iface"], args["confdir"], args["savedir"], args["rundir"], netifd=args["netifd"]))
