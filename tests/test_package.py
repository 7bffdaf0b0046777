"""Packaging: `make ipk` (OpenWrt, from this repo alone), the feed recipe it shares its data
with, the stdlib split packages the helper needs on OpenWrt, `pip install .` and the systemd
unit for other Linux nodes."""

from __future__ import annotations

import ast
import configparser
import gzip
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import mkipk  # noqa: E402

import bmx7wg  # noqa: E402

# OpenWrt splits these stdlib modules out of python3-light (docs: ../shared/openwrt/README.md).
SPLIT = {
    "logging": ["python3-logging"], "ctypes": ["python3-ctypes"], "_ctypes": ["python3-ctypes"],
    "asyncio": ["python3-asyncio", "python3-logging"], "concurrent": ["python3-logging"],
    "unittest": ["python3-unittest"], "uuid": ["python3-uuid"], "urllib": ["python3-urllib"],
    "email": ["python3-email"], "ssl": ["python3-openssl"], "_hashlib": ["python3-openssl"],
    "http": ["python3-urllib"], "importlib.metadata": ["python3-urllib"],
    "sqlite3": ["python3-sqlite3"], "decimal": ["python3-decimal"], "xml": ["python3-xml"],
    "multiprocessing": ["python3-multiprocessing"], "lzma": ["python3-lzma"], "dbm": ["python3-dbm"],
    "curses": ["python3-ncurses"], "pydoc": ["python3-pydoc"], "venv": ["python3-venv"],
}
THIRD_PARTY = {"click": "python3-click", "uci": "python3-uci", "euci": "python3-uci", "ubus": "python3-ubus"}
REQUIRED_DEPENDS = ["python3-light", "python3-uci", "python3-ubus", "wireguard-tools", "kmod-wireguard",
                    "bmx7", "bmx7-sms", "bmx7-json"]


@pytest.fixture(scope="module")
def ipk(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "ipk", f"IPK_DIST={out}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("*.ipk")
    return path


def members(tar: tarfile.TarFile, name: str) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(tar.extractfile(name).read()), mode="r:gz")


@pytest.fixture(scope="module")
def unpacked(ipk):
    outer = tarfile.open(ipk, mode="r:gz")
    return outer, members(outer, "./control.tar.gz"), members(outer, "./data.tar.gz")


def control_fields(control: tarfile.TarFile) -> dict:
    text = control.extractfile("./control").read().decode()
    fields, last = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and last:
            fields[last] += "\n" + line[1:]
        else:
            last, _, value = line.partition(":")
            fields[last] = value.strip()
    return fields


