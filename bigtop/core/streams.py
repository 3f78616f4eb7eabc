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
import logging
import os
import queue
import threading
import time
from typing import Any

log = logging.getLogger("bigtop.streams")

MAX_PENDING = 64 * 1024 * 1024  # bytes queued for the writer before drops


def stream_class(options: dict[str, str]) -> str | None:
    """``circus.stream.FileStream`` or ``FileStream``: the class's own name."""
    cls = options.get("class")
    return cls.rsplit(".", 1)[-1] if cls else None


class FileTarget:
    """An append-only file with size rotation; used by the writer thread only."""

    def __init__(self, filename: str, max_bytes: int = 0, backup_count: int = 5):
        self.filename = filename
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.handle: Any = None
        self.size = 0

    def _open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        self.handle = open(self.filename, "ab", buffering=0)  # noqa: SIM115
        self.size = self.handle.tell()

    def write(self, data: bytes) -> None:
        if self.handle is None:
            self._open()
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

    def submit(self, target: FileTarget, data: bytes) -> bool:
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

    def release(self, target: FileTarget) -> None:
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


class FileSink:
    """Circus's FileStream: ``filename``, ``max_bytes``, ``backup_count``,
    ``time_format`` (a strftime prefix for each line)."""

    def __init__(self, writer: Writer, options: dict[str, str]):
        self.writer = writer
        self.target = FileTarget(options["filename"], int(options.get("max_bytes", 0)),
                                 int(options.get("backup_count", 5)))
        self.time_format = options.get("time_format")
        self.dropped = 0
        self._lines: list[bytes] = []
        self._scheduled = False

    def write(self, line: bytes) -> None:
        if self.time_format:
            line = time.strftime(self.time_format).encode() + b" " + line
        self._lines.append(line)
        if not self._scheduled:
            # Lines of one read go to the writer as one chunk.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = b"\n".join(self._lines) + b"\n"
        count = len(self._lines)
        self._lines = []
        if not self.writer.submit(self.target, data):
            self.dropped += count
            log.warning("%s: the disk is not keeping up, %d lines dropped (%d so far)",
                        self.target.filename, count, self.dropped)

    def close(self) -> None:
        self.flush()
        self.writer.release(self.target)
