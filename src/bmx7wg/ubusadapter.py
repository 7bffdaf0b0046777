"""The ubus object `bmx7wg`, served through the python ubus binding (python3-ubus 0.1.3).

Facts about the binding that shape this module (read from its ubus_python.c):
- One connection per process: the module keeps a single global context; `connect()` on a
  connected module raises. So this module keeps one `Ubus` per process (`current()`), and
  netifd.py sends its calls through it too.
- Method signatures are enforced strictly before our code runs: every key sent must be
  declared, every declared key must be sent, and types must match — otherwise the caller
  gets UBUS_STATUS_INVALID_ARGUMENT. An optional argument cannot be expressed, so api.py
  declares `interface` and treats "" as "not given".
- A handler that raises makes the caller see UBUS_STATUS_UNKNOWN_ERROR; we reply
  {"error": "..."} instead.
- `ubus.add` raises RuntimeError when the object name is taken. Several helpers (one per
  bmx7wg interface) race for `bmx7wg`; the winner serves all interfaces (api.py is
  stateless), the others retry every RETRY seconds so the object survives its owner.
- `ubus.loop(t > 0)` runs uloop with the GIL released; a signal is only handled by Python
  after it returns. We only ever call `loop(0)` (handle what is pending, no uloop_run).

When the binding is not installed or ubusd cannot be reached, the helper runs without the
API and says so once; connecting is retried every RETRY seconds.
"""

from __future__ import annotations

import time

from .log import log


OBJECT = "bmx7wg"
RETRY = 30.0                  # seconds between registration / reconnection attempts
SLICE = 0.02                  # seconds between loop(0) rounds inside loop(ms)

# api.METHODS type names -> python-ubus BLOBMSG_TYPE_* constant names.
TYPE_NAMES = {
    "string": "BLOBMSG_TYPE_STRING",
    "int": "BLOBMSG_TYPE_INT32", "int32": "BLOBMSG_TYPE_INT32",
    "int64": "BLOBMSG_TYPE_INT64",
    "bool": "BLOBMSG_TYPE_BOOL", "boolean": "BLOBMSG_TYPE_BOOL",
    "table": "BLOBMSG_TYPE_TABLE", "object": "BLOBMSG_TYPE_TABLE",
    "array": "BLOBMSG_TYPE_ARRAY",
    "double": "BLOBMSG_TYPE_DOUBLE",
    "any": "BLOBMSG_TYPE_UNSPEC",
}

_said: set[str] = set()
_current: Ubus | None = None


def _once(key: str, msg: str, *args) -> None:
    if key not in _said:
        _said.add(key)
        log.info(msg, *args)


def load_module():
    """The python ubus binding, or None (logged once) when python3-ubus is not installed."""
    try:
        import ubus  # noqa: PLC0415 - optional dependency
    except ImportError:
        _once("no-module", "python ubus binding not installed: running without the ubus API")
        return None
    return ubus


def signature(module, args: dict) -> dict:
    """{"interface": "string"} -> {"interface": module.BLOBMSG_TYPE_STRING}."""
    out = {}
    for name, type_name in args.items():
        const = TYPE_NAMES.get(str(type_name).lower())
        if const is None:
            raise ValueError(f"ubus signature: argument '{name}' has unknown type '{type_name}'")
        out[str(name)] = getattr(module, const)
    return out


