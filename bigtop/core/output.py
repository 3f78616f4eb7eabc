"""Reading a child's stdout/stderr pipe on the loop, in chunks of lines.

This is the capture half; where lines go (console, files, live tails) is a
sink's business. Each read is handed on as one chunk of whole lines, every
one ending in a newline, with no per-line work here (a plain file sink
writes the chunk as it is). A line split across reads is joined; a line
longer than ``max_line`` is cut with a marker rather than dropped.

A line the child has not finished (a prompt, a progress bar, the end of a
burst) is not kept from the sinks until its newline: once it has waited
``partial_delay`` seconds for it, what there is of it goes on as a chunk
that does not end in a newline, and the next chunk continues it. The
timer for that is armed by a read that leaves such a tail and cancelled
by one that leaves none; only the bytes after a read's last newline are
looked at, so whole-line chunks cost nothing more. Nothing is added or
taken out: when the pipe closes, what is left of an unfinished line is
handed on as it is, with ``last`` set (the line ends there, without a
newline), and that call comes once per pipe, even with nothing left.

Reads are few and large. The pipe is enlarged (``PIPE_SIZE``, within a
budget) and, when a read found only a little, the reader rests a moment
before the next one, so that a child writing many small lines fills the
pipe for a while instead of waking the daemon for each line. The rest is
sized from the measured rate to let about a quarter of the pipe
accumulate, and never longer than ``MAX_REST`` (the added latency of a live
tail): the child never blocks on a full pipe because of it. While the sinks
are behind (``hold``), the reader waits, and the children with it once
their pipes are full.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
import time
from collections.abc import Callable
from typing import Protocol

PIPE_SIZE = 1024 * 1024
READ_SIZE = 128 * 1024
READS_A_TURN = PIPE_SIZE // READ_SIZE
MAX_LINE = 64 * 1024
MAX_REST = 0.01  # seconds
MIN_REST = 0.001  # epoll waits whole milliseconds (and a rest may last two)
HOLD_POLL = 0.01  # while the sinks are behind: look again this often
CUT_MARKER = b" [...cut]"
PARTIAL_DELAY = 0.05  # seconds an unfinished line waits for its newline
EARLY = 0.001  # a timer this close to its time has come
TURN_BUDGET = 0.02  # seconds a reader's turn may take before the loop's other work goes

def read_available(fd: int) -> bytes:
    """What the pipe holds, READ_SIZE at most, as os.read: asked for at the
    size there is (FIONREAD). A read of READ_SIZE mallocs that much and
    shrinks it to the few lines that came: the small blocks left, kept a
    while (the recent output, the writer's queue), sit between freed holes
    too small for the next read, and glibc's heap grew by megabytes over
    the daemon's first hour. Nothing there (empty, or the end): a read of
    READ_SIZE, which raises BlockingIOError or returns b""."""
    size = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    return os.read(fd, min(size, READ_SIZE) or READ_SIZE)


class ChunkSink(Protocol):
    """What a reader hands each chunk to: ``last`` once, when the pipe
    closes, with what was left of an unfinished line (maybe nothing)."""

    def __call__(self, chunk: bytes, last: bool = False) -> None: ...


def utf8_end(data: bytes) -> int:
    """Where ``data`` may be cut without splitting a UTF-8 character that
    its last bytes begin: its length, or up to 3 less."""
    size = len(data)
    for back in range(1, min(4, size) + 1):
        byte = data[size - back]
        if byte < 0x80:
            return size
        if byte >= 0xC0:  # the first byte of a character of 2, 3 or 4
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return size if back >= length else size - back
    return size


def _user_budget() -> int:
    """Bytes of enlarged pipes this daemon allows itself. Root is not
    limited. Other users share /proc/sys/fs/pipe-user-pages-soft: past it,
    every new pipe of theirs (their children's too) gets one page, so the
    daemon keeps to a quarter of it."""
    if os.geteuid() == 0:
        return 1 << 62
    try:
        with open("/proc/sys/fs/pipe-user-pages-soft") as limit:
            pages = int(limit.read())
    except (OSError, ValueError):
        return 0
    return 1 << 62 if pages == 0 else pages * os.sysconf("SC_PAGE_SIZE") // 4


class PipeBudget:
    def __init__(self) -> None:
        self.left: int | None = None

    def enlarge(self, fd: int) -> tuple[int, int]:
        """Grow a pipe's buffer if the budget allows: its size, and by how
        much it grew (to be released when the pipe closes)."""
        if self.left is None:
            self.left = _user_budget()
        try:
            size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
            if self.left < PIPE_SIZE - size:
                return size, 0
            grown = fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            return 64 * 1024, 0
        self.left -= grown - size
        return grown, grown - size

    def release(self, grown: int) -> None:
        if self.left is not None:
            self.left += grown


pipes = PipeBudget()


class PipeReader:
    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, on_chunk: ChunkSink,
                 max_line: int = MAX_LINE, hold: Callable[[], bool] | None = None,
                 partial_delay: Callable[[], float] = lambda: PARTIAL_DELAY,
                 partial: bytes = b""):
        """``partial``: an unfinished line read before (by the daemon this
        one re-executed from, handover.py)."""
        self.loop = loop
        self.fd: int | None = fd
        self.on_chunk = on_chunk
        self.hold = hold  # True: wait before reading more (the sinks are behind)
        self.max_line = max_line
        self.partial_delay = partial_delay  # read when a tail starts waiting: set applies
        self._partial = partial  # the bytes after the last newline, not handed on yet
        self._since = 0.0  # when they began to wait (0: not known yet)
        self._waiting: asyncio.TimerHandle | None = None  # until they go on unfinished
        self._due = 0.0  # when that timer is due
        size, self._grown = pipes.enlarge(fd)
        self._enough = size // 4  # a read this big: no rest
        self._last = time.monotonic()
        self._resting: asyncio.TimerHandle | None = None
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read)

    def _read(self) -> None:
        if self.hold is not None and self.hold():
            self._rest(HOLD_POLL)
            return
        # At most a pipe's worth a turn of the loop, so that the sinks pass
        # each batch on before the next; in reads small enough to stay in
        # the processor's cache on their way to a file. And no longer than
        # TURN_BUDGET: a flood followed line by line (a live tail: each
        # line an event) would keep a command waiting a second a turn.
        total = 0
        began = time.monotonic()
        for _ in range(READS_A_TURN):
            assert self.fd is not None
            try:
                data = read_available(self.fd)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            total += len(data)
            self._feed(data)
            if len(data) < READ_SIZE or time.monotonic() - began > TURN_BUDGET:
                break
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        if self._partial:
            if not self._since:
                self._since = now
            due = self._since + self.partial_delay()
            if self._waiting is None or due < self._due - EARLY:  # or the delay was cut
                if self._waiting is not None:
                    self._waiting.cancel()
                self._wait(due, now)
        elif self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        if self.fd is None or total >= self._enough:
            return
        # Rest until about a quarter of the pipe has come at this rate, at
        # least MIN_REST; not at all if twice that would fill the pipe.
        if total == 0:
            self._rest(MAX_REST)
            return
        rest = max(MIN_REST, min(MAX_REST, elapsed * self._enough / total))
        if total / elapsed * 2 * rest < 4 * self._enough:
            self._rest(rest)

    def _rest(self, seconds: float) -> None:
        assert self.fd is not None
        self.loop.remove_reader(self.fd)
        self._resting = self.loop.call_later(seconds, self._wake)

    def _wake(self) -> None:
        self._resting = None
        if self.fd is not None:
            self.loop.add_reader(self.fd, self._read)

    def _wait(self, due: float, now: float) -> None:
        self._due = due
        self._waiting = self.loop.call_later(max(due - now, 0.0), self._unfinished)

    def _unfinished(self) -> None:
        """The tail has waited for its newline long enough: it goes on as it
        is (but for the first bytes of a character still to come)."""
        self._waiting = None
        if not self._partial or self.fd is None:
            return
        now = time.monotonic()
        due = self._since + self.partial_delay()
        if due - now > EARLY:  # a newer tail than the one the timer was armed for
            self._wait(due, now)
            return
        if self.hold is not None and self.hold():  # its newline may be in the pipe
            self._wait(now + HOLD_POLL, now)
            return
        cut = utf8_end(self._partial)
        if not cut:
            return  # a character's first bytes only: they go with the next read
        piece, self._partial = self._partial[:cut], self._partial[cut:]
        self._since = 0.0
        self.on_chunk(piece)

    def _feed(self, data: bytes) -> None:
        end = data.rfind(b"\n") + 1
        if end:
            chunk = self._partial + data[:end] if self._partial else data[:end]
            self._partial = data[end:]
            self._since = 0.0  # a tail left now began in this read
            self._deliver(chunk)
        else:
            self._partial += data
        while len(self._partial) > self.max_line:
            self.on_chunk(self._partial[: self.max_line] + CUT_MARKER + b"\n")
            self._partial = self._partial[self.max_line :]

    def _deliver(self, chunk: bytes) -> None:
        """Whole lines on; a line longer than max_line in pieces. Looking
        for one takes a search per max_line bytes, not one per line."""
        limit, start, pos = self.max_line, 0, 0
        while len(chunk) - pos > limit + 1:
            newline = chunk.rfind(b"\n", pos, pos + limit + 1)
            if newline >= 0:
                pos = newline + 1
                continue
            if pos > start:
                self.on_chunk(chunk[start:pos])
            while chunk.find(b"\n", pos, pos + limit + 1) < 0:
                self.on_chunk(chunk[pos:pos + limit] + CUT_MARKER + b"\n")
                pos += limit
            start = pos
        self.on_chunk(chunk[start:] if start else chunk)

    def _stop_timers(self) -> bool:
        """Cancel the timers; whether it was resting (its reader then off)."""
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        resting, self._resting = self._resting, None
        if resting is not None:
            resting.cancel()
        return resting is not None

    def detach(self) -> tuple[int, bytes] | None:
        """Stop reading, leaving the pipe open: its fd and the unfinished
        line read from it (for the daemon re-executed next, handover.py);
        None if it was closed."""
        if self.fd is None:
            return None
        fd, self.fd = self.fd, None
        if not self._stop_timers():
            self.loop.remove_reader(fd)
        pipes.release(self._grown)
        self._grown = 0
        partial, self._partial = self._partial, b""
        return fd, partial

    def close(self) -> None:
        """Drain, hand on what is left of an unfinished line (``last``), and
        close the pipe."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if not self._stop_timers():
            self.loop.remove_reader(fd)
        while True:
            try:
                data = read_available(fd)
            except OSError:
                break
            if not data:
                break
            self._feed(data)
        os.close(fd)
        pipes.release(self._grown)
        piece, self._partial = self._partial, b""
        self.on_chunk(piece, True)
        # Closed: let go of the sink, whose closure holds the process that
        # holds this reader, so that the process and all it refers to are
        # freed by reference counting once forgotten, not by a full
        # collection of the cycle collector, much later.
        self.on_chunk = _closed
        self.hold = None


def _closed(chunk: bytes, last: bool = False) -> None:
    """The sink of a reader closed: nothing more comes."""
