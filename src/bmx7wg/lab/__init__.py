"""Virtual mesh test bed: one network namespace per router, veth links, a bmx7
emulator (or the real bmx7) per node and our helper on top, like MLC for bmx7.

emulator.py   bmx7's sms + json file interface and control socket, per node
bmx7_client.py  the `bmx7 -c ...` client shim the lab installs as `bmx7`
bmx7fmt.py    json/show renderings copied from real bmx7 output
netns.py      ip netns / veth / route / process helpers
mesh.py       the lab itself: up/down and node operations (state in <workdir>/lab.json)
cli.py        click group `lab`
"""
