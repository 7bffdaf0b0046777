"""`bmx7wg lab ...`: build, inspect and tear down the virtual mesh (mesh.py).

Attachable to the main CLI with `main.add_command(lab)`; also runs on its own:
`python3 -m bmx7wg.lab.cli up --nodes 4 --topology ring`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import click

from . import mesh
from .netns import LabError


def _where(f):
    f = click.option("--workdir", envvar="BMX7WG_LAB_DIR", default=None,
                     help="lab directory [default: /tmp/<prefix>-lab]")(f)
    f = click.option("--prefix", envvar="BMX7WG_LAB_PREFIX", default=mesh.DEFAULT_PREFIX, show_default=True,
                     help="namespace prefix (namespaces are <prefix>n1, <prefix>n2, ...)")(f)
    return f


def _load(prefix: str, workdir: str | None) -> mesh.Lab:
    try:
        return mesh.load(workdir, prefix)
    except LabError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("lab")
def lab():
    """Virtual bmx7 mesh: one network namespace per router, bmx7 emulator + helper on each."""


@lab.command("up")
@click.option("--nodes", type=click.IntRange(1, 99), default=3, show_default=True)
@click.option("--topology", type=click.Choice(mesh.TOPOLOGIES), default="line", show_default=True)
@click.option("--bmx7", "bmx7_path", type=click.Path(dir_okay=False), default=None,
              help="run this real bmx7 binary instead of the emulator")
@click.option("--no-helper", is_flag=True, help="start bmx7 only, not our helper")
@click.option("--hop-delay", type=float, default=None, help="emulator: seconds per hop (default 0.43)")
@click.option("--purge-timeout", type=float, default=None, help="emulator: seconds until a silent node is purged")
@click.option("--ref-sms", type=click.Choice(["0", "2"]), default=None, help="emulator: bmx7 refSms setting")
@click.option("--emulator", "emu_opts", multiple=True, metavar="KEY=VALUE",
              help="any emulator flag, e.g. refill_delay=1 or ogm_interval=0.5 (repeat)")
@click.option("--sync-sms", multiple=True, help="sms name registered on bmx7's command line (repeat)")
@click.option("--option", "uci", multiple=True, metavar="KEY=VALUE",
              help="extra option in every node's `config interface 'wgmesh'` (repeat)")
@click.option("--wait", "wait", type=float, default=0, metavar="SECONDS",
              help="wait until every node has a handshake with every other one, then print the peers")
@_where
def up_cmd(nodes, topology, bmx7_path, no_helper, hop_delay, purge_timeout, ref_sms, emu_opts, sync_sms, uci,
           wait, prefix, workdir):
    """Create the namespaces and links, start bmx7 and the helper on every node."""
    emu = _pairs(emu_opts, "--emulator")
    emu.update({k: v for k, v in (("hop_delay", hop_delay), ("purge_timeout", purge_timeout),
                                  ("ref_sms", ref_sms)) if v is not None})
    options = _pairs(uci, "--option")
    try:
        the_lab = mesh.up(nodes=nodes, topology=topology, prefix=prefix, bmx7=bmx7_path, workdir=workdir,
                          helper=not no_helper, emulator_options=emu, uci_options=options, sync_sms=list(sync_sms))
    except LabError as exc:
        raise click.ClickException(str(exc)) from None
    for name in the_lab.names:
        click.echo(f"{name}  {the_lab.ns(name)}  {the_lab.node_id(name) or '?'}  {the_lab.primary_ip(name) or '?'}")
    click.echo(f"lab up in {the_lab.workdir}")
    if wait:
        click.echo(f"waiting up to {wait:.0f} s for every pair of nodes to handshake ...")
        deadline = time.time() + wait
        while time.time() < deadline and not _converged(the_lab.status(), len(the_lab.names)):
            time.sleep(1)
        status = the_lab.status()
        click.echo(_table(status))
        if not _converged(status, len(the_lab.names)):
            raise click.ClickException(f"not every pair handshaked within {wait:.0f} s")
        click.echo("all nodes have handshakes with all others")


def _converged(status: dict, count: int) -> bool:
    return all(len(n["peers"]) == count - 1 and all(p.get("latest_handshake") for p in n["peers"])
               for n in status["nodes"])


def _pairs(items, hint: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"'{item}': expected KEY=VALUE", param_hint=hint)
        out[key.replace("-", "_") if hint == "--emulator" else key] = value
    return out


@lab.command("down")
@_where
def down_cmd(prefix, workdir):
    """Stop everything the lab started, delete its namespaces and its directory."""
    the_lab = _load(prefix, workdir)
    the_lab.down()
    click.echo(f"lab in {the_lab.workdir} is down")


@lab.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_where
@click.argument("node")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_cmd(prefix, workdir, node, cmd):
    """Run CMD inside NODE (PATH starts with the node's bin dir holding `bmx7`)."""
    the_lab = _load(prefix, workdir)
    try:
        ns, env = the_lab.ns(node), the_lab.env(node)
    except LabError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(subprocess.run(["ip", "netns", "exec", ns, *cmd], env=env).returncode)


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@_where
def status_cmd(as_json, prefix, workdir):
    """Peers of every node, from the helpers' state files."""
    status = _load(prefix, workdir).status()
    if as_json:
        click.echo(json.dumps(status, indent=1))
        return
    click.echo(_table(status))


def _table(status: dict) -> str:
    now = time.time()
    rows = [("NODE", "NODE_ID", "PEER", "PEER_ID", "STATE", "HANDSHAKE", "RX", "TX")]
    for node in status["nodes"]:
        nid = (node.get("node_id") or "?")[:8]
        if not node["peers"]:
            rows.append((node["name"], nid, "-", "-", "-", "-", "-", "-"))
        for p in node["peers"]:
            hs = p.get("latest_handshake")
            rows.append((node["name"], nid, str(p.get("name") or "?"), (p.get("node_id") or "?")[:8],
                         str(p.get("state")), "never" if not hs else f"{int(now - hs)}s ago",
                         str(p.get("rx", 0)), str(p.get("tx", 0))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


if __name__ == "__main__":
    lab()