def shipped_imports() -> dict[str, set[str]]:
    """Top-level (and dotted) imports of every module the package ships -> files."""
    found: dict[str, set[str]] = {}
    for src in sorted((ROOT / "src" / "bmx7wg").glob("*.py")):
        for node in ast.walk(ast.parse(src.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                found.setdefault(name, set()).add(src.name)
    return found


# ---- the recipe ---------------------------------------------------------------------------------

def test_recipe_fields():
    recipe = mkipk.read_recipe()
    assert recipe["PKG_NAME"] == "bmx7-wgtun"
    assert re.fullmatch(r"\d+\.\d+\.\d+", recipe["PKG_VERSION"])            # apk-valid
    assert recipe["PKG_RELEASE"].isdigit()
    assert recipe["PKG_VERSION"] == bmx7wg.__version__
    assert recipe["PKG_VERSION"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert recipe["PKG_LICENSE"] and recipe["PKGARCH"] == "all"
    for dep in REQUIRED_DEPENDS:
        assert dep in recipe["DEPENDS_LIST"], dep


def test_every_import_is_covered_by_a_dependency():
    """What python3-light lacks must be a dependency; an unknown third-party import fails."""
    deps = set(mkipk.read_recipe()["DEPENDS_LIST"])
    needed: dict[str, str] = {}
    for name, files in shipped_imports().items():
        top = name.split(".")[0]
        for key in (name, top):
            for pkg in SPLIT.get(key, []):
                needed[pkg] = f"{name} ({', '.join(sorted(files))})"
        if top in THIRD_PARTY:
            needed[THIRD_PARTY[top]] = f"{name} ({', '.join(sorted(files))})"
        elif top not in sys.stdlib_module_names and top != "bmx7wg":
            pytest.fail(f"{name} imported by {sorted(files)} is neither stdlib nor a known OpenWrt package")
    missing = {pkg: why for pkg, why in needed.items() if pkg not in deps}
    assert not missing, f"DEPENDS lacks {missing}"
    # and nothing python3-* is there without a reason
    assert {d for d in deps if d.startswith("python3-")} - set(needed) == {"python3-light"}


def test_feed_recipe_installs_what_the_ipk_ships(unpacked):
    _, _, data = unpacked
    recipe_text = mkipk.FEED_MAKEFILE.read_text()
    dirs = {os.path.dirname(m.name[2:]) for m in data.getmembers() if m.isfile() and "__pycache__" not in m.name}
    for d in dirs:
        assert f"$(1)/{d}" in recipe_text, d
    assert "include $(TOPDIR)/feeds/packages/lang/python/python3-package.mk" in recipe_text


# ---- the ipk ------------------------------------------------------------------------------------

def test_ipk_container_is_what_opkg_reads(ipk, unpacked):
    outer, _, _ = unpacked
    assert ipk.name == f"bmx7-wgtun_{bmx7wg.__version__}-r{mkipk.read_recipe()['PKG_RELEASE']}_all.ipk"
    assert ipk.read_bytes()[:2] == b"\x1f\x8b"                 # gzip'd tar, not ar (opkg-lede)
    assert outer.getnames() == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    assert outer.extractfile("./debian-binary").read() == b"2.0\n"
    for m in outer.getmembers():
        assert m.uid == 0 and m.gid == 0


def test_control_fields(unpacked):
    outer, control, data = unpacked
    fields = control_fields(control)
    recipe = mkipk.read_recipe()
    assert fields["Package"] == "bmx7-wgtun"
    assert fields["Version"] == f"{recipe['PKG_VERSION']}-r{recipe['PKG_RELEASE']}"
    assert fields["Architecture"] == "all"
    assert fields["License"] == recipe["PKG_LICENSE"]
    assert fields["Maintainer"] and fields["Description"]
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert depends[0] == "libc" and depends[1:] == recipe["DEPENDS_LIST"]
    raw_data = outer.extractfile("./data.tar.gz").read()
    assert int(fields["Installed-Size"]) == len(gzip.decompress(raw_data))
    for script in ("./postinst", "./prerm"):
        info = control.getmember(script)
        assert info.mode == 0o755
        body = control.extractfile(script).read().decode()
        assert body.startswith("#!/bin/sh\n")
        subprocess.run(["sh", "-n"], input=body, text=True, check=True)


def test_file_list_and_modes(unpacked):
    _, _, data = unpacked
    files = {m.name[2:]: m for m in data.getmembers() if m.isfile()}
    sources = sorted(p.name for p in (ROOT / "src" / "bmx7wg").glob("*.py"))
    tag = sys.implementation.cache_tag
    expected = {"usr/bin/bmx7wg", "lib/netifd/proto/bmx7wg.sh", "lib/upgrade/keep.d/bmx7-wgtun"}
    expected |= {f"usr/lib/bmx7-wgtun/bmx7wg/{s}" for s in sources}
    expected |= {f"usr/lib/bmx7-wgtun/bmx7wg/__pycache__/{s[:-3]}.{tag}.pyc" for s in sources}
    assert set(files) == expected
    assert not any("/lab/" in n or n.startswith("tests") for n in files)
    for name, m in files.items():
        assert m.uid == 0 and m.gid == 0, name
        assert not m.mode & 0o002, f"{name} is world-writable"
        want = 0o755 if name in ("usr/bin/bmx7wg", "lib/netifd/proto/bmx7wg.sh") else 0o644
        assert m.mode == want, (name, oct(m.mode))
    for m in data.getmembers():
        if m.isdir():
            assert m.mode == 0o755, m.name
    keep = data.extractfile("./lib/upgrade/keep.d/bmx7-wgtun").read().decode().split()
    assert keep == ["/etc/bmx7wg/"]
    entry = data.extractfile("./usr/bin/bmx7wg").read().decode()
    assert entry.startswith("#!/usr/bin/python3\n")


def test_python_files_compile_and_pyc_match(unpacked):
    _, _, data = unpacked
    magic = importlib.util.MAGIC_NUMBER
    for m in data.getmembers():
        body = data.extractfile(m).read() if m.isfile() else None
        if m.name.endswith(".py") or m.name == "./usr/bin/bmx7wg":
            compile(body, m.name, "exec")
        elif m.name.endswith(".pyc"):
            assert body[:4] == magic, m.name
            assert int.from_bytes(body[4:8], "little") == 0b11, m.name     # checked-hash pyc


def test_reproducible(tmp_path, ipk):
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    outs = []
    for n in range(2):
        out = tmp_path / str(n)
        subprocess.run([sys.executable, str(ROOT / "tools" / "mkipk.py"), "--out", str(out)],
                       env=env, check=True, capture_output=True)
        outs.append(next(out.glob("*.ipk")).read_bytes())
    assert outs[0] == outs[1]


def test_installs_into_an_empty_staging_root_and_runs(tmp_path, unpacked):
    """Extract as opkg does (modes kept), then run the installed command from that root."""
    _, _, data = unpacked
    root = tmp_path / "root"
    root.mkdir()
    data.extractall(root, filter="tar")
    assert os.access(root / "lib/netifd/proto/bmx7wg.sh", os.X_OK)
    assert os.access(root / "usr/bin/bmx7wg", os.X_OK)
    for shell in (["sh"], ["bash"], [shutil.which("busybox") or "sh", "sh"]):
        subprocess.run([*shell, "-n", str(root / "lib/netifd/proto/bmx7wg.sh")], check=True)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "network").write_text("config interface 'bwopk0'\n\toption proto 'bmx7wg'\n\toption listen_port '51820'\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}          # no PYTHONPATH: only the staged copy
    # the staged entry script imports the staged package (not the checkout)
    probe = ("import runpy,sys; runpy.run_path(sys.argv[1], run_name='probe');"
             "import bmx7wg; print(bmx7wg.__file__)")
    where = subprocess.run([sys.executable, "-I", "-c", probe, str(root / "usr/bin/bmx7wg")],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(root / "usr/lib/bmx7-wgtun/bmx7wg/__init__.py")
    version = subprocess.run([sys.executable, "-I", str(root / "usr/bin/bmx7wg"), "--version"],
                             env=env, capture_output=True, text=True, check=True).stdout
    assert bmx7wg.__version__ in version
    checked = subprocess.run([sys.executable, "-I", str(root / "usr/bin/bmx7wg"), "--confdir", str(conf),
                              "--savedir", str(tmp_path / "save"), "check-config", "bwopk0"],
                             env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "bwopk0: ok" in checked.stdout


# ---- other Linux nodes ------------------------------------------------------------------------------

def test_pip_install_gives_the_bmx7wg_command(tmp_path):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"bmx7wg": "bmx7wg.entry:main"}
    build = tmp_path / "src-copy"
    build.mkdir()
    shutil.copy(ROOT / "pyproject.toml", build)
    shutil.copytree(ROOT / "src", build / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "w"),
                            str(build)], capture_output=True, text=True, timeout=300)
    if wheel.returncode != 0 and "setuptools" in wheel.stderr and "Could not" in wheel.stderr:
        pytest.skip("no package index to fetch the build backend from")
    assert wheel.returncode == 0, wheel.stderr
    target = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    *map(str, (tmp_path / "w").glob("*.whl"))], check=True, capture_output=True, timeout=120)
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([str(target / "bin" / "bmx7wg"), "--version"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert bmx7wg.__version__ in out


def test_systemd_unit_runs_the_helper_for_the_instance(tmp_path):
    unit_path = ROOT / "files" / "systemd" / "bmx7wg@.service"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(unit_path)
    argv = unit["Service"]["ExecStart"].split()
    assert argv[0] == "bmx7wg" and argv[-2:] == ["run", "%i"]
    assert argv[argv.index("--confdir") + 1] == "/etc/bmx7wg"
    assert unit["Service"]["RestartPreventExitStatus"] == "2"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # the same arguments against a real UCI-format file: the CLI accepts them
    conf = tmp_path / "etc-bmx7wg"
    conf.mkdir()
    (conf / "network").write_text("config interface 'bwosd0'\n\toption proto 'bmx7wg'\n")
    args = [a.replace("/etc/bmx7wg", str(conf)).replace("/run/bmx7wg", str(tmp_path / "run"))
            .replace("%i", "bwosd0") for a in argv[1:]]
    args[args.index("run")] = "check-config"
    proc = subprocess.run([sys.executable, "-m", "bmx7wg", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0 and "bwosd0: ok" in proc.stdout, proc.stderr
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit_path)], capture_output=True, text=True)
        problems = [line for line in verify.stderr.splitlines()
                    if line.strip() and "Command bmx7wg is not executable" not in line]
        assert not problems, problems
