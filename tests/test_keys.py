import os
import stat
import subprocess

import pytest

from bmx7wg import config, keys


def cfg(tmp_path, **opts):
    return config.parse("wgm", {"key_file": str(tmp_path / "etc" / "wgm.key"), **opts})


def test_persist_creates_0600_and_reuses(tmp_path):
    c = cfg(tmp_path)
    first = keys.load_or_create(c, str(tmp_path / "run"))
    mode = stat.S_IMODE(os.stat(first.private_path).st_mode)
    assert mode == 0o600
    assert first.private_path == c.key_file
    again = keys.load_or_create(c, str(tmp_path / "run"))
    assert again.public_key == first.public_key
    # the public key really belongs to the stored private key
    with open(c.key_file, "rb") as fh:
        derived = subprocess.run(["wg", "pubkey"], input=fh.read(), capture_output=True, check=True).stdout
    assert derived.decode().strip() == first.public_key
    assert not [n for n in os.listdir(os.path.dirname(c.key_file)) if ".tmp" in n]


def test_loose_mode_is_tightened(tmp_path):
    c = cfg(tmp_path)
    keys.load_or_create(c, str(tmp_path))
    os.chmod(c.key_file, 0o644)
    keys.load_or_create(c, str(tmp_path))
    assert stat.S_IMODE(os.stat(c.key_file).st_mode) == 0o600


def test_broken_key_file_is_a_clear_error(tmp_path):
    c = cfg(tmp_path)
    os.makedirs(os.path.dirname(c.key_file))
    with open(c.key_file, "w") as fh:
        fh.write("garbage\n")
    with pytest.raises(keys.KeyStoreError, match="not a WireGuard private key"):
        keys.load_or_create(c, str(tmp_path))


def test_session_new_pair_unless_link_keeps_it(tmp_path):
    c = cfg(tmp_path, key_mode="session")
    run = str(tmp_path / "run")
    one = keys.load_or_create(c, run)
    two = keys.load_or_create(c, run)                      # interface came up again: new pair
    assert one.public_key != two.public_key
    three = keys.load_or_create(c, run, link_public_key=two.public_key)   # helper restart, link up
    assert three.public_key == two.public_key
    assert stat.S_IMODE(os.stat(three.private_path).st_mode) == 0o600
    assert not os.path.exists(c.key_file)


def test_rotate_replaces_persisted_key(tmp_path):
    c = cfg(tmp_path)
    old = keys.load_or_create(c, str(tmp_path))
    new = keys.rotate(c, str(tmp_path))
    assert new.public_key != old.public_key
    assert keys.load_or_create(c, str(tmp_path)).public_key == new.public_key


def test_uci_private_key_used(tmp_path):
    priv = subprocess.run(["wg", "genkey"], capture_output=True, check=True).stdout.decode().strip()
    c = cfg(tmp_path, private_key=priv)
    pair = keys.load_or_create(c, str(tmp_path / "run"))
    assert stat.S_IMODE(os.stat(pair.private_path).st_mode) == 0o600
    assert priv not in repr(pair)
    with pytest.raises(keys.KeyStoreError, match="private_key"):
        keys.rotate(c, str(tmp_path / "run"))
