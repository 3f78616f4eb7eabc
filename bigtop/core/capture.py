"""A watcher's output: the sinks its streams go to, and the recent lines.

Each chunk of whole lines read from a child's pipe goes to the stream's
sink (a file, the daemon's stdout) as it is, with no per-line work, unless
nothing is configured (the daemon's console) or someone tails the watcher
(``stream.<watcher>.<stream>`` events). The last ``RECENT_BYTES`` of
output stay in memory for ``logs`` and for the reason a watcher failed.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable

from ..config import WatcherSpec
from .events import EventBus
from .process import Process
from .routing import OutputRouting
from .streams import StreamSink, open_sink

RECENT_BYTES = 256 * 1024  # of output kept per watcher

# (time read, pid, wid, stream, text)
Line = tuple[float, int, int, str, str]


class OutputCapture:
    def __init__(self, name: str, spec: Callable[[], WatcherSpec], routing: OutputRouting,
                 bus: EventBus):
        self.name = name
        self._spec = spec
        self.routing = routing
        self.bus = bus
        # (time, pid, wid, stream, chunk of lines) of the latest output
        self.recent: deque[tuple[float, int, int, str, bytes]] = deque()
        self._recent_bytes = 0
        # stream name -> its configured sink, if any
        self.sinks: dict[str, StreamSink] = {}
        self._sinks_spec: WatcherSpec | None = None
        self._dropped_closed = 0  # by sinks since replaced or closed

    def line_sink(self, process: Process, stream: str) -> Callable[[bytes], None]:
        """What a pipe reader calls with each chunk of whole lines."""
        topic = f"stream.{self.name.lower()}.{stream}"
        routing = self.routing

        def sink(chunk: bytes) -> None:
            self._remember(time.time(), process, stream, chunk)
            if self._sinks_spec is not self._spec():  # options changed: files too
                self.refresh()
            out = self.sinks.get(stream)
            if out is not None:
                out.write(chunk, process.pid, process.wid, stream)
            tailed = routing.tailed(topic)
            if out is not None and not tailed:
                return  # the fast path: no line-by-line work here at all
            for line in chunk.decode("utf-8", "replace").split("\n")[:-1]:
                if out is None:
                    routing.console(self.name, process.wid, process.pid, stream, line)
                if tailed:
                    self.bus.emit(topic, {"watcher": self.name, "pid": process.pid,
                                          "wid": process.wid, "stream": stream, "line": line})

        return sink

    def _remember(self, now: float, process: Process, stream: str, chunk: bytes) -> None:
        self.recent.append((now, process.pid, process.wid, stream, chunk))
        self._recent_bytes += len(chunk)
        while self._recent_bytes > RECENT_BYTES and len(self.recent) > 1:
            self._recent_bytes -= len(self.recent.popleft()[4])

    def recent_lines(self, count: int, stream: str | None = None,
                     since: float | None = None) -> list[Line]:
        """The last ``count`` lines (read at or after ``since``, if given)."""
        lines: list[Line] = []
        for now, pid, wid, which, chunk in reversed(self.recent):
            if since is not None and now < since:
                break
            if stream is not None and which != stream:
                continue
            texts = chunk.decode("utf-8", "replace").split("\n")[:-1]
            lines[:0] = [(now, pid, wid, which, text) for text in texts]
            if len(lines) >= count:
                break
        return lines[-count:] if count > 0 else []

    def stream_options(self, stream: str) -> dict[str, str]:
        """The options of where a stream goes: as configured, or with
        nothing configured and no console (daemon mode), a file in log_dir."""
        options: dict[str, str] = getattr(self._spec(), f"{stream}_stream").options
        if not options and self.routing.log_dir:
            options = {"class": "FileStream", "max_bytes": str(10 * 1024 * 1024),
                       "backup_count": "5", "filename": os.path.join(
                           self.routing.log_dir, f"{self.name}.{stream}.log")}
        return options

    def refresh(self) -> None:
        """Open, keep or close the sinks to match the spec (``set NAME
        stdout_stream.filename ...`` applies without a restart)."""
        for stream in ("stdout", "stderr"):
            options = self.stream_options(stream)
            current = self.sinks.get(stream)
            if current is not None and current.options == options:
                continue
            if current is not None:
                self._close(self.sinks.pop(stream))
            sink = open_sink(self.routing.writer, options, self.name)
            if sink is not None:
                self.sinks[stream] = sink
        self._sinks_spec = self._spec()

    def _close(self, sink: StreamSink) -> None:
        sink.close()  # what it holds goes to the writer before a new sink's lines
        self._dropped_closed += sink.dropped

    @property
    def dropped(self) -> int:
        """Lines dropped because a sink did not keep up, counting sinks
        replaced since."""
        return self._dropped_closed + sum(sink.dropped for sink in self.sinks.values())

    def close(self) -> None:
        for sink in self.sinks.values():
            self._close(sink)
        self.sinks.clear()
        self._sinks_spec = None
