"""The UciStore contract on both backends: our uci.py on real files, and the euci branch
driven through a fake `uci`/`euci` pair that behaves like pyuci 0.10.3 (built on uci.py)."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import SHARED

from bmx7wg import uci as ouruci
from bmx7wg import uciadapter
from bmx7wg.uciadapter import UciError, open_uci

FIXTURES = SHARED / "uci"
SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = "bmx7wgtest"       # a name no real /tmp/.uci holds


# ---------------------------------------------------------------------------
# a pyuci look-alike: same call shapes, same return types (tuples for lists), same
# exceptions (parse errors without a message), packages cached per context


def make_fake_pyuci():
    mod = types.ModuleType("uci")
    mod.contexts = []

    class UciException(Exception):
        pass

    class UciExceptionNotFound(UciException):
        pass

    class UciExceptionInvalidInput(UciException):
        pass

    class Uci:
        def __init__(self, savedir=None, confdir=None):
            mod.contexts.append({"savedir": savedir, "confdir": confdir})
            self._files = ouruci.ConfigFiles(confdir or "/etc/config", savedir or "/tmp/.uci")
            self._pkgs = {}

        def _pkg(self, config):
            if config not in self._pkgs:
                try:
                    self._pkgs[config] = self._files.load(config)
                except ouruci.UciNotFoundError:
                    raise UciExceptionNotFound() from None
                except ouruci.UciParseError:
                    raise UciExceptionInvalidInput() from None
            return self._pkgs[config]

        @staticmethod
        def _py(value):
            for item in [value] if isinstance(value, str) else value:
                # pyuci: Py_BuildValue("s") on the raw bytes -> UnicodeDecodeError
                item.encode("utf-8", "surrogateescape").decode("utf-8")
            return value if isinstance(value, str) else tuple(value)

        def _section_dict(self, s):
            return {k: self._py(v) for k, v in s.options.items()}

        def _lookup(self, args, all_):
            pkg = self._pkg(args[0])
            if len(args) == 1:
                return {s.name: self._section_dict(s) for s in pkg.sections}
            s = pkg.find(args[1])
            if s is None:
                raise UciExceptionNotFound()
            if len(args) == 2:
                return self._section_dict(s) if all_ else s.type
            if args[2] not in s.options:
                raise UciExceptionNotFound()
            return self._py(s.options[args[2]])

        def get(self, *args):
            return self._lookup(args, False)

        def get_all(self, *args):
            return self._lookup(args, True)

        def set(self, *args):
            pkg = self._pkg(args[0])
            section, option, value = (args[1], None, args[2]) if len(args) == 3 else args[1:]
            try:
                if isinstance(value, tuple):
                    s = pkg.find(section)
                    if s is not None and option in s.options:
                        pkg.delete(section, option)
                    for item in value:
                        pkg.add_list(section, option, item)
                elif isinstance(value, str):
                    pkg.set(section, option, value)
                else:
                    raise UciException("Unsupported value passed to uci.set()")
            except ouruci.UciError:
                raise UciException("Invalid argument") from None

        def delete(self, *args):
            try:
                self._pkg(args[0]).delete(*args[1:])
            except (ouruci.UciError, UciException):
                pass                                 # pyuci ignores uci_delete's result

        def add(self, config, stype):
            # pyuci: uci_load (DUPLICATE if loaded here), add, save, unload
            if config in self._pkgs:
                raise UciException("Duplicate entry")
            pkg = self._pkg(config)
            name = pkg.add(stype)
            self._files.save(pkg)
            del self._pkgs[config]
            return name

        def save(self, config):
            self._files.save(self._pkg(config))

        def commit(self, config):
            try:
                self._pkgs[config] = self._files.commit(self._pkg(config))
            except (ouruci.UciError, UciException):
                pass                                 # pyuci ignores uci_commit's result

    mod.UciException = UciException
    mod.UciExceptionNotFound = UciExceptionNotFound
    mod.UciExceptionInvalidInput = UciExceptionInvalidInput
    mod.Uci = Uci

    emod = types.ModuleType("euci")
    no_default = object()

    class EUci(Uci):
        """EUci 0.10.3: get() converts with dtype and returns list items only with list=True."""

        def get(self, *args, dtype=str, convert=None, list=False, default=no_default):
            try:
                values = super().get(*args)
            except UciExceptionNotFound:
                if default is not no_default:
                    return default
                raise
            if len(args) < 2:
                return values
            result = tuple(dtype(v) for v in (values if isinstance(values, tuple) else (values,)))
            return result if list else result[0]

        def set(self, *args):
            value = args[-1]
            if isinstance(value, (tuple, type([]))):
                super().set(*args[:-1], tuple(str(v) for v in value))
            else:
                super().set(*args[:-1], str(value))

    emod.EUci = EUci
    emod.UciExceptionNotFound = UciExceptionNotFound
    return mod, emod


@pytest.fixture(params=["uci.py", "euci"])
def backend(request, monkeypatch):
    if request.param == "euci":
        fake_uci, fake_euci = make_fake_pyuci()
        monkeypatch.setitem(sys.modules, "uci", fake_uci)
        monkeypatch.setitem(sys.modules, "euci", fake_euci)
    else:
        monkeypatch.setitem(sys.modules, "euci", None)      # import euci -> ImportError
    return request.param


@pytest.fixture
def dirs(tmp_path):
    confdir, savedir = tmp_path / "config", tmp_path / "save"
    confdir.mkdir()
    return confdir, savedir


def install(confdir, fixture, name=CONFIG):
    (confdir / name).write_bytes((FIXTURES / fixture).read_bytes())
    return confdir / name


@pytest.fixture
def network(dirs, backend):
    confdir, savedir = dirs
    install(confdir, "case-21-network-wgmesh")
    store = open_uci(str(confdir), str(savedir))
    assert store.backend == backend
    return store


# ---------------------------------------------------------------------------


def test_euci_is_preferred_and_always_gets_savedir(monkeypatch, dirs):
    confdir, savedir = dirs
    fake_uci, fake_euci = make_fake_pyuci()
    monkeypatch.setitem(sys.modules, "uci", fake_uci)
    monkeypatch.setitem(sys.modules, "euci", fake_euci)
    assert open_uci(str(confdir), str(savedir)).backend == "euci"
    assert open_uci(str(confdir)).backend == "euci"
    assert fake_uci.contexts == [{"confdir": str(confdir), "savedir": str(savedir)},
                                 {"confdir": str(confdir), "savedir": "/tmp/.uci"}]


def test_without_euci_our_reader_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "euci", None)
    store = open_uci()
    assert store.backend == "uci.py"
    assert (store.confdir, store.savedir) == ("/etc/config", "/tmp/.uci")


def test_values_and_types(network):
    assert network.get(CONFIG, "wgmesh", "proto") == "bmx7wg"
    assert network.get(CONFIG, "wgmesh", "announce") == ["192.168.1.0/24", "fd12:3456:789a::/64"]
    assert network.get(CONFIG, "wgmesh", "addresses") == ["fd66:66:66::1/128", "10.66.0.1/32"]
    assert network.get(CONFIG, "wgmesh", "nosuch") is None
    assert network.get(CONFIG, "wgmesh", "nosuch", default="x") == "x"
    assert network.get(CONFIG, "nosuch", "proto", default=0) == 0
    assert network.get(CONFIG, "@wireguard_wgmesh[0]", "description") == "node-b"
    assert network.section_type(CONFIG, "wgmesh") == "interface"
    assert network.section_type(CONFIG, "nosuch") is None
    assert network.get_all(CONFIG, "nosuch") == {}
    peer = network.get_all(CONFIG, "peer_c")
    assert peer["allowed_ips"] == ["fd66:66:66::3/128"] and peer["route_allowed_ips"] == "0"
    assert all(isinstance(v, (str, list)) for v in peer.values())


def test_sections_in_file_order(network):
    expected = ouruci.parse((FIXTURES / "case-21-network-wgmesh").read_bytes(), CONFIG)
    assert network.sections(CONFIG) == [(s.name, s.type, s.options) for s in expected.sections]
    peers = network.sections(CONFIG, "wireguard_wgmesh")
    assert [(name, kind) for name, kind, _ in peers] == [
        ("cfg073579", "wireguard_wgmesh"), ("peer_c", "wireguard_wgmesh")]
    assert peers[0][2]["allowed_ips"] == ["fd66:66:66::2/128", "10.66.0.2/32"]


def test_writes_stay_pending_until_commit(network, dirs):
    confdir, savedir = dirs
    network.set(CONFIG, "wgmesh", "mtu", 1380)
    network.set(CONFIG, "wgmesh", "announce", ["10.10.0.0/16"])
    network.set(CONFIG, "wgmesh", "enabled", True)
    network.delete(CONFIG, "lan", "ip6assign")
    network.delete(CONFIG, "lan", "nosuch")                  # absent: no error
    name = network.add(CONFIG, "wireguard_wgmesh")
    assert name == "cfg093579"
    network.set(CONFIG, name, "public_key", "abc=")
    network.set(CONFIG, "newsec", None, "include")
    assert network.get(CONFIG, "wgmesh", "mtu") == "1380"
    assert network.get(CONFIG, "wgmesh", "enabled") == "1"
    assert network.get(CONFIG, name, "public_key") == "abc="
    before = (confdir / CONFIG).read_bytes()
    delta = (savedir / CONFIG).read_bytes()          # saved at once, as `uci set` does
    c = CONFIG
    assert delta.decode() == (
        f"{c}.wgmesh.mtu='1380'\n-{c}.wgmesh.announce\n|{c}.wgmesh.announce='10.10.0.0/16'\n"
        f"{c}.wgmesh.enabled='1'\n-{c}.lan.ip6assign\n+{c}.cfg093579='wireguard_wgmesh'\n"
        f"{c}.cfg093579.public_key='abc='\n{c}.newsec='include'\n")
    assert open_uci(str(confdir), str(savedir)).get(CONFIG, "wgmesh", "mtu") == "1380"
    assert (confdir / CONFIG).read_bytes() == before

    network.commit(CONFIG)
    text = (confdir / CONFIG).read_bytes()
    assert text != before
    assert (savedir / CONFIG).read_bytes() == b""
    assert b"\tlist announce '10.10.0.0/16'\n" in text and b"ip6assign" not in text
    assert text.endswith(b"\nconfig wireguard_wgmesh\n\toption public_key 'abc='\n"
                         b"\nconfig include 'newsec'\n\n")
    again = open_uci(str(confdir), str(savedir))
    assert again.get(CONFIG, "wgmesh", "announce") == ["10.10.0.0/16"]
    assert again.get(CONFIG, "wgmesh", "mtu") == "1380"
    assert again.sections(CONFIG, "wireguard_wgmesh")[-1] == (
        name, "wireguard_wgmesh", {"public_key": "abc="})
    assert again.sections(CONFIG, "include") == [("newsec", "include", {})]


def test_missing_config_names_the_file(backend, dirs):
    confdir, savedir = dirs
    store = open_uci(str(confdir), str(savedir))
    with pytest.raises(UciError) as err:
        store.get(CONFIG, "a", "b", default="unused")
    assert str(err.value) == f"{confdir / CONFIG}: config file not found"


def test_parse_error_names_the_file_and_libuci_reason(backend, dirs):
    confdir, savedir = dirs
    install(confdir, "case-24-invalid-section-name")
    store = open_uci(str(confdir), str(savedir))
    for call in (lambda: store.get(CONFIG, "lan", "proto"), lambda: store.sections(CONFIG),
                 lambda: store.set(CONFIG, "lan", "proto", "dhcp")):
        with pytest.raises(UciError) as err:
            call()
        assert str(err.value) == (f"{confdir / CONFIG}: Parse error (invalid character in name "
                                  f"field) at line 4, byte 27")
        assert "\n" not in str(err.value)


def test_non_utf8_value_is_an_error_only_where_read(backend, dirs):
    confdir, savedir = dirs
    install(confdir, "case-23-non-utf8-bytes")
    store = open_uci(str(confdir), str(savedir))
    assert store.get(CONFIG, "latin1", "ascii") == "plain"
    assert store.section_type(CONFIG, "latin1") == "test"
    for call in (lambda: store.get(CONFIG, "latin1", "city"), lambda: store.get_all(CONFIG, "latin1")):
        with pytest.raises(UciError) as err:
            call()
        assert str(err.value).startswith(f"{confdir / CONFIG}: ") and "UTF-8" in str(err.value)


@pytest.mark.parametrize("call", [
    lambda s: s.set(CONFIG, "nosuch", "proto", "x"),
    lambda s: s.set(CONFIG, "lan", "bad-name", "x"),
    lambda s: s.set(CONFIG, "lan", "proto", "bell\a"),
    lambda s: s.set(CONFIG, "new", None, "two words"),
    lambda s: s.add(CONFIG, "bad type"),
])
def test_refused_writes(network, dirs, call):
    confdir, _ = dirs
    with pytest.raises(UciError) as err:
        call(network)
    assert str(err.value).startswith(f"{confdir / CONFIG}: ")
    assert network.get(CONFIG, "lan", "proto") == "static"


def test_commit_reports_changes_it_could_not_apply(network, dirs):
    confdir, savedir = dirs
    before = (confdir / CONFIG).read_bytes()
    savedir.mkdir()
    (savedir / CONFIG).write_bytes(b"not a delta line\n")   # libuci skips it, never flushes it
    with pytest.raises(UciError) as err:
        network.commit(CONFIG)
    assert str(err.value) == (f"{confdir / CONFIG}: commit failed, changes still pending in "
                              f"{savedir / CONFIG}")
    assert (confdir / CONFIG).read_bytes() == before


def test_config_name_cannot_leave_confdir(backend, dirs):
    confdir, savedir = dirs
    store = open_uci(str(confdir), str(savedir))
    with pytest.raises(UciError, match="invalid config name"):
        store.get("../passwd", "a", "b")


def test_module_exports_one_error_class():
    assert uciadapter.UciError is ouruci.UciError
    assert issubclass(ouruci.UciParseError, UciError)


def test_a_router_reading_through_euci_never_loads_our_uci_reader(tmp_path):
    """uci.py (0.1 MB) is for hosts without libuci: with euci importable, neither the daemon
    nor a store that reads and writes loads it."""
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "uci.py").write_text("class UciException(Exception): pass\n"
                                 "class UciExceptionNotFound(UciException): pass\n")
    (fake / "euci.py").write_text(
        "class EUci:\n"
        "    def __init__(self, confdir, savedir): self.data = {'network': {'wg': {'.type': 'interface', 'proto': 'bmx7wg'}}}\n"
        "    def get(self, config, *path):\n"
        "        return self.data[config] if not path else self.get_all(config, *path)\n"
        "    def get_all(self, config, *path):\n"
        "        value = self.data[config]\n"
        "        for key in path: value = value[key]\n"
        "        return value\n")
    code = ("import sys\nfrom bmx7wg import daemon, uciadapter\n"
            "store = uciadapter.open_uci('/etc/config', '/tmp/.uci')\n"
            "print(store.backend, store.get('network', 'wg', 'proto'), 'bmx7wg.uci' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(SRC)]))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.split() == ["euci", "bmx7wg", "False"], out.stderr
