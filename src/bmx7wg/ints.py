"""One int object per value for numbers that repeat across thousands of nodes.

CPython shares only -5..256, so every node's port 51820 or metric 999M would be an
object of its own (28-32 B each). Ports come from a small range and bmx7 prints metrics
with three digits and a unit, so a mesh has few distinct values; the table is capped so
that a node cycling through values cannot make it grow.
"""

CAP = 1024

_table: dict[int, int] = {}


def shared(value: int) -> int:
    """`value`, as the object given out for it before when there is one."""
    found = _table.get(value)
    if found is not None:
        return found
    if len(_table) < CAP:
        _table[value] = value
    return value
