"""The base class of bigtop plugins.

A plugin is a class that runs in a process of its own, which the daemon
starts and watches like any watcher (``[plugin:NAME]`` in the configuration,
a watcher named ``plugin:NAME``). It talks to the daemon the way every front
end does: commands through the control endpoint, events from the pub/sub
endpoint. A slow or crashing plugin never touches the daemon's loop.

Override the ``handle_*`` methods (coroutines or plain methods)::

    class Greeter(Plugin):
        topics = ("watcher.",)                      # event prefixes wanted

        async def handle_init(self) -> None:
            self.every(self.option("period", 60.0, float), self.report)

        async def handle_recv(self, topic: str, payload: dict) -> None:
            kind, watcher, event = split_topic(topic)
            if event == "failed":
                await self.call("start", name=watcher)

        async def report(self) -> None:
            self.log.info("%d watchers", len(await self.watchers()))
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar, TypeVar

from ..client import (
    AsyncClient,
    AsyncSubscriber,
    CommandFailed,
    Unreachable,
    default_stats_endpoint,
    resolve_pubsub,
)
from ..config import to_bool
from ..tasks import TaskOwner

T = TypeVar("T")
Handler = Callable[[str, dict[str, Any]], Any]

# How long a plugin waits for its subscriptions to be in force before it
# starts anyway (events sent before then are missed).
SUBSCRIBE_TIMEOUT = 5.0


class PluginError(Exception):
    """A plugin cannot run as configured; the message says why."""


def split_topic(topic: str) -> tuple[str, str, str]:
    """``watcher.web.spawn`` -> ``("watcher", "web", "spawn")``; the watcher
    name may itself hold dots. A topic of one part gives empty strings."""
    kind, _, rest = topic.partition(".")
    name, _, event = rest.rpartition(".")
    return kind, name, event


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Plugin:
    """Subclass it; the daemon runs one instance per ``[plugin:NAME]``.

    Attributes a subclass may read: ``name`` (the section's NAME),
    ``options`` (the section's other keys, as strings), ``endpoint``,
    ``pubsub_endpoint``, ``stats_endpoint``, ``check_delay``, ``log``,
    and while running ``client`` (an :class:`AsyncClient`).
    """

    #: Built-in name (``use = NAME``); third-party plugins use entry points.
    plugin_name: ClassVar[str] = ""
    #: Prefixes of the events handed to handle_recv; () subscribes to none
    #: (a class attribute, or set on the instance in __init__).
    topics: tuple[str, ...] = ("watcher.",)
    #: Prefixes of the statistics (``stat.<watcher>``, ``stat.<watcher>.<pid>``,
    #: ``stat.sockets``, ``stat.circus``) handed to handle_stats, from the
    #: stats endpoint; the daemon samples only while someone subscribes.
    stats_topics: tuple[str, ...] = ()

    def __init__(self, options: Mapping[str, str] | None = None, *, name: str = "",
                 endpoint: str | None = None, pubsub_endpoint: str | None = None,
                 stats_endpoint: str | None = None, check_delay: float = 5.0,
                 timeout: float = 10.0):
        self.name = name or self.plugin_name or type(self).__name__
        self.options: dict[str, str] = {str(k): str(v) for k, v in (options or {}).items()}
        self.endpoint = endpoint
        self.pubsub_endpoint = resolve_pubsub(pubsub_endpoint)
        self.stats_endpoint = stats_endpoint or default_stats_endpoint()
        self.check_delay = check_delay
        self.timeout = timeout
        self.log = logging.getLogger(f"bigtop.plugin.{self.name}")
        self.client: AsyncClient | None = None
        self._stop_requested: asyncio.Event | None = None
        self._tasks = TaskOwner(f"plugin {self.name}")  # ended when the plugin stops

    # -- to override -------------------------------------------------------

    def handle_init(self) -> Awaitable[None] | None:
        """Called once connected, before the first event: set up, start
        periodic work with :meth:`every`. Raising PluginError stops the
        plugin with that message."""
        return None

    def handle_recv(self, topic: str, payload: dict[str, Any]) -> Awaitable[None] | None:
        """Called for each event whose topic starts with one of ``topics``,
        one at a time, in order. ``payload`` is the decoded JSON."""
        return None

    def handle_stats(self, topic: str, payload: dict[str, Any]) -> Awaitable[None] | None:
        """Called for each statistics message matching ``stats_topics``."""
        return None

    def handle_stop(self) -> Awaitable[None] | None:
        """Called once when the plugin stops (SIGTERM from the daemon)."""
        return None

    # -- options -----------------------------------------------------------

    def option(self, key: str, default: T, convert: Callable[[Any], T] | None = None) -> T:
        """An option converted to the type of default (or by convert);
        a value that does not convert raises PluginError naming it."""
        if key not in self.options:
            return default
        raw = self.options[key]
        if convert is None:
            if isinstance(default, bool):
                convert = to_bool  # type: ignore[assignment]
            elif default is not None:
                convert = type(default)
            else:
                return raw  # type: ignore[return-value]
        assert convert is not None
        try:
            return convert(raw)  # type: ignore[call-arg]
        except (TypeError, ValueError) as err:
            raise PluginError(f"option {key} = {raw!r}: {err}") from None

    # -- talking to the daemon ------------------------------------------------

    async def call(self, command: str, **props: Any) -> dict[str, Any]:
        """Run a command; returns the reply, raises CommandFailed on an
        error reply and CallError if the daemon does not answer."""
        if self.client is None:
            raise PluginError("not connected: call() works from handle_init on")
        return await self.client.call(command, **props)

    def cast(self, command: str, **props: Any) -> asyncio.Task[Any]:
        """Run a command without waiting for it; a failure is logged."""

        async def run() -> None:
            try:
                await self.call(command, **props)
            except Exception as err:
                self.log.warning("%s %s: %s", command, json.dumps(props), err)

        return self._task(run())

    async def watchers(self) -> list[str]:
        """The names of the daemon's watchers (plugins included)."""
        return list((await self.call("list")).get("watchers", []))

    async def status(self) -> dict[str, dict[str, Any]]:
        """Every watcher's details: status, running, wanted, restarts, pids..."""
        return dict((await self.call("status", details=True)).get("details", {}))

    async def stats(self, name: str | None = None) -> dict[str, dict[str, Any]]:
        """Resource use per watcher and process: {watcher: {pid: info}},
        info as in the ``stats`` command (cpu, mem, rss, vms, age, ...).
        Entries that are not a dict (a process gone meanwhile) are dropped."""
        if name is not None:
            reply = await self.call("stats", name=name)
            infos = {name: reply.get("info", {})}
        else:
            infos = (await self.call("stats")).get("infos", {})
        return {w: {pid: info for pid, info in procs.items() if isinstance(info, dict)}
                for w, procs in infos.items() if isinstance(procs, dict)}

    # -- running -----------------------------------------------------------

    def every(self, seconds: float, func: Callable[[], Any], *, now: bool = False
              ) -> asyncio.Task[None]:
        """Call func (a coroutine function or a plain one) every seconds,
        first after one period (or at once with now); an exception is
        logged and the next call still happens. Stopped with the plugin."""
        if seconds <= 0:
            raise PluginError(f"a period must be more than 0 seconds, not {seconds}")

        async def repeat() -> None:
            loop = asyncio.get_running_loop()
            if not now:
                await asyncio.sleep(seconds)
            while True:
                began = loop.time()
                try:
                    await _maybe_await(func())
                except Exception:
                    self.log.exception("periodic %s failed", getattr(func, "__name__", func))
                await asyncio.sleep(max(seconds - (loop.time() - began), 0.0))

        return self._task(repeat())

    def stop(self) -> None:
        """End the plugin (handle_stop runs, then the process exits)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    def _task(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return self._tasks.spawn(coro)

    async def main(self) -> int:
        """Connect, subscribe, run until stopped; the process's exit status."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        self.client = AsyncClient(self.endpoint, timeout=self.timeout)
        subs: list[tuple[AsyncSubscriber, Handler]] = []
        try:
            feeds: list[tuple[tuple[str, ...], str, Handler]] = [
                (self.topics, self.pubsub_endpoint, self.handle_recv),
                (self.stats_topics, self.stats_endpoint, self.handle_stats)]
            for topics, endpoint, handler in feeds:
                if not topics or self._stop_requested.is_set():
                    continue
                sub = AsyncSubscriber(endpoint, timeout=SUBSCRIBE_TIMEOUT)
                subs.append((sub, handler))
                sub.subscribe(*topics)
                await self._handshake(sub)
            if self._stop_requested.is_set():
                return 0
            try:
                await _maybe_await(self.handle_init())
            except PluginError as err:
                self.log.error("cannot start: %s", err)
                return 2
            for sub, handler in subs:
                self._task(self._read(sub, handler))
            self.log.info("running")
            await self._stop_requested.wait()
        finally:
            await self._tasks.cancel_all()
            try:
                await _maybe_await(self.handle_stop())
            except Exception:
                self.log.exception("handle_stop failed")
            for sub, _ in subs:
                sub.close()
            self.client.close()
        self.log.info("stopped")
        return 0

    async def _handshake(self, sub: AsyncSubscriber) -> None:
        """Wait (a while) for the subscription to be in force: events
        published before it are not delivered. Stopping ends the wait."""
        assert self._stop_requested is not None
        handshake = asyncio.ensure_future(sub.handshake())
        stopping = asyncio.ensure_future(self._stop_requested.wait())
        try:
            done, _ = await asyncio.wait({handshake, stopping},
                                         return_when=asyncio.FIRST_COMPLETED)
            if handshake in done:
                try:
                    handshake.result()
                except Unreachable:
                    self.log.warning("no connection to %s after %gs; going on", sub.endpoint,
                                     SUBSCRIBE_TIMEOUT)
        finally:
            handshake.cancel()
            stopping.cancel()
            await asyncio.gather(handshake, stopping, return_exceptions=True)

    async def _read(self, sub: AsyncSubscriber, handler: Handler) -> None:
        async for topic, payload in sub:
            try:
                await _maybe_await(handler(topic, payload))
            except CommandFailed as err:
                self.log.warning("on %s: %s", topic, err)
            except Exception:
                self.log.exception("%s failed on %s", handler.__name__, topic)
