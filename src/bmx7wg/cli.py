"""`bmx7wg` command line (click). Reading commands answer from the state files via api.py,
so the CLI, ubus and LuCI always show the same thing."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from . import __version__
from .log import log


class _Commands(click.Group):
    """`lab` is imported only when asked for: the helper (`run`) never needs it, and it
    costs the helper ~4 MB of memory (pathlib, argparse, hashlib, the lab modules)."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *(["lab"] if _lab_shipped() else [])})

    def get_command(self, ctx, name):
        if name == "lab" and name not in self.commands:
            _attach_lab()
        return super().get_command(ctx, name)


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="bmx7wg")
@click.option("--confdir", envvar="BMX7WG_CONFDIR", default=None, help="UCI config dir (default /etc/config).")
@click.option("--savedir", envvar="BMX7WG_SAVEDIR", default=None, help="UCI save dir (default /tmp/.uci).")
@click.option("--rundir", envvar="BMX7WG_RUNDIR", default="/var/run/bmx7wg", show_default=True,
              help="State directory.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx, confdir, savedir, rundir, verbose):
    """Automatic WireGuard tunnels between the nodes of a BMX7 mesh."""
    log.setup(verbose)
    ctx.obj = {"confdir": confdir, "savedir": savedir, "rundir": rundir}


@main.command()
@click.argument("iface")
@click.option("--netifd", is_flag=True, help="Push addresses/routes to netifd (set by the proto script).")
@click.pass_obj
def run(obj, iface, netifd):
    """Run the helper for IFACE in the foreground."""
    from . import daemon
    sys.exit(daemon.run(iface, obj["confdir"], obj["savedir"], obj["rundir"], netifd=netifd))


@main.command("check-config")
@click.argument("iface")
@click.pass_obj
def check_config(obj, iface):
    """Validate IFACE's options; exit 2 with a one-line error if one is bad."""
    from . import config
    from .uciadapter import UciError, open_uci
    try:
        cfg = config.load(open_uci(obj["confdir"], obj["savedir"]), iface)
    except (config.ConfigError, UciError) as exc:
        click.echo(f"INVALID_CONFIG: {exc}", err=True)
        sys.exit(2)
    click.echo(f"{iface}: ok (link {cfg.ifname}, key_mode {cfg.key_mode}, "
               f"port {cfg.listen_port or '%d-%d random' % cfg.port_range})")


def _call(obj, method: str, iface: str | None) -> dict:
    from . import api
    reply = api.handle(method, {"interface": iface} if iface else {}, obj["rundir"])
    if "error" in reply:
        click.echo(f"error: {reply['error']}", err=True)
        sys.exit(1)
    return reply


def _ago(ts) -> str:
    if not ts:
        return "never"
    return f"{max(0, int(time.time() - ts))}s ago"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@main.command()
@click.argument("iface", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj, iface, as_json):
    """Interface status: key, port, addresses, bmx7."""
    reply = _call(obj, "status", iface)
    if as_json:
        click.echo(json.dumps(reply, indent=2, sort_keys=True))
        return
    for st in reply.get("interfaces", [reply]):
        bmx7 = st.get("bmx7", {})
        click.echo(f"interface {st.get('interface')} (link {st.get('ifname')}, "
                   f"{'running' if st.get('running', True) else 'NOT running'})")
        click.echo(f"  public key : {st.get('public_key')}")
        click.echo(f"  port       : {st.get('listen_port')}")
        click.echo(f"  addresses  : {', '.join(st.get('addresses') or []) or '-'}")
        click.echo(f"  announce   : {', '.join(st.get('announce') or []) or '-'}")
        click.echo(f"  bmx7       : {'running' if bmx7.get('running') else 'not running'} "
                   f"({bmx7.get('dir')}, sms {bmx7.get('sms_name')})")


@main.command()
@click.argument("iface", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def peers(obj, iface, as_json):
    """Peers learnt from bmx7, with state, handshake and traffic."""
    reply = _call(obj, "peers", iface)
    if as_json:
        click.echo(json.dumps(reply, indent=2, sort_keys=True))
        return
    rows = reply.get("peers", [])
    if not rows:
        click.echo("no other node advertises yet")
        return
    fmt = "{:<10} {:<12} {:<9} {:<40} {:<10} {:>9} {:>9}  {}"
    click.echo(fmt.format("SHORTID", "NAME", "STATE", "ENDPOINT", "HANDSHAKE", "RX", "TX", "REASON"))
    for p in rows:
        click.echo(fmt.format(p.get("short_id") or "-", (p.get("name") or "-")[:12], p.get("state") or "-",
                              p.get("endpoint") or "-", _ago(p.get("latest_handshake")),
                              _size(p.get("rx") or 0), _size(p.get("tx") or 0), p.get("reason") or ""))


@main.command()
@click.argument("iface", required=False)
@click.pass_obj
def reload(obj, iface):
    """Re-read the configuration of a running helper (SIGHUP)."""
    _call(obj, "reload", iface)
    click.echo("reload requested")


@main.command("rotate-key")
@click.argument("iface", required=False)
@click.pass_obj
def rotate_key(obj, iface):
    """Generate a new key pair and re-advertise it (SIGUSR1)."""
    _call(obj, "rotate_key", iface)
    click.echo("key rotation requested")


def _lab_shipped() -> bool:
    return os.path.isdir(os.path.join(os.path.dirname(__file__), "lab"))   # not in router packages


def _attach_lab() -> None:
    try:
        from .lab.cli import lab
    except ImportError:  # the lab is not shipped in router packages
        return
    main.add_command(lab)
