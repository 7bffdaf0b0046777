"""KeySet: a set of keys held as a dict; it must behave as the sets it replaces do."""

from __future__ import annotations

from bmx7wg.keyset import KeySet


def test_adds_like_a_set_in_insertion_order():
    marks = KeySet(["b", "a"])
    marks.add("c")
    marks.add("a")                       # already there: no second entry, order kept
    marks.add_all(iter(["d", "b"]))
    assert list(marks) == ["b", "a", "c", "d"] and len(marks) == 4
    assert "a" in marks and "zz" not in marks


def test_compares_as_the_set_of_its_keys():
    marks = KeySet("xy")
    assert marks == {"x", "y"} and {"y", "x"} == marks
    assert marks == KeySet("yx") and marks == {"x": 1, "y": 2}
    assert marks != {"x"} and not (marks == {"x", "y", "z"}) and marks != KeySet("x")
    assert KeySet() == set() and not KeySet()
    assert repr(KeySet("ab")) == "KeySet(['a', 'b'])"
