"""One small UCI contract over two backends: `euci` (pyuci on OpenWrt) when importable,
else our own uci.py reading files from confdir and pending changes from savedir.

Contract (identical for both backends):
* values are `str` for options and `list[str]` for lists (pyuci's tuples become lists);
* `get_all` / `sections` return options only; the type comes from `section_type` and the
  second tuple item of `sections` (no '.type' key mixed into option dicts);
* a missing section or option is not an error: `get` returns the default, `get_all` {},
  `section_type` None; a missing or unparsable config file, a value that is not UTF-8,
  or a refused write raises `UciError` with one line naming the file;
* every write is saved to savedir at once, as the `uci` CLI does (visible to
  `uci changes`, undone by `uci revert`); `commit` writes the config file with all
  pending changes and raises if savedir still holds some afterwards;
* a store caches what it read, like a pyuci context: open a new one to re-read.
"""

from __future__ import annotations

import os

from . import ucinames
from .ucinames import UciError

__all__ = ["UciError", "UciStore", "open_uci"]

Value = str | list[str]


def open_uci(confdir: str | None = None, savedir: str | None = None) -> "UciStore":
    confdir = confdir or ucinames.DEFAULT_CONFDIR
    savedir = savedir or ucinames.DEFAULT_SAVEDIR
    try:
        import euci
        import uci as pyuci
    except ImportError:
        from .ucifile import FileStore     # uci.py, only where there is no libuci
        return FileStore(confdir, savedir)
    return _EuciStore(euci, pyuci, confdir, savedir)


def to_text(value) -> Value:
    """Values a caller may pass to set(): str, int, bool (as '1'/'0') or a list of them."""
    if isinstance(value, (list, tuple)):
        return [to_text(v) for v in value]
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class UciStore:
    """The contract; see the module docstring."""

    backend = "?"

    def __init__(self, confdir: str, savedir: str):
        self.confdir = confdir
        self.savedir = savedir

    def path(self, config: str) -> str:
        if not config or not ucinames.valid_config_name(config):
            raise UciError(f"{os.path.join(self.confdir, str(config))}: invalid config name")
        return os.path.join(self.confdir, config)

    def get(self, config: str, section: str, option: str, default=None) -> Value | None:
        raise NotImplementedError

    def get_all(self, config: str, section: str) -> dict[str, Value]:
        raise NotImplementedError

    def section_type(self, config: str, section: str) -> str | None:
        raise NotImplementedError

    def sections(self, config: str, stype: str | None = None) -> list[tuple[str, str, dict]]:
        raise NotImplementedError

    def set(self, config: str, section: str, option: str | None, value) -> None:
        """Set an option (str) or list (list); option None creates/retypes a named section."""
        raise NotImplementedError

    def delete(self, config: str, section: str, option: str | None = None) -> None:
        """Delete a section or option; deleting something absent is not an error."""
        raise NotImplementedError

    def add(self, config: str, stype: str) -> str:
        raise NotImplementedError

    def commit(self, config: str) -> None:
        raise NotImplementedError

    def _error(self, config: str, what: str) -> UciError:
        return UciError(f"{self.path(config)}: {what}")

    def _check_write(self, config: str, section: str, option: str | None, value: Value) -> None:
        """Refuse what libuci would store but could not read back from its delta file."""
        items = [value] if isinstance(value, str) else value
        if option is None:
            stype = value if isinstance(value, str) else ""
            if not ucinames.valid_name(section) or not ucinames.valid_type(stype):
                raise self._error(config, f"invalid section {section!r} of type {value!r}")
        elif not ucinames.valid_name(option):
            raise self._error(config, f"invalid option name {option!r}")
        for item in items:
            if "\0" in item or not ucinames.valid_text(item):
                raise self._error(config, f"{section}.{option}: control character in value")

    def _verify_committed(self, config: str) -> None:
        delta = os.path.join(self.savedir, config)
        if os.path.isfile(delta) and os.path.getsize(delta) > 0:
            raise self._error(config, f"commit failed, changes still pending in {delta}")

    def _check_utf8(self, config: str, where: str, value: Value) -> Value:
        items = [value] if isinstance(value, str) else value
        for item in items:
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise self._error(config, f"{where} is not valid UTF-8") from None
        return value


# ---------------------------------------------------------------------------
# pyuci's euci (OpenWrt python3-uci)


