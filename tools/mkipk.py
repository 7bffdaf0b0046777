#!/usr/bin/env python3
"""Build the OpenWrt package bmx7-wgtun_<version>-r<release>_all.ipk from this repository,
without the OpenWrt SDK (`make ipk`).

Name, version, release, license, maintainer, dependencies and description come from
package/bmx7-wgtun/Makefile (the feed recipe), so both builds describe the same package.

Format, as OpenWrt's scripts/ipkg-build writes it and opkg (opkg-lede, libbb/unarchive.c)
reads it: a gzip-compressed tar holding ./debian-binary ("2.0"), ./data.tar.gz and
./control.tar.gz. (Not Debian's `ar` container: opkg-lede only reads the tar form.)
Entries: GNU tar headers, numeric owner root:root, fixed mtime (SOURCE_DATE_EPOCH, else
the last commit's time), sorted names, gzip without name/time: the build is reproducible.

Layout (identical to the feed recipe's install):
  /usr/bin/bmx7wg                          entry script (0755, #!/usr/bin/python3)
  /usr/lib/bmx7-wgtun/bmx7wg/*.py          the helper (the lab is not shipped)
  /usr/lib/bmx7-wgtun/bmx7wg/__pycache__/  *.cpython-<build python>.pyc, checked-hash
  /lib/netifd/proto/bmx7wg.sh              netifd protocol handler (0755)
  /lib/upgrade/keep.d/bmx7-wgtun           keeps /etc/bmx7wg/ (keys) across sysupgrade
The .py files stay: OpenWrt's python never writes bytecode, and the shipped .pyc only
match the build host's Python version (3.11 = OpenWrt 24.10); other versions compile the
sources in memory. An SDK build instead ships .pyc for the target's exact version.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import py_compile
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEED_MAKEFILE = ROOT / "package" / "bmx7-wgtun" / "Makefile"
LIBDIR = "usr/lib/bmx7-wgtun"

POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""

PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""


class RecipeError(Exception):
    pass


def read_recipe(path: Path = FEED_MAKEFILE) -> dict:
    """PKG_* variables and the Package/<name> fields of an OpenWrt package Makefile."""
    text = path.read_text().replace("\\\n", " ")
    out: dict = {}
    for key in ("PKG_NAME", "PKG_VERSION", "PKG_RELEASE", "PKG_LICENSE", "PKG_MAINTAINER"):
        match = re.search(rf"^{key}:=(.*)$", text, re.M)
        if not match:
            raise RecipeError(f"{path}: {key} missing")
        out[key] = match.group(1).strip()
    name = out["PKG_NAME"]
    block = re.search(rf"^define Package/{re.escape(name)}\n(.*?)^endef", text, re.M | re.S)
    if not block:
        raise RecipeError(f"{path}: define Package/{name} missing")
    for line in block.group(1).splitlines():
        match = re.match(r"\s*([A-Z]+):=(.*)$", line)
        if match:
            out[match.group(1)] = match.group(2).strip()
    desc = re.search(rf"^define Package/{re.escape(name)}/description\n(.*?)^endef", text, re.M | re.S)
    out["DESCRIPTION"] = [line.strip() for line in desc.group(1).splitlines() if line.strip()] if desc else []
    out["DEPENDS_LIST"] = [d.lstrip("+") for d in out.get("DEPENDS", "").split() if not d.startswith("@")]
    if not re.fullmatch(r"\d+\.\d+\.\d+(\.\d+)?", out["PKG_VERSION"]):
        raise RecipeError(f"{path}: PKG_VERSION {out['PKG_VERSION']!r} is not X.Y.Z[.N] (apk)")
    if not out["PKG_RELEASE"].isdigit():
        raise RecipeError(f"{path}: PKG_RELEASE {out['PKG_RELEASE']!r} is not a number")
    return out


def source_version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"', (ROOT / "src" / "bmx7wg" / "__init__.py").read_text(), re.M)
    return match.group(1) if match else ""


def build_time() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def payload_files() -> list[tuple[str, int, bytes]]:
    """(path inside the package, mode, content) for every file of the package."""
    files = [
        ("usr/bin/bmx7wg", 0o755, (ROOT / "files/usr/bin/bmx7wg").read_bytes()),
        ("lib/netifd/proto/bmx7wg.sh", 0o755, (ROOT / "files/lib/netifd/proto/bmx7wg.sh").read_bytes()),
        ("lib/upgrade/keep.d/bmx7-wgtun", 0o644, (ROOT / "files/lib/upgrade/keep.d/bmx7-wgtun").read_bytes()),
    ]
    sources = sorted((ROOT / "src" / "bmx7wg").glob("*.py"))
    tag = sys.implementation.cache_tag
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            files.append((f"{LIBDIR}/bmx7wg/{src.name}", 0o644, src.read_bytes()))
            pyc = Path(tmp) / f"{src.stem}.pyc"
            # checked-hash: valid whatever mtime the files get; stale only if the source changes
            py_compile.compile(str(src), cfile=str(pyc), dfile=f"/{LIBDIR}/bmx7wg/{src.name}", doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            files.append((f"{LIBDIR}/bmx7wg/__pycache__/{src.stem}.{tag}.pyc", 0o644, pyc.read_bytes()))
    return sorted(files)


def _dirs(paths) -> list[str]:
    out = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out)


def _tar(entries: list[tuple[str, int, bytes | None]], mtime: int, sort: bool = True) -> bytes:
    """GNU tar like `tar --format=gnu --numeric-owner --sort=name`; content None = directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode, content in (sorted(entries, key=lambda e: e[0]) if sort else entries):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = mode, mtime, 0, 0, "", ""
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def control_text(recipe: dict, installed_size: int, epoch: int) -> str:
    """opkg's control file, rendered from tools/templates/control.j2 (jinja2 is a build-time
    dependency only: on the router it would pull in python3-asyncio for nothing)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "tools" / "templates")),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    description = recipe["DESCRIPTION"] or [recipe.get("TITLE", "")]
    text = env.get_template("control.j2").render(r=recipe, epoch=epoch, installed_size=installed_size,
                                                 description=description)
    return text


def build(out_dir: Path) -> Path:
    recipe = read_recipe()
    if recipe["PKG_VERSION"] != source_version():
        raise RecipeError(f"PKG_VERSION {recipe['PKG_VERSION']} != bmx7wg.__version__ {source_version()}")
    epoch = build_time()
    files = payload_files()
    data_entries = [(f"./{d}/", 0o755, None) for d in _dirs(p for p, _, _ in files)]
    data_entries.insert(0, ("./", 0o755, None))
    data_entries += [(f"./{p}", mode, content) for p, mode, content in files]
    data_tar = _tar(data_entries, epoch)
    control = control_text(recipe, len(data_tar), epoch).encode()
    control_tar = _tar([("./", 0o755, None), ("./control", 0o644, control),
                        ("./postinst", 0o755, POSTINST.encode()), ("./prerm", 0o755, PRERM.encode())], epoch)
    outer = _tar([("./debian-binary", 0o644, b"2.0\n"), ("./data.tar.gz", 0o644, _gzip(data_tar)),
                  ("./control.tar.gz", 0o644, _gzip(control_tar))], epoch, sort=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{recipe['PKG_NAME']}_{recipe['PKG_VERSION']}-r{recipe['PKG_RELEASE']}_all.ipk"
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(_gzip(outer))
    tmp.replace(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output directory (default dist/)")
    args = parser.parse_args()
    try:
        print(build(Path(args.out)))
    except (RecipeError, py_compile.PyCompileError, OSError) as exc:
        print(f"mkipk: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
