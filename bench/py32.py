"""A 32-bit python3 for `make bench`: the helper's RSS as most routers would see it.

Most OpenWrt devices in community meshes are 32-bit (MIPS, ARMv7), where every pointer and
object header is half the size; this machine is 64-bit. Debian's own i386 python3.11 (the
same 3.11 as OpenWrt 24.10) runs here through its loader, with no change to the host: the
packages are fetched with apt-get into a private cache (its own lists and state, no
dpkg --add-architecture), unpacked, and their standard library byte-compiled once.

    python3 bench/py32.py          # prints the interpreter's path, or why there is none
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

PACKAGES = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6",
            "libexpat1", "zlib1g", "libffi8", "libssl3", "libgcc-s1")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bmx7wg-bench", "py32")


def interpreter(cache: str | None = None) -> tuple[str | None, str]:
    """(path of a wrapper that runs the 32-bit python3, "") or (None, why not)."""
    cache = cache or cache_dir()
    wrapper = os.path.join(cache, "python3")
    if os.path.exists(wrapper):
        return wrapper, ""
    try:
        _fetch(cache)
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"no 32-bit python3 ({_last_line(getattr(exc, 'stderr', None) or exc)})"
    root = os.path.join(cache, "root")
    with open(wrapper + ".tmp", "w") as fh:
        fh.write("#!/bin/sh\n"
                 f"R={root}\n"
                 "export PYTHONHOME=$R/usr\n"
                 "exec $R/lib/ld-linux.so.2 --library-path $R/lib/i386-linux-gnu:$R/usr/lib/i386-linux-gnu"
                 " $R/usr/bin/python3.11 \"$@\"\n")
    os.chmod(wrapper + ".tmp", 0o755)
    check = subprocess.run([wrapper + ".tmp", "-c", "import struct; print(struct.calcsize('P'))"],
                           capture_output=True, text=True)
    if check.returncode or check.stdout.strip() != "4":
        return None, f"the i386 python3 does not run here ({_last_line(check.stderr or check.stdout)})"
    # Debian compiles the standard library at install time; unpacked, it has no bytecode
    subprocess.run([wrapper + ".tmp", "-m", "compileall", "-q", os.path.join(root, "usr", "lib", "python3.11")],
                   capture_output=True)
    os.replace(wrapper + ".tmp", wrapper)
    return wrapper, ""


def _fetch(cache: str) -> None:
    state = os.path.join(cache, "apt")
    debs = os.path.join(cache, "debs")
    for d in (os.path.join(state, "lists", "partial"), os.path.join(state, "cache", "archives", "partial"), debs):
        os.makedirs(d, exist_ok=True)
    opts = ["-o", "APT::Architecture=i386", "-o", "APT::Architectures::=i386",
            "-o", f"Dir::State::Lists={state}/lists", "-o", f"Dir::Cache={state}/cache",
            "-o", "Dir::State::status=/dev/null", "-o", "Debug::NoLocking=1", "-qq"]
    # not checked: a host source without i386 indexes fails its part; the download below
    # fails if Debian's own are missing
    subprocess.run(["apt-get", *opts, "update"], capture_output=True)
    subprocess.run(["apt-get", *opts, "download", *PACKAGES], check=True, capture_output=True, cwd=debs)
    root = os.path.join(cache, "root")
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True, capture_output=True)


def _last_line(text) -> str:
    """The last non-blank line of an error's output (apt-get and python3 end on the reason)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


if __name__ == "__main__":
    path, why = interpreter()
    print(path or why)
    sys.exit(0 if path else 1)
