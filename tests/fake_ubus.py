"""A stand-in for the python ubus binding (python3-ubus 0.1.3), for tests.

Behaviour copied from its ubus_python.c, because that is what the helper meets on a router:
- module-global single connection: connect() twice raises RuntimeError("You are already
  connected to ubus."), calls while disconnected raise RuntimeError("You are not connected...");
  connect() to a missing ubusd raises IOError("Failed to connect to the ubus socket ...");
- add(name, {method: {"signature": {arg: type}, "method": callable}}) validates the table
  exactly (two keys, int types in range, callables) -> TypeError; a taken name -> RuntimeError;
- a request is checked by test_policies(): every key sent must be declared, every declared
  key must be present, types must match (UNSPEC matches anything) -> INVALID_ARGUMENT;
  the callable gets (handler, data) and answers with handler.reply(dict), which goes through
  json.dumps; an exception in it -> UNKNOWN_ERROR;
- requests wait in the "socket" until the owner calls loop(0);
- JSON values get blobmsg types like blobmsg_add_json_element (int32 when it fits, else int64).

A FakeBus is ubusd: several FakeUbusModule instances on one bus are separate processes.
"""

from __future__ import annotations

import json
import types

BLOBMSG_TYPE_UNSPEC = 0
BLOBMSG_TYPE_ARRAY = 1
BLOBMSG_TYPE_TABLE = 2
BLOBMSG_TYPE_STRING = 3
BLOBMSG_TYPE_INT64 = 4
BLOBMSG_TYPE_INT32 = 5
BLOBMSG_TYPE_INT16 = 6
BLOBMSG_TYPE_INT8 = 7
BLOBMSG_TYPE_BOOL = BLOBMSG_TYPE_INT8
BLOBMSG_TYPE_DOUBLE = 8
BLOBMSG_TYPE_LAST = BLOBMSG_TYPE_DOUBLE

STATUS_OK = 0
STATUS_INVALID_ARGUMENT = 2
STATUS_METHOD_NOT_FOUND = 3
STATUS_NOT_FOUND = 4
STATUS_UNKNOWN_ERROR = 9


def blob_type(value) -> int:
    if isinstance(value, bool):
        return BLOBMSG_TYPE_BOOL
    if isinstance(value, int):
        return BLOBMSG_TYPE_INT32 if -2**31 <= value < 2**31 else BLOBMSG_TYPE_INT64
    if isinstance(value, float):
        return BLOBMSG_TYPE_DOUBLE
    if isinstance(value, str):
        return BLOBMSG_TYPE_STRING
    if isinstance(value, dict):
        return BLOBMSG_TYPE_TABLE
    if isinstance(value, list):
        return BLOBMSG_TYPE_ARRAY
    return BLOBMSG_TYPE_UNSPEC


def test_policies(policy: dict, data: dict) -> bool:
    """ubus_python.c test_policies(), line by line."""
    passed = 0
    for name, value in data.items():
        if name not in policy:
            return False
        passed += 1
        if policy[name] != BLOBMSG_TYPE_UNSPEC and policy[name] != blob_type(value):
            return False
    return passed == len(policy)


class Request:
    """A call waiting in the owner's socket; filled in when the owner loops."""

    def __init__(self, obj, method, data):
        self.obj, self.method, self.data = obj, method, data
        self.status: int | None = None
        self.replies: list = []


class FakeBus:
    """ubusd."""

    def __init__(self):
        self.up = True
        self.generation = 0                      # bumps when ubusd stops: old contexts die
        self.objects: dict[str, tuple] = {}     # name -> (owner module, methods table)
        self.events: list[tuple[str, dict]] = []
        self.calls: list[tuple[str, str, dict]] = []     # calls to objects served by the test
        self.services: dict[str, callable] = {}          # obj -> fn(method, data) -> reply|None

    def request(self, obj: str, method: str, data: dict) -> Request:
        """A client (`ubus call`) sends a request; it is served at the owner's next loop(0)."""
        json.dumps(data)
        req = Request(obj, method, json.loads(json.dumps(data)))
        if obj not in self.objects:
            req.status = STATUS_NOT_FOUND
            return req
        owner, _ = self.objects[obj]
        owner._inbox.append(req)
        return req

    def stop(self):
        """ubusd exits: every object is gone, every client's context is dead."""
        self.objects.clear()
        self.generation += 1
        self.up = False

    def start(self):
        self.up = True

    def restart(self):
        self.stop()
        self.start()


class Handler:
    def __init__(self, req: Request):
        self._req = req

    def reply(self, data):
        if self._req is None:
            raise RuntimeError("Handler is not linked to a call response.")
        text = json.dumps(data)                 # TypeError for non-JSON values, like the C code
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise TypeError("Failed to create json for ubus.")
        self._req.replies.append(parsed)
        return True


