"""The interface's WireGuard key pair.

The private key only ever lives in 0600 files and is handed to `wg` by path: it is
never kept in a Python object longer than needed to write it, never logged or returned.
"""

from __future__ import annotations

import os
from . import spawn
from .record import record

from .charset import is_wg_key
from .config import IfaceConfig


class KeyStoreError(RuntimeError):
    """Key generation or storage failed (message never contains key material)."""


@record(frozen=True)
class KeyPair:
    private_path: str   # 0600 file holding the private key
    public_key: str


def _wg(args: list[str], stdin: bytes | None = None) -> bytes:
    try:
        out = spawn.run(["wg", *args], input=stdin, timeout=10)
    except FileNotFoundError:
        raise KeyStoreError("'wg' not found: install wireguard-tools") from None
    except spawn.Timeout:
        raise KeyStoreError(f"wg {args[0]} failed: no answer after 10 s") from None
    if out.returncode != 0:
        raise KeyStoreError(f"wg {args[0]} failed: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout.strip()


def write_secret(path: str, data: bytes) -> None:
    """Atomically write a 0600 file: temp file in the same dir, fsync, rename, fsync dir."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_private(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read().strip()
    except FileNotFoundError:
        return None
    if not is_wg_key(data.decode("ascii", "replace")):
        raise KeyStoreError(f"key file {path}: not a WireGuard private key (remove it to generate a new one)")
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)  # an admin may have copied it in with a loose mode
    return data


def public_of(path: str) -> str:
    with open(path, "rb") as fh:
        return _wg(["pubkey"], fh.read()).decode()


def _fresh(path: str) -> KeyPair:
    write_secret(path, _wg(["genkey"]) + b"\n")
    return KeyPair(path, public_of(path))


def session_path(cfg: IfaceConfig, rundir: str) -> str:
    return os.path.join(rundir, f"{cfg.iface}.session.key")


def load_or_create(cfg: IfaceConfig, rundir: str, link_public_key: str | None = None) -> KeyPair:
    """The key pair to use now.

    link_public_key: the key the link already carries (helper restarted while the interface
    stayed up). A session key is then kept, so a helper restart never changes the node's key.
    """
    if cfg.private_key:
        path = os.path.join(rundir, f"{cfg.iface}.uci.key")
        write_secret(path, cfg.private_key.encode() + b"\n")
        return KeyPair(path, public_of(path))
    if cfg.key_mode == "persist":
        if _read_private(cfg.key_file) is not None:
            return KeyPair(cfg.key_file, public_of(cfg.key_file))
        return _fresh(cfg.key_file)
    path = session_path(cfg, rundir)
    if link_public_key and _read_private(path) is not None:
        pair = KeyPair(path, public_of(path))
        if pair.public_key == link_public_key:
            return pair
    return _fresh(path)


def rotate(cfg: IfaceConfig, rundir: str) -> KeyPair:
    """A new pair in the same place the current one lives (ubus rotate_key)."""
    if cfg.private_key:
        raise KeyStoreError("option 'private_key' is set in UCI: remove it to let the helper rotate keys")
    path = cfg.key_file if cfg.key_mode == "persist" else session_path(cfg, rundir)
    return _fresh(path)
