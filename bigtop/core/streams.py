"""Where child output goes, besides the console: files, written off the loop.

Lines reach a sink on the event loop; a file sink batches them and hands
whole-line chunks to the Writer, one thread that does every file write, so
a slow or full disk never stalls the loop or the children. Its queue is
bounded: what does not fit is dropped and counted, never silently.
Rotation happens in the writer, between lines, so it neither splits nor
drops nor duplicates one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bigtop.streams")

MAX_PENDING = 64 * 1024 * 1024  # bytes queued for the writer before drops


def stream_class(options: dict[str, str]) -> str | None:
    """``circus.stream.FileStream`` or ``FileStream``: the class's own name."""
    cls = options.get("class")
    return cls.rsplit(".", 1)[-1] if cls else None


ROTATE_SECONDS = {"S": 1, "M": 60, "H": 3600, "D": 86400, "MIDNIGHT": 86400}


class FileTarget:
    """An append-only file, rotated by size or by time, or reopened when
    something else moved it (``watched``, for an external logrotate); used
    by the writer thread only."""

    def __init__(self, filename: str, max_bytes: int = 0, backup_count: int = 5,
                 watched: bool = False, rotate_when: str | None = None,
                 rotate_interval: int = 1, utc: bool = False):
        self.filename = filename
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.watched = watched
        self.rotate_when = rotate_when.upper() if rotate_when else None
        self.rotate_interval = max(rotate_interval, 1)
        self.utc = utc
        self.rotate_at = 0.0
        self.handle: Any = None
        self.size = 0

    def _open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        self.handle = open(self.filename, "ab", buffering=0)  # noqa: SIM115
        self.size = self.handle.tell()
        if self.rotate_when:
            self.rotate_at = self._next_rotation(time.time())

    def _next_rotation(self, now: float) -> float:
        when = self.rotate_when or "D"
        if when == "MIDNIGHT" or when.startswith("W"):
            day = time.gmtime(now) if self.utc else time.localtime(now)
            since_midnight = day.tm_hour * 3600 + day.tm_min * 60 + day.tm_sec
            days = 1
            if when.startswith("W"):
                days = (int(when[1:] or 0) - day.tm_wday) % 7 or 7
            return now - since_midnight + days * 86400
        return now + ROTATE_SECONDS.get(when, 86400) * self.rotate_interval

    def _moved(self) -> bool:
        try:
            on_disk = os.stat(self.filename)
        except FileNotFoundError:
            return True
        mine = os.fstat(self.handle.fileno())
        return (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino)

    def write(self, data: bytes) -> None:
        if self.handle is None:
            self._open()
        elif self.watched and self._moved():
            self.handle.close()
            self._open()
        if self.rotate_when:
            if time.time() >= self.rotate_at:
                self._rotate_by_time()
            self._put(data)
            return
        if not self.max_bytes or not self.backup_count:
            self._put(data)
            return
        while data:
            room = self.max_bytes - self.size
            if len(data) <= room:
                self._put(data)
                return
            cut = data.rfind(b"\n", 0, room) + 1
            if cut:
                self._put(data[:cut])
                data = data[cut:]
            elif self.size == 0:
                # A line longer than the limit: it goes whole into its file.
                end = data.find(b"\n") + 1 or len(data)
                self._put(data[:end])
                data = data[end:]
            self._rotate()

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self.handle.write(view)
            view = view[written:]
        self.size += len(data)

    def _rotate(self) -> None:
        self.handle.close()
        for index in range(self.backup_count - 1, 0, -1):
            older = f"{self.filename}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self.filename}.{index + 1}")
        os.replace(self.filename, f"{self.filename}.1")
        self._open()

    def _rotate_by_time(self) -> None:
        """Rename to FILE.YYYY-MM-DD_HH-MM-SS and keep backup_count of them."""
        self.handle.close()
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S",
                              time.gmtime() if self.utc else time.localtime())
        target, n = f"{self.filename}.{stamp}", 1
        while os.path.exists(target):  # never overwrite an earlier backup
            target, n = f"{self.filename}.{stamp}-{n}", n + 1
        os.replace(self.filename, target)
        if self.backup_count:
            directory = os.path.dirname(os.path.abspath(self.filename))
            prefix = os.path.basename(self.filename) + "."
            old = sorted(n for n in os.listdir(directory) if n.startswith(prefix))
            for name in old[:-self.backup_count]:
                os.unlink(os.path.join(directory, name))
        self._open()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class Writer:
    """The thread that writes every file."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self.max_pending = max_pending
        self.pending = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bigtop-writer", daemon=True)
        self._thread.start()

    def submit(self, target: FileTarget | ConsoleTarget, data: bytes) -> bool:
        """Queue a chunk of whole lines; False (dropped) if over the bound."""
        with self._lock:
            if self.pending + len(data) > self.max_pending:
                return False
            self.pending += len(data)
        self._queue.put((target, data))
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            target, data = item
            if isinstance(data, threading.Event):
                data.set()
                continue
            try:
                if data is None:
                    target.close()
                else:
                    target.write(data)
            except OSError as err:
                log.error("cannot write %s: %s", target.filename, err)
            finally:
                with self._lock:
                    self.pending -= len(data or b"")

    def release(self, target: FileTarget | ConsoleTarget) -> None:
        """Close a file once everything queued for it is written."""
        self._queue.put((target, None))

    async def drain(self) -> None:
        """Wait until everything queued so far is written."""
        done = threading.Event()
        self._queue.put((None, done))
        await asyncio.get_running_loop().run_in_executor(None, done.wait)

    async def close(self) -> None:
        await self.drain()
        self._queue.put(None)
        self._thread.join()


class ConsoleTarget:
    """The daemon's standard output, written by the writer thread too, so
    a slow terminal or a full pipe never stalls the loop."""

    filename = "<stdout>"

    def __init__(self, fd: int = 1):
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        pass


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


class ConsoleSink:
    """Child output on the daemon's stdout, one prefixed line at a time,
    colored per watcher on a terminal (like ``docker compose``)."""

    COLORS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)

    def __init__(self, writer: Callable[[], Writer], fd: int = 1):
        self._writer = writer
        self.fd = fd
        self.color = os.isatty(fd)
        self._colors: dict[str, int] = {}
        self._sink: BatchSink | None = None

    def __call__(self, watcher: str, wid: int, pid: int, stream: str, line: str) -> None:
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        prefix = f"{stamp} {watcher}.{wid}"
        if self.color:
            code = self._colors.setdefault(watcher, self.COLORS[len(self._colors) % 10])
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


FILE_CLASSES = ("FileStream", "WatchedFileStream", "TimedRotatingFileStream", "JsonStream")


class FileSink(BatchSink):
    """Circus's FileStream (``filename``, ``max_bytes``, ``backup_count``,
    ``time_format``: a strftime prefix for each line), WatchedFileStream
    (reopened when moved away), TimedRotatingFileStream (``rotate_when``
    S/M/H/D/midnight/W0-W6, ``rotate_interval``, ``utc``), and bigtop's
    JsonStream (one JSON object a line: time, watcher, pid, wid, stream,
    line)."""

    def __init__(self, writer: Writer, options: dict[str, str], watcher: str = ""):
        cls = stream_class(options)
        self.options = dict(options)
        self.watcher = watcher
        self.json = cls == "JsonStream"
        super().__init__(writer, FileTarget(
            options["filename"],
            int(options.get("max_bytes", 0)),
            int(options.get("backup_count", 5)),
            watched=cls == "WatchedFileStream",
            rotate_when=(options.get("rotate_when", "H")
                         if cls == "TimedRotatingFileStream" else None),
            rotate_interval=int(options.get("rotate_interval", 1)),
            utc=options.get("utc", "false").lower() in ("1", "true", "yes", "on"),
        ))
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
