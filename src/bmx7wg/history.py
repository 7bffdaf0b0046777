"""Claim history that outlives a helper restart (`kill -9` included).

The policy breaks ties by claim age and gives a prefix's holder its hysteresis bonus, both
read from the previous Selection. A restarted helper has none, so its first call would hand
a contested prefix or key to the best raw standing or the lowest nodeId, and rewrite peers
although nothing changed. The state file therefore keeps the history of what is contested
(claimed by more than one node) and of every offered network (an incumbent's bonus also
decides between overlapping networks of one node or of several), and `seed` turns it back into
a Selection the first call takes as `previous`: on the same inputs it then decides what the
running helper would have (tests/test_history.py, on random histories). Derived tunnel
addresses, one per node, have no history to keep: the policy does not arbitrate them by
standing or age (policy.py, update_own).
Times are the policy's clock, which never lets one exceed `now`: the helper's monotonic
clock, written to the file as wall-clock time (`offset` = wall - monotonic), so that the file
reads as dates and a restart maps them back onto its own monotonic clock.
"""

from __future__ import annotations

import math

from .policy import Selection

TABLES = ("holders", "claims", "key_claims")


def dump(sel: Selection | None, offset: float = 0.0) -> dict:
    """What a restart needs of a Selection's history, as JSON lists of [what, nodeId, since +
    offset]."""
    if sel is None:
        return {name: [] for name in TABLES}
    claims = _kept(sel.claimed_since, offset, lone_kept=True)
    kept = {prefix for prefix, _, _ in claims}
    return {
        "holders": sorted([prefix, node_id, sel.holder_since[prefix] + offset]
                          for prefix, node_id in sel.holders.items() if prefix in kept),
        "claims": claims,
        "key_claims": _kept({(key, node_id): t for node_id, t in sel.key_since.items()
                             if (key := sel.claimed_key(node_id)) is not None}, offset),
    }


def _kept(since: dict[tuple[str, str], float], offset: float, lone_kept: bool = False) -> list[list]:
    """Claims of what more than one node claims, and with lone_kept those of one node too."""
    count: dict[str, int] = {}
    for what, _ in since:
        count[what] = count.get(what, 0) + 1
    return sorted([what, node_id, t + offset] for (what, node_id), t in since.items()
                  if lone_kept or count[what] > 1)


def seed(data, offset: float = 0.0) -> Selection | None:
    """A Selection holding only the history in `data` (a state file's "history", its times
    less `offset`), or None if it holds none. Malformed entries are skipped: a damaged file
    costs history, not a start."""
    if not isinstance(data, dict):
        return None
    holders, claims, key_claims = (_entries(data.get(name), offset) for name in TABLES)
    if not (holders or claims or key_claims):
        return None
    return Selection(
        now=max(t for table in (holders, claims, key_claims) for _, _, t in table),
        peers={},
        holders={prefix: node_id for prefix, node_id, _ in holders},
        holder_since={prefix: t for prefix, _, t in holders},
        claimed_since={(prefix, node_id): t for prefix, node_id, t in claims},
        key_since={node_id: t for _, node_id, t in key_claims},
        seeded_keys={node_id: key for key, node_id, _ in key_claims})


def _entries(value, offset: float) -> list[tuple[str, str, float]]:
    if not isinstance(value, list):
        return []
    return [(what, node_id, float(t) - offset) for what, node_id, t in
            (e for e in value if isinstance(e, list) and len(e) == 3)
            if isinstance(what, str) and isinstance(node_id, str)
            and isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)]
