"""`@record`: the part of `dataclasses` this package uses, without its import cost.

`import dataclasses` pulls in inspect, ast, dis and tokenize: 1.2 MB of the helper's
memory (a sixth of its own share on a router), for class boilerplate. This makes the same
methods the same way (generated source, compiled once per class), for the options used
here: frozen, slots, order, eq; field(default, default_factory, compare, repr);
__post_init__; replace(). Annotations name the fields, in order, as in a dataclass; a
field without a default must come before those with one. No inheritance between records.
tests/test_record.py holds it to dataclasses' behaviour for those options.
"""

from __future__ import annotations

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    __slots__ = ("name", "default", "default_factory", "compare", "repr")

    def __init__(self, default=_MISSING, default_factory=_MISSING, compare=True, repr=True):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default, self.default_factory = default, default_factory
        self.compare, self.repr = compare, repr


def field(*, default=_MISSING, default_factory=_MISSING, compare=True, repr=True) -> Field:
    return Field(default, default_factory, compare, repr)


def record(cls=None, /, *, frozen: bool = False, slots: bool = False, order: bool = False, eq: bool = True):
    def wrap(cls):
        return _make(cls, frozen, slots, order, eq)
    return wrap if cls is None else wrap(cls)


def fields(obj_or_cls) -> tuple[Field, ...]:
    return obj_or_cls.__record_fields__


def replace(obj, **changes):
    """A copy of `obj` with some fields changed (dataclasses.replace)."""
    values = {f.name: getattr(obj, f.name) for f in obj.__record_fields__}
    unknown = changes.keys() - values.keys()
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


def _make(cls, frozen: bool, slots: bool, order: bool, eq: bool):
    found = []
    # 3.14 (PEP 649) keeps them behind a descriptor, not in the class dict
    annotations = cls.__dict__.get("__annotations__") or getattr(cls, "__annotations__", {})
    for name in annotations:
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        found.append(spec)
    if any(base is not object and hasattr(base, "__record_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: records do not inherit fields")
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    for spec in found:
        body.pop(spec.name, None)
        if not slots and spec.default is not _MISSING:
            body[spec.name] = spec.default          # as dataclasses: the default is a class attribute
    if slots:
        body["__slots__"] = tuple(spec.name for spec in found)
    body["__record_fields__"] = tuple(found)
    namespace = {"_MISSING": _MISSING, "_setattr": object.__setattr__, "Frozen": FrozenInstanceError}
    for spec in found:
        namespace[f"_d_{spec.name}"] = spec.default
        namespace[f"_f_{spec.name}"] = spec.default_factory
    source = [_init(found, frozen, "__post_init__" in body)]
    compared = [spec.name for spec in found if spec.compare]
    values = "(" + "".join(f"self.{n}," for n in compared) + ")"
    others = "(" + "".join(f"other.{n}," for n in compared) + ")"
    if eq:
        source.append(f"def __eq__(self, other):\n"
                      f"    if other.__class__ is self.__class__:\n        return {values} == {others}\n"
                      f"    return NotImplemented\n")
        if frozen:
            source.append(f"def __hash__(self):\n    return hash({values})\n")
    if order:
        for op, sym in (("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")):
            source.append(f"def __{op}__(self, other):\n"
                          f"    if other.__class__ is self.__class__:\n        return {values} {sym} {others}\n"
                          f"    return NotImplemented\n")
    shown = ", ".join(f"{spec.name}={{self.{spec.name}!r}}" for spec in found if spec.repr)
    source.append(f"def __repr__(self):\n    return f'{{type(self).__qualname__}}({shown})'\n")
    if frozen:
        source.append("def __setattr__(self, name, value):\n"
                      "    raise Frozen(f'cannot assign to field {name!r}')\n"
                      "def __delattr__(self, name):\n"
                      "    raise Frozen(f'cannot delete field {name!r}')\n")
    # exec of a string, not of compile(): builtin compile() first builds the ast module's
    # hundred-odd node types (0.2-0.25 MB of RSS, for the life of the process); exec skips that
    exec("\n".join(source), namespace)
    for name in ("__init__", "__eq__", "__hash__", "__lt__", "__le__", "__gt__", "__ge__",
                 "__repr__", "__setattr__", "__delattr__"):
        if name in namespace and name not in cls.__dict__:
            namespace[name].__qualname__ = f"{cls.__qualname__}.{name}"
            body[name] = namespace[name]
    if eq and not frozen and "__hash__" not in cls.__dict__:
        body["__hash__"] = None           # mutable and compared by value: unhashable, as dataclasses
    made = type(cls)(cls.__name__, cls.__bases__, body)
    made.__qualname__ = cls.__qualname__
    return made


def _init(found: list[Field], frozen: bool, post_init: bool) -> str:
    params, lines = [], []
    for spec in found:
        n = spec.name
        if spec.default_factory is not _MISSING:
            params.append(f"{n}=_MISSING")
            lines.append(f"    if {n} is _MISSING:\n        {n} = _f_{n}()")
        elif spec.default is not _MISSING:
            params.append(f"{n}=_d_{n}")
        else:
            params.append(n)
        lines.append(f"    _setattr(self, {n!r}, {n})" if frozen else f"    self.{n} = {n}")
    if post_init:
        lines.append("    self.__post_init__()")
    return f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(lines) or "    pass") + "\n"
