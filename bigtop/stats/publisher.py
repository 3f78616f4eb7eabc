"""The stats endpoint: an XPUB socket that publishes ``stat.*`` topics with
Circus's payloads (what circusd-stats sent, so ``circus-top`` works).

Being an XPUB, it tells the daemon which topic prefixes are subscribed: the
sampler runs only while some subscription matches a ``stat.`` topic, and
only for what it matches. The socket is plain (not asyncio) ZeroMQ, driven
by the loop through its notification fd, as the control server's are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import zmq

from ..control.protocol import is_sync, sync_reply
from .sampler import Message, Sampler

log = logging.getLogger("bigtop.stats")

CHUNK = 256  # messages sent per loop callback: a big round does not hold the loop
SNDHWM = 20_000  # messages queued per subscriber (20 rounds of 1,000 processes)

_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
_NOBLOCK, _MORE = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)


class StatsPublisher:
    def __init__(self, sampler: Sampler, sock: zmq.Socket[Any]):
        """``sock``: a bound XPUB socket, which the caller closes."""
        self.sampler = sampler
        self.sock: zmq.Socket[Any] | None = sock
        self.loop = asyncio.get_running_loop()
        self.prefixes: set[str] = set()
        self._backlog: list[Message] = []
        self._sending = False
        self._fd = int(sock.getsockopt(zmq.FD))

    def start(self) -> None:
        self.sampler.publish = self.send
        self.loop.add_reader(self._fd, self._subscriptions)
        self.loop.call_soon(self._subscriptions)

    def close(self) -> None:
        if self.sock is None:
            return
        self.loop.remove_reader(self._fd)
        self.sampler.close()
        self._backlog.clear()
        self.sock = None

    def _readable(self) -> bool:
        return self.sock is not None and bool(int(self.sock.getsockopt(_EVENTS)) & _POLLIN)

    def _subscriptions(self) -> None:
        """Subscribe (1 + prefix) and unsubscribe (0 + prefix) messages; the
        XPUB passes on only the first subscription to a prefix and the last
        unsubscription (including a subscriber's disconnection)."""
        changed = False
        while self.sock is not None and self._readable():
            try:
                message = self.sock.recv(_NOBLOCK)
            except zmq.ZMQError:
                break
            if not message or message[0] not in (0, 1):
                continue
            if is_sync(message):
                handshake = sync_reply(message)
                if handshake is not None:
                    with contextlib.suppress(zmq.ZMQError):
                        self.sock.send_multipart(handshake, flags=zmq.NOBLOCK)
                continue
            prefix = message[1:].decode("utf-8", "replace")
            if message[0] == 1:
                self.prefixes.add(prefix)
            else:
                self.prefixes.discard(prefix)
            changed = True
        if changed:
            log.debug("stats subscriptions: %s", sorted(self.prefixes) or "none")
            self.sampler.subscriptions(set(self.prefixes))

    def send(self, messages: list[Message]) -> None:
        """Publish a round, CHUNK messages a loop callback."""
        self._backlog.extend(messages)
        if not self._sending:
            self._sending = True
            self.loop.call_soon(self._send_chunk)

    def _send_chunk(self) -> None:
        sock = self.sock
        chunk, self._backlog = self._backlog[:CHUNK], self._backlog[CHUNK:]
        if sock is not None:
            for topic, payload in chunk:
                try:
                    sock.send(topic, _MORE)
                    sock.send(payload, _NOBLOCK)
                except zmq.ZMQError:
                    pass  # a PUB socket drops what slow subscribers cannot take
        if self._backlog and sock is not None:
            self.loop.call_soon(self._send_chunk)
        else:
            self._sending = False
        if self._readable():  # sending can swallow the fd's signal
            self._subscriptions()
