"""The thread that writes every file, and what it writes to.

A sink hands chunks of lines to the ``Writer``, one thread that does every
file write, so a slow or full disk never stalls the loop or the children.
Rotation happens in the writer, between lines, so it neither splits nor
drops nor duplicates one; a rotated file is gzipped there too, when asked.
The daemon's standard output is a target too.

Nothing is lost silently, and no line is torn or glued onto another:

- A slow disk: the queue is bounded (``MAX_PENDING``). Past half of it the
  pipe readers hold back (``holding``) and the children wait on their full
  pipes, unless the writer is stuck (no write completed for
  ``STUCK_AFTER`` seconds); past the bound, ``submit`` drops lines until
  the queue is back under half of it.
- A target that cannot be written (a full disk, EIO, EDQUOT, EFBIG, a
  directory that cannot be made again): its data is parked in a backlog of
  its own (``max_backlog`` bytes) and tried again every ``RETRY_EVERY``
  seconds, while the other targets are written as usual. The readers of
  the streams that write to it hold back (``holds``) for ``hold`` seconds
  (``HOLD_FAILING``); past that, or past the backlog's bound, its lines are
  dropped until it takes data again, which needs nobody.
- A drop is whole lines, from a line boundary: when the disk took the head
  of a line, its rest is kept and goes first (``mid_line``); when the head
  of a line was dropped, so is its rest (``skipping``). Drops are counted
  (``Dropped``: per sink, adding up per watcher), logged once when they
  start and once when they end, with the counts, and each watcher
  concerned is told at both ends (its ``output_dropped`` event).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import queue
import re
import shutil
import stat
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bigtop.streams")

MAX_PENDING = 64 * 1024 * 1024  # bytes queued for the writer before drops
STUCK_AFTER = 5.0  # seconds without a completed write: the disk is stuck
HOLD_FAILING = STUCK_AFTER  # seconds a target that cannot be written holds its streams back
HOLD_VARIABLE = "BIGTOP_OUTPUT_HOLD"  # HOLD_FAILING from the daemon's environment (for tests)
RETRY_EVERY = 0.5  # seconds between tries of a target that cannot be written
BACKLOG_SHARE = 8  # a target that cannot be written parks up to MAX_PENDING / this
REOPEN_ERRORS = (errno.ENOENT, errno.ESTALE)  # the file went away under its handle
NEWLINE = ord("\n")


ROTATE_SECONDS = {"S": 1, "M": 60, "H": 3600, "D": 86400, "MIDNIGHT": 86400}
GZIP_LEVEL = 1  # rotation blocks the writer while it runs: fast beats small
GZIP_CHUNK = 1024 * 1024  # read and compressed this much at a time


def line_head(data: bytes) -> int:
    """The length of the first line of data, its newline included; all of
    data when it has none."""
    return data.find(b"\n") + 1 or len(data)


def lines_begun(data: bytes, at_line_start: bool) -> int:
    """The lines that begin in data: after each newline but a last one,
    and at its start if a line begins there (rather than continues)."""
    if not data:
        return 0
    return data.count(b"\n", 0, len(data) - 1) + at_line_start


def hold_from_env() -> float:
    """HOLD_FAILING, or the seconds in $BIGTOP_OUTPUT_HOLD (a testing knob)."""
    value = os.environ.get(HOLD_VARIABLE, "").strip()
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            log.warning("%s=%r is not a number of seconds: %gs", HOLD_VARIABLE, value,
                        HOLD_FAILING)
    return HOLD_FAILING


def _size(nbytes: int) -> str:
    return f"{nbytes / 1048576:.1f} MiB" if nbytes >= 1048576 else f"{nbytes} bytes"


class Unwritten(OSError):
    """A write that failed, and how many bytes of its data went (``written``)."""

    def __init__(self, error: OSError, written: int, filename: str):
        super().__init__(error.errno, error.strerror or str(error), filename)
        self.written = written


class Dropped:
    """Output dropped: ``lines`` and ``bytes``. Added to by the loop and by
    the writer thread, under a lock; read by the loop (an int is read
    whole). A sink's count also adds to its ``parent``, its watcher's,
    which ``report``s on its loop when lines start and stop being dropped
    (``tell``, from either thread)."""

    def __init__(self, report: Callable[[dict[str, Any]], None] | None = None,
                 loop: asyncio.AbstractEventLoop | None = None):
        self.lines = 0
        self.bytes = 0
        self.parent: Dropped | None = None
        self.report = report
        self.loop = loop
        self._lock = threading.Lock()

    def add(self, lines: int, nbytes: int) -> None:
        with self._lock:
            self.lines += lines
            self.bytes += nbytes
        if self.parent is not None:
            self.parent.add(lines, nbytes)

    def root(self) -> Dropped:
        return self if self.parent is None else self.parent.root()

    def tell(self, payload: dict[str, Any]) -> None:
        if self.report is None or self.loop is None:
            return
        payload = {**payload, "dropped_lines": self.lines, "dropped_bytes": self.bytes}
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon is gone
            self.loop.call_soon_threadsafe(self.report, payload)


class _Episode:
    """The lines of one target being dropped, from the first to when it is
    written again (or closes): counted in all and per watcher, each
    watcher told at both ends."""

    def __init__(self, filename: str, reason: str):
        self.filename = filename
        self.reason = reason
        self.lines = 0
        self.bytes = 0
        self.roots: dict[Dropped, list[int]] = {}

    def count(self, drops: Dropped | None, lines: int, nbytes: int) -> None:
        self.lines += lines
        self.bytes += nbytes
        if drops is None:
            return
        root = drops.root()
        counts = self.roots.get(root)
        if counts is None:
            self.roots[root] = [lines, nbytes]
            root.tell(self._payload(True, lines, nbytes))
        else:
            counts[0] += lines
            counts[1] += nbytes

    def end(self) -> None:
        for root, (lines, nbytes) in self.roots.items():
            root.tell(self._payload(False, lines, nbytes))

    def _payload(self, dropping: bool, lines: int, nbytes: int) -> dict[str, Any]:
        return {"file": self.filename, "reason": self.reason, "dropping": dropping,
                "lines": lines, "bytes": nbytes}


class Target:
    """What the writer writes to, and where the stream of lines to it stands.

    A chunk is lines, the last of which may be the head of a line whose
    rest comes in a later chunk. ``mid_line``: what the target holds ends
    inside a line, whose rest must follow it here; ``skipping``: the writer
    dropped the head of a line, so its rest is dropped too (both the writer
    thread's). ``queued_open`` and ``refused_open`` say the same of what
    ``submit`` queued and dropped, and ``shed`` is the drops going on there
    (the loop's)."""

    filename = ""
    mid_line = False
    skipping = False
    queued_open = False
    refused_open = False
    shed: _Episode | None = None

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileTarget(Target):
    """An append-only file, rotated by size or by time, or reopened when
    something else moved it (``watched``, for an external logrotate); used
    by the writer thread only. It never rotates inside a line: after a
    write that ended inside one, the rest of the line goes first."""

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
        self._done = 0  # bytes of the data being written that went
        self._foreign_line = False  # the file ends inside a line this target did not begin

    def _open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        self.handle = open(self.filename, "ab", buffering=0)  # noqa: SIM115
        try:
            info = os.fstat(self.handle.fileno())
        except OSError:
            self._close()
            raise
        self.size = info.st_size  # 0 for a pipe or a device
        # Opened again with the rest of a line of ours to come (after
        # ENOENT, ESTALE), the file may end with its head: not foreign.
        self._foreign_line = (not self.mid_line and self.size > 0
                              and stat.S_ISREG(info.st_mode) and not self._ends_line())
        if self.rotate_when:
            self.rotate_at = self._next_rotation(time.time())

    def _ends_line(self) -> bool:
        """Whether the file ends with a newline (assumed when unreadable)."""
        try:
            fd = os.open(self.filename, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return True
        try:
            return os.pread(fd, 1, self.size - 1) in (b"\n", b"")
        except OSError:
            return True
        finally:
            os.close(fd)

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
        """Append data, rotating between lines. Raises Unwritten (an
        OSError) when the file cannot take all of it, with how much it
        took: whole lines, and maybe the head of one (``mid_line``), whose
        rest must come next. A file that went away under its handle
        (ENOENT, ESTALE) is opened again (its directory made again), once."""
        self._done = 0
        try:
            try:
                self._write(data)
            except OSError as err:
                if err.errno not in REOPEN_ERRORS or self.handle is None:
                    raise
                log.warning("%s: %s: opening it again", self.filename, err.strerror)
                self._close()
                self._write(data[self._done:])
        except OSError as err:
            raise Unwritten(err, self._done, self.filename) from err

    def _write(self, data: bytes) -> None:
        if self.handle is None:
            self._open()
        elif self.watched and self._moved():
            self._close()
            self._open()
        if self._foreign_line:
            # Half a line left by another run (one that could not complete
            # it: a full disk until it stopped) or by a process that ended
            # without a newline: ended first, so that nothing is glued onto
            # it, unless what comes begins with a newline already.
            if data[:1] != b"\n":
                self.handle.write(b"\n")
                self.size += 1
            self._foreign_line = False
        if self.rotate_when:
            if self.mid_line and time.time() >= self.rotate_at:
                end = line_head(data)  # the rest of a line first: it rotates after
                self._put(data[:end])
                data = data[end:]
            if data and time.time() >= self.rotate_at:
                self._rotate_by_time()
            if data:
                self._put(data)
            return
        if not self.max_bytes or not self.backup_count:
            self._put(data)
            return
        while data:
            room = max(self.max_bytes - self.size, 0)
            if len(data) <= room:
                self._put(data)
                return
            if self.mid_line:
                cut = line_head(data)  # the rest of a line goes where its head is
            else:
                cut = data.rfind(b"\n", 0, room) + 1
                if not cut and self.size == 0:
                    cut = line_head(data)  # a line longer than the limit: whole in its file
            if cut:
                self._put(data[:cut])
                data = data[cut:]
            if data:  # what was put ended a line (else nothing is left)
                self._rotate()

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += self.handle.write(view[written:])
        finally:
            if written:
                self.size += written
                self._done += written
                self.mid_line = data[written - 1] != NEWLINE

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
        import gzip  # here: most daemons never compress a file

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


class _Failing:
    """A target that cannot be written: since when, what waits for it
    (``parked``: [data, drops], oldest first), when to try it again, and
    the drops once they began."""

    def __init__(self, error: OSError, now: float):
        self.error = error
        self.since = now
        self.retry_at = now + RETRY_EVERY
        self.parked: deque[list[Any]] = deque()
        self.size = 0
        self.episode: _Episode | None = None


class Writer:
    """The thread that writes every file.

    When more than half of its bound is queued it is ``congested``: the
    pipe readers then hold off (the children wait on their full pipes)
    rather than have lines dropped, unless the writer is ``stuck``, making
    no progress for ``STUCK_AFTER`` seconds (a hung disk): the children
    then go on and what does not fit is dropped and counted. A target
    that cannot be written waits apart, and ``holds`` its own readers back
    (see the module's docstring)."""

    def __init__(self, max_pending: int = MAX_PENDING, hold: float | None = None,
                 max_backlog: int | None = None):
        self.max_pending = max_pending
        self.hold = hold_from_env() if hold is None else hold
        self.max_backlog = max_pending // BACKLOG_SHARE if max_backlog is None else max_backlog
        self.pending = 0
        self.progress = time.monotonic()  # when a write last completed
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._files: dict[str, tuple[FileTarget, int]] = {}  # path -> target, its users
        # Written by the writer thread; the loop reads it (holds): a dict's
        # get is atomic.
        self._failing: dict[Target, _Failing] = {}
        self._counts: weakref.WeakValueDictionary[str, Dropped] = weakref.WeakValueDictionary()
        self._thread = threading.Thread(target=self._run, name="bigtop-writer", daemon=True)
        self._thread.start()

    # -- the loop's side ---------------------------------------------------

    def submit(self, target: Target, data: bytes, drops: Dropped | None = None) -> bool:
        """Queue data for target: lines, the last of which may be the head
        of a line whose rest comes next. Returns False if some of it was
        dropped instead (counted in drops): past the bound, and from then
        on while the queue is over half of it; from a line boundary, so the
        rest of a line already queued is queued whatever the bound, and the
        rest of a line dropped is dropped."""
        if not data:
            return True
        skipped = lost = b""
        with self._lock:
            if target.refused_open:
                end = line_head(data)
                skipped, data = data[:end], data[end:]
                target.refused_open = skipped[-1:] != b"\n"
            if data and (self.pending + len(data) > self.max_pending
                         or (target.shed is not None and self.congested)):
                keep = line_head(data) if target.queued_open else 0
                data, lost = data[:keep], data[keep:]
                if lost:
                    target.refused_open = lost[-1] != NEWLINE
            if data:
                if not self.pending:
                    self.progress = time.monotonic()  # idle until now, not stuck
                self.pending += len(data)
                target.queued_open = data[-1] != NEWLINE
                self._queue.put((target, data, drops))
            congested = self.congested
        if lost or skipped:
            episode = target.shed
            if episode is None and lost:
                episode = target.shed = _Episode(target.filename, "the writer is behind")
                log.warning("%s: the writer is %s behind: dropping lines until it catches up",
                            target.filename, _size(self.pending))
            self._count(episode, drops, lines_begun(lost, True), len(skipped) + len(lost))
            return False
        if target.shed is not None and not congested:
            episode, target.shed = target.shed, None
            log.warning("%s: the writer caught up; %d lines (%d bytes) dropped",
                        target.filename, episode.lines, episode.bytes)
            episode.end()
        return True

    @staticmethod
    def counter() -> Dropped:
        """A count of drops, for a sink to pass to submit."""
        return Dropped()

    def count_drops(self, watcher: str, drops: Dropped) -> None:
        """Where the drops of a watcher's sinks add up (weakly held)."""
        self._counts[watcher] = drops

    def drops_of(self, watcher: str) -> Dropped | None:
        return self._counts.get(watcher)

    @property
    def congested(self) -> bool:
        return self.pending > self.max_pending // 2

    def holding(self) -> bool:
        """Whether output should wait: congested but not stuck."""
        return self.congested and time.monotonic() - self.progress < STUCK_AFTER

    def holds(self, target: Target) -> bool:
        """Whether output for target should wait: it cannot be written, and
        has not for ``hold`` seconds at most (past that, its lines are
        dropped until it can)."""
        state = self._failing.get(target)
        return (state is not None and state.episode is None
                and time.monotonic() - state.since < self.hold)

    def open_file(self, filename: str, **options: Any) -> FileTarget:
        """The target of a file: one per path, shared by every stream that
        names it (stdout and stderr of a watcher, several watchers), so its
        size and rotation count every line and no stream writes on into a
        rotated backup. The first stream's options are the file's."""
        path = os.path.abspath(filename)
        target, users = self._files.get(path) or (FileTarget(filename, **options), 0)
        self._files[path] = (target, users + 1)
        return target

    def release(self, target: Target) -> None:
        """Close a file once everything queued for it is written (or, if it
        cannot be written, tried once more) and its last stream released it."""
        if isinstance(target, FileTarget):
            path = os.path.abspath(target.filename)
            _, users = self._files.pop(path, (target, 1))
            if users > 1:
                self._files[path] = (target, users - 1)
                return
        self._queue.put((target, None, None))

    async def drain(self) -> None:
        """Wait until everything queued so far is written, or parked for a
        target that cannot be written."""
        done = threading.Event()
        self._queue.put((None, done, None))
        await asyncio.get_running_loop().run_in_executor(None, done.wait)

    async def close(self) -> None:
        await self.drain()
        self._queue.put(None)
        self._thread.join()

    # -- the writer thread -------------------------------------------------

    def _run(self) -> None:
        while True:
            due = [state.retry_at for state in self._failing.values() if state.parked]
            timeout = max(min(due) - time.monotonic(), 0.0) if due else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = ()
            if item is None:
                break
            if item:
                self._handle(*item)
            self._retry_due()
        for target in list(self._failing):
            try:
                self._last_try(target)
            except Exception:
                log.exception("writing %s", target.filename)

    def _handle(self, target: Any, data: Any, drops: Dropped | None) -> None:
        if isinstance(data, threading.Event):
            data.set()
            return
        try:
            if data is None:
                self._last_try(target)
                target.close()
            else:
                self._take(target, data, drops)
        except OSError as err:
            log.error("cannot close %s: %s", target.filename, err)
        except Exception:  # a bug, not the disk: the other files go on
            log.exception("writing %s", target.filename)
        finally:
            with self._lock:
                self.pending -= len(data or b"")
                self.progress = time.monotonic()

    @staticmethod
    def _count(episode: _Episode | None, drops: Dropped | None, lines: int,
               nbytes: int) -> None:
        if drops is not None:
            drops.add(lines, nbytes)
        if episode is not None:
            episode.count(drops, lines, nbytes)

    def _take(self, target: Target, data: bytes, drops: Dropped | None) -> None:
        """A chunk for target: written, or parked if it cannot be."""
        state = self._failing.get(target)
        if target.skipping:  # the rest of a line whose head was dropped
            end = line_head(data)
            target.skipping = data[end - 1] != NEWLINE
            self._count(state.episode if state else None, drops, 0, end)
            data = data[end:]
            if not data:
                return
        if state is None:
            try:
                target.write(data)
                return
            except OSError as err:
                data = data[getattr(err, "written", 0):]
                state = self._failing[target] = _Failing(err, time.monotonic())
                log.warning("cannot write %s (%s): its output waits, %gs at most",
                            target.filename, err.strerror or err, self.hold)
        if data:
            state.parked.append([data, drops])
            state.size += len(data)
            if state.size > self.max_backlog:
                self._shed(target, state, f"with {_size(self.max_backlog)} waiting",
                           newest=True)

    def _retry_due(self) -> None:
        now = time.monotonic()
        for target, state in list(self._failing.items()):
            if state.parked and state.retry_at <= now:
                try:
                    self._retry(target, state, now)
                except Exception:
                    log.exception("writing %s", target.filename)

    def _retry(self, target: Target, state: _Failing, now: float) -> None:
        """Try what is parked for target again: all written, it is back;
        else, past the hold, its lines are dropped."""
        if not state.parked:
            return  # nothing to try it with: the next chunk will be
        state.retry_at = now + RETRY_EVERY
        while state.parked:
            piece = state.parked[0]
            try:
                target.write(piece[0])
            except OSError as err:
                written = getattr(err, "written", 0)
                piece[0] = piece[0][written:]
                state.size -= written
                state.error = err
                break
            state.parked.popleft()
            state.size -= len(piece[0])
        else:
            del self._failing[target]
            if state.episode is None:
                log.warning("%s: written again after %.1fs, nothing dropped",
                            target.filename, now - state.since)
            else:
                log.warning("%s: written again after %.1fs; %d lines (%d bytes) dropped",
                            target.filename, now - state.since, state.episode.lines,
                            state.episode.bytes)
                state.episode.end()
            return
        if state.episode is not None or now - state.since >= self.hold:
            self._shed(target, state, f"for {now - state.since:.1f}s")

    def _shed(self, target: Target, state: _Failing, why: str, newest: bool = False,
              last: bool = False) -> None:
        """Drop what is parked for target (only the newest chunk, when the
        backlog is over its bound), as whole lines: the rest of a line
        whose head is kept, in the target or parked before, stays parked,
        except on the ``last`` try (the target closes)."""
        if state.episode is None:
            state.episode = _Episode(target.filename, state.error.strerror or str(state.error))
            log.warning("cannot write %s (%s) %s: dropping its lines until it can",
                        target.filename, state.episode.reason, why)
        if newest:
            run = [state.parked.pop()]
        else:
            run = list(state.parked)
            state.parked.clear()
        keeping = not last and (state.parked[-1][0][-1] != NEWLINE if state.parked
                                else target.mid_line)
        open_end: bool | None = None  # the last byte dropped was inside a line
        for data, drops in run:
            if keeping:
                end = line_head(data)
                state.parked.append([data[:end], drops])
                keeping = data[end - 1] != NEWLINE
                data = data[end:]
                if not data:
                    continue
            self._count(state.episode, drops, lines_begun(data, not open_end), len(data))
            open_end = data[-1] != NEWLINE
        if open_end is not None:
            target.skipping = open_end
        state.size = sum(len(piece[0]) for piece in state.parked)

    def _last_try(self, target: Target) -> None:
        """A target that cannot be written closes (or the writer stops): one
        more try, and what it still cannot take is dropped, even the rest
        of a line it holds the head of (a file left so gets a newline when
        it is opened again)."""
        state = self._failing.get(target)
        if state is None:
            return
        self._retry(target, state, time.monotonic())
        if target not in self._failing:
            return
        if state.parked:
            self._shed(target, state, "as it closes", last=True)
        del self._failing[target]
        if state.episode is None:
            log.warning("%s: closed before it could be written again, nothing dropped",
                        target.filename)
            return
        log.warning("%s: closed before it could be written again; %d lines (%d bytes) dropped",
                    target.filename, state.episode.lines, state.episode.bytes)
        state.episode.end()


class ConsoleTarget(Target):
    """The daemon's standard output, written by the writer thread too, so
    a slow terminal or a full pipe never stalls the loop."""

    filename = "<stdout>"

    def __init__(self, fd: int = 1):
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, view[written:])
        except OSError as err:
            raise Unwritten(err, written, self.filename) from err
        finally:
            if written:
                self.mid_line = data[written - 1] != NEWLINE
