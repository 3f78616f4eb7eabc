"""The last lines of a watcher's output files, for the ``logs`` command.

A file is read backwards from its end in blocks, so the cost is what is
shown, not the size of the file; when it has too few lines, its rotated
backups follow, newest first (``NAME.1``, ``NAME.2``, ... or gzipped
``NAME.1.gz``, and the timed ``NAME.YYYY-MM-DD_HH-MM-SS``). Lines are
parsed back into what the stream wrote: a JsonStream line has its time,
pid, wid and stream; a ``time_format`` prefix gives the time when it can
be parsed back; a plain line has only its text.

Everything here is a pure function of paths and lines, and the file
functions block: the daemon runs them in a thread.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import NamedTuple

from .streams import FILE_CLASSES, stream_class

BLOCK = 64 * 1024
MAX_READ = 64 * 1024 * 1024  # bytes of plain files read at most, per tail()


class LogLine(NamedTuple):
    """One line of output; what a file does not say is None."""

    time: float | None
    pid: int | None
    wid: int | None
    stream: str | None
    line: str
    partial: bool = False  # a JsonStream piece: its line goes on in a later one


Parser = Callable[[bytes], LogLine]


# -- reading ------------------------------------------------------------------

class Budget:
    """How many more bytes may be read."""

    def __init__(self, left: int = MAX_READ):
        self.left = left


def reverse_lines(path: str, block: int = BLOCK, budget: Budget | None = None
                  ) -> Iterator[bytes]:
    """The lines of a file, last first, without their newlines; a last line
    without a newline is a line. Reading stops when the budget is spent (a
    line cut short by it is not given)."""
    budget = budget or Budget()
    with open(path, "rb") as file:
        pos = file.seek(0, os.SEEK_END)
        parts: list[bytes] = []  # the end of the line being put together, last part first
        at_end = True  # nothing seen yet: a newline here ends the file, not a line
        while pos > 0 and budget.left > 0:
            size = min(block, pos, budget.left)
            pos -= size
            budget.left -= size
            file.seek(pos)
            chunk = file.read(size)
            cut = len(chunk)
            newline = chunk.rfind(b"\n", 0, cut)
            while newline >= 0:
                parts.append(chunk[newline + 1:cut])
                line = b"".join(reversed(parts))
                parts.clear()
                if line or not at_end:
                    yield line
                at_end = False
                cut = newline
                newline = chunk.rfind(b"\n", 0, cut)
            parts.append(chunk[:cut])
        if pos == 0:
            line = b"".join(reversed(parts))
            if line or not at_end:
                yield line


def gzip_lines(path: str) -> Iterator[bytes]:
    """The lines of a gzipped file, first first, without their newlines."""
    with gzip.open(path, "rb") as file:
        for line in file:
            yield line[:-1] if line.endswith(b"\n") else line


TIMED = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(?:-(\d+))?")


def backups(filename: str) -> list[tuple[str, ...]]:
    """The rotated backups of a file, newest first, each as the names it
    may have: ``NAME.N`` before ``NAME.N.gz`` (while a backup is being
    compressed both exist, and the plain one is whole). Size rotation's
    NAME.1, NAME.2, ... come before time rotation's NAME.STAMP[-N]."""
    directory, base = os.path.split(os.path.abspath(filename))
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    numbered: dict[int, list[str]] = {}
    timed: dict[tuple[str, int], list[str]] = {}
    for name in names:
        if not name.startswith(base + "."):
            continue
        suffix = name[len(base) + 1:]
        core = suffix.removesuffix(".gz")
        path = os.path.join(directory, name)
        if core.isdigit() and core.isascii():
            numbered.setdefault(int(core), []).append(path)
        elif match := TIMED.fullmatch(core):
            stamp = core[:19]
            timed.setdefault((stamp, int(match.group(1) or 0)), []).append(path)
    found = [tuple(sorted(numbered[n], key=_gzipped)) for n in sorted(numbered)]
    found += [tuple(sorted(timed[k], key=_gzipped)) for k in sorted(timed, reverse=True)]
    return found


def _gzipped(path: str) -> bool:
    return path.endswith(".gz")


