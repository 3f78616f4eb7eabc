"""The daemon's own limits: file descriptors kept for staying controllable,
and whether a configuration fits the limits it runs under.

A spawn takes file descriptors (the pipes of the child's output, a pidfd,
for a moment the ends the child gets). When they run short, the daemon
must still accept a control connection, open a log file, answer: so a
spawn is refused, as a shortage the watcher retries with backoff, once
it would leave fewer than ``reserve()`` descriptors free.

The daemon raises its own soft ``RLIMIT_NOFILE`` to the hard limit (at
most ``FD_LIMIT_CAP``) when it starts, so that a burst of connections
finds room (bigtop.control.gate bounds them); its children get the limit
back that the daemon was started with (``ChildLimit``).
"""

from __future__ import annotations

import errno
import os
import resource
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config, WatcherSpec

FD_LIMIT_CAP = 65_536
DAEMON_FDS = 32  # what an idle daemon holds: loop, ZeroMQ, signals, log (measured: about 20)
FD_DIR = "/proc/self/fd"


def reserve(limit: int) -> int:
    """Descriptors a spawn must leave free, under a soft limit of ``limit``."""
    return max(16, min(64, limit // 16))


def held_fds(spec: WatcherSpec) -> int:
    """Descriptors the daemon holds for each running process of spec: its
    captured stdout and stderr, a held stdin pipe, the pidfd it is
    watched by."""
    return 1 + (not spec.close_child_stdout) + (not spec.close_child_stderr) + spec.stdin_pipe


def spawn_fds(spec: WatcherSpec) -> int:
    """Descriptors a spawn of spec takes at its peak: what it keeps, the
    ends its child gets, the pipe that reports an exec error."""
    return 2 * held_fds(spec) + 2


def raised_limit(soft: int, hard: int) -> int:
    """The soft limit the daemon runs with, started under soft and hard."""
    if soft == resource.RLIM_INFINITY:
        return soft
    top = FD_LIMIT_CAP if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT_CAP)
    return max(soft, top)


children_nofile: tuple[int, int] | None = None  # the limit children get back, if raised


def raise_fd_limit() -> None:
    """Raise the daemon's soft RLIMIT_NOFILE (see the module's text)."""
    global children_nofile
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = raised_limit(soft, hard)
    if raised != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        children_nofile = (soft, hard)


LOWERED_MARGIN = 64  # descriptors left free under the children's limit while it is lowered
RECHECK_AFTER = 64  # spawns that go the slow way before the daemon's descriptors are looked at


class ChildLimit:
    """How a child gets back the descriptor limit the daemon was started
    with. Popen can set it only from a preexec function, which makes it
    fork the whole daemon instead of a vfork (about 7 ms a spawn against
    1 ms, on this daemon's 25 MB; bench/lifecycle.py under ``ulimit -Sn
    1024``). So while every descriptor the daemon holds is numbered well
    under that limit, the daemon lowers its own soft limit to it for the
    moment of the spawn: the child inherits it through vfork and exec, and
    the LOWERED_MARGIN descriptors still free under it keep the daemon's
    other threads (libzmq's, the stats sampler's) going meanwhile. Past
    that, the preexec function does it.

    Looking at the daemon's descriptors costs a directory listing (0.3 ms
    at 300), so one look lets the next spawns go on unlooked: as many as
    could take half of the room it found (each takes ``needed``)."""

    def __init__(self) -> None:
        self.unlooked = 0  # spawns that may lower the limit before the next look
        self.skip = 0  # spawns that go the slow way before the next look

    def lowerable(self, needed: int) -> tuple[int, int] | None:
        """The limit to lower to for a spawn now, if the daemon may."""
        if children_nofile is None:
            return None
        if self.unlooked > 0:
            self.unlooked -= 1
            return children_nofile
        if self.skip > 0:
            self.skip -= 1
            return None
        try:
            top = max(int(name) for name in os.listdir(FD_DIR))
        except (OSError, ValueError):
            return None
        room = children_nofile[0] - LOWERED_MARGIN - top
        if room <= needed:
            self.skip = RECHECK_AFTER
            return None
        self.unlooked = room // (2 * needed)
        return children_nofile


child_limit = ChildLimit()  # the daemon's


def close_inherited() -> None:
    """Make every descriptor above 2 close-on-exec, once at the daemon's
    start: one it was started with (a shell's redirection, a supervisor's)
    must not reach its children, which are spawned without closing the
    daemon's descriptors (process.py). The daemon's own are close-on-exec
    from the start: Python's, libzmq's, the pipes' (O_CLOEXEC)."""
    for name in os.listdir(FD_DIR):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own, closed already


def open_fds() -> int | None:
    """How many descriptors the daemon has open (None: not known here)."""
    try:
        return len(os.listdir(FD_DIR)) - 1  # listdir's own
    except OSError as err:  # EMFILE: not even one left for the listing
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0] if err.errno == errno.EMFILE else None


