"""Where child output goes, besides the console: files, written off the loop.

Lines reach a sink on the event loop; a file sink batches them and hands
whole-line chunks to the writer thread (writer.py), which does every file
write and every rotation. The console stream classes go through the same
writer.

A chunk may end inside a line (one the child left unfinished, see
output.py): what follows it in the same file or on the same descriptor is
the rest of that line, from the same pipe, or else a newline that this
module adds first, so that another pipe's output never continues it. The
writer can tell from a chunk's last byte whether the file then ends
inside a line; after one that does not end in a newline, the next bytes
written there continue that line. Per-line forms know where lines begin:
a ``time_format`` or FancyStdoutStream prefix starts each line, not a
piece that continues one, and a JsonStream object of a piece whose line
goes on in the next object of its process and stream has ``partial``.
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
JOIN_BELOW = 64 * 1024  # chunks smaller than this are joined before the writer gets them

def stream_class(options: dict[str, str]) -> str | None:
    """``circus.stream.FileStream`` or ``FileStream``: the class's own name."""
    cls = options.get("class")
    return cls.rsplit(".", 1)[-1] if cls else None


class BatchSink:
    """Lines gathered during one loop iteration go to the writer as one
    chunk. What the writer drops instead (it is behind, or the file cannot
    be written for too long: writer.py), whole lines, is counted in
    ``drops``, and in the count of the sink's ``watcher``, if it has one."""

    watcher = ""  # whose lines these are (a StreamSink's)

    def __init__(self, writer: Writer, target: FileTarget | ConsoleTarget):
        self.writer = writer
        self.target = target
        self.drops = writer.counter()  # lines and bytes; the writer thread adds too
        self._chunks: list[bytes] = []  # lines (a chunk may end inside one)
        self._scheduled = False

    @property
    def dropped(self) -> int:
        """Lines dropped."""
        return self.drops.lines

    def add(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand the iteration's chunks on: small ones joined (fewer writes),
        large ones as they are (a join would copy them once more, the
        largest cost of a fast child's output)."""
        self._scheduled = False
        if not self._chunks:
            return
        chunks, self._chunks = self._chunks, []
        if self.drops.parent is None and self.watcher:
            self.drops.parent = self.writer.drops_of(self.watcher)
        group: list[bytes] = []
        size = 0
        for chunk in chunks:
            if len(chunk) >= JOIN_BELOW:
                if group:
                    self._submit(b"".join(group))  # one chunk: itself, not a copy
                    group, size = [], 0
                self._submit(chunk)
                continue
            group.append(chunk)
            size += len(chunk)
            if size >= JOIN_BELOW:
                self._submit(b"".join(group))
                group, size = [], 0
        if group:
            self._submit(b"".join(group))

    def _submit(self, data: bytes) -> None:
        self.writer.submit(self.target, data, self.drops)  # drops logged there, once

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


Output = tuple[str, str | int]  # ("file", absolute path) or ("fd", descriptor)
Pipe = tuple[int, str]  # (pid, stream)
# Each output whose last bytes are an unfinished line -> the pipe it is of
# (ENDED: it ended there without a newline, its pipe closed).
_unfinished: dict[Output, Pipe] = {}
ENDED: Pipe = (0, "")


def output_of(target: FileTarget | ConsoleTarget) -> Output:
    if isinstance(target, FileTarget):
        return ("file", os.path.abspath(target.filename))
    return ("fd", target.fd)


def follow(output: Output, chunk: bytes, pid: int, stream: str,
           last: bool) -> tuple[bytes, bool]:
    """Before a pipe's chunk goes to an output: a newline to write first,
    when another pipe's unfinished line ends that output, and whether the
    chunk continues a piece of its own pipe written just before. Records
    how the output ends with the chunk (``last``: its pipe closed)."""
    pipe = (pid, stream)
    before = _unfinished.pop(output, None)
    if not chunk:
        if before is not None:
            _unfinished[output] = ENDED if before == pipe else before
        return b"", False
    if chunk[-1] != 10:  # b"\n"
        _unfinished[output] = ENDED if last else pipe
    if before is None or before == pipe:
        return b"", before is not None
    return b"\n", False


def prefixed(chunk: bytes, prefix: bytes, continued: bool) -> bytes:
    """Each line of a chunk after ``prefix``, but for a first one that
    continues a piece already written; an unfinished last line has it too,
    and still no newline."""
    if chunk.endswith(b"\n"):
        body = chunk[:-1].replace(b"\n", b"\n" + prefix) + b"\n"
    else:
        body = chunk.replace(b"\n", b"\n" + prefix)
    return body if continued else prefix + body


class ConsoleSink:
    """Child output on the daemon's stdout, one prefixed line at a time,
    colored per watcher on a terminal (like ``docker compose``). A piece of
    an unfinished line comes as a line of its own, and is printed as one."""

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
        text = f"{prefix} | {line}\n"
        if _unfinished and _unfinished.pop(("fd", self.fd), None) is not None:
            text = "\n" + text  # a stream class left a line unfinished there
        self._sink.add(text.encode("utf-8", "replace"))

    def flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()


class StreamSink(BatchSink):
    """A configured stream class: made from its options (kept, so a changed
    option can be noticed) and fed chunks of whole lines of one process, the
    last one maybe unfinished (continued by the next chunk of that process
    and stream; ``last``: its pipe closed, and the line ends there)."""

    def __init__(self, writer: Writer, target: FileTarget | ConsoleTarget,
                 options: dict[str, str], watcher: str = ""):
        super().__init__(writer, target)
        self.options = dict(options)
        self.watcher = watcher
        self.output = output_of(target)

    def place(self, chunk: bytes, pid: int, stream: str, last: bool) -> tuple[bytes, bool]:
        """``follow`` for this sink's output; at once while no line is
        unfinished anywhere and the chunk ends in a newline."""
        if not _unfinished and chunk[-1:] == b"\n":
            return b"", False
        return follow(self.output, chunk, pid, stream, last)

    def write(self, chunk: bytes, pid: int = 0, wid: int = 0, stream: str = "",
              last: bool = False) -> None:
        """The bytes as they are."""
        before, _ = self.place(chunk, pid, stream, last)
        if chunk:
            self.add(before + chunk if before else chunk)


FILE_CLASSES = ("FileStream", "WatchedFileStream", "TimedRotatingFileStream", "JsonStream")
STDOUT_CLASSES = ("StdoutStream", "FancyStdoutStream")


class FileSink(StreamSink):
    """Circus's FileStream (``filename``, ``max_bytes``, ``backup_count``,
    ``time_format``: a strftime prefix for each line), WatchedFileStream
    (reopened when moved away), TimedRotatingFileStream (``rotate_when``
    S/M/H/D/midnight/W0-W6, ``rotate_interval``, ``utc``), and bigtop's
    JsonStream (one JSON object a line: time, watcher, pid, wid, stream,
    line, and ``partial: true`` on a piece whose line goes on in the next
    object of its pid and stream). ``compress`` gzips the files that
    rotation sets aside."""

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

    def write(self, chunk: bytes, pid: int = 0, wid: int = 0, stream: str = "",
              last: bool = False) -> None:
        """A chunk: as it is, or line by line when each line gets a time
        prefix (not a piece that continues one) or becomes a JSON object
        (a piece too, ``partial`` when its line goes on)."""
        if self.json:
            now = time.time()

            def record(line: bytes) -> dict[str, object]:
                return {"time": now, "watcher": self.watcher, "pid": pid, "wid": wid,
                        "stream": stream, "line": line.decode("utf-8", "replace")}

            lines = chunk.split(b"\n")
            end = lines.pop()  # after the last newline: nothing, or a piece
            records = [record(line) for line in lines]
            if end or last:  # last: what ends a line already begun, maybe nothing
                records.append(record(end))
                if not last:
                    records[-1]["partial"] = True
            if records:
                self.add(b"".join(json.dumps(record).encode() + b"\n" for record in records))
        elif self.time_format:
            before, continued = self.place(chunk, pid, stream, last)
            if chunk:
                prefix = time.strftime(self.time_format).encode() + b" "
                self.add(before + prefixed(chunk, prefix, continued))
        else:
            super().write(chunk, pid, wid, stream, last)


class StdoutSink(StreamSink):
    """Circus's StdoutStream: the lines on the daemon's standard output as
    the process wrote them, no prefix; chunks pass through untouched (but
    for a newline before one when another pipe left a line unfinished)."""

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

    def write(self, chunk: bytes, pid: int = 0, wid: int = 0, stream: str = "",
              last: bool = False) -> None:
        """Each line after the prefix; a piece that continues a line as it is."""
        before, continued = self.place(chunk, pid, stream, last)
        if not chunk:
            return
        head = f"{time.strftime(self.time_format)} {self.watcher}[{pid}]"
        if self.colored:
            head = f"\x1b[{self.color}m{head}\x1b[0m"
        prefix = head.encode("utf-8", "replace") + b" | "
        self.add(before + prefixed(chunk, prefix, continued))


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
