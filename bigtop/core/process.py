"""One child process: how it is spawned, how it ends, how it is stopped."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import grp
import logging
import os
import pwd
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..config import WatcherSpec
from ..config.substitute import env_variables, substitute
from . import limits
from .tree import (
    WATCHER_ENV,
    WID_ENV,
    adopted_orphans,
    descendants,
    group_alive,
    orphans_by_slot,
    signal_tree,
    wait_gone,
)

log = logging.getLogger("bigtop.process")


class SpawnError(Exception):
    """The child could not be started; the message says why. ``shortage``:
    the machine or the daemon ran out of something (file descriptors,
    memory, processes), not a fault of the command: worth retrying."""

    def __init__(self, message: str, shortage: bool = False):
        super().__init__(message)
        self.shortage = shortage


SHORTAGES = {errno.EMFILE: "out of file descriptors (the daemon's RLIMIT_NOFILE)",
             errno.ENFILE: "out of file descriptors (the system's fs.file-max)",
             errno.ENOMEM: "out of memory",
             errno.EAGAIN: "out of processes (RLIMIT_NPROC, or a pids cgroup limit)"}


def shortage(err: OSError) -> SpawnError | None:
    """The SpawnError for an OSError that means a resource ran out."""
    what = SHORTAGES.get(err.errno or 0)
    return SpawnError(f"{what}: {err.strerror}", shortage=True) if what else None


def command_line(spec: WatcherSpec, wid: int, socket_fds: Mapping[str, int],
                 env: Mapping[str, str]) -> list[str]:
    """The argv for a process, after ``$(circus.*)`` substitution."""
    variables: dict[str, Any] = {"wid": wid, **spec.scalar_options}
    variables.update(env_variables(env))
    variables.update({f"sockets.{name.lower()}": fd for name, fd in socket_fds.items()})
    cmd = substitute(spec.cmd, variables)
    args = substitute(spec.args, variables) if spec.args else ""
    if spec.shell:
        # The command goes to the shell verbatim (Circus quoted each word,
        # which broke pipes and ';').
        argv = ["/bin/sh", "-c", f"{cmd} {args}".strip()]
        if spec.shell_args:  # as in Circus, the first one becomes $0
            argv += shlex.split(substitute(spec.shell_args, variables))
        return argv
    try:
        return shlex.split(cmd) + shlex.split(args)
    except ValueError as err:
        raise SpawnError(f"cannot split the command line: {err}") from None


def process_env(spec: WatcherSpec, wid: int, extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ) if spec.copy_env else {}
    env.update(spec.env)
    if spec.copy_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if spec.virtualenv:
        venv = os.path.abspath(spec.virtualenv)
        env["VIRTUAL_ENV"] = venv
        env["PATH"] = os.pathsep.join(p for p in (os.path.join(venv, "bin"), env.get("PATH")) if p)
        env.pop("PYTHONHOME", None)
    env[WATCHER_ENV] = spec.name
    env[WID_ENV] = str(wid)
    env.update(extra)
    return env


def _user_ids(spec: WatcherSpec) -> tuple[int | None, int | None, list[int] | None, dict[str, str]]:
    """uid, gid, supplementary groups and login variables for the child."""
    uid = gid = None
    groups: list[int] | None = None
    login: dict[str, str] = {}
    entry = None
    if spec.uid is not None:
        try:
            entry = pwd.getpwuid(int(spec.uid)) if spec.uid.isdigit() else pwd.getpwnam(spec.uid)
        except KeyError:
            if not spec.uid.isdigit():
                raise SpawnError(f"no user named {spec.uid!r}") from None
        uid = int(spec.uid) if spec.uid.isdigit() else entry.pw_uid if entry else None
        if entry:
            gid = entry.pw_gid
            login = {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
    if spec.gid is not None:
        try:
            gid = int(spec.gid) if spec.gid.isdigit() else grp.getgrnam(spec.gid).gr_gid
        except KeyError:
            raise SpawnError(f"no group named {spec.gid!r}") from None
    if entry and gid is not None and os.geteuid() == 0:
        groups = os.getgrouplist(entry.pw_name, gid)
    return uid, gid, groups, login


_found: dict[tuple[str, str], str] = {}


def _which(program: str, path: str) -> str | None:
    """shutil.which, remembering what it found (not what it did not)."""
    import shutil

    key = (program, path)
    if key not in _found or not os.access(_found[key], os.X_OK):
        found = shutil.which(program, path=path)
        if found is None:
            return None
        _found[key] = found
    return _found[key]


def _rlimit_setter(rlimits: Mapping[str, int],
                   nofile: tuple[int, int] | None) -> Callable[[], None] | None:
    """Resource limits need code in the child between fork and exec;
    ``nofile``: the descriptor limit to give back first (limits.py)."""
    wanted = [(resource.RLIMIT_NOFILE, nofile)] if nofile is not None else []
    wanted += [(getattr(resource, f"RLIMIT_{name.upper()}"), (value, value))
               for name, value in rlimits.items()]
    if not wanted:
        return None

    def apply() -> None:
        for which, value in wanted:
            resource.setrlimit(which, value)

    return apply


LISTEN_FDS_START = 3  # systemd's SD_LISTEN_FDS_START


def _hold_low_fds(count: int) -> None:
    """Keep fds 3..3+count-1 open in the daemon (a free one gets a
    /dev/null placeholder, held for good), so that the pipe Popen makes to
    report exec errors never lands where a child's sockets are moved."""
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        try:
            os.fstat(fd)
        except OSError:
            placeholder = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if placeholder != fd:
                os.dup2(placeholder, fd, inheritable=False)
                os.close(placeholder)