def fd_room() -> tuple[int, int] | None:
    """Free descriptors and the soft limit (None: no limit, or not known)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    used = open_fds()
    if soft == resource.RLIM_INFINITY or used is None:
        return None
    return soft - used, soft


class FdGuard:
    """Refuses a spawn that would leave fewer than ``reserve()`` descriptors
    free. Counting them costs a directory listing (0.2 ms at 1,000), so a
    count far from the limit lets the next spawns go on uncounted: as many
    as could take half of the room left. After a refusal, a spawn goes
    ahead only once there is room for two."""

    def __init__(self) -> None:
        self.uncounted = 0  # spawns that may go on before the next count
        self.short = False  # the last count found no room

    def shortage(self, needed: int) -> str | None:
        """Why a spawn that takes ``needed`` descriptors must wait, if it must."""
        if self.uncounted > 0:
            self.uncounted -= 1
            return None
        known = fd_room()
        if known is None:
            return None
        free, soft = known
        kept = reserve(soft)
        room = free - kept - needed
        if self.short:
            # Once short, room for two spawns before one goes ahead: a
            # client's connection coming and going would have the spawns
            # go ahead and stop again, one each time.
            room -= needed
        self.uncounted = max(0, room // (2 * needed))
        self.short = room < 0
        if room >= 0:
            return None
        return (f"out of file descriptors: {soft - free} open, the limit is {soft} "
                f"(RLIMIT_NOFILE), "
                f"{kept} kept free for the control endpoints")


fds = FdGuard()  # the daemon's


def config_warnings(config: Config) -> list[str]:
    """What in config cannot fit the limits the daemon runs under."""
    warnings = []
    soft = raised_limit(*resource.getrlimit(resource.RLIMIT_NOFILE))
    files = {stream.options.get("filename") for w in config.watchers
             for stream in (w.stdout_stream, w.stderr_stream)}
    needed = (DAEMON_FDS + len(config.sockets) + len(files - {None})
              + sum(w.numprocesses * held_fds(w) for w in config.watchers))
    if soft != resource.RLIM_INFINITY and needed + reserve(soft) > soft:
        warnings.append(
            f"the configuration needs about {needed} file descriptors, more than the "
            f"limit of {soft} (RLIMIT_NOFILE, the hard one: bigtopd raises its soft limit "
            f"to it) less {reserve(soft)} kept free: some processes will wait for "
            f"descriptors; raise it (ulimit -Hn, systemd's LimitNOFILE=)")
    processes = sum(w.numprocesses for w in config.watchers)
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if os.geteuid() != 0 and nproc != resource.RLIM_INFINITY and processes >= nproc:
        warnings.append(
            f"the configuration starts {processes} processes, and this user may have "
            f"{nproc} at most (RLIMIT_NPROC): some will wait; raise it (ulimit -u, "
            f"systemd's LimitNPROC=)")
    return warnings