class FakeUbusModule(types.ModuleType):
    """One process's `import ubus`."""

    def __init__(self, bus: FakeBus, socket_path_ok: bool = True):
        super().__init__("ubus")
        self._bus = bus
        self._ctx = None
        self._gen = -1                           # the ubusd generation we connected to
        self._socket_path = None
        self._inbox: list[Request] = []
        self._mine: list[str] = []
        self.loops = 0
        for name, value in globals().items():
            if name.startswith("BLOBMSG_TYPE_"):
                setattr(self, name, value)

    # -- connection
    def _check(self):
        if self._ctx is None:
            raise RuntimeError("You are not connected to ubus.")

    def _alive(self):
        """Calls on a context whose ubusd went away fail like libubus: Connection failed."""
        if self._gen != self._bus.generation:
            raise RuntimeError("ubus error occured: Connection failed")

    def connect(self, socket_path="/var/run/ubus/ubus.sock"):
        if self._ctx is not None:
            raise RuntimeError("You are already connected to ubus.")
        if not self._bus.up:
            raise IOError(f"Failed to connect to the ubus socket '{socket_path}'\n")
        self._ctx = self._bus
        self._gen = self._bus.generation
        self._socket_path = socket_path
        return True

    def disconnect(self, deregister=True):
        self._check()
        if deregister and self._gen == self._bus.generation:
            for name in self._mine:
                if self._bus.objects.get(name, (None,))[0] is self:
                    del self._bus.objects[name]
        self._mine = []
        self._inbox = []
        self._ctx = None
        self._socket_path = None

    def get_connected(self):
        return self._ctx is not None

    def get_socket_path(self):
        return self._socket_path

    # -- objects
    def add(self, object_name, methods):
        self._check()
        if not isinstance(object_name, str) or not _valid_methods(methods):
            raise TypeError("Incorrect method arguments!")
        self._alive()
        if object_name in self._bus.objects:
            raise RuntimeError("ubus error occured: Invalid argument")
        self._bus.objects[object_name] = (self, methods)
        self._mine.append(object_name)

    def objects(self, path="*"):
        self._check()
        self._alive()
        out = {}
        for name, (_, methods) in self._bus.objects.items():
            if path in ("*", name):
                out[name] = {m: dict(v["signature"]) for m, v in methods.items()}
        for name in self._bus.services:
            if path in ("*", name):
                out[name] = {}
        return out

    def loop(self, timeout=-1):
        self._check()
        self.loops += 1
        inbox, self._inbox = self._inbox, []
        if self._gen != self._bus.generation:
            return None                           # EOF on a dead socket: nothing to serve
        for req in inbox:
            self._serve(req)
        return None

    def _serve(self, req: Request):
        entry = self._bus.objects.get(req.obj)
        if entry is None or entry[0] is not self:
            req.status = STATUS_NOT_FOUND
            return
        methods = entry[1]
        if req.method not in methods:
            req.status = STATUS_UNKNOWN_ERROR     # the C code: method not in obj->methods
            return
        if not test_policies(methods[req.method]["signature"], req.data):
            req.status = STATUS_INVALID_ARGUMENT
            return
        handler = Handler(req)
        try:
            methods[req.method]["method"](handler, req.data)
            req.status = STATUS_OK
        except Exception:
            req.status = STATUS_UNKNOWN_ERROR
        handler._req = None

    # -- client side
    def send(self, event, data):
        self._check()
        self._alive()
        json.dumps(data)
        if not isinstance(event, str):
            raise TypeError("event must be str")
        self._bus.events.append((event, json.loads(json.dumps(data))))
        return True

    def call(self, object, method, arguments, timeout=0):
        self._check()
        if timeout < 0:
            raise TypeError("timeout can't be lower than 0")
        self._alive()
        data = json.loads(json.dumps(arguments))
        if object in self._bus.services:
            self._bus.calls.append((object, method, data))
            reply = self._bus.services[object](method, data)
            if isinstance(reply, int):
                raise RuntimeError(f"ubus error occured: status {reply}")
            return [] if reply is None else [reply]
        if object not in self._bus.objects:
            raise RuntimeError(f"Object '{object}' was not found.")
        raise RuntimeError("calling another fake process synchronously is not modelled")


def _valid_methods(methods) -> bool:
    if not isinstance(methods, dict):
        return False
    for name, value in methods.items():
        if not isinstance(name, str) or not isinstance(value, dict) or len(value) != 2:
            return False
        sig = value.get("signature")
        if not isinstance(sig, dict):
            return False
        for arg, typ in sig.items():
            if not isinstance(arg, str) or isinstance(typ, bool) or not isinstance(typ, int):
                return False
            if typ < 0 or typ > BLOBMSG_TYPE_LAST:
                return False
        if not callable(value.get("method")):
            return False
    return True