def _socket_setup(sources: list[int], env: Mapping[str, str],
                  then: Callable[[], None] | None) -> Callable[[], None]:
    """Code for the child, between fork and exec: the sockets moved to fds
    3, 4, ... (systemd's socket activation), and the environment set with
    LISTEN_PID, which only the child knows (its pid is the exec'd one's)."""
    first_free = LISTEN_FDS_START + len(sources)

    def setup() -> None:
        if then is not None:
            then()
        copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, first_free) for fd in sources]
        for index, copy in enumerate(copies):
            os.dup2(copy, LISTEN_FDS_START + index)
        os.environ.clear()
        os.environ.update(env)
        os.environ["LISTEN_PID"] = str(os.getpid())

    return setup


class LeftoverLook:
    """One look for what exited processes left behind, for all the exits
    of a burst. A look reads the daemon's child lists in /proc (9 ms at
    5,000 children): one per exit made a kill storm cost N² and held the
    loop for seconds after it. The kernel re-parents an exiting process's
    children before its exit can be reaped, so a look taken after the
    reaps finds all of theirs."""

    def __init__(self) -> None:
        self._next: asyncio.Future[dict[tuple[str, str], set[int]]] | None = None

    async def orphans(self, watcher: str, wid: int,
                      managed: Callable[[], set[int]]) -> set[int]:
        loop = asyncio.get_running_loop()
        if self._next is None or self._next.get_loop() is not loop:
            self._next = loop.create_future()
            loop.call_soon(self._look, self._next, managed)
        found = await asyncio.shield(self._next)
        return found.get((watcher, str(wid)), set())

    def _look(self, future: asyncio.Future[dict[tuple[str, str], set[int]]],
              managed: Callable[[], set[int]]) -> None:
        if self._next is future:
            self._next = None  # an exit reaped from now on waits for the next look
        future.set_result(orphans_by_slot(managed()))


leftover_look = LeftoverLook()


