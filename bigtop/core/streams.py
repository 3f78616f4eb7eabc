"""Where child output goes, besides the console: files, written off the loop.

Lines reach a sink on the event loop; a file sink batches them and hands
whole-line chunks to the writer thread (writer.py), which does every file
write and every rotation. The console stream classes go through the same
writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable

from ..config.convert import to_bool, to_compress
from .writer import ConsoleTarget, FileTarget, Writer

log = logging.getLogger("bigtop.streams")

def stream_class(options: dict[str, str]) -> str | None:
    """``circus.stream.FileStream`` or ``FileStream``: the class's own name."""
    cls = options.get("class")
    return cls.rsplit(".", 1)[-1] if cls else None


class BatchSink:
    """Lines gathered during one loop iteration go to the writer as one
    chunk; a chunk the writer cannot take is dropped and counted."""

    def __init__(self, writer: Writer, target: FileTarget | ConsoleTarget):
        self.writer = writer
        self.target = target
        self.dropped = 0
        self._chunks: list[bytes] = []  # whole lines, each ending in a newline
        self._scheduled = False

    def add(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._chunks:
            return
        data = b"".join(self._chunks)
        self._chunks = []
        if not self.writer.submit(self.target, data):
            count = data.count(b"\n")
            self.dropped += count
            log.warning("%s: not keeping up, %d lines dropped (%d so far)",
                        self.target.filename, count, self.dropped)

    def close(self) -> None:
        self.flush()
        self.writer.release(self.target)


def use_color(fd: int) -> bool:
    """Escape codes only for a terminal, and never when NO_COLOR is set
    (https://no-color.org)."""
    return os.isatty(fd) and not os.environ.get("NO_COLOR")


CONSOLE_COLORS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
_picked: dict[str, int] = {}  # watcher -> its color, the same in every console sink


def watcher_color(watcher: str) -> int:
    """A color of its own for each watcher, in the order they first speak."""
    if watcher not in _picked:
        _picked[watcher] = CONSOLE_COLORS[len(_picked) % len(CONSOLE_COLORS)]
    return _picked[watcher]


class ConsoleSink:
    """Child output on the daemon's stdout, one prefixed line at a time,
    colored per watcher on a terminal (like ``docker compose``)."""

    def __init__(self, writer: Callable[[], Writer], fd: int = 1):
        self._writer = writer
        self.fd = fd
        self.color = use_color(fd)
        self._sink: BatchSink | None = None

    def __call__(self, watcher: str, wid: int, pid: int, stream: str, line: str) -> None:
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        prefix = f"{stamp} {watcher}.{wid}"
        if self.color:
            code = watcher_color(watcher)
            prefix = f"\x1b[2m{stamp}\x1b[0m \x1b[{code}m{watcher}.{wid}\x1b[0m"
        if self._sink is None:
            self._sink = BatchSink(self._writer(), ConsoleTarget(self.fd))
        self._sink.add(f"{prefix} | {line}\n".encode("utf-8", "replace"))

    @property
    def dropped(self) -> int:
        return self._sink.dropped if self._sink else 0

    def flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()


class StreamSink(BatchSink):
    """A configured stream class: made from its options (kept, so a changed
    option can be noticed) and fed chunks of whole lines of one process."""

    def __init__(self, writer: Writer, target: FileTarget | ConsoleTarget,
                 options: dict[str, str], watcher: str = ""):
        super().__init__(writer, target)
        self.options = dict(options)
        self.watcher = watcher

    def write(self, chunk: bytes, pid: int = 0, wid: int = 0, stream: str = "") -> None:
        self.add(chunk)


FILE_CLASSES = ("FileStream", "WatchedFileStream", "TimedRotatingFileStream", "JsonStream")
STDOUT_CLASSES = ("StdoutStream", "FancyStdoutStream")


class FileSink(StreamSink):
    """Circus's FileStream (``filename``, ``max_bytes``, ``backup_count``,
    ``time_format``: a strftime prefix for each line), WatchedFileStream
    (reopened when moved away), TimedRotatingFileStream (``rotate_when``
    S/M/H/D/midnight/W0-W6, ``rotate_interval``, ``utc``), and bigtop's
    JsonStream (one JSON object a line: time, watcher, pid, wid, stream,
    line). ``compress`` gzips the files that rotation sets aside."""

    def __init__(self, writer: Writer, options: dict[str, str], watcher: str = ""):
        cls = stream_class(options)
        self.json = cls == "JsonStream"
        super().__init__(writer, writer.open_file(
            options["filename"],
            max_bytes=int(options.get("max_bytes", 0)),
            backup_count=int(options.get("backup_count", 5)),
            watched=cls == "WatchedFileStream",
            rotate_when=(options.get("rotate_when", "H")
                         if cls == "TimedRotatingFileStream" else None),
            rotate_interval=int(options.get("rotate_interval", 1)),
            utc=to_bool(options.get("utc", False)),
            compress=to_compress(options.get("compress", False)),
        ), options, watcher)
        self.time_format = options.get("time_format")

    def write(self, chunk: bytes, pid: int = 0, wid: int = 0, stream: str = "") -> None:
        """A chunk of whole lines: as it is, or line by line when each line
        gets a time prefix or becomes a JSON object."""
        if self.json:
            now = time.time()
            self.add(b"".join(
                json.dumps({"time": now, "watcher": self.watcher, "pid": pid, "wid": wid,
                            "stream": stream, "line": line.decode("utf-8", "replace")}
                           ).encode() + b"\n"
                for line in chunk.split(b"\n")[:-1]))
        elif self.time_format:
            prefix = time.strftime(self.time_format).encode() + b" "
            self.add(b"".join(prefix + line + b"\n" for line in chunk.split(b"\n")[:-1]))
        else:
            self.add(chunk)


class StdoutSink(StreamSink):
    """Circus's StdoutStream: the lines on the daemon's standard output as
    the process wrote them, no prefix; chunks pass through untouched."""

    def __init__(self, writer: Writer, options: dict[str, str], watcher: str = "",
                 fd: int = 1):
        super().__init__(writer, ConsoleTarget(fd), options, watcher)


FANCY_COLORS = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36,
                "white": 37}
