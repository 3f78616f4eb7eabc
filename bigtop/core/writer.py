"""The thread that writes every file, and what it writes to.

A sink hands whole-line chunks to the ``Writer``, one thread that does
every file write, so a slow or full disk never stalls the loop or the
children. Its queue is bounded: what does not fit is dropped and counted,
never silently. Rotation happens in the writer, between lines, so it
neither splits nor drops nor duplicates one; a rotated file is gzipped
there too, when asked. The daemon's standard output is a target too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import queue
import re
import shutil
import threading
import time
from typing import Any

log = logging.getLogger("bigtop.streams")

MAX_PENDING = 64 * 1024 * 1024  # bytes queued for the writer before drops
STUCK_AFTER = 5.0  # seconds without a completed write: the disk is stuck


ROTATE_SECONDS = {"S": 1, "M": 60, "H": 3600, "D": 86400, "MIDNIGHT": 86400}
GZIP_LEVEL = 1  # rotation blocks the writer while it runs: fast beats small
GZIP_CHUNK = 1024 * 1024  # read and compressed this much at a time


class FileTarget:
    """An append-only file, rotated by size or by time, or reopened when
    something else moved it (``watched``, for an external logrotate); used
    by the writer thread only."""

    def __init__(self, filename: str, max_bytes: int = 0, backup_count: int = 5,
                 watched: bool = False, rotate_when: str | None = None,
                 rotate_interval: int = 1, utc: bool = False, compress: bool = False):
        self.filename = filename
        self.compress = compress
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
        self.size = os.fstat(self.handle.fileno()).st_size  # 0 for a pipe or a device
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

    def _close(self) -> None:
        # Closed before anything that may fail: the next write reopens.
        handle, self.handle = self.handle, None
        handle.close()

    def _rotate(self) -> None:
        """FILE becomes FILE.1 (FILE.1.gz when compressing), the older ones
        shift up by one, and the one past backup_count goes. A backup left
        plain by a failed compression shifts along with the others."""
        self._close()
        base = self.filename
        for suffix in ("", ".gz"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{base}.{self.backup_count}{suffix}")
        for index in range(self.backup_count - 1, 0, -1):
            for suffix in ("", ".gz"):
                older = f"{base}.{index}{suffix}"
                if os.path.exists(older):
                    os.replace(older, f"{base}.{index + 1}{suffix}")
        os.replace(base, f"{base}.1")
        self._open()
        if self.compress:
            self._gzip(f"{base}.1")

    def _rotate_by_time(self) -> None:
        """Rename to FILE.YYYY-MM-DD_HH-MM-SS (plus .gz when compressing) and
        keep backup_count of them. A second rotation within the same second
        is FILE.STAMP-1, then -2...: numbered past the newest one, so the
        newest never sorts before an older one."""
        self._close()
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S",
                              time.gmtime() if self.utc else time.localtime())
        same = [n for when, n, _ in self._timed_backups() if when == stamp]
        target = f"{self.filename}.{stamp}" + (f"-{max(same) + 1}" if same else "")
        os.replace(self.filename, target)
        self._open()
        if self.compress:
            self._gzip(target)
        if self.backup_count:
            directory = os.path.dirname(os.path.abspath(self.filename))
            for _, _, name in self._timed_backups()[:-self.backup_count]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))

    def _timed_backups(self) -> list[tuple[str, int, str]]:
        """(stamp, same-second number, file name) of each time-stamped
        backup, compressed or not, oldest first."""
        directory, base = os.path.split(os.path.abspath(self.filename))
        pattern = re.compile(re.escape(base) + r"\.(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)"
                             r"(?:-(\d+))?(?:\.gz)?")
        found = []
        for name in os.listdir(directory):
            match = pattern.fullmatch(name)
            if match:
                found.append((match.group(1), int(match.group(2) or 0), name))
        return sorted(found)

    def _gzip(self, path: str) -> str:
        """Compress a rotated file to PATH.gz, streaming it, through a hidden
        temporary name so no one ever sees half an archive; the plain file
        goes only once the archive is complete. If it fails (a full disk),
        the plain file stays: nothing is lost. Returns the name kept."""
        final = f"{path}.gz"
        directory, name = os.path.split(final)
        temp = os.path.join(directory, f".{name}.tmp")
        try:
            with open(path, "rb") as source, open(temp, "wb") as raw:
                mtime = os.fstat(source.fileno()).st_mtime
                with gzip.GzipFile(os.path.basename(path), "wb", GZIP_LEVEL, raw, mtime) as out:
                    shutil.copyfileobj(source, out, GZIP_CHUNK)
                raw.flush()
                os.fsync(raw.fileno())  # on disk before the plain copy goes
            os.replace(temp, final)
        except OSError as err:
            log.warning("cannot compress %s, kept uncompressed: %s", path, err)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return path
        try:
            os.unlink(path)
        except OSError as err:
            log.warning("compressed %s but cannot remove it: %s", path, err)
        return final

    def close(self) -> None:
        if self.handle is not None:
            self._close()


class Writer:
    """The thread that writes every file.

    When more than half of its bound is queued it is ``congested``: the
    pipe readers then hold off (the children wait on their full pipes)
    rather than have lines dropped, unless the writer is ``stuck``, making
    no progress for ``STUCK_AFTER`` seconds (a hung disk): the children
    then go on and what does not fit is dropped and counted."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self.max_pending = max_pending
        self.pending = 0
        self.progress = time.monotonic()  # when a write last completed
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._files: dict[str, tuple[FileTarget, int]] = {}  # path -> target, its users
        self._thread = threading.Thread(target=self._run, name="bigtop-writer", daemon=True)
        self._thread.start()

    def submit(self, target: FileTarget | ConsoleTarget, data: bytes) -> bool:
        """Queue a chunk of whole lines; False (dropped) if over the bound."""
        with self._lock:
            if self.pending + len(data) > self.max_pending:
                return False
            if not self.pending:
                self.progress = time.monotonic()  # idle until now, not stuck
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
                    self.progress = time.monotonic()

    @property
    def congested(self) -> bool:
        return self.pending > self.max_pending // 2

    def holding(self) -> bool:
        """Whether output should wait: congested but not stuck."""
        return self.congested and time.monotonic() - self.progress < STUCK_AFTER

    def open_file(self, filename: str, **options: Any) -> FileTarget:
        """The target of a file: one per path, shared by every stream that
        names it (stdout and stderr of a watcher, several watchers), so its
        size and rotation count every line and no stream writes on into a
        rotated backup. The first stream's options are the file's."""
        path = os.path.abspath(filename)
        target, users = self._files.get(path) or (FileTarget(filename, **options), 0)
        self._files[path] = (target, users + 1)
        return target

    def release(self, target: FileTarget | ConsoleTarget) -> None:
        """Close a file once everything queued for it is written and its
        last stream released it."""
        if isinstance(target, FileTarget):
            path = os.path.abspath(target.filename)
            _, users = self._files.pop(path, (target, 1))
            if users > 1:
                self._files[path] = (target, users - 1)
                return
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
