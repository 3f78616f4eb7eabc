"""One sample of a process tree's resources, in Circus's ``info`` shape
plus bigtop's own fields. Used only on the sampler's thread (sampler.py).

Read straight from /proc, not through psutil: a sample is one read of
``/proc/PID/stat`` (CPU times, threads, nice, start time, RSS and VMS), one
of ``/proc/PID/io`` and a listing of ``/proc/PID/fd``; the command line and
user are read again only while the process is young (it may still exec)
and then once a minute. Measured on 300 ``sleep`` processes: 29 us a
process, against 83 us for the same figures through psutil's
``oneshot()`` (five files, its wrappers, and a pid-reuse check that builds
a new Process object on ``ppid()``). That difference is what brings the
cost at 100 processes under a third of Circus's (bench/stats.py). The
figures are psutil's: same files, same units.

Per-process state (the previous CPU times, for ``cpu``: usage since the
previous sample, as ``top`` shows it, without sleeping) is kept in an
entry per managed process, keyed by pid and start time so that a reused
pid never inherits another process's counters; its descendants' entries
live inside it, found each time from /proc's per-task children lists (not
from a scan of every process).

The top-level figures of a managed process count its descendants too
(``cpu``, ``mem``, ``rss``, ``vms``, ``mem_info1``/``mem_info2``,
``threads``, ``fds``, ``read_bytes``, ``write_bytes``); ``children`` lists
each descendant with its own figures and its ``ppid``.
"""

from __future__ import annotations

import os
import pwd
import shlex
import time
from collections.abc import Set as AbstractSet
from datetime import timedelta
from typing import Any

from ..core.tree import children

NA = "N/A"  # what Circus sends for a figure it may not read
# Summed over a process and its descendants.
TREE_SUMS = ("cpu", "rss", "vms", "threads", "fds", "read_bytes", "write_bytes")
CMDLINE_YOUNG = 10.0  # re-read the command line while the process is this young (exec)
CMDLINE_REFRESH = 60.0  # then this often

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TOTAL_MEMORY = os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE
# /proc/PID/stat, counted from the field after "(comm)" (proc(5) numbers minus 3)
_STATE, _UTIME, _STIME, _NICE, _THREADS, _START, _VSIZE, _RSS = 0, 11, 12, 16, 17, 19, 20, 21


class Gone(Exception):
    """The process has exited (or is a zombie)."""


def human_bytes(n: float) -> str:
    """Circus's bytes2human: ``12.34M``."""
    for power, symbol in reversed(list(enumerate("KMGTPEZY", start=1))):
        if n >= 1024 ** power:
            return f"{n / 1024 ** power:.2f}{symbol}"
    return f"{int(n)}B"


def _ctime(seconds: float) -> str:
    """CPU time as Circus writes it: minutes:seconds.hundredths."""
    td = timedelta(seconds=seconds)
    return f"{td.seconds // 60 % 60}:{str(td.seconds % 60).zfill(2)}.{str(td.microseconds)[:2]}"


def _boot_time() -> float:
    with open("/proc/stat", "rb") as handle:
        for line in handle:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    return time.time() - time.monotonic()


BOOT_TIME = _boot_time()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(path) from None


