"""http_observer: probe a URL (or a TCP port) every few seconds and
restart a watcher after some failures in a row (Circus's HttpObserver).

An HTTP probe is a GET that must answer, within ``timeout``, with one of
the ``status`` codes (by default any 2xx, redirects followed, as Circus's
tornado client judged it); a TCP probe (``tcp = host:port``) is a connect.
After ``failures`` failed probes in a row (Circus: 1) the watcher is
restarted. Only the failures of an active watcher count: one someone
stopped is left alone, one starting or stopping is not blamed. The count
starts again after a restart and after a success.

With a statsd server named (``host``/``port``), Circus's metrics are sent
under ``circus.http_observer.watcher``: ``http_stats.request_time`` (ms),
``http_stats.error``, ``http_stats.error.<status>``,
``http_stats.restart_on_error``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from .base import Plugin, PluginError
from .common import Metrics, restart, tally, watcher_status


def parse_statuses(text: str) -> list[tuple[int, int]]:
    """``200``, ``200,204``, ``2xx``, ``2xx,301``: ranges of accepted codes."""
    ranges = []
    for word in text.replace(",", " ").split():
        word = word.strip().lower()
        if len(word) == 3 and word[0].isdigit() and word[1:] == "xx":
            base = int(word[0]) * 100
            ranges.append((base, base + 99))
        elif word.isdigit() and 100 <= int(word) <= 599:
            ranges.append((int(word), int(word)))
        else:
            raise ValueError(f"{word!r} is not a status code (200) nor a class of them (2xx)")
    if not ranges:
        raise ValueError("no status code")
    return ranges


def parse_address(text: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (localhost) or ``[::1]:port``."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port")
    return host.strip("[]") or "localhost", int(port)


class ProbeFailed(Exception):
    """A probe's failure; the message says what happened, ``status`` is the
    HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class HttpObserver(Plugin):
    plugin_name = "http_observer"
    topics = ()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tcp: tuple[str, int] | None = self.option("tcp", None, parse_address)
        self.url = self.option("url", "") or self.option("check_url", "")
        if self.tcp is None and not self.url:
            self.url = "http://localhost/"  # Circus's default check_url
        if self.tcp is not None and self.url:
            raise PluginError("give url (or check_url) or tcp, not both")
        if self.url and urlsplit(self.url).scheme not in ("http", "https"):
            raise PluginError(f"url = {self.url!r}: an http:// or https:// URL is needed")
        self.watcher = self.option("watcher", "") or self.option("restart_on_error", "")
        self.interval = self.option("interval", 0.0) or self.option("loop_rate", 60.0)
        # not self.timeout: that is how long the plugin waits for the daemon
        self.probe_timeout = self.option("timeout", 10.0)
        self.statuses = self.option("status", [(200, 299)], parse_statuses)
        self.failures = self.option("failures", 1)
        if self.failures < 1:
            raise PluginError(f"failures = {self.failures}: must be 1 or more")
        if self.probe_timeout <= 0:
            raise PluginError(f"timeout = {self.probe_timeout}: must be more than 0")
        self.failed = 0  # probes failed in a row
        self.session: Any = None
        self.metrics = Metrics(self, "http_observer")

    @property
    def target(self) -> str:
        return f"tcp {self.tcp[0]}:{self.tcp[1]}" if self.tcp else self.url

    async def handle_init(self) -> None:
        await self.metrics.start()
        if self.url:
            import aiohttp

            self.session = aiohttp.ClientSession()
        then = (f"restart {self.watcher} after {self.failures} failure(s) in a row"
                if self.watcher else "log failures")
        self.log.info("probing %s every %gs (timeout %gs): %s", self.target, self.interval,
                      self.probe_timeout, then)
        self.every(self.interval, self.look_after)

    async def handle_stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.metrics.close()

    # -- probes ----------------------------------------------------------------

    async def probe_http(self) -> float:
        """The request's duration in seconds; raises ProbeFailed."""
        import aiohttp

        began = time.monotonic()
        try:
            async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(
                    total=self.probe_timeout)) as reply:
                await reply.read()
                status = reply.status
        except TimeoutError:
            raise ProbeFailed(f"no answer in {self.probe_timeout:g}s") from None
        except aiohttp.ClientError as err:
            raise ProbeFailed(str(err) or type(err).__name__) from None
        if not any(low <= status <= high for low, high in self.statuses):
            raise ProbeFailed(f"status {status}", status)
        return time.monotonic() - began

    async def probe_tcp(self) -> float:
        assert self.tcp is not None
        began = time.monotonic()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(*self.tcp),
                                               self.probe_timeout)
        except TimeoutError:
            raise ProbeFailed(f"no connection in {self.probe_timeout:g}s") from None
        except OSError as err:
            raise ProbeFailed(err.strerror or str(err)) from None
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return time.monotonic() - began

    async def look_after(self) -> None:
        try:
            took = await (self.probe_tcp() if self.tcp else self.probe_http())
        except ProbeFailed as err:
            await self.failure(err)
            return
        if self.failed:
            self.log.info("%s answers again after %d failure(s)", self.target, self.failed)
        self.failed = 0
        self.metrics.timing("http_stats.request_time", took * 1000)

    async def failure(self, err: ProbeFailed) -> None:
        self.metrics.increment("http_stats.error")
        if err.status is not None:
            self.metrics.increment(f"http_stats.error.{err.status}")
        if self.watcher:
            status = await watcher_status(self, self.watcher)
            if status != "active":  # stopped on purpose, or (re)starting: not its fault
                self.log.info("%s: %s (%s is %s: not counted)", self.target, err,
                              self.watcher, status)
                self.failed = 0
                return
        self.failed += 1
        count = tally(self.failed, self.failures, self.watcher)
        self.log.warning("%s: %s (%s)", self.target, err, count)
        if not self.watcher or self.failed < self.failures:
            return
        self.failed = 0
        if await restart(self, self.watcher,
                         f"{self.target} failed {self.failures} time(s) in a row"):
            self.metrics.increment("http_stats.restart_on_error")
