"""Learning of child exits without polling.

Each managed process is watched through a pidfd registered on the event
loop. The daemon is also a child subreaper, so orphans of its children are
re-parented to it; a SIGCHLD handler reaps those (and any managed child whose
pidfd has not fired yet), which also makes the daemon a correct PID 1.

Nothing else in the daemon may ``waitpid`` on children: this module owns
reaping. It also watches processes that are not the daemon's children
(adopted from a daemon that died, core/adoption.py): their exit is learnt
from the pidfd, their exit status where the kernel tells it.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import signal
import struct
from collections.abc import Callable

from .tree import stat_fields

log = logging.getLogger("bigtop.reaper")

PR_SET_CHILD_SUBREAPER = 36
# ioctl(pidfd, PIDFD_GET_INFO) with PIDFD_INFO_EXIT (Linux 6.15): the wait
# status of any process a pidfd was held on, even one reaped by another.
PIDFD_GET_INFO = 0xC040FF0B  # _IOWR(0xFF, 11, struct pidfd_info), 64 bytes
PIDFD_INFO_EXIT = 1 << 3
EXIT_CODE_OFFSET = 60  # of pidfd_info.exit_code


def set_subreaper() -> bool:
    """Make orphaned descendants our children instead of init's."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exit_code(status: int) -> int:
    """Circus's convention: the exit status, or minus the killing signal."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def foreign_status(pidfd: int, pid: int, started: int) -> int | None:
    """The wait status of a process that is not the daemon's child, once its
    pidfd is readable: from the pidfd, else from /proc while it is a zombie
    (``started``: its start time in clock ticks, against pid reuse); None
    when neither tells."""
    info = bytearray(struct.pack("=Q", PIDFD_INFO_EXIT) + bytes(56))
    try:
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, info)
        if struct.unpack_from("=Q", info)[0] & PIDFD_INFO_EXIT:
            return int(struct.unpack_from("=i", info, EXIT_CODE_OFFSET)[0])
    except OSError:
        pass  # an older kernel
    fields = stat_fields(pid)  # state, starttime (field 22) and exit_code (52)
    if fields and fields[0] == "Z" and int(fields[19]) == started and len(fields) > 49:
        return int(fields[49])
    return None


class Reaper:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._pidfds: dict[int, int] = {}
        self._foreign: dict[int, tuple[int, Callable[[int | None], None]]] = {}

    def install(self) -> None:
        set_subreaper()
        self.loop.add_signal_handler(signal.SIGCHLD, self.sweep)
        self.sweep()

    def uninstall(self) -> None:
        self.loop.remove_signal_handler(signal.SIGCHLD)
        for pid in list(self._pidfds):
            self._forget(pid)
        for pid in list(self._foreign):
            self._forget(pid)
        self._foreign.clear()

    def watch(self, pid: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(wait_status)`` once, when child ``pid`` exits."""
        self._callbacks[pid] = callback
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            # Already reaped by a sweep racing us, or no pidfd support: the
            # SIGCHLD sweep still delivers the exit.
            self.sweep()
            return
        self._pidfds[pid] = fd
        self.loop.add_reader(fd, self._reap, pid)
        # The child may have died before the reader was registered.
        self._reap(pid)

    def watch_foreign(self, pid: int, pidfd: int, started: int,
                      callback: Callable[[int | None], None]) -> None:
        """Call ``callback(wait status, or None if unknown)`` once, when
        ``pid``, which is not the daemon's child, exits. ``pidfd``: held on
        it since it was found (now the reaper's to close); ``started``: its
        start time in clock ticks (/proc/PID/stat)."""
        self._pidfds[pid] = pidfd
        self._foreign[pid] = (started, callback)
        self.loop.add_reader(pidfd, self._foreign_ended, pid)

    def _foreign_ended(self, pid: int) -> None:
        started, callback = self._foreign.pop(pid)
        status = foreign_status(self._pidfds[pid], pid, started)
        self._forget(pid)
        callback(status)

    def _forget(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)

    def _reap(self, pid: int) -> None:
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            self._forget(pid)
            self._callbacks.pop(pid, None)
            return
        if waited == 0:
            return
        self._forget(pid)
        callback = self._callbacks.pop(pid, None)
        if callback is not None:
            callback(status)

    def sweep(self) -> None:
        """Reap every exited child: managed ones are dispatched, orphans dropped."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            if pid in self._callbacks:
                self._reap(pid)
                continue
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            log.debug("reaped orphan %d", pid)
