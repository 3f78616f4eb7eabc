"""Following a daemon's events (or its statistics): one SUB socket, in a
sync form (``Subscriber``, for bigtopctl) and an asyncio one
(``AsyncSubscriber``, for bigtop-top, bigtop-web and plugins).

A PUB socket drops what it publishes before a subscription has reached
it, and ZeroMQ does not tell the subscriber when that is. So
``handshake()`` asks the daemon: it subscribes to ``SYNC_PREFIX + token``,
which the daemon's publishers answer with one message on that topic once
they have seen it. A connection's subscriptions travel in order, so every
one made before is in force by then, and nothing published afterwards is
missed. The answer is never handed over (nor are other subscribers'
answers, which a subscription to every topic also gets); the token is
unsubscribed once answered.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, overload

import zmq

from ..control.protocol import PRIVATE_MARK, SYNC_PREFIX
from .connect import DEFAULT_TIMEOUT, connect_socket
from .endpoints import resolve_pubsub
from .errors import CallError, Unreachable

if TYPE_CHECKING:
    import asyncio

    import zmq.asyncio

Event = tuple[str, dict[str, Any]]  # (topic, payload)

_SYNC = SYNC_PREFIX.encode()
_PRIVATE = PRIVATE_MARK.encode()


def _with_private(topics: tuple[str, ...]) -> list[bytes]:
    """The topics, and for each that a watcher's output may begin with,
    the same with the private mark (a SUB socket passes on only what it
    subscribed to): whether a watcher is private is the daemon's business."""
    out = []
    for topic in topics:
        out.append(topic.encode())
        if topic and ("stream.".startswith(topic) or topic.startswith("stream.")):
            out.append(_PRIVATE + out[-1])
    return out


class _Feed:
    """What both forms share: the socket's setup, the topics, the tokens of
    the handshakes and the decoding of ``[topic, json]`` frames."""

    def __init__(self, sock: zmq.Socket[Any], endpoint: str, key: str | None,
                 server_key: str | bytes | None, timeout: float):
        self.socket = sock
        self.endpoint = endpoint
        self.timeout = timeout
        try:
            connect_socket(sock, endpoint, key, server_key)
        except (CallError, OSError, zmq.ZMQError) as err:
            sock.close()
            raise Unreachable(f"cannot subscribe to {endpoint}: {err}") from None
        self._tokens: set[bytes] = set()  # handshakes not answered yet
        self._events: deque[Event] = deque()  # read, not handed over yet

    def subscribe(self, *topics: str) -> None:
        """Receive the events whose topic starts with one of these ("": every
        event); in force once a handshake after it has returned."""
        for topic in _with_private(topics):
            self.socket.subscribe(topic)

    def unsubscribe(self, *topics: str) -> None:
        for topic in _with_private(topics):
            self.socket.unsubscribe(topic)

    def close(self) -> None:
        self.socket.close(linger=0)

    def _ask(self) -> bytes:
        """Start a handshake: its token, which _take forgets when answered."""
        token = _SYNC + secrets.token_hex(8).encode()
        self._tokens.add(token)
        self.socket.subscribe(token)
        return token

    def _take(self, frames: list[bytes]) -> None:
        """Queue the event these frames hold, note a handshake's answer, or
        drop what is not an event (a payload that is not JSON)."""
        topic = frames[0]
        if topic.startswith(_PRIVATE):  # a private watcher's output: stream.NAME.STREAM
            topic = topic[1:]
        if topic.startswith(_SYNC):
            if topic in self._tokens:
                self._tokens.discard(topic)
                self.socket.unsubscribe(topic)
            return
        try:
            payload = json.loads(frames[1]) if len(frames) > 1 else {}
        except ValueError:
            return
        if not isinstance(payload, dict):
            payload = {"value": payload}
        self._events.append((topic.decode("utf-8", "replace"), payload))

    def _unanswered(self) -> Unreachable:
        return Unreachable(f"no answer to the subscription from {self.endpoint} within "
                           f"{self.timeout:g}s: is bigtopd running there?")


class Subscriber(_Feed):
    """The sync form: ``handshake()`` blocks, ``recv()`` waits (up to a
    timeout), iterating yields every event. ``socket`` may go in a Poller
    beside other sockets; ``recv(0)`` then takes what is there."""

    socket: zmq.Socket[bytes]

    def __init__(self, endpoint: str | None = None, *, key: str | None = None,
                 server_key: str | bytes | None = None, timeout: float = DEFAULT_TIMEOUT):
        """``endpoint``: the events or the stats endpoint (default: the
        events one, as bigtopctl finds it); ``key``/``server_key``: the
        CurveZMQ key files for tcp://; ``timeout``: what a handshake waits.
        Unreachable when the endpoint or a key is unusable."""
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        super().__init__(sock, resolve_pubsub(endpoint), key, server_key, timeout)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handshake(self) -> None:
        """Return once every subscription made so far is in force (events
        read meanwhile wait for recv); Unreachable when the publisher does
        not answer within the timeout."""
        token = self._ask()
        deadline = time.monotonic() + self.timeout
        while token in self._tokens:
            if not self._read(deadline):
                raise self._unanswered()

    @overload
    def recv(self) -> Event: ...

    @overload
    def recv(self, timeout: float | None) -> Event | None: ...

    def recv(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when none comes within timeout seconds
        (None: wait for one)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._events:
            if not self._read(deadline):
                return None
        return self._events.popleft()

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield self.recv()

    def _read(self, deadline: float | None) -> bool:
        """Read one message; False when none came by deadline."""
        if deadline is not None:
            left = max(deadline - time.monotonic(), 0.0)
            if not self.socket.poll(math.ceil(left * 1000)):
                return False
        self._take(self.socket.recv_multipart())
        return True


class AsyncSubscriber(_Feed):
    """The asyncio form: ``await handshake()``, ``await recv()`` or ``async
    for``. One task may read while others subscribe and await a handshake:
    whoever waits reads for all, so an answer or an event is never lost to
    the wrong reader."""

    socket: zmq.asyncio.Socket

    def __init__(self, endpoint: str | None = None, *, key: str | None = None,
                 server_key: str | bytes | None = None, timeout: float = DEFAULT_TIMEOUT):
        """As Subscriber's."""
        import zmq.asyncio  # here: importing asyncio would slow every CLI start

        super().__init__(zmq.asyncio.Context.instance().socket(zmq.SUB),
                         resolve_pubsub(endpoint), key, server_key, timeout)
        self._reading: asyncio.Future[None] | None = None  # done when a read is

    async def __aenter__(self) -> AsyncSubscriber:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def handshake(self) -> None:
        """As Subscriber's."""
        import asyncio

        token = self._ask()
        try:
            await asyncio.wait_for(self._answered(token), self.timeout)
        except TimeoutError:
            raise self._unanswered() from None

    async def recv(self) -> Event:
        while not self._events:
            await self._read()
        return self._events.popleft()

    def __aiter__(self) -> AsyncSubscriber:
        return self

    async def __anext__(self) -> Event:
        return await self.recv()

    async def _answered(self, token: bytes) -> None:
        while token in self._tokens:
            await self._read()

    async def _read(self) -> None:
        """Read one message, or, while another task reads, wait for it to."""
        import asyncio

        if self.socket.closed:  # by another task, while this one waited
            raise Unreachable(f"the subscription to {self.endpoint} is closed")
        if self._reading is not None:
            await asyncio.shield(self._reading)
            return
        reading = self._reading = asyncio.get_running_loop().create_future()
        try:
            self._take(await self.socket.recv_multipart())
        finally:
            self._reading = None
            reading.set_result(None)
