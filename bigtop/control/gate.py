"""How many clients an endpoint takes at once.

Every connection to an endpoint holds a file descriptor in the daemon,
taken by libzmq's I/O thread as it accepts, and libzmq aborts the whole
process when an ipc:// accept finds none left. So each endpoint counts its
connections (a ZeroMQ socket monitor: accepted, disconnected) and stops
listening once it holds ``max_connections``: libzmq's unbind ends the
connections the endpoint had accepted too, so the flood goes with it and
the ZeroMQ clients connect again by themselves when it listens again,
``PAUSE_S`` later (a request in flight is lost; its client times out or
sends again). A TCP endpoint also stops once
the daemon's free descriptors run low (a quarter of the limit left), and
listens again once half are free. The ipc:// endpoints stay open while
the processes take every descriptor they may (their reserve is kept for
the daemon, see bigtop.core.limits): the local operator keeps control. A TCP
connection that never finishes its handshake is dropped after
``HANDSHAKE_S``, so a flood of them closes a TCP endpoint for about that
long, while the clients already connected, the other endpoints and the
processes (which have their own reserve, see bigtop.core.limits) go on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

import zmq

from ..core import limits

log = logging.getLogger("bigtop.control")

HANDSHAKE_S = 10  # a TCP client has this long to finish its (CurveZMQ) handshake
PAUSE_S = 1.0  # closed: listen again after this (or look again, while descriptors are short)
_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED


def fd_margin(limit: int) -> int:
    """Free descriptors an endpoint stops listening at: above the spawns'
    reserve, by enough for what libzmq accepts before the loop hears of it
    (a listen backlog's worth at once, and more)."""
    return max(2 * limits.reserve(limit), limit // 4)


class Gate:
    """Counts one socket's connections and closes or opens its endpoint."""

    def __init__(self, sock: zmq.Socket[bytes], endpoint: str, most: int,
                 listen: Callable[[zmq.Socket[bytes], str], None]):
        self.sock = sock
        self.endpoint = endpoint
        self.most = most
        self.listen = listen
        self.connected = 0
        self.closed = False  # not listening, for now
        self._closed_at = 0.0
        self.loop = asyncio.get_running_loop()
        self.monitor = sock.get_monitor_socket(_EVENTS)
        self.monitor.linger = 0
        self._fd = int(self.monitor.getsockopt(zmq.FD))
        self._timer: asyncio.TimerHandle | None = None
        self.loop.add_reader(self._fd, self._events)
        self.loop.call_soon(self._events)  # the fd signals only once ZMQ_EVENTS was read

    def close(self) -> None:
        """Before the socket closes."""
        if self._timer is not None:
            self._timer.cancel()
        self.loop.remove_reader(self._fd)
        # Not disable_monitor(): it blocks while events wait unread; the
        # socket's close ends the monitor.
        self.monitor.close(linger=0)

    def _events(self) -> None:
        monitor = self.monitor
        while int(monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            # A monitor event's first frame: its id (uint16, native order),
            # then a uint32 value. Read here: zmq.utils.monitor would bring
            # zmq.asyncio into the daemon for this one field.
            event = int.from_bytes(frames[0][:2], sys.byteorder)
            if event == zmq.EVENT_ACCEPTED:
                self.connected += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.connected = max(0, self.connected - 1)
        self.judge()

    def _shortage(self, opening: bool) -> str | None:
        """Why the endpoint must not take more clients, if it must not, in
        the log's words. Listening again asks for more room than staying
        open does."""
        if self.connected >= self.most:
            return (f"{self.connected} clients connected, the most it takes "
                    f"([circus] max_connections = {self.most})")
        room = limits.fd_room() if self.endpoint.startswith("tcp://") else None
        if room is not None:
            free, limit = room
            if free < fd_margin(limit) * (2 if opening else 1):
                return (f"only {free} file descriptors free under the limit of "
                        f"{limit} (RLIMIT_NOFILE), kept for the processes")
        return None

    def _tick(self) -> None:
        self._timer = None
        self.judge()

    def judge(self) -> None:
        if not self.closed:
            shortage = self._shortage(opening=False)
            if shortage is not None:
                self._close(shortage)
            return
        if self.loop.time() - self._closed_at < PAUSE_S:
            self._later(self._closed_at + PAUSE_S - self.loop.time())
            return
        shortage = self._shortage(opening=True)
        if shortage is not None:  # still short of descriptors
            self._later(PAUSE_S)
            return
        try:
            self.listen(self.sock, self.endpoint)
        except (OSError, zmq.ZMQError):  # the unbind is not done yet (EADDRINUSE)
            self._later(0.05)
            return
        log.info("%s takes clients again", self.endpoint)
        self.closed = False

    def _close(self, why: str) -> None:
        try:
            self.sock.unbind(self.endpoint)
        except zmq.ZMQError as err:
            log.error("%s: cannot stop listening: %s", self.endpoint, err)
            return
        log.warning("%s takes no client for now: %s; its clients are dropped (ZeroMQ "
                    "clients connect again by themselves), it listens again in %gs, or "
                    "once descriptors are free", self.endpoint, why, PAUSE_S)
        self.connected = 0  # the unbind ended them, and says nothing of each
        self.closed = True
        self._closed_at = self.loop.time()
        self._later(PAUSE_S)

    def _later(self, delay: float) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(delay, self._tick)