class _Tail:
    """The lines gathered so far, newest first, and when to stop."""

    def __init__(self, count: int, parse: Parser, since: float | None, limit: int):
        self.count = count
        self.parse = parse
        self.since = since
        self.budget = Budget(limit)
        self.found: list[LogLine] = []
        self.done = False
        # (pid, stream) -> the index in found of its oldest line so far, and
        # the pipes whose oldest line may begin with a piece further back
        self.heads: dict[tuple[int | None, str | None], int] = {}
        self.open: set[tuple[int | None, str | None]] = set()

    def take(self, entry: LogLine) -> bool:
        """Keep a line if it is wanted; False once no more are needed.
        Lines come newest first, so a ``partial`` piece is the head of the
        line its pipe's oldest line so far goes on with: it is joined to it
        (and, once ``count`` lines are found, reading goes on until each
        of those lines has its beginning)."""
        if self.since is not None:
            if entry.time is None:
                return True  # no time: not shown with a since (and not an end either)
            if entry.time < self.since:
                self.done = True  # older lines are further back still
                return False
        pipe = (entry.pid, entry.stream)
        if entry.partial and pipe in self.open:
            head = self.heads[pipe]
            self.found[head] = self.found[head]._replace(line=entry.line + self.found[head].line)
            return True
        if len(self.found) >= self.count:
            self.open.discard(pipe)  # its oldest line begins after this entry
            self.done = not self.open
            return not self.done
        self.heads[pipe] = len(self.found)
        self.open.add(pipe)
        self.found.append(entry._replace(partial=False))
        if len(self.found) >= self.count:
            self.done = not self.open
        return not self.done

    def read_plain(self, path: str) -> None:
        for raw in reverse_lines(path, budget=self.budget):
            if not self.take(self.parse(raw)):
                return
        if self.budget.left <= 0:
            self.done = True  # read enough: older history is not worth more

    def read_gzip(self, path: str) -> None:
        """A gzip file cannot be read backwards: it is read through, keeping
        only the lines that may be shown."""
        need = self.count - len(self.found)
        older = False
        if self.since is None:
            lines = [self.parse(raw) for raw in deque(gzip_lines(path), maxlen=need)]
        else:
            kept: deque[LogLine] = deque(maxlen=need)
            for raw in gzip_lines(path):
                entry = self.parse(raw)
                if entry.time is None:
                    continue
                if entry.time < self.since:
                    older = True
                    kept.clear()  # everything before it is older too
                else:
                    kept.append(entry)
            lines = list(kept)
        for entry in reversed(lines):
            if not self.take(entry):
                break
        self.done = self.done or older


def tail(filename: str, count: int, parse: Parser, since: float | None = None,
         limit: int = MAX_READ) -> list[LogLine]:
    """The last ``count`` lines of a file and, when it has fewer, of its
    backups, oldest first. With ``since``, only lines with a time at or
    after it (a line without a time is left out). At most ``limit`` bytes
    of plain files are read; a file that is missing or cannot be read is
    passed over."""
    if count <= 0:
        return []
    state = _Tail(count, parse, since, limit)
    for names in [(filename,), *backups(filename)]:
        for path in names:
            try:
                if _gzipped(path):
                    state.read_gzip(path)
                else:
                    state.read_plain(path)
            except FileNotFoundError:
                continue  # renamed or compressed meanwhile: its other name
            except (OSError, EOFError, zlib.error):
                pass  # unreadable, or a gzip file still being written
            break
        if state.done:
            break
    state.found.reverse()
    return state.found


# -- parsing ------------------------------------------------------------------

def is_file(options: dict[str, str]) -> bool:
    """Whether a stream's options send it to a file we can read."""
    return stream_class(options) in FILE_CLASSES and bool(options.get("filename"))


def has_times(options: dict[str, str]) -> bool:
    """Whether the lines of a file stream tell when they were written."""
    return stream_class(options) == "JsonStream" or bool(options.get("time_format"))


def parser(options: dict[str, str], stream: str | None) -> Parser:
    """How to read back the lines a file stream with these options wrote;
    ``stream`` is the stream a line without its own belongs to (None for a
    file both streams write to)."""
    if stream_class(options) == "JsonStream":
        return lambda raw: parse_json(raw, stream)
    time_format = options.get("time_format")
    if time_format:
        prefix = TimePrefix(time_format)
        return lambda raw: prefix.parse(raw, stream)
    return lambda raw: LogLine(None, None, None, stream, raw.decode("utf-8", "replace"))


