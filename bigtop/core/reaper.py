"""Learning of child exits without polling.

Each managed process is watched through a pidfd registered on the event
loop. The daemon is also a child subreaper, so orphans of its children are
re-parented to it; a SIGCHLD handler reaps those (and any managed child whose
pidfd has not fired yet), which also makes the daemon a correct PID 1.

Nothing else in the daemon may ``waitpid`` on children: this module owns
reaping.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger("bigtop.reaper")

PR_SET_CHILD_SUBREAPER = 36


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


class Reaper:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._pidfds: dict[int, int] = {}

    def install(self) -> None:
        set_subreaper()
        self.loop.add_signal_handler(signal.SIGCHLD, self.sweep)
        self.sweep()

    def uninstall(self) -> None:
        self.loop.remove_signal_handler(signal.SIGCHLD)
        for pid in list(self._pidfds):
            self._forget(pid)

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
