"""KeySet: a set of keys held as a dict, for the sets that may hold every node at once.

A set grows its table four times over, a dict about twice, and a set's slot is as big as a
dict's entry: 5,000 nodeIds take 512 KB as a set and 100 KB as a dict. A first step on a big
mesh marks every node in several such collections at once (changed, to judge again, to
rebuild), which made most of its memory peak. Iterates in insertion order.
"""

from __future__ import annotations

from collections.abc import Iterable


class KeySet(dict):
    __slots__ = ()

    def __init__(self, keys: Iterable = ()):
        super().__init__()
        self.add_all(keys)

    def add(self, key) -> None:
        self[key] = None

    def add_all(self, keys: Iterable) -> None:
        for key in keys:
            self[key] = None

    # compared as the set of its keys (with a set, a dict's keys or another KeySet)
    def __eq__(self, other) -> bool:
        return self.keys() == (other.keys() if isinstance(other, dict) else other)

    def __ne__(self, other) -> bool:
        return not self == other

    def __repr__(self) -> str:
        return f"KeySet({list(self)!r})"
