"""The wire to one daemon: commands on its control endpoint, events, output
lines and statistics from its publishers, all through bigtop.client (with
bigtopctl's Session), feeding one ``NodeState``.

The state follows a simple loop: ask ``status`` (with details) every
interval, or at once when an event says something changed; ask ``stats``
too unless the stats endpoint has been publishing ``stat.*`` topics. A
command that gets no reply marks the node unreachable and drops the
connection (so a queued command cannot reach a daemon that comes back
later); attempts then go on with a growing delay, cut short by any sign of
life on the event socket, whose ZeroMQ connection comes back by itself.

A cluster node's link takes its server key from the node's record (Z85
bytes) instead of the ``--server-key`` file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ...client import (
    AsyncClient,
    AsyncSubscriber,
    CallError,
    Session,
    Unreachable,
    check_ipc,
    guess_pubsub,
    reachable_host,
    timeout_message,
)
from .model import CONNECTED, NodeState

RETRY_FIRST = 0.25  # seconds before the first new attempt; doubled each time
RETRY_MAX = 4.0
SETTLE = 0.05  # after an event, wait this long for the rest of its burst

EventHandler = Callable[["NodeLink", str, dict[str, Any]], None]


def one_line(reason: str, endpoint: str) -> str:
    """A client error as one line, without the endpoint (the node's label
    shows it already)."""
    line = reason.removeprefix("bigtopctl: ").split("\n")[0]
    return line.replace(f" at {endpoint}", "").replace(f"{endpoint}: ", "").rstrip(".")


class NodeLink:
    def __init__(self, state: NodeState, session: Session, interval: float,
                 changed: Callable[[], None], on_event: EventHandler,
                 server_key: bytes | None = None):
        """``changed`` is called when the state changed; ``on_event`` with
        each ``watcher.*``, ``arbiter.*`` and ``stream.*`` message;
        ``server_key``: the daemon's public key itself (Z85), rather than
        the session's key file."""
        self.state = state
        self.session = session
        self.server_key: str | bytes | None = server_key or session.server_key
        self.interval = interval
        self.changed = changed
        self.on_event = on_event
        self.client: AsyncClient | None = None
        self.wake = asyncio.Event()
        self.events: AsyncSubscriber | None = None
        self.stats: AsyncSubscriber | None = None
        self.endpoints: dict[str, str | None] = {"events": None, "stats": None}
        self.readers: dict[str, asyncio.Task[None]] = {}
        self.stream: str | None = None  # the watcher whose output we follow
        self.task: asyncio.Task[None] | None = None

    # -- lifetime -------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        for name in self.endpoints:
            self._close_subscriber(name)
        self._drop_client()

    async def run(self) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                await self.poll()
            except Unreachable as err:
                self.lost(str(err))
                self.state.retry_at = asyncio.get_running_loop().time() + delay
                self.changed()
                await self.pause(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_FIRST
            await self.pause(self.interval)

    async def pause(self, seconds: float) -> None:
        """Sleep, unless an event comes first (then settle a moment, so
        that a burst of events makes one refresh)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
            await asyncio.sleep(SETTLE)
        self.wake.clear()

    def lost(self, reason: str) -> None:
        self._drop_client()
        first = self.state.state == CONNECTED
        self.state.lost(one_line(reason, self.session.endpoint))
        if first:
            self.changed()

    # -- commands -------------------------------------------------------------------

    async def call(self, command: str, **props: Any) -> dict[str, Any]:
        """The daemon's reply (``status: error`` included); Unreachable when
        there is none, which also marks the node unreachable."""
        import zmq

        try:
            if self.client is None:
                check_ipc(self.session.endpoint)  # nobody there: say so without a timeout
                self.client = AsyncClient(self.session.endpoint, timeout=self.session.timeout,
                                          key=self.session.key, server_key=self.server_key)
            return await self.client.call(command, raise_on_error=False, **props)
        except CallError as err:
            message = str(err)
            if "timed out" in message:
                message = timeout_message(self.session.endpoint, self.session.timeout)
            self.lost(message)
            raise Unreachable(message) from None
        except (zmq.ZMQError, OSError, ValueError) as err:  # ValueError: a bad key
            self.lost(f"{self.session.endpoint}: {err}")
            raise Unreachable(str(err)) from None
        except Unreachable as err:
            self.lost(str(err))
            raise

    def _drop_client(self) -> None:
        if self.client is not None:
            self.client.close()  # linger 0: requests still queued are dropped
            self.client = None

    async def poll(self) -> None:
        reply = await self.call("status", details=True)
        if self.state.state != CONNECTED:
            await self.greet()
        self.state.apply_status(reply)
        if not self.state.streaming(self.interval):
            stats = await self.call("stats")
            infos = stats.get("infos")
            if isinstance(infos, dict):
                self.state.apply_stats(infos)
        self.changed()

    async def greet(self) -> None:
        """On (re)connecting: the daemon's version and where it publishes."""
        version = await self.call("version")
        options = (await self.call("globaloptions")).get("options") or {}
        control = self.session.endpoint
        events = self.session.pubsub_option
        if not events:
            told = options.get("pubsub_endpoint")
            events = reachable_host(told, control) if told else guess_pubsub(control)
        told = options.get("stats_endpoint")
        await self.subscribe("events", events, ["watcher.", "arbiter."]
                             + ([self.stream_topic(self.stream)] if self.stream else []))
        await self.subscribe("stats", reachable_host(told, control) if told else None,
                             ["stat."])
        got = version.get("version")
        self.state.connected(str(got) if got and version.get("status") != "error" else None)

    # -- subscriptions --------------------------------------------------------------

    async def subscribe(self, name: str, endpoint: str | None, topics: list[str]) -> None:
        """Keep one subscriber per publisher; a new one only when the
        daemon says it moved (ZeroMQ reconnects the old one by itself).
        Its topics are in force on return, or, when the publisher did not
        answer within the timeout, once it does."""
        if endpoint == self.endpoints[name] and name in self.readers:
            return
        self._close_subscriber(name)
        self.endpoints[name] = endpoint
        if not endpoint:
            return
        sub = AsyncSubscriber(endpoint, key=self.session.key, server_key=self.server_key,
                              timeout=self.session.timeout)
        setattr(self, name, sub)
        sub.subscribe(*topics)
        with contextlib.suppress(Unreachable):
            await sub.handshake()
        handle = self._on_event if name == "events" else self._on_stat
        self.readers[name] = asyncio.get_running_loop().create_task(self._read(sub, handle))

    async def handshake(self) -> None:
        """Return once the event subscriptions made so far are in force (or
        the publisher did not answer within the timeout)."""
        if self.events is not None:
            with contextlib.suppress(Unreachable):
                await self.events.handshake()

    def _close_subscriber(self, name: str) -> None:
        reader = self.readers.pop(name, None)
        if reader is not None:
            reader.cancel()
        sub = getattr(self, name)
        if sub is not None:
            sub.close()
            setattr(self, name, None)

    @staticmethod
    async def _read(sub: AsyncSubscriber, handle: Callable[[str, dict[str, Any]], None]) -> None:
        async for topic, payload in sub:
            handle(topic, payload)

    def _on_event(self, topic: str, payload: dict[str, Any]) -> None:
        if topic == "arbiter.stopped":
            self.lost("the daemon stopped")
            self.changed()
        elif not topic.startswith("stream."):
            self.wake.set()  # something changed (or the daemon is back): ask now
        self.on_event(self, topic, payload)

    def _on_stat(self, topic: str, payload: dict[str, Any]) -> None:
        if self.state.apply_stat(topic, payload):
            self.changed()

    @staticmethod
    def stream_topic(watcher: str) -> str:
        return f"stream.{watcher.lower()}."

    def follow(self, watcher: str | None) -> None:
        """Receive the output lines of this watcher (None: of none). The
        daemon publishes them only while someone subscribes."""
        if watcher == self.stream:
            return
        if self.events is not None:
            if self.stream:
                self.events.unsubscribe(self.stream_topic(self.stream))
            if watcher:
                self.events.subscribe(self.stream_topic(watcher))
        self.stream = watcher

