"""watchdog: processes send heartbeats over UDP; one that falls silent is
stopped gracefully and replaced (Circus's WatchDog).

Each watched process sends, at least every ``loop_rate`` seconds, a
datagram to ``ip:port`` that ``msg_regex`` decodes into at least its pid
(Circus's format by default: ``PID;TIMESTAMP``, e.g. ``4242;1700000000.5``).
Every ``loop_rate`` seconds the plugin looks for processes that sent
nothing for ``loop_rate * max_count`` seconds and stops each with the
``kill`` command (its watcher's ``stop_signal`` and ``graceful_timeout``,
or ``watchers_stop_signal`` / ``watchers_graceful_timeout``); the daemon
starts a new one in its slot. A new process has the same time to send its
first heartbeat.

The watchers followed are those whose name ``watchers_regex`` matches (from
the start, as Circus's ``re.match``), plugins excepted: they send no
heartbeats. The plugin learns their pids from the daemon at start, then
from ``spawn`` and ``reap`` events.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from .base import Plugin, PluginError, split_topic
from .common import optional, parse_signal


@dataclass
class Watched:
    watcher: str
    last: float  # monotonic time of the last heartbeat (or of the spawn)


class _Heartbeats(asyncio.DatagramProtocol):
    def __init__(self, plugin: WatchDog):
        self.plugin = plugin

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.plugin.heartbeat(data, addr)


class WatchDog(Plugin):
    plugin_name = "watchdog"
    topics = ("watcher.",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.loop_rate = self.option("loop_rate", 60.0)
        self.max_count = self.option("max_count", 3)
        self.ip = self.option("ip", "127.0.0.1")
        self.port = self.option("port", 1664)
        try:
            self.watchers_regex = re.compile(self.option("watchers_regex", ".*"))
            self.msg_regex = re.compile(self.option("msg_regex",
                                                    r"^(?P<pid>.*);(?P<timestamp>.*)$"))
        except re.error as err:
            raise PluginError(f"bad regular expression: {err}") from None
        if "pid" not in self.msg_regex.groupindex:
            raise PluginError("msg_regex needs a group named pid: (?P<pid>...)")
        self.stop_signal: int | None = self.option("watchers_stop_signal", None,
                                                   optional(parse_signal))
        self.graceful_timeout: float | None = self.option("watchers_graceful_timeout", None,
                                                          optional(float, False))
        if self.loop_rate <= 0 or self.max_count < 1:
            raise PluginError("loop_rate must be more than 0 and max_count 1 or more")
        self.pids: dict[int, Watched] = {}
        self.strangers: set[int] = set()  # pids heartbeating that are not watched (logged once)
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def silence(self) -> float:
        return self.loop_rate * self.max_count

    def watches(self, name: str) -> bool:
        return not name.startswith("plugin:") and self.watchers_regex.match(name) is not None

    async def handle_init(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Heartbeats(self), local_addr=(self.ip, self.port))
        except OSError as err:
            raise PluginError(f"cannot listen on udp {self.ip}:{self.port}: "
                              f"{err.strerror or err}") from None
        self.transport = transport  # type: ignore[assignment]
        now = time.monotonic()
        for name, details in (await self.status()).items():
            if self.watches(name):
                for pid in details.get("pids", {}).values():
                    self.pids.setdefault(int(pid), Watched(name, now))
        self.log.info("listening on udp %s:%d; %d processes watched, each stopped after %gs "
                      "without a heartbeat", self.ip, self.port, len(self.pids), self.silence)
        self.every(self.loop_rate, self.look_after)

    def handle_stop(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def handle_recv(self, topic: str, payload: dict[str, Any]) -> None:
        _, name, event = split_topic(topic)
        pid = payload.get("process_pid")
        if not isinstance(pid, int) or not self.watches(name):
            return
        if event == "spawn":
            self.pids[pid] = Watched(name, time.monotonic())
            self.strangers.discard(pid)
            self.log.debug("%s: watching pid %d", name, pid)
        elif event == "reap":
            self.pids.pop(pid, None)

    def heartbeat(self, data: bytes, addr: Any) -> None:
        match = self.msg_regex.match(data.decode("utf-8", "replace"))
        try:
            pid = int(match["pid"]) if match else None
        except (TypeError, ValueError):
            pid = None
        if pid is None:
            self.log.warning("not a heartbeat (msg_regex does not give a pid) from %s: %r",
                             addr[0], data[:100])
            return
        watched = self.pids.get(pid)
        if watched is not None:
            watched.last = time.monotonic()
        elif pid not in self.strangers:
            self.strangers.add(pid)
            self.log.warning("heartbeat from pid %d, which is not a watched process", pid)

    async def look_after(self) -> None:
        too_old = time.monotonic() - self.silence
        for pid, watched in list(self.pids.items()):
            if watched.last >= too_old:
                continue
            del self.pids[pid]  # the daemon stops it; its replacement is a new pid
            self.log.warning("%s: pid %d sent no heartbeat for %gs: stopping it", watched.watcher,
                             pid, self.silence)
            props: dict[str, Any] = {"name": watched.watcher, "pid": pid}
            if self.stop_signal is not None:
                props["signum"] = self.stop_signal
            if self.graceful_timeout is not None:
                props["graceful_timeout"] = self.graceful_timeout
            self.cast("kill", **props)
