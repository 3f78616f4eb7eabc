"""A watcher's output: the sinks its streams go to, and the recent lines.

Each chunk of whole lines read from a child's pipe goes to the stream's
sink (a file, the daemon's stdout) as it is, with no per-line work, unless
nothing is configured (the daemon's console) or someone tails the watcher
(``stream.<watcher>.<stream>`` events). The last ``RECENT_BYTES`` of
output stay in memory for ``logs`` and for the reason a watcher failed.

A chunk may end inside a line (the reader passed on an unfinished one);
the next chunk of the pipe continues it. Each pipe's sink function knows
whether its last chunk did: on the console a piece is a line of its own
(and the empty piece that only ends it is not shown), a live-tail event
of a piece whose line goes on has ``partial: true``, and the lines read
back from memory are whole again, the pieces joined.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..config import WatcherSpec
from .events import EventBus
from .output import ChunkSink
from .process import Process
from .routing import OutputRouting
from .streams import StreamSink, open_sink

RECENT_BYTES = 256 * 1024  # of output kept per watcher, ENTRY_COST included
ENTRY_COST = 200  # what a kept chunk costs besides its bytes (its tuple, its bytes object)

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

    def line_sink(self, process: Process, stream: str) -> ChunkSink:
        """What a pipe reader calls with each chunk: whole lines, the last
        one maybe unfinished (``last``: the pipe closed, and it ends there)."""
        topic = f"stream.{self.name.lower()}.{stream}"
        routing = self.routing
        inside = False  # the last chunk ended inside a line: this one continues it

        def sink(chunk: bytes, last: bool = False) -> None:
            nonlocal inside
            continued = inside
            if last:
                inside = False
                if not continued and not chunk:
                    return  # the pipe closed after a whole line: nothing to end
                remembered = chunk + b"\n"  # in memory, the line is whole now
            else:
                inside = chunk[-1:] != b"\n"
                remembered = chunk
            now = time.time()
            self._remember(now, process, stream, remembered)
            if self._sinks_spec is not self._spec():  # options changed: files too
                self.refresh()
            out = self.sinks.get(stream)
            if out is not None:
                out.write(chunk, process.pid, process.wid, stream, last)
            tailed = routing.tailed(topic)
            if out is not None and not tailed:
                return  # the fast path: no line-by-line work here at all
            lines = chunk.decode("utf-8", "replace").split("\n")
            if not lines[-1] and not (last and len(lines) == 1):
                lines.pop()  # after the last newline, nothing
            if out is None:
                # A piece is a line of its own there; one that only ends a
                # line already shown is not shown.
                for line in lines[1:] if continued and not lines[0] else lines:
                    routing.console(self.name, process.wid, process.pid, stream, line)
            if tailed:
                base = {"watcher": self.name, "pid": process.pid, "wid": process.wid,
                        "stream": stream, "time": now}
                if self._spec().private:
                    base["private"] = True  # for keys with full control only
                for line in lines[:-1]:
                    self.bus.emit(topic, {**base, "line": line})
                if inside:
                    self.bus.emit(topic, {**base, "line": lines[-1], "partial": True})
                else:
                    self.bus.emit(topic, {**base, "line": lines[-1]})

        return sink

    def _remember(self, now: float, process: Process, stream: str, chunk: bytes) -> None:
        self.recent.append((now, process.pid, process.wid, stream, chunk))
        self._recent_bytes += len(chunk) + ENTRY_COST
        while self._recent_bytes > RECENT_BYTES and len(self.recent) > 1:
            self._recent_bytes -= len(self.recent.popleft()[4]) + ENTRY_COST

    def recent_lines(self, count: int, stream: str | None = None,
                     since: float | None = None) -> list[Line]:
        """The last ``count`` lines (read at or after ``since``, if given).
        The pieces of a line handed on unfinished are joined, and the line
        has the time of its last piece; one still unfinished is a line."""
        if count <= 0:
            return []
        found: list[list[Any]] = []  # newest first: [time, pid, wid, stream, bytes]
        # pipe -> the index in found of its oldest line so far, when the
        # chunk before it (of that pipe) may hold its beginning
        heads: dict[tuple[int, str], int] = {}
        for now, pid, wid, which, chunk in reversed(self.recent):
            if since is not None and now < since:
                break
            if stream is not None and which != stream:
                continue
            pipe = (pid, which)
            head = heads.get(pipe)
            if len(found) >= count and (head is None or head >= count):
                if all(index >= count for index in heads.values()):
                    break
                continue  # enough lines: only the beginnings of some are left to find
            texts = chunk.split(b"\n")
            end = texts.pop()  # after the last newline: nothing, or a piece
            if not end:
                heads.pop(pipe, None)  # the line after this chunk began a line
            elif head is not None:
                found[head][4] = end + found[head][4]
            else:
                texts.append(end)  # the newest line of its pipe, still unfinished
            if texts:  # else all of it was a piece of a line that may begin earlier
                found.extend([now, pid, wid, which, text] for text in reversed(texts))
                heads[pipe] = len(found) - 1
        return [(now, pid, wid, which, text.decode("utf-8", "replace"))
                for now, pid, wid, which, text in reversed(found[:count])]

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
                self.sinks.pop(stream).close()  # its lines go before the new sink's
            sink = open_sink(self.routing.writer, options, self.name)
            if sink is not None:
                self.sinks[stream] = sink
        self._sinks_spec = self._spec()

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        self.sinks.clear()
        self._sinks_spec = None
