"""On-demand start: a watcher with ``on_demand`` starts on the first
connection to one of its sockets (a reader on the daemon's listening fd,
no polling); the connection waits in the accept queue for the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from .sockets import Socket

log = logging.getLogger("bigtop.arbiter")


class OnDemand:
    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: Mapping[str, Socket],
                 start: Callable[[str], None]):
        self.loop = loop
        self.sockets = sockets
        self.start = start  # called with the watcher's name on its first connection
        self._armed: dict[int, str] = {}  # listening fd -> watcher name

    def arm(self, watcher: str, names: list[str]) -> bool:
        """Wait for a first connection on these sockets; False if that
        cannot be (an so_reuseport socket: the daemon's copy does not listen)."""
        if any(self.sockets[name].spec.so_reuseport for name in names):
            log.warning("%s: on_demand does not apply to so_reuseport sockets, starting it",
                        watcher)
            return False
        for name in names:
            fd = self.sockets[name].fd
            if fd in self._armed:
                continue
            self._armed[fd] = watcher
            self.loop.add_reader(fd, self._connection, fd)
        log.info("%s: waiting for a first connection", watcher)
        return True

    def _connection(self, fd: int) -> None:
        name = self._armed.get(fd)
        for other in [f for f, n in self._armed.items() if n == name]:
            self.loop.remove_reader(other)
            del self._armed[other]
        if name is not None:
            self.start(name)

    def disarm(self) -> None:
        for fd in self._armed:
            self.loop.remove_reader(fd)
        self._armed.clear()
