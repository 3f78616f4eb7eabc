"""What a bigtopd that died left running, found by the next one, and
stopped (or, for ``on_daemon_crash = adopt`` watchers, adopted: adoption.py).

A daemon killed with SIGKILL (or by the OOM killer, or a bug) cannot stop
its children: they go on under PID 1. Started again on the same
configuration, bigtopd would start a second set beside them, and could not
bind a socket they still hold. So every child carries a tag of the daemon
that started it (``BIGTOP_DAEMON``: its user, configuration file and
control endpoint) in its environment, which its own children inherit; at start, before it binds
anything, bigtopd looks for processes with its tag, which can only have
been left by a predecessor, and stops them (their stop signal, then
SIGKILL after their ``graceful_timeout``) before starting fresh ones.

Each process is held by a pidfd from the moment it is found: the tag is
read and the signals are sent through it, so a pid reused meanwhile is
never signalled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .tree import WATCHER_ENV, WID_ENV, environ, stat_fields

log = logging.getLogger("bigtop.leftovers")

DAEMON_ENV = "BIGTOP_DAEMON"
KILL_WAIT_S = 5.0  # after SIGKILL


def daemon_tag(config_file: str, endpoint: str) -> str:
    """The tag of the daemon running this file as this user on this control
    endpoint (which no other daemon can hold while it runs)."""
    key = f"{os.getuid()}:{os.path.realpath(config_file)}:{endpoint}"
    return _sha256(key.encode()).hexdigest()[:16]


def _sha256(data: bytes) -> Any:
    """SHA-256 from CPython's own module when it has one: hashlib loads
    OpenSSL's libcrypto first (3.4 MB of the daemon's RSS) for this digest."""
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256
        except ImportError:
            from hashlib import sha256
    return sha256(data)


@dataclass
class Leftover:
    pid: int
    watcher: str
    pidfd: int
    wid: int | None = None  # its slot, as its environment says
    pgid: int = 0
    ticks: int = 0  # its start time (/proc/PID/stat), clock ticks after boot

    @property
    def leads(self) -> bool:
        """Leads its process group, as a slot's process does (its children
        are in its group, unless they left it)."""
        return self.pgid == self.pid


def _stat(pid: int) -> tuple[int, int] | None:
    """Its process group and start time (fields 5 and 22 of proc(5))."""
    fields = stat_fields(pid)
    return (int(fields[2]), int(fields[19])) if fields else None


def find(tag: str) -> list[Leftover]:
    """Every process carrying ``tag`` (none is ours yet: nothing started);
    each held by a pidfd. Blocking: /proc is read; run it in a thread."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if environ(pid).get(DAEMON_ENV) != tag:  # most processes: no pidfd opened
            continue
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue  # gone
        env = environ(pid)  # again, now that the pidfd pins the process
        stat = _stat(pid)
        if env.get(DAEMON_ENV) != tag or stat is None:
            os.close(pidfd)
            continue
        wid = env.get(WID_ENV, "")
        found.append(Leftover(pid, env.get(WATCHER_ENV, "?"), pidfd,
                              int(wid) if wid.isdigit() else None, *stat))
    return found


def _send(leftover: Leftover, sig: int) -> None:
    try:
        signal.pidfd_send_signal(leftover.pidfd, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _gone(leftovers: list[Leftover], timeout: float) -> list[Leftover]:
    """Wait until they have exited (a pidfd turns readable); those still alive."""
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[None]] = {}
    def exited(future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_result(None)

    for leftover in leftovers:
        future: asyncio.Future[None] = loop.create_future()
        waiting[leftover.pidfd] = future
        loop.add_reader(leftover.pidfd, exited, future)
    try:
        await asyncio.wait(waiting.values(), timeout=timeout)
    finally:
        for fd in waiting:
            loop.remove_reader(fd)
    return [left for left in leftovers if not waiting[left.pidfd].done()]


async def stop(leftovers: list[Leftover], stop_signals: Mapping[str, tuple[int, float]]) -> None:
    """Stop what a previous daemon left running (their pidfds are closed).
    ``stop_signals``: watcher -> (its stop signal, its graceful timeout);
    a watcher the configuration no longer has gets SIGTERM and 10 s."""
    if not leftovers:
        return
    try:
        by_watcher: dict[str, list[int]] = {}
        for left in leftovers:
            by_watcher.setdefault(left.watcher, []).append(left.pid)
        log.warning("found %d process(es) left running by a previous bigtopd of this "
                    "configuration (%s): stopping them before starting", len(leftovers),
                    "; ".join(f"{w}: {', '.join(map(str, sorted(p)))}"
                              for w, p in sorted(by_watcher.items())))
        timeout = 0.0
        for left in leftovers:
            sig, grace = stop_signals.get(left.watcher, (signal.SIGTERM, 10.0))
            timeout = max(timeout, grace)
            _send(left, sig)
        still = await _gone(leftovers, timeout)
        if still:
            log.warning("%d left-over process(es) still alive after %gs: killing them",
                        len(still), timeout)
            for left in still:
                _send(left, signal.SIGKILL)
            await _gone(still, KILL_WAIT_S)
    finally:
        for left in leftovers:
            os.close(left.pidfd)
