"""Where the daemon sends what its children write, besides their own sinks.

One object holds the shared parts of output handling: the file-writing
thread (started with the first file sink), the daemon's console for
watchers with no stream configured, the directory that stands in for the
console in daemon mode, and the live-tail subscriptions (output lines are
published as ``stream.<watcher>.<stdout|stderr>`` only while one matches).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .streams import ConsoleSink, Writer

Console = Callable[[str, int, int, str, str], None]  # watcher, wid, pid, stream, line


class OutputRouting:
    def __init__(self, console: Console | None = None, log_dir: str | None = None):
        self._writer: Writer | None = None
        self.console: Console = console or ConsoleSink(self.writer)
        self.log_dir = log_dir
        self.tails: Counter[str] = Counter()  # topic prefixes subscribed to: by how many

    def writer(self) -> Writer:
        if self._writer is None:
            self._writer = Writer()
        return self._writer

    def held(self) -> bool:
        """Whether the pipe readers should wait for the writer to catch up."""
        return self._writer is not None and self._writer.holding()

    def tailed(self, topic: str) -> bool:
        return bool(self.tails) and any(topic.startswith(prefix) for prefix in self.tails)

    async def close(self) -> None:
        """Everything read so far reaches the console and the files."""
        flush = getattr(self.console, "flush", None)
        if flush is not None:
            flush()
        if self._writer is not None:
            await self._writer.close()
