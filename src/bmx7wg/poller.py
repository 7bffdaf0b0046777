"""Which of the helper's few descriptors are readable: select.poll, each fd with a name.

selectors.DefaultSelector would do it over epoll; that module is 0.06-0.09 MB of the
helper's memory, for a loop over three or four descriptors.
"""

from __future__ import annotations

import math
import select


class Poller:
    def __init__(self) -> None:
        self._poll = select.poll()
        self._names: dict[int, str] = {}

    def register(self, fd: int, name: str) -> None:
        self._poll.register(fd, select.POLLIN)
        self._names[fd] = name

    def unregister(self, fd: int) -> None:
        self._poll.unregister(fd)
        del self._names[fd]

    def ready(self, timeout: float) -> list[str]:
        """Names of the descriptors readable (or hung up, or in error: a read says which)
        within `timeout` seconds, rounded up to whole ms as selectors does, so a wait
        shorter than 1 ms does not spin."""
        ms = math.ceil(timeout * 1000) if timeout > 0 else 0
        return [self._names[fd] for fd, _ in self._poll.poll(ms) if fd in self._names]
