"""statsd: the daemon's events as counters, and its processes' resource use
as gauges, sent over UDP to a statsd server.

Circus's metric names, so dashboards built for Circus keep working (with
the default ``application_name = app``)::

    circus.app.watcher.<watcher>.<event>:1|c           every event (spawn, reap, ...)
    circus.app.watcher._stats.<watcher>.cpu_max:12.5|g  every loop_rate seconds
    ... cpu_sum, mem_pct_max, mem_pct_sum, mem_max, mem_sum (bytes),
        watchers_num (processes running)

``circus.plugins.statsd.StatsdEmitter`` gives this plugin with the gauges
off, ``circus.plugins.statsd.FullStats`` with the counters off.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

from .base import Plugin, PluginError, split_topic


class StatsdEmitter(Plugin):
    plugin_name = "statsd"
    topics: tuple[str, ...] = ("watcher.",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.host = self.option("host", "localhost")
        self.port = self.option("port", 8125)
        self.sample_rate = self.option("sample_rate", 1.0)
        if not 0 < self.sample_rate <= 1:
            raise PluginError(f"sample_rate = {self.sample_rate}: must be in (0, 1]")
        app = self.option("application_name", "app")
        self.prefix = self.option("prefix", f"circus.{app}.watcher")
        self.events = self.option("events", True)
        self.gauges = self.option("stats", True)
        self.loop_rate = self.option("loop_rate", 60.0)
        if not self.events:
            self.topics = ()  # no subscription needed
        self.sock: socket.socket | None = None
        self.address: Any = None

    async def handle_init(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except OSError as err:
            raise PluginError(f"host {self.host}: {err}") from None
        family, kind, proto, _, self.address = found[0]
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)
        if self.gauges:
            self.every(self.loop_rate, self.send_stats)

    def handle_stop(self) -> None:
        if self.sock is not None:
            self.sock.close()

    # -- the statsd line format ------------------------------------------------

    def send(self, bucket: str, value: str) -> None:
        """One metric, one datagram: ``prefix.bucket:value``. A datagram the
        kernel cannot take now is dropped, as UDP would anyway."""
        if self.sock is None:
            return
        line = f"{self.prefix}.{bucket}:{value}" if self.prefix else f"{bucket}:{value}"
        try:
            self.sock.sendto(line.encode(), self.address)
        except OSError as err:
            self.log.debug("not sent (%s): %s", err, line)

    def increment(self, bucket: str, delta: int = 1) -> None:
        if self.sample_rate < 1:
            if random.random() >= self.sample_rate:
                return
            self.send(bucket, f"{delta}|c|@{self.sample_rate:g}")
        else:
            self.send(bucket, f"{delta}|c")

    def gauge(self, bucket: str, value: float) -> None:
        self.send(bucket, f"{value:g}|g" if isinstance(value, float) else f"{value}|g")

    # -- what is sent ------------------------------------------------------------

    def handle_recv(self, topic: str, payload: dict[str, Any]) -> None:
        _, watcher, event = split_topic(topic)
        if watcher and event:
            self.increment(f"{watcher}.{event}")

    async def send_stats(self) -> None:
        try:
            infos = await self.stats()
        except Exception as err:
            self.log.warning("stats: %s", err)
            self.increment("_stats.error")
            return
        for name, processes in infos.items():
            if name.startswith("plugin:"):
                continue  # as Circus: not the plugins
            cpus = [p["cpu"] for p in processes.values() if _number(p.get("cpu"))]
            mems = [p["mem"] for p in processes.values() if _number(p.get("mem"))]
            rss = [p["rss"] for p in processes.values() if _number(p.get("rss"))]
            self.gauge(f"_stats.{name}.watchers_num", len(processes))
            if cpus:
                self.gauge(f"_stats.{name}.cpu_max", max(cpus))
                self.gauge(f"_stats.{name}.cpu_sum", sum(cpus))
            if mems:
                self.gauge(f"_stats.{name}.mem_pct_max", max(mems))
                self.gauge(f"_stats.{name}.mem_pct_sum", sum(mems))
            if rss:
                self.gauge(f"_stats.{name}.mem_max", max(rss))
                self.gauge(f"_stats.{name}.mem_sum", sum(rss))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
