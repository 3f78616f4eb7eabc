"""redis_observer: ask a Redis server for its ``INFO`` every few seconds,
report its figures, and restart a watcher when Redis stops answering
(Circus's RedisObserver). Needs the ``redis`` package.

Every ``loop_rate`` seconds the plugin sends ``INFO`` to ``redis_url``
(within ``timeout``). Its figures (Circus's list: ``used_memory``,
``connected_clients``, ``keyspace_hits``, ...) go to statsd as gauges
``redis_stats.<figure>`` under ``circus.redis_observer.watcher`` when a
statsd server is named (``host``/``port``); otherwise they are logged, one
line a round. A failed round counts ``redis_stats.error``; after
``failures`` in a row (Circus: 1) the ``watcher`` is restarted, if it is
active, and ``redis_stats.restart_on_error`` counted.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .base import Plugin, PluginError
from .common import Metrics, restart, tally, watcher_status

# Circus's gauges (a figure this Redis does not report is left out).
OBSERVE = (
    "pubsub_channels", "connected_slaves", "lru_clock", "connected_clients",
    "keyspace_misses", "used_memory", "used_memory_peak", "total_commands_processed",
    "used_memory_rss", "total_connections_received", "pubsub_patterns", "used_cpu_sys",
    "used_cpu_sys_children", "blocked_clients", "used_cpu_user", "client_biggest_input_buf",
    "mem_fragmentation_ratio", "expired_keys", "evicted_keys", "client_longest_output_list",
    "uptime_in_seconds", "keyspace_hits",
)


def without_password(url: str) -> str:
    """The URL as it may be logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


class RedisObserver(Plugin):
    plugin_name = "redis_observer"
    topics = ()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.url = self.option("redis_url", "redis://localhost:6379/0")
        self.shown = without_password(self.url)
        # not self.timeout: that is how long the plugin waits for the daemon
        self.probe_timeout = self.option("timeout", 5.0)
        self.loop_rate = self.option("loop_rate", 60.0)
        self.watcher = (self.option("watcher", "") or self.option("restart_on_timeout", "")
                        or self.option("restart_on_error", ""))
        self.failures = self.option("failures", 1)
        if self.failures < 1:
            raise PluginError(f"failures = {self.failures}: must be 1 or more")
        if self.probe_timeout <= 0:
            raise PluginError(f"timeout = {self.probe_timeout}: must be more than 0")
        self.failed = 0
        self.up: bool | None = None  # unknown until the first round
        self.redis: Any = None
        self.metrics = Metrics(self, "redis_observer")

    async def handle_init(self) -> None:
        try:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:
            raise PluginError("needs the redis package (pip install redis)") from None
        try:
            # No retries of its own: a failed round is what the plugin counts.
            wait = self.probe_timeout
            self.redis = redis.asyncio.from_url(self.url, socket_timeout=wait,
                                                socket_connect_timeout=wait,
                                                retry=Retry(NoBackoff(), 0))
        except ValueError as err:
            raise PluginError(f"redis_url = {self.shown}: {err}") from None
        await self.metrics.start()
        then = (f"restart {self.watcher} after {self.failures} failure(s) in a row"
                if self.watcher else "log failures")
        self.log.info("asking %s for INFO every %gs (timeout %gs): %s", self.shown,
                      self.loop_rate, self.probe_timeout, then)
        self.every(self.loop_rate, self.look_after, now=True)

    async def handle_stop(self) -> None:
        if self.redis is not None:
            try:
                await self.redis.aclose()
            except Exception:
                pass
        self.metrics.close()

    async def look_after(self) -> None:
        import redis

        try:
            info = await self.redis.info()
        except (redis.RedisError, OSError) as err:
            await self.failure(str(err) or type(err).__name__)
            return
        if self.up is not True:
            self.log.info("%s answers: redis %s, up %ss", self.shown,
                          info.get("redis_version", "?"), info.get("uptime_in_seconds", "?"))
        self.up, self.failed = True, 0
        figures = {key: info[key] for key in OBSERVE
                   if isinstance(info.get(key), (int, float))}
        for key, value in figures.items():
            self.metrics.gauge(f"redis_stats.{key}", value)
        line = " ".join(f"{key}={value}" for key, value in figures.items())
        if self.metrics.enabled:
            self.log.debug("%s", line)
        else:
            self.log.info("%s", line)

    async def failure(self, error: str) -> None:
        self.up = False
        self.metrics.increment("redis_stats.error")
        if self.watcher:
            status = await watcher_status(self, self.watcher)
            if status != "active":
                self.log.info("%s: %s (%s is %s: not counted)", self.shown, error,
                              self.watcher, status)
                self.failed = 0
                return
        self.failed += 1
        count = tally(self.failed, self.failures, self.watcher)
        self.log.warning("%s: %s (%s)", self.shown, error, count)
        if not self.watcher or self.failed < self.failures:
            return
        self.failed = 0
        if await restart(self, self.watcher,
                         f"{self.shown} failed {self.failures} time(s) in a row"):
            self.metrics.increment("redis_stats.restart_on_error")