class _EuciStore(UciStore):
    backend = "euci"

    def __init__(self, euci_module, uci_module, confdir: str, savedir: str):
        super().__init__(confdir, savedir)
        self._euci = euci_module
        self._u = self._context()
        self._failure = (uci_module.UciException, UnicodeDecodeError)
        self._not_found = uci_module.UciExceptionNotFound
        self._readable: set[str] = set()

    def _context(self):
        return self._euci.EUci(confdir=self.confdir, savedir=self.savedir)

    def _explain(self, config: str, exc: Exception) -> UciError:
        """pyuci reports parse errors without text: re-read the file ourselves for it."""
        path = self.path(config)
        if isinstance(exc, UnicodeDecodeError):
            return self._error(config, "a value is not valid UTF-8")
        if not os.path.isfile(path):
            return self._error(config, "config file not found")
        from . import uci          # to explain an error only: a router reading through euci need not load it
        try:
            with open(path, "rb") as f:
                uci.parse(f.read(), config)
        except (OSError, UciError) as err:
            return self._error(config, getattr(err, "strerror", None) or str(err))
        return self._error(config, f"{type(exc).__name__} {exc}".strip())

    def _ensure_readable(self, config: str) -> None:
        """A missing entry and an unreadable file look alike in pyuci; tell them apart."""
        if config in self._readable:
            return
        self.path(config)
        try:
            self._u.get(config)
        except UnicodeDecodeError:
            pass    # libuci read it; only that value cannot be returned (raised on access)
        except self._failure as exc:
            raise self._explain(config, exc) from None
        self._readable.add(config)

    def _call(self, config: str, *args):
        # get_all keeps pyuci's raw types (str or tuple); EUci.get would need list=True
        # and could then no longer tell an option from a one-item list
        self._ensure_readable(config)
        try:
            return self._u.get_all(config, *args)
        except self._not_found:
            return None
        except self._failure as exc:
            if isinstance(exc, UnicodeDecodeError):
                where = ".".join(args)
                raise self._error(config, f"{where} is not valid UTF-8") from None
            raise self._explain(config, exc) from None

    @staticmethod
    def _value(value) -> Value:
        return value if isinstance(value, str) else list(value)

    def get(self, config, section, option, default=None):
        value = self._call(config, section, option)
        return default if value is None else self._value(value)

    def get_all(self, config, section):
        options = self._call(config, section)
        return {} if options is None else {k: self._value(v) for k, v in options.items()}

    def section_type(self, config, section):
        self._ensure_readable(config)
        try:
            return self._u.get(config, section)
        except self._not_found:
            return None
        except self._failure as exc:
            raise self._explain(config, exc) from None

    def sections(self, config, stype=None):
        everything = self._call(config) or {}
        result = []
        for name, options in everything.items():
            kind = self.section_type(config, name)
            if stype is None or kind == stype:
                result.append((name, kind, {k: self._value(v) for k, v in options.items()}))
        return result

    def _write(self, config: str, what: str, method: str, *args):
        self._ensure_readable(config)
        try:
            getattr(self._u, method)(*args)
            if method != "commit":
                self._u.save(config)
        except self._failure as exc:
            raise self._error(config, f"cannot {what}: {type(exc).__name__} {exc}".strip()) from None

    def set(self, config, section, option, value):
        value = to_text(value)
        self._check_write(config, section, option, value)
        if isinstance(value, list):
            value = tuple(value)
        args = (config, section, value) if option is None else (config, section, option, value)
        self._write(config, f"set {section}.{option}", "set", *args)

    def delete(self, config, section, option=None):
        args = (config, section) if option is None else (config, section, option)
        self._write(config, f"delete {section}.{option}", "delete", *args)

    def add(self, config, stype):
        if not ucinames.valid_type(stype):
            raise self._error(config, f"invalid section type {stype!r}")
        # pyuci's add loads the config itself (uci_load fails with "Duplicate entry" if
        # this context already holds it), adds, saves to savedir and unloads: run it in
        # a fresh context, then re-open ours, which loses nothing as writes are saved.
        self._ensure_readable(config)
        try:
            name = self._context().add(config, stype)
        except self._failure as exc:
            raise self._error(config, f"cannot add a {stype} section: {exc}") from None
        self._u = self._context()
        return name

    def commit(self, config):
        self._write(config, "commit", "commit", config)   # pyuci ignores libuci's result
        self._verify_committed(config)