def parse_json(raw: bytes, stream: str | None) -> LogLine:
    """A JsonStream line; a line that is not one of its objects is text."""
    text = raw.decode("utf-8", "replace")
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("line"), str):
        return LogLine(None, None, None, stream, text)
    which = record.get("stream")
    return LogLine(
        _time(record.get("time")), _integer(record.get("pid")), _integer(record.get("wid")),
        which if isinstance(which, str) else stream, record["line"],
        record.get("partial") is True)


def _time(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class TimePrefix:
    """A ``time_format`` prefix (``strftime(time_format) + " "``) taken off
    a line, and its time parsed back in local time, as it was written. A
    format without a date gives no time; a format strptime cannot read
    back gives no time but is still taken off, as many words as it makes."""

    def __init__(self, time_format: str):
        self.format = time_format
        sample = time.strftime(time_format)
        self.words = sample.count(" ") + 1
        try:
            datetime.strptime(sample, time_format)
            self.readable = True
        except ValueError:
            self.readable = False

    def parse(self, raw: bytes, stream: str | None) -> LogLine:
        text = raw.decode("utf-8", "replace")
        if not self.readable:
            parts = text.split(" ", self.words)
            if len(parts) > self.words:
                return LogLine(None, None, None, stream, parts[-1])
            return LogLine(None, None, None, stream, text)
        # A day or month name may be padded to a varying number of words.
        for words in (self.words, self.words - 1, self.words + 1):
            parts = text.split(" ", words)
            if words < 1 or len(parts) <= words:
                continue
            try:
                stamp = datetime.strptime(" ".join(parts[:-1]), self.format)
            except ValueError:
                continue
            when = None if stamp.year == 1900 else stamp.timestamp()  # 1900: no date
            return LogLine(when, None, None, stream, parts[-1])
        return LogLine(None, None, None, stream, text)


# -- putting lines together ---------------------------------------------------

MAX_ALIGN_TRIES = 64


def combine(older: list[LogLine], recent: list[LogLine]) -> list[LogLine]:
    """The lines of a file (``older``), then the recent lines kept in memory
    (``recent``, which have a time, pid and wid), each line once: the end
    of the file is found in the recent lines and taken from them. Reading
    the file came before taking the recent lines, so these may end with
    lines the file does not have yet."""
    if not older or not recent:
        return older + recent
    last = older[-1].line
    overlap = 0
    tries = 0
    for end in range(len(recent), 0, -1):
        if recent[end - 1].line != last:
            continue
        matched = 1
        while (matched < min(len(older), end)
               and older[-1 - matched].line == recent[end - 1 - matched].line):
            matched += 1
        if matched == min(len(older), end):
            overlap = matched
            break
        # Lines dropped on the way to the file (not kept up): the longest run.
        overlap = max(overlap, matched)
        tries += 1
        if tries == MAX_ALIGN_TRIES:
            break
    return older[:len(older) - overlap] + recent


def merge(runs: Iterable[list[LogLine]]) -> list[LogLine]:
    """Several runs of lines (each oldest first) as one, by time. A line
    without a time stays just after the line before it in its run (at the
    start when no line before it has one): these are older lines from a
    file, written before the lines kept in memory."""
    keyed = []
    for index, run in enumerate(runs):
        latest = float("-inf")
        for position, entry in enumerate(run):
            if entry.time is not None:
                latest = max(latest, entry.time)
            keyed.append(((latest, index, position), entry))
    keyed.sort(key=lambda item: item[0])
    return [entry for _, entry in keyed]


def select(lines: list[LogLine], streams: Iterable[str], since: float | None,
                count: int) -> list[LogLine]:
    """The last ``count`` lines of the streams asked for (a line of unknown
    stream is kept), at or after ``since`` when given."""
    wanted = set(streams)
    kept = [entry for entry in lines
            if (entry.stream is None or entry.stream in wanted)
            and (since is None or (entry.time is not None and entry.time >= since))]
    return kept[-count:] if count > 0 else []

