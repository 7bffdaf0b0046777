"""bmx7-wgtun: automatic WireGuard tunnels between the nodes of a BMX7 mesh."""

__version__ = "0.1.0"
