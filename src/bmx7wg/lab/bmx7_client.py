"""`bmx7` client shim for the lab: speaks to the emulator's <runtimeDir>/sock.

The lab copies this file, stdlib only, as an executable named `bmx7` into a
node's bin dir (first on that node's PATH), so the helper runs `bmx7 -c ...`
exactly as on a router:

    bmx7 [runtimeDir=DIR] -c syncSms=NAME | syncSms=-NAME | show=status | jshow=originators ...

Like the real client it exits 1 and names the errno ("Connection refused" when
the socket file is stale) when no daemon listens.
"""

import json
import os
import socket
import sys

DEFAULT_RUNTIME_DIR = "/var/run/bmx7"   # the lab rewrites this line per node


def recv_all(sock) -> bytes:
    """Everything the peer sends until it shuts its side (the emulator's end uses it too)."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def parse(argv):
    runtime_dir = DEFAULT_RUNTIME_DIR
    commands = None
    for arg in argv:
        if commands is not None:
            commands.append(arg)
        elif arg in ("-c", "--connect"):
            commands = []
        elif arg.lstrip("-").startswith("runtimeDir="):
            runtime_dir = arg.split("=", 1)[1]
        else:
            return None, None, arg
    return runtime_dir, commands, None


def main(argv=None):
    runtime_dir, commands, bad = parse(sys.argv[1:] if argv is None else argv)
    if bad is not None or commands is None:
        sys.stderr.write(f"bmx7 (lab shim): only the client mode is emulated: bmx7 [runtimeDir=DIR] -c CMD... "
                         f"(got {bad or 'no -c'})\n")
        return 1
    path = os.path.join(runtime_dir, "sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(path)
    except OSError as exc:
        sys.stderr.write(f"[{os.getpid() % 1000:d} {1:8d}] ERROR : can't connect to unix socket '{path}': "
                         f"{os.strerror(exc.errno) if exc.errno else exc} ! Is bmx7 running on this host ?\n")
        return 1
    try:
        sock.sendall(json.dumps(commands).encode())
        sock.shutdown(socket.SHUT_WR)
        reply = json.loads(recv_all(sock))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"bmx7 (lab shim): no reply from '{path}': {exc}\n")
        return 1
    finally:
        sock.close()
    sys.stdout.write(reply.get("out", ""))
    sys.stderr.write(reply.get("err", ""))
    return int(reply.get("rc", 1))


if __name__ == "__main__":
    sys.exit(main())
