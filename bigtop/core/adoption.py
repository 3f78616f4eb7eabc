"""Adopting what a bigtopd that died left running, for the watchers with
``on_daemon_crash = adopt`` (the others' leftovers are stopped).

The next bigtopd on the same file finds the processes by their tag
(leftovers.py). A slot's process is the one that leads its process group
and names its watcher and slot in its environment; the oldest wins if two
do. It is adopted if its watcher is configured so, has that slot, and
what it needs can be taken back:

- its output pipes, opened again through ``/proc/PID/fd/1`` and ``2``.
  Such a process keeps a read end of its own pipes (process.py), so while
  no daemon read them its writes waited in the pipe (64 KiB, the pipe's
  size) and then blocked instead of failing;
- the daemon sockets it listens on, duplicated from it with
  ``pidfd_getfd`` (Linux 5.6), since a second socket could not be bound to
  their address while it holds the first.

Everything else a previous daemon left (its other processes, and those of
a slot that cannot be adopted) is stopped. An adopted process's own
children stay: they are its tree. It is not this daemon's child, so its
exit is learnt from its pidfd (reaper.py).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from dataclasses import dataclass, field

from ..config import Config, SocketSpec, WatcherSpec
from .leftovers import Leftover
from .spawning import socket_names
from .tree import descendants

log = logging.getLogger("bigtop.adoption")

SYS_PIDFD_GETFD = 438  # the same number on every architecture
LISTEN_FDS_START = 3  # where a process finds its sockets (process.py)
STREAMS = (("stdout", 1), ("stderr", 2))


class CannotAdopt(Exception):
    """This process cannot be taken back; the message says why."""


@dataclass
class Orphan:
    """A process to adopt into slot ``left.wid`` of ``spec``."""
    spec: WatcherSpec
    left: Leftover
    pipes: dict[str, int]  # stream -> a read end of its pipe

    @property
    def started(self) -> float:
        """When it started, in seconds since the epoch."""
        return _boot_time() + self.left.ticks / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        for fd in (self.left.pidfd, *self.pipes.values()):
            os.close(fd)


@dataclass
class Plan:
    adopt: list[Orphan] = field(default_factory=list)
    sockets: dict[str, int] = field(default_factory=dict)  # name -> the fd taken back
    stop: list[Leftover] = field(default_factory=list)

    def close(self) -> None:
        """Adopt nothing after all (the stopped ones are closed by leftovers.stop)."""
        for orphan in self.adopt:
            orphan.close()
        for fd in self.sockets.values():
            os.close(fd)
        self.adopt, self.sockets = [], {}


def _boot_time() -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A copy of another process's fd (close-on-exec); OSError if refused."""
    import ctypes  # here: only an adoption needs it (os has no pidfd_getfd)

    libc = ctypes.CDLL(None, use_errno=True)
    copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    if copy < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(copy)


def plan(found: list[Leftover], config: Config) -> Plan:
    """What to adopt, what to take back and what to stop. Blocking (/proc
    is read): run it in a thread."""
    result = Plan()
    specs = {spec.name: spec for spec in config.watchers}
    sockets = {spec.name: spec for spec in config.sockets}
    slots: dict[tuple[str, int], Leftover] = {}
    for left in sorted(found, key=lambda left: left.ticks):  # the oldest first
        spec = specs.get(left.watcher)
        if (spec is not None and spec.on_daemon_crash == "adopt" and left.leads
                and left.wid is not None and 1 <= left.wid <= spec.numprocesses):
            slots.setdefault((left.watcher, left.wid), left)
    kept: set[int] = set()
    for (name, _), left in sorted(slots.items()):
        spec = specs[name]
        try:
            taken = _sockets(spec, left, sockets, result.sockets)
            pipes = _pipes(spec, left)
        except CannotAdopt as err:
            log.warning("%s: cannot adopt pid %d, stopping it instead: %s", name, left.pid, err)
            continue
        result.sockets.update(taken)
        result.adopt.append(Orphan(spec, left, pipes))
        kept |= {left.pid} | descendants(left.pid)
    result.stop = [left for left in found if left.pid not in kept]
    if result.adopt:
        log.warning("adopting %d process(es) left running by a previous bigtopd of this "
                    "configuration: %s", len(result.adopt),
                    ", ".join(f"{o.spec.name}#{o.left.wid} (pid {o.left.pid})"
                              for o in result.adopt))
    return result


def _pipes(spec: WatcherSpec, left: Leftover) -> dict[str, int]:
    """Read ends of the pipes its stdout and stderr write to."""
    pipes: dict[str, int] = {}
    try:
        for stream, fd in STREAMS:
            if getattr(spec, f"close_child_{stream}"):
                continue
            read_end = os.open(f"/proc/{left.pid}/fd/{fd}",
                               os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            if not stat.S_ISFIFO(os.fstat(read_end).st_mode):  # it sent it elsewhere itself
                os.close(read_end)
                continue
            pipes[stream] = read_end
    except OSError as err:
        for read_end in pipes.values():
            os.close(read_end)
        raise CannotAdopt(f"its output cannot be read again: {err.strerror}") from None
    return pipes


def _sockets(spec: WatcherSpec, left: Leftover, sockets: dict[str, SocketSpec],
             taken: dict[str, int]) -> dict[str, int]:
    """The daemon sockets it listens on and that are not taken back yet,
    from the fds it was given them at (3, 4, ...)."""
    found: dict[str, int] = {}
    try:
        for index, name in enumerate(socket_names(spec, sockets)):
            if name in taken or sockets[name].so_reuseport:
                continue  # an so_reuseport socket is bound again beside its own
            at = LISTEN_FDS_START + index
            try:
                found[name] = pidfd_getfd(left.pidfd, at)
            except OSError as err:
                raise CannotAdopt(f"socket {name!r} cannot be taken back from it: "
                                  f"{err.strerror}") from None
            if not _listens_as(found[name], sockets[name]):
                raise CannotAdopt(f"its fd {at} is not socket {name!r} as configured now")
    except CannotAdopt:
        for fd in found.values():
            os.close(fd)
        raise
    return found


def _listens_as(fd: int, spec: SocketSpec) -> bool:
    """Is fd a listening socket of this spec's family, type and address?"""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    try:
        if (sock.family != getattr(socket, spec.family) or sock.type != getattr(socket, spec.type)
                or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
            return False
        address = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            return spec.path is not None and os.path.abspath(address) == os.path.abspath(spec.path)
        return spec.port in (0, address[1])
    except OSError:
        return False
    finally:
        sock.close()