class Process:
    """A spawned child. ``exited`` resolves with Circus's exit code
    (negative for a signal); ``ready`` with True once the readiness check
    passes, or False if the process ended first."""

    def __init__(self, spec: WatcherSpec, wid: int):
        self.spec = spec
        self.wid = wid
        self.pid = 0
        self.started = 0.0
        self.popen: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None  # None also once it ended with a status unknown
        self.stopping = False  # a stop was asked for: do not respawn
        self.timed_out = False  # failed its readiness check in time
        self.replacing = False  # started by a reload, not yet in its slot
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int | None] = loop.create_future()
        self.ready: asyncio.Future[bool] = loop.create_future()
        self.pipes: dict[str, int] = {}  # stream name -> read end
        self.stdin_hold: int | None = None  # stdin_pipe: the write end, open while it runs
        self.readers: dict[str, Any] = {}  # stream -> the PipeReader of its pipe (slots.py)
        # Adopted from a daemon that died, not our child: its pidfd and start ticks.
        self.foreign: tuple[int, int] | None = None

    @classmethod
    def adopted(cls, spec: WatcherSpec, wid: int, pid: int, started: float,
                pipes: dict[str, int], ready: bool) -> Process:
        """A child this daemon's previous image started (handover.py):
        still its child, the same pid, its pipes open."""
        process = cls(spec, wid)
        process.pid, process.started, process.pipes = pid, started, dict(pipes)
        if ready:
            process.ready.set_result(True)
        return process

    @classmethod
    def orphan(cls, spec: WatcherSpec, wid: int, pid: int, started: float,
               pipes: dict[str, int], pidfd: int, ticks: int, ready: bool = True) -> Process:
        """A process a daemon that died started (adoption.py): not this
        daemon's child, so its exit comes from ``pidfd``; ``ticks``: its
        start time as /proc/PID/stat gives it."""
        process = cls.adopted(spec, wid, pid, started, pipes, ready)
        process.foreign = (pidfd, ticks)
        return process

    def __repr__(self) -> str:
        return f"<Process {self.spec.name}#{self.wid} pid={self.pid}>"

    @property
    def running(self) -> bool:
        return not self.exited.done()

    @property
    def age(self) -> float:
        return time.time() - self.started if self.started else 0.0

    @property
    def is_ready(self) -> bool:
        return self.ready.done() and self.ready.result()

    def spawn(self, socket_fds: Mapping[str, int], extra_env: Mapping[str, str],
              capture_stdout: bool, capture_stderr: bool) -> None:
        """Start the child; raises SpawnError with the reason on failure.

        ``socket_fds`` maps the names of the sockets it inherits to the
        daemon's fds; the child finds them at 3, 4, ... in that order, as
        systemd passes them (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), and
        ``$(circus.sockets.NAME)`` is the number it has there."""
        spec = self.spec
        uid, gid, groups, login = _user_ids(spec)
        env = {**login, **process_env(spec, self.wid, extra_env)}
        names = list(socket_fds)
        child_fds = {name: LISTEN_FDS_START + i for i, name in enumerate(names)}
        if names:
            env.update(LISTEN_FDS=str(len(names)), LISTEN_FDNAMES=":".join(names))
        argv = command_line(spec, self.wid, child_fds, env)
        if not argv:
            raise SpawnError("the command is empty")
        executable = spec.executable
        if executable is None and os.sep not in argv[0] and (names or "PATH" not in env):
            # Found with the child's PATH, or the daemon's when it has none.
            path = env.get("PATH") or os.environ.get("PATH", os.defpath)
            executable = _which(argv[0], path)
            if executable is None:
                raise SpawnError(f"{argv[0]}: no such file or directory")
        # The daemon's raised descriptor limit is given back to the child:
        # inherited from the daemon's own, lowered for the spawn, while it
        # can be (limits.ChildLimit); else set by a preexec function, which
        # costs Popen its vfork. (Setting it after the exec was tried: a
        # shell reads its limit before that lands.)
        lowered = (None if spec.rlimits or names
                   else limits.child_limit.lowerable(limits.spawn_fds(spec)))
        preexec = _rlimit_setter(spec.rlimits, None if lowered else limits.children_nofile)
        popen_env: Mapping[str, str] | None = env
        if names:
            _hold_low_fds(len(names))
            preexec = _socket_setup(list(socket_fds.values()), env, preexec)
            popen_env = None  # the child sets it, see _socket_setup
        # Our own pipes, not Popen's: the read ends belong to the loop's
        # readers, and no file object may close those fd numbers later.
        pipes: dict[str, tuple[int, int]] = {}
        held: tuple[int, int] | None = None
        try:
            for name, capture in (("stdout", capture_stdout), ("stderr", capture_stderr)):
                if capture:
                    pipes[name] = os.pipe2(os.O_CLOEXEC)
            out = pipes["stdout"][1] if "stdout" in pipes else (
                subprocess.DEVNULL if spec.close_child_stdout else None)
            err = pipes["stderr"][1] if "stderr" in pipes else (
                subprocess.DEVNULL if spec.close_child_stderr else None)
            stdin: int | None = subprocess.DEVNULL if spec.close_child_stdin else None
            if spec.stdin_socket:
                stdin = socket_fds[spec.stdin_socket]
            held = os.pipe2(os.O_CLOEXEC) if spec.stdin_pipe else None
            if held is not None:
                stdin = held[0]
            # A process that may be adopted after a crash keeps a read end
            # of its own pipes: while no daemon reads them, a write waits
            # instead of failing with EPIPE (adoption.py).
            kept = tuple(r for r, _ in pipes.values()) if spec.on_daemon_crash == "adopt" else ()
            raised = None
            if lowered:
                raised = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, lowered)
            # What the child must not have is close-on-exec already (every
            # descriptor of the daemon: limits.close_inherited), so Popen's
            # close_fds is asked only for the kept ends it must make
            # inheritable: it closes the daemon's descriptors one by one
            # (1 ms at 3,000, 4 ms more per spawn at 15,000; bench/scaling.py).
            try:
                self.popen = subprocess.Popen(
                    argv,
                    executable=executable,
                    env=popen_env,
                    cwd=spec.working_dir,
                    stdin=stdin,
                    stdout=out,
                    stderr=err,
                    pass_fds=(*child_fds.values(), *kept) if kept else (),
                    close_fds=bool(kept),
                    process_group=0,
                    user=uid,
                    group=gid,
                    extra_groups=groups,
                    umask=spec.umask if spec.umask is not None else -1,
                    preexec_fn=preexec,
                )
            finally:
                if raised:
                    resource.setrlimit(resource.RLIMIT_NOFILE, raised)
        except FileNotFoundError as exc:
            missing = exc.filename or argv[0]
            if spec.working_dir and not os.path.isdir(spec.working_dir):
                missing = spec.working_dir
            raise SpawnError(f"{missing}: no such file or directory") from None
        except PermissionError as exc:
            raise SpawnError(f"{exc.filename or argv[0]}: permission denied"
                             f"{' (uid/gid change needs root)' if uid or gid else ''}") from None
        except OSError as exc:
            raise shortage(exc) or SpawnError(f"{argv[0]}: {exc}") from None
        except (subprocess.SubprocessError, ValueError) as exc:
            raise SpawnError(f"{argv[0]}: {exc}") from None
        finally:
            for _, write_end in pipes.values():
                os.close(write_end)
            if held is not None:
                os.close(held[0])
            if self.popen is None:
                for read_end, _ in pipes.values():
                    os.close(read_end)
                if held is not None:
                    os.close(held[1])
        self.stdin_hold = held[1] if held is not None else None
        self.pid = self.popen.pid
        self.started = time.time()
        self.pipes = {name: read_end for name, (read_end, _) in pipes.items()}

    @property
    def pgid(self) -> int:
        return self.pid

    def on_exit(self, code: int | None) -> None:
        """Called once it has exited, with Circus's exit code (None: unknown)."""
        self.returncode = code
        if self.popen is not None:
            self.popen.returncode = code  # so Popen never waits for it itself
        if self.stdin_hold is not None:
            os.close(self.stdin_hold)
            self.stdin_hold = None
        if not self.ready.done():
            self.ready.set_result(False)
        if not self.exited.done():
            self.exited.set_result(code)

    def mark_ready(self) -> None:
        if not self.ready.done() and self.running:
            self.ready.set_result(True)

    def tree(self, managed: set[int]) -> set[int]:
        """Every other process this one started, as far as can be found."""
        pids = descendants(self.pid) if self.running else set()
        return pids | adopted_orphans(self.spec.name, managed, self.wid)

    async def stop(self, sig: int, timeout: float, managed: set[int],
                   requested: bool = True) -> None:
        """Signal the whole tree, wait up to timeout, then SIGKILL what is left.

        ``requested=False`` stops it as a failure: the watcher may respawn it.
        """
        self.stopping = self.stopping or requested
        pids = self.tree(managed)
        if self.running:
            pids.add(self.pid)
        signal_tree(self.pgid, pids, sig)
        left = await wait_gone(pids, timeout)
        if left:
            log.warning("%s: %d process(es) still alive after %gs, killing",
                        self.spec.name, len(left), timeout)
            signal_tree(self.pgid, left, 9)
            await wait_gone(left, 5.0)
        if self.running:
            await asyncio.shield(self.exited)

    async def stop_leftovers(self, managed: Callable[[], set[int]], sig: int,
                             timeout: float) -> None:
        """It exited on its own: stop what it left behind (its group, and
        descendants the subreaper adopted), as systemd does. ``managed``
        is asked when this runs: the slot's next process is not a leftover."""
        pids = await leftover_look.orphans(self.spec.name, self.wid, managed)
        if not pids and not group_alive(self.pgid):
            return
        log.info("%s: stopping %d process(es) left behind by pid %d", self.spec.name,
                 len(pids), self.pid)
        signal_tree(self.pgid, pids, sig)
        left = await wait_gone(pids, timeout)
        if left or group_alive(self.pgid):
            signal_tree(self.pgid, left, 9)