class Ubus:
    """This process's ubus connection, and the `bmx7wg` object once we hold it."""

    def __init__(self, module, socket_path: str | None = None, clock=time.monotonic):
        self.module = module
        self.socket_path = socket_path
        self.clock = clock
        self.registered = False
        self.wanted: tuple | None = None        # (name, methods, handler) to register
        self.next_try = 0.0
        self._was_down = False

    # ---- connection ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        try:
            return bool(self.module.get_connected())
        except Exception:
            return False

    def connect(self) -> bool:
        if self.connected:
            return True
        self.next_try = self.clock() + RETRY
        try:
            if self.socket_path:
                self.module.connect(socket_path=self.socket_path)
            else:
                self.module.connect()
        except Exception as exc:  # IOError "Failed to connect to the ubus socket ..."
            _once("no-ubusd", "ubus not reachable (%s): running without the ubus API, retrying every %d s",
                  str(exc).strip()[:120], RETRY)
            self._was_down = True
            return False
        if self._was_down:
            log.info("ubus connected")
            self._was_down = False
        self.registered = False
        return True

    def _drop(self) -> None:
        """The connection died (ubusd restarted): forget it; poll() reconnects."""
        try:
            self.module.disconnect(deregister=False)
        except Exception:
            pass
        self.registered = False
        self._was_down = True
        self.next_try = self.clock()

    def close(self) -> None:
        global _current
        if self.connected:
            try:
                self.module.disconnect()
            except Exception:
                pass
        self.registered = False
        if _current is self:
            _current = None

    # ---- the object -----------------------------------------------------------------------
    def register(self, methods: dict, handler, name: str = OBJECT) -> bool:
        """Serve `methods` ({method: {arg: type name}}) on object `name`.

        handler(method, args) -> dict is called for every valid request. Returns True when
        the object is ours now; otherwise poll() retries every RETRY seconds."""
        self.wanted = (name, {m: dict(a) for m, a in methods.items()}, handler)
        for args in self.wanted[1].values():
            signature(self.module, args)        # unknown type names fail here, loudly
        return self._add()

    def _add(self) -> bool:
        name, methods, handler = self.wanted
        self.next_try = self.clock() + RETRY
        if not self.connected:
            return False
        table = {method: {"method": self._callback(method, handler),
                          "signature": signature(self.module, args)}
                 for method, args in methods.items()}
        try:
            self.module.add(name, table)
        except RuntimeError as exc:
            # Usually another helper serves it; it may also mean the connection is gone.
            log.debug("ubus object %s not registered: %s", name, exc)
            if not self._alive():
                self._drop()
            return False
        self.registered = True
        log.info("ubus object %s registered", name)
        return True

    @staticmethod
    def _callback(method: str, handler):
        def callback(request, data):
            try:
                reply = handler(method, data if isinstance(data, dict) else {})
                if not isinstance(reply, dict):
                    raise TypeError(f"handler returned {type(reply).__name__}")
            except Exception as exc:  # keep serving; the caller gets a readable error
                log.error("ubus %s: %s: %s", method, type(exc).__name__, exc)
                reply = {"error": f"internal error in '{method}'"}
            request.reply(reply)
        return callback

    def _alive(self) -> bool:
        try:
            self.module.objects(OBJECT)
            return True
        except Exception:
            return False

    def _owned_object_present(self) -> bool:
        try:
            return bool(self.module.objects(self.wanted[0]))
        except Exception:
            return False

    # ---- the loop ----------------------------------------------------------------------------
    def poll(self, timeout_ms: int = 0) -> None:
        """Serve pending requests; every RETRY s reconnect / re-register / check health."""
        now = self.clock()
        if now >= self.next_try:
            self._maintain()
        if self.connected:
            try:
                self.module.loop(0)
            except Exception as exc:
                log.warning("ubus: %s", exc)
                self._drop()
        if timeout_ms > 0:
            end = now + timeout_ms / 1000.0
            while self.clock() < end:
                time.sleep(min(SLICE, max(0.0, end - self.clock())))
                if self.connected:
                    self.module.loop(0)

    loop = poll

    def _maintain(self) -> None:
        self.next_try = self.clock() + RETRY
        if not self.connected and not self.connect():
            return
        if self.wanted is None:
            return
        if self.registered and not self._owned_object_present():
            log.info("ubus object %s lost (ubusd restarted?): reconnecting", self.wanted[0])
            self._drop()
            if not self.connect():
                return
        if not self.registered:
            self._add()

    # ---- outgoing ----------------------------------------------------------------------------
    def call(self, obj: str, method: str, args: dict, timeout_ms: int = 5000) -> list:
        """ubus call; raises RuntimeError like the binding (object missing, status != 0)."""
        if not self.connected:
            raise RuntimeError("not connected to ubus")
        return self.module.call(obj, method, args, timeout_ms)

    def send_event(self, event: str, data: dict) -> bool:
        if not self.connected:
            return False
        try:
            return bool(self.module.send(event, data))
        except Exception as exc:
            log.warning("ubus event %s: %s", event, exc)
            return False


def current() -> Ubus | None:
    """The process's connection, if connect()/serve() made one."""
    return _current


def connect(socket_path: str | None = None, module=None, clock=time.monotonic) -> Ubus | None:
    """The process's one ubus connection (created on first use); None without the binding.

    The returned object may be disconnected (ubusd absent); poll() keeps retrying."""
    global _current
    if _current is not None:
        return _current
    module = module if module is not None else load_module()
    if module is None:
        return None
    bus = Ubus(module, socket_path, clock)
    bus.connect()
    _current = bus
    return bus


def serve(rundir: str, module=None, socket_path: str | None = None, clock=time.monotonic) -> Ubus | None:
    """Connect and try to register `bmx7wg` with api.py's methods, answering from `rundir`."""
    from . import api

    bus = connect(socket_path, module, clock)
    if bus is None:
        return None
    bus.register(api.METHODS, lambda method, args: api.handle(method, args, rundir))
    return bus
