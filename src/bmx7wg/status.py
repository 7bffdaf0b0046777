"""The state-file snapshot of a running helper (shape: docs/architecture.md). No secrets."""

from __future__ import annotations

from collections.abc import Callable

from . import address, history


def peer_state(live: bool, absent_for: float | None, configured: bool, latest_rejected: bool) -> str:
    """`live`: WireGuard has a live session with the peer (sessions.py)."""
    if absent_for is not None:
        return "expired"
    if latest_rejected or not configured:
        return "rejected"
    return "active" if live else "pending"


def _described(node_id: str, key, good, decision, name, allowed) -> dict:
    """The fields that change only with the advert, the policy's decision or the peer's allowed-ips.
    `good`: the node's last advert that decoded, or None; `key`: the key shown for the node."""
    return {
        "node_id": node_id,
        "short_id": address.short_id(node_id),
        "name": name,
        "public_key": key,
        "fingerprint": key[:8] if key else None,
        "endpoint": decision.endpoint if decision else None,
        "addresses": [str(a) for a in good.addresses] if good else [],
        "allowed_ips": sorted(allowed) if allowed is not None else [],
        "networks_accepted": sorted(decision.accepted_networks) if decision else [],
        "networks_rejected": [{"network": n, "reason": r} for n, r in (decision.rejected if decision else [])],
    }


def _peer(helper, mono: float, node_id: str) -> dict:
    rec = helper.rec
    decision = rec.selection.peers.get(node_id) if rec.selection else None
    good, error = rec.table.good(node_id), rec.table.error(node_id)
    key = decision.public_key if decision else (good.public_key if good else None)
    wgpeer = rec.device.peers.get(key) if (rec.device and key) else None
    if wgpeer is not None and rec.node_of(key, node_id) != node_id:
        wgpeer = None         # a copied key: that WireGuard peer is the other node's, not this one's
    orig = rec.known_originators.get(node_id)
    name = decision.name if decision and decision.name else (orig.name if orig else None)
    absent = rec.table.absent_since(mono, node_id)
    reason = None
    if error:
        reason = f"latest advert rejected: {error}; last good advert kept" if good else error
    elif decision is not None and decision.reason:
        reason = decision.reason
    elif absent is not None:
        reason = f"advertisement gone for {int(absent)} s (hold-down {int(rec.cfg.hold_down)} s)"
    handshake = wgpeer.latest_handshake if wgpeer else None
    return {
        **_described(node_id, key, good, decision, name, wgpeer.allowed_ips if wgpeer else None),
        "state": peer_state(wgpeer is not None and rec.sessions.live(wgpeer), absent, wgpeer is not None,
                            error is not None),
        "reason": reason,
        "latest_handshake": handshake,
        "rx": wgpeer.rx if wgpeer else 0,
        "tx": wgpeer.tx if wgpeer else 0,
    }


def head(helper) -> dict:
    """The state file's small members (its lists: tails())."""
    now, mono = helper.clock(), helper.mono()
    cfg = helper.cfg
    rec = helper.rec
    return {
        "interface": helper.iface,
        "ifname": cfg.ifname,
        "pid": None if helper.stopping else helper.pid,
        "updated": now,
        "public_key": helper.keypair.public_key,
        "listen_port": helper.port,
        "key_mode": "uci" if cfg.private_key else cfg.key_mode,
        "backend": helper.backend_kind,
        "node_id": helper.own.node_id if helper.own else None,
        "name": helper.own.name if helper.own else None,
        "addresses": helper.own_addresses(),
        "announce": [str(n) for n in cfg.announce],
        "bmx7": {"dir": cfg.bmx7_dir, "running": helper.bmx7_running, "sms_name": cfg.sms_name,
                 "published": helper.published is not None and not helper.stopping},
        "history": history.dump(rec.selection, now - mono),
        "wg_writes": helper.backend.writes,
        "clock_behind_until": helper.clock_behind_until,
    }


def tails(helper) -> dict[str, tuple[list, Callable | None]]:
    """The state file's long lists, to be made an item at a time (state.Writer): the items
    and what makes each one's object (None: the item is its own object). A node that leaves
    the table before its turn is left out."""
    rec = helper.rec
    lists = {"owned": (sorted(rec.owned), None), "routes": (sorted(rec.routes, key=str), None)}
    if rec.awaited:      # after a restart, until bmx7 has the previous run's nodes again
        return {**lists, "peers": (helper.previous_peers, None)}
    mono = helper.mono()
    return {**lists, "peers": (sorted(rec.table.raws), lambda node_id: _peer(helper, mono, node_id)
                               if node_id in rec.table.raws else None)}
