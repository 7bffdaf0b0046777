"""The UCI contract (uciadapter.UciStore) over our own reader/writer, uci.py: for hosts
without libuci. Loaded only there (uci.py is 0.1 MB of the helper's memory)."""

from __future__ import annotations

from . import uci
from .uciadapter import UciStore, Value, to_text
from .ucinames import UciError


class FileStore(UciStore):
    backend = "uci.py"

    def __init__(self, confdir: str, savedir: str):
        super().__init__(confdir, savedir)
        self._files = uci.ConfigFiles(confdir, savedir)
        self._loaded: dict[str, uci.Package] = {}

    def _package(self, config: str) -> uci.Package:
        pkg = self._loaded.get(config)
        if pkg is None:
            self.path(config)
            try:
                pkg = self._loaded[config] = self._files.load(config)
            except uci.UciNotFoundError:
                raise self._error(config, "config file not found") from None
            except UciError as exc:
                raise self._error(config, str(exc)) from None
        return pkg

    def _section(self, config: str, section: str) -> uci.Section | None:
        pkg = self._package(config)
        try:
            return pkg.find(section)
        except UciError as exc:
            raise self._error(config, str(exc)) from None

    def _value(self, config: str, s: uci.Section, option: str) -> Value:
        value = s.options[option]
        copy = value if isinstance(value, str) else list(value)   # callers cannot alter ours
        return self._check_utf8(config, f"{s.name}.{option}", copy)

    def _options(self, config: str, s: uci.Section) -> dict[str, Value]:
        return {name: self._value(config, s, name) for name in s.options}

    def get(self, config, section, option, default=None):
        s = self._section(config, section)
        if s is None or option not in s.options:
            return default
        return self._value(config, s, option)

    def get_all(self, config, section):
        s = self._section(config, section)
        return {} if s is None else self._options(config, s)

    def section_type(self, config, section):
        s = self._section(config, section)
        return None if s is None else s.type

    def sections(self, config, stype=None):
        return [(s.name, s.type, self._options(config, s))
                for s in self._package(config).sections if stype is None or s.type == stype]

    def _write(self, config: str, change) -> None:
        pkg = self._package(config)
        try:
            change(pkg)
            self._files.save(pkg)
        except UciError as exc:
            raise self._error(config, str(exc)) from None

    def set(self, config, section, option, value):
        value = to_text(value)
        self._check_write(config, section, option, value)
        if isinstance(value, str):
            self._write(config, lambda p: p.set(section, option, value))
            return

        def set_list(pkg: uci.Package) -> None:
            # as pyuci: drop the old option, then add each item (the list moves to the end)
            s = pkg.find(section)
            if s is None or option is None:
                raise UciError(f"Invalid argument: no section {section!r} for a list")
            if option in s.options:
                pkg.delete(section, option)
            for item in value:
                pkg.add_list(section, option, item)

        self._write(config, set_list)

    def delete(self, config, section, option=None):
        def delete_if_present(pkg: uci.Package) -> None:
            s = pkg.find(section)
            if s is not None and (option is None or option in s.options):
                pkg.delete(section, option)

        self._write(config, delete_if_present)

    def add(self, config, stype):
        if not uci.valid_type(stype):
            raise self._error(config, f"invalid section type {stype!r}")
        names = []
        self._write(config, lambda p: names.append(p.add(stype)))
        return names[0]

    def commit(self, config):
        pkg = self._package(config)
        try:
            self._loaded[config] = self._files.commit(pkg)
        except UciError as exc:
            self._loaded.pop(config, None)
            raise self._error(config, str(exc)) from None
        self._verify_committed(config)