def _kids(pid: int, threads: int) -> list[int]:
    """Direct children; one read for a single-threaded process."""
    if threads != 1:
        return children(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


class _Entry:
    __slots__ = ("pid", "cmdline", "username", "cmdline_read", "cpu_total", "cpu_when")

    def __init__(self, pid: int):
        self.pid = pid
        self.cmdline = NA
        self.username = NA
        self.cmdline_read = 0.0
        self.cpu_total = -1.0  # user+system seconds at the previous sample
        self.cpu_when = 0.0

    def cpu_percent(self, total: float) -> float:
        """Usage since the previous sample, in percent of one CPU (0.0 the
        first time, as psutil's cpu_percent)."""
        when = time.monotonic()
        percent = 0.0
        if self.cpu_total >= 0 and when > self.cpu_when:
            percent = max(0.0, (total - self.cpu_total) * 100 / (when - self.cpu_when))
        self.cpu_total, self.cpu_when = total, when
        return round(percent, 1)


class _Tree:
    """A managed process and the descendants seen at its last sample."""

    __slots__ = ("entry", "kids")

    def __init__(self, pid: int):
        self.entry = _Entry(pid)
        self.kids: dict[int, _Entry] = {}


class Probe:
    """The per-process state and the sampling code; one per daemon, one
    thread at a time."""

    def __init__(self) -> None:
        self.trees: dict[tuple[int, float], _Tree] = {}
        self.own_entries: dict[int, _Entry] = {}  # the daemon itself
        self.users: dict[int, str] = {}

    # -- a managed process and its descendants ---------------------------

    def tree(self, pid: int, started: float, now: float) -> dict[str, Any]:
        """Raises Gone if the process has exited."""
        key = (pid, started)
        tree = self.trees.get(key)
        if tree is None:
            tree = self.trees[key] = _Tree(pid)
        try:
            info = self.own(tree.entry, now)
        except Gone:
            del self.trees[key]
            raise
        info["ppid"] = os.getpid()  # the daemon started it
        kids: list[dict[str, Any]] = []
        old, tree.kids = tree.kids, {}
        queue = [(child, pid) for child in _kids(pid, info["threads"])]
        while queue:
            child, parent = queue.pop()
            if child in tree.kids:
                continue
            entry = old.get(child) or _Entry(child)
            try:
                child_info = self.own(entry, now)
            except Gone:
                continue
            tree.kids[child] = entry
            child_info["ppid"] = parent
            child_info["children"] = []  # every descendant is in the root's list
            kids.append(child_info)
            queue += [(grandchild, child) for grandchild in _kids(child, child_info["threads"])]
        if kids:
            kids.sort(key=lambda k: k["pid"])
            self._add_children(info, kids)
        info["children"] = kids
        return info

    @staticmethod
    def _add_children(info: dict[str, Any], kids: list[dict[str, Any]]) -> None:
        for key in TREE_SUMS:
            if not isinstance(info[key], (int, float)):
                continue  # the process's own figure is unknown: so is the sum
            total = info[key] + sum(k[key] for k in kids if isinstance(k[key], (int, float)))
            info[key] = round(total, 1) if key == "cpu" else total
        info["mem"] = round(info["rss"] * 100 / TOTAL_MEMORY, 3)
        info["mem_info1"] = human_bytes(info["rss"])
        info["mem_info2"] = human_bytes(info["vms"])

    def forget(self, live: AbstractSet[tuple[int, float]]) -> None:
        """Drop the entries of managed processes that are no longer."""
        for key in [k for k in self.trees if k not in live]:
            del self.trees[key]

    # -- one process ------------------------------------------------------

    def daemon(self, pid: int, now: float) -> dict[str, Any]:
        """The daemon's own figures (its children are the managed processes)."""
        entry = self.own_entries.get(pid)
        if entry is None:
            entry = self.own_entries[pid] = _Entry(pid)
        info = self.own(entry, now)
        info["ppid"] = os.getppid()
        info["children"] = []
        return info

    def own(self, entry: _Entry, now: float) -> dict[str, Any]:
        """One process's figures. Those the daemon may not read (another
        user's process, without root) are None: ``fds``, ``read_bytes``,
        ``write_bytes``."""
        pid = entry.pid
        data = _read(f"/proc/{pid}/stat")
        fields = data[data.rfind(b")") + 2:].split()
        if fields[_STATE] in (b"Z", b"X"):
            raise Gone(pid)
        total = (int(fields[_UTIME]) + int(fields[_STIME])) / CLOCK_TICKS
        rss, vms = int(fields[_RSS]) * PAGE_SIZE, int(fields[_VSIZE])
        created = round(BOOT_TIME + int(fields[_START]) / CLOCK_TICKS, 2)
        if now - created < CMDLINE_YOUNG or now - entry.cmdline_read > CMDLINE_REFRESH:
            comm = data[data.find(b"(") + 1:data.rfind(b")")].decode(errors="replace")
            entry.cmdline, entry.username = self._cmdline(pid) or comm, self._username(pid)
            entry.cmdline_read = now
        try:
            fds: int | None = len(os.listdir(f"/proc/{pid}/fd"))
        except PermissionError:
            fds = None
        except FileNotFoundError:
            raise Gone(pid) from None
        try:
            io = _read(f"/proc/{pid}/io")
            start = io.index(b"read_bytes:") + 11
            read_bytes: int | None = int(io[start:io.index(b"\n", start)])
            start = io.index(b"write_bytes:") + 12
            write_bytes: int | None = int(io[start:io.index(b"\n", start)])
        except (PermissionError, ValueError):
            read_bytes = write_bytes = None
        return {
            "pid": pid, "cmdline": entry.cmdline, "username": entry.username,
            "nice": int(fields[_NICE]),
            "mem_info1": human_bytes(rss), "mem_info2": human_bytes(vms),
            "cpu": entry.cpu_percent(total), "mem": round(rss * 100 / TOTAL_MEMORY, 3),
            "ctime": _ctime(total), "create_time": created, "age": now - created,
            "rss": rss, "vms": vms, "threads": int(fields[_THREADS]), "fds": fds,
            "read_bytes": read_bytes, "write_bytes": write_bytes,
        }

    def _username(self, pid: int) -> str:
        """The owner (real uid) of the process, by name."""
        try:
            status = _read(f"/proc/{pid}/status")
            start = status.index(b"\nUid:") + 5
            uid = int(status[start:status.index(b"\n", start)].split()[0])
        except (Gone, OSError, ValueError):
            return NA
        name = self.users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self.users[uid] = name
        return name

    @staticmethod
    def _cmdline(pid: int) -> str:
        """The program's base name, as Circus shows it ("" if unknown)."""
        try:
            argv0 = _read(f"/proc/{pid}/cmdline").split(b"\0")[0].decode(errors="replace")
        except (Gone, OSError):
            return ""
        try:
            words = shlex.split(argv0)  # a title set with setproctitle may hold spaces
        except ValueError:
            words = argv0.split()
        return os.path.basename(words[0]) if words else ""