FANCY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class FancyStdoutSink(StdoutSink):
    """Circus's FancyStdoutStream: each line on the daemon's standard output
    after ``TIME WATCHER[PID] | ``, the prefix colored on a terminal
    (``color``: one of FANCY_COLORS, else the watcher's console color;
    ``time_format``: strftime, FANCY_TIME_FORMAT by default)."""

    def __init__(self, writer: Writer, options: dict[str, str], watcher: str = "",
                 fd: int = 1):
        super().__init__(writer, options, watcher, fd)
        self.time_format = options.get("time_format") or FANCY_TIME_FORMAT
        name = options.get("color", "").strip().lower()
        self.color = FANCY_COLORS.get(name) or watcher_color(watcher)
        self.colored = use_color(fd)

    def write(self, chunk: bytes, pid: int = 0, wid: int = 0, stream: str = "") -> None:
        head = f"{time.strftime(self.time_format)} {self.watcher}[{pid}]"
        if self.colored:
            head = f"\x1b[{self.color}m{head}\x1b[0m"
        prefix = head.encode("utf-8", "replace") + b" | "
        if not chunk:
            return
        if not chunk.endswith(b"\n"):
            chunk += b"\n"
        # Every line but the last ends in a newline that the next one follows.
        self.add(prefix + chunk[:-1].replace(b"\n", b"\n" + prefix) + b"\n")


def open_sink(writer: Callable[[], Writer], options: dict[str, str],
              watcher: str) -> StreamSink | None:
    """The sink of a stream's options, or None for the daemon's console
    (no class, one this version does not apply, or a file class without a
    filename, which the configuration warned about)."""
    cls = stream_class(options)
    if cls in FILE_CLASSES and options.get("filename"):
        return FileSink(writer(), options, watcher)
    if cls == "StdoutStream":
        return StdoutSink(writer(), options, watcher)
    if cls == "FancyStdoutStream":
        return FancyStdoutSink(writer(), options, watcher)
    return None
