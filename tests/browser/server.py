"""HTTP server for the browser tests: our harness, our real LuCI files, and `/ubus`.

`/ubus` speaks uhttpd-mod-ubus JSON-RPC: `{"jsonrpc":"2.0","id":1,"method":"call",
"params":[sid, object, method, args]}` → `{"jsonrpc":"2.0","id":1,"result":[0, {...}]}`.
The `bmx7wg` object is answered by api.handle() over a real state directory, with the
checks rpcd and python-ubus apply: session id, our ACL file (acl.d), and the declared
argument signature (api.METHODS: every declared key, nothing else, strings). `uci get/set/delete` work on an in-memory `network`
config, as luci-mod-network's ACL would allow for the interface form.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bmx7wg import api

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = ROOT / "luci-app-bmx7-wgtun"
RESOURCES = APP / "htdocs" / "luci-static" / "resources"
ACL_FILE = APP / "root" / "usr" / "share" / "rpcd" / "acl.d" / "luci-app-bmx7-wgtun.json"
HARNESS_FILES = {"luci_shim.js": "text/javascript", "page.js": "text/javascript", "harness.css": "text/css"}

UBUS_INVALID_ARGUMENT, UBUS_METHOD_NOT_FOUND = 2, 3


def acl_methods(path: Path = ACL_FILE) -> set[str]:
    """bmx7wg methods our ACL group grants (read + write)."""
    groups = json.loads(path.read_text())
    granted = set()
    for group in groups.values():
        for mode in ("read", "write"):
            granted.update(group.get(mode, {}).get("ubus", {}).get("bmx7wg", []))
    return granted


class Site:
    """What the fake router serves; tests read and change it between page loads."""

    def __init__(self, rundir: str, network: dict, sessionid: str):
        self.rundir = rundir
        self.network = network            # {section: {".type": "interface", "proto": ..., option: value}}
        self.sessionid = sessionid
        self.ubus_object_up = True        # False: no helper registered `bmx7wg`
        self.ubus_status = 0              # else every bmx7wg call answers with this ubus status code
        self.granted = acl_methods()
        self.bodies: list[str] = []       # every /ubus response, for leak checks
        self.uci_writes: list[tuple] = []
        self.lock = threading.Lock()

    def uci_values(self, config: str) -> dict:
        if config != "network":
            return {}
        out = {}
        for index, (name, options) in enumerate(self.network.items()):
            out[name] = {".anonymous": False, ".type": options.get(".type", "interface"), ".name": name,
                         ".index": index, **{k: v for k, v in options.items() if not k.startswith(".")}}
        return out

    def call(self, sid, obj, method, args):
        """(result, error) of one ubus call."""
        if sid != self.sessionid:
            return None, {"code": -32002, "message": "Access denied"}
        if obj == "uci":
            return self.call_uci(method, args or {}), None
        if obj != "bmx7wg" or not self.ubus_object_up:
            return None, {"code": -32000, "message": "Object not found"}
        if method not in self.granted:
            return None, {"code": -32002, "message": "Access denied"}
        if self.ubus_status:
            return [self.ubus_status], None
        signature = api.METHODS.get(method)
        if signature is None:
            return [UBUS_METHOD_NOT_FOUND], None
        # python-ubus: exactly the declared keys, each of the declared type
        if not isinstance(args, dict) or set(args) != set(signature) or not all(isinstance(v, str) for v in args.values()):
            return [UBUS_INVALID_ARGUMENT], None
        return [0, api.handle(method, args, self.rundir)], None

    def call_uci(self, method, args):
        config = args.get("config")
        if method == "get":
            return [0, {"values": self.uci_values(config)}]
        section = self.network.get(args.get("section")) if config == "network" else None
        if section is None:
            return [4]   # UBUS_STATUS_NOT_FOUND
        with self.lock:
            if method == "set":
                section.update(args.get("values", {}))
                self.uci_writes.append(("set", args["section"], dict(args.get("values", {}))))
                return [0]
            if method == "delete":
                for option in args.get("options", []):
                    section.pop(option, None)
                self.uci_writes.append(("delete", args["section"], list(args.get("options", []))))
                return [0]
        return [UBUS_METHOD_NOT_FOUND]


class Handler(BaseHTTPRequestHandler):
    site: Site

    def log_message(self, *args):
        pass

    def send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/", "/harness.html"):
            return self.send(200, (HERE / "harness.html").read_bytes(), "text/html; charset=utf-8")
        if path.startswith("/harness/") and path[9:] in HARNESS_FILES:
            return self.send(200, (HERE / path[9:]).read_bytes(), HARNESS_FILES[path[9:]])
        if path.startswith("/luci-static/resources/"):
            target = (RESOURCES / path[len("/luci-static/resources/"):]).resolve()
            if RESOURCES in target.parents and target.is_file():
                return self.send(200, target.read_bytes(), "text/javascript")
        self.send(404, b"not found", "text/plain")

    def do_POST(self):
        if self.path.split("?", 1)[0].rstrip("/") != "/ubus":
            return self.send(404, b"not found", "text/plain")
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        replies = [self.answer(r) for r in request] if isinstance(request, list) else self.answer(request)
        body = json.dumps(replies)
        self.site.bodies.append(body)
        self.send(200, body.encode(), "application/json")

    def answer(self, req: dict) -> dict:
        reply = {"jsonrpc": "2.0", "id": req.get("id")}
        params = req.get("params") or []
        if req.get("method") != "call" or len(params) != 4:
            reply["error"] = {"code": -32600, "message": "Invalid request"}
            return reply
        result, error = self.site.call(*params)
        if error:
            reply["error"] = error
        else:
            reply["result"] = result
        return reply


class Server:
    def __init__(self, site: Site):
        handler = type("BoundHandler", (Handler,), {"site": site})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
