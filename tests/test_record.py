"""record.py behaves as dataclasses does for the options this package uses."""

from __future__ import annotations

import dataclasses

import pytest

from bmx7wg import record as rec


def pair(**options):
    """The same class declared with dataclasses and with record."""
    made = []
    for decorate, fld in ((dataclasses.dataclass, dataclasses.field), (rec.record, rec.field)):
        @decorate(**options)
        class Sample:
            name: str
            size: int = 3
            tags: list = fld(default_factory=list)
            note: str = fld(default="", compare=False, repr=False)

            def doubled(self) -> int:
                return self.size * 2
        made.append(Sample)
    return made


OPTIONS = [{}, {"frozen": True}, {"frozen": True, "slots": True}, {"slots": True}, {"order": True, "frozen": True},
           {"eq": False}]


@pytest.mark.parametrize("options", OPTIONS)
def test_same_behaviour_as_dataclasses(options):
    ref, ours = pair(**options)
    for cls in (ref, ours):
        a, b, c = cls("x"), cls("x", note="other"), cls("y", 4, [1])
        assert (a.name, a.size, a.tags, a.note, a.doubled()) == ("x", 3, [], "", 6)
        assert cls("q").tags is not cls("q").tags               # a fresh list each time
        assert repr(c) == "pair.<locals>.Sample(name='y', size=4, tags=[1])"
    results = []
    for cls in (ref, ours):
        a, b, c = cls("x"), cls("x", note="other"), cls("y", 4, [1])
        row = [a == b, a == c, a != b, a == ("x", 3, [])]
        try:
            row.append(hash(cls("h")) == hash(cls("h", note="n")))
        except TypeError:
            row.append("unhashable")
        if options.get("order"):
            row += [a < c, c > a, a <= b, sorted([c, a]) == [a, c]]
        try:
            a.name = "z"
            row.append(a.name)
        except AttributeError as exc:
            row.append(type(exc).__name__)
        try:
            a.extra = 1
            row.append("extra ok")
        except (AttributeError, TypeError):
            row.append("no extra")
        row.append(hasattr(a, "__dict__"))
        results.append(row)
    assert results[0] == results[1]


def test_frozen_error_is_an_attribute_error_and_replace_copies():
    _, Sample = pair(frozen=True, slots=True)
    item = Sample("x", 5, [1])
    with pytest.raises(rec.FrozenInstanceError):
        item.size = 6
    with pytest.raises(AttributeError):
        del item.size
    moved = rec.replace(item, size=6)
    assert (moved.name, moved.size, moved.tags) == ("x", 6, [1]) and item.size == 5
    with pytest.raises(TypeError, match="no field 'colour'"):
        rec.replace(item, colour=1)
    assert [f.name for f in rec.fields(item)] == ["name", "size", "tags", "note"]


def test_post_init_runs_and_properties_work_with_slots():
    @rec.record(slots=True)
    class Counter:
        start: int
        now: int = 0

        def __post_init__(self):
            self.now = self.start

        @property
        def ahead(self) -> bool:
            return self.now > self.start

    c = Counter(2)
    assert (c.now, c.ahead) == (2, False)
    c.now = 3
    assert c.ahead


def test_missing_argument_and_no_inherited_fields():
    _, Sample = pair()
    with pytest.raises(TypeError):
        Sample()
    with pytest.raises(TypeError, match="inherit"):
        @rec.record
        class Child(Sample):
            more: int = 1
