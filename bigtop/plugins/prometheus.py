"""prometheus: an HTTP ``/metrics`` endpoint for Prometheus to scrape, with
per-watcher and per-process metrics (needs ``prometheus_client``: ``pip
install 'bigtop[prometheus]'``).

Nothing is sampled between scrapes: each scrape asks the daemon for its
watchers' status and its processes' resource use, so the CPU figures are
the use since the previous scrape. Event counters
(``bigtop_watcher_events_total``) count from the plugin's start.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

from .base import Plugin, PluginError, split_topic

STATES = ("active", "starting", "stopping", "stopped", "failed", "backoff", "done")
SCRAPE_TIMEOUT = 10.0

# (metric, help, key in a process's stats)
PROCESS_GAUGES = (
    ("bigtop_process_cpu_percent", "CPU use since the previous scrape, in % of one core",
     "cpu"),
    ("bigtop_process_memory_percent", "Resident memory, in % of the machine's", "mem"),
    ("bigtop_process_resident_memory_bytes", "Resident memory (RSS)", "rss"),
    ("bigtop_process_virtual_memory_bytes", "Virtual memory", "vms"),
    ("bigtop_process_start_time_seconds", "When the process started, Unix time",
     "create_time"),
    ("bigtop_process_threads", "Threads", "threads"),
    ("bigtop_process_open_fds", "Open file descriptors", "fds"),
)


class PrometheusExporter(Plugin):
    plugin_name = "prometheus"
    topics = ("watcher.",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.host = self.option("host", "127.0.0.1")
        self.port = self.option("port", 9184)
        self.events: Counter[tuple[str, str]] = Counter()
        self.server: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def handle_init(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise PluginError("prometheus_client is not installed "
                              "(pip install 'bigtop[prometheus]')") from None
        self.loop = asyncio.get_running_loop()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        try:
            self.server, _ = start_http_server(self.port, self.host, registry=registry)
        except OSError as err:
            raise PluginError(f"cannot listen on {self.host}:{self.port}: {err}") from None
        self.log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def handle_stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.shutdown)
            self.server.server_close()

    def handle_recv(self, topic: str, payload: dict[str, Any]) -> None:
        _, watcher, event = split_topic(topic)
        if watcher and event:
            self.events[watcher, event] += 1

    async def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The watchers' details and the processes' stats, asked for together."""
        details, stats = await asyncio.gather(self.status(), self.stats())
        return details, stats

    def families(self) -> Iterator[Any]:
        """Called in the HTTP server's thread, once per scrape."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        up = GaugeMetricFamily("bigtop_up", "Whether the daemon answered this scrape")
        assert self.loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(self.snapshot(), self.loop)
            details, stats = future.result(SCRAPE_TIMEOUT)
        except Exception as err:
            self.log.warning("scrape: no answer from the daemon: %s", err)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        status = GaugeMetricFamily("bigtop_watcher_status", "1 for the watcher's current status",
                                   labels=["watcher", "status"])
        gauges = {
            "running": GaugeMetricFamily("bigtop_watcher_processes", "Processes running",
                                         labels=["watcher"]),
            "wanted": GaugeMetricFamily("bigtop_watcher_processes_wanted",
                                        "Processes the watcher should run", labels=["watcher"]),
            "ready": GaugeMetricFamily("bigtop_watcher_processes_ready",
                                       "Processes that passed their readiness check",
                                       labels=["watcher"]),
        }
        restarts = CounterMetricFamily("bigtop_watcher_restarts", "Processes respawned after "
                                       "they ended on their own", labels=["watcher"])
        dropped = CounterMetricFamily("bigtop_watcher_dropped_lines", "Output lines dropped "
                                      "because a sink did not keep up or could not write",
                                      labels=["watcher"])
        dropped_bytes = CounterMetricFamily("bigtop_watcher_dropped_bytes", "Output bytes "
                                            "dropped, with those lines", labels=["watcher"])
        for name, info in sorted(details.items()):
            for state in STATES:
                status.add_metric([name, state], 1 if info.get("status") == state else 0)
            for key, family in gauges.items():
                family.add_metric([name], _num(info.get(key)))
            restarts.add_metric([name], _num(info.get("restarts")))
            dropped.add_metric([name], _num(info.get("dropped_lines")))
            dropped_bytes.add_metric([name], _num(info.get("dropped_bytes")))
        yield status
        yield from gauges.values()
        yield restarts
        yield dropped
        yield dropped_bytes

        events = CounterMetricFamily("bigtop_watcher_events", "Events published since the "
                                     "plugin started", labels=["watcher", "event"])
        for (watcher, event), count in sorted(self.events.items()):
            events.add_metric([watcher, event], count)
        yield events

        labels = ["watcher", "wid"]
        pid = GaugeMetricFamily("bigtop_process_pid", "The process id in each slot (wid)",
                                labels=labels)
        per_process = [(GaugeMetricFamily(metric, text, labels=labels), key)
                       for metric, text, key in PROCESS_GAUGES]
        for name, processes in sorted(stats.items()):
            for number, info in sorted(processes.items()):
                slot = [name, str(info.get("wid", ""))]
                pid.add_metric(slot, _num(info.get("pid", number)))
                for family, key in per_process:
                    value = info.get(key)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        family.add_metric(slot, value)
        yield pid
        for family, _ in per_process:
            yield family


class _Collector:
    def __init__(self, plugin: PrometheusExporter):
        self.plugin = plugin

    def collect(self) -> Iterator[Any]:
        return self.plugin.families()


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
