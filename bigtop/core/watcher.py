"""A watcher keeps N processes of one spec running, as its policy says.

It holds the desired state (``numprocesses`` slots, numbered by wid from 1)
and makes the world match it: a slot whose process exits is refilled at once
the first time, then with exponential backoff while the failures continue; a
slot that fails more than ``max_retry`` times in a row puts the watcher in
the ``failed`` state instead of letting it spin.

Commands on one watcher run one at a time, in arrival order (``lock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..config import WatcherSpec
from ..config.substitute import circus_vars
from .hooks import call_hook
from .output import PipeReader
from .process import Process, SpawnError, process_env
from .reaper import exit_code
from .sockets import SocketError
from .streams import StreamSink, open_sink
from .tree import children as tree_children
from .tree import descendants

if TYPE_CHECKING:
    from .arbiter import Arbiter

log = logging.getLogger("bigtop.watcher")

RECENT_BYTES = 256 * 1024  # of output kept per watcher, for `logs` and failures
RECENT_EXITS = 10

_UNEXISTING = 2  # Circus's process_status for a process that is gone

# Options whose change needs the processes restarted; any other option
# takes effect in place.
PROCESS_OPTIONS = frozenset({
    "cmd", "args", "shell", "shell_args", "executable", "working_dir", "uid", "gid", "umask",
    "copy_env", "copy_path", "env", "rlimits", "use_sockets", "sockets", "virtualenv",
    "virtualenv_py_ver", "close_child_stdin", "close_child_stdout", "close_child_stderr",
    "stdin_socket", "ready",
})


class ReloadAborted(Exception):
    """A graceful reload stopped part way; the old processes still serve."""


class Watcher:
    def __init__(self, spec: WatcherSpec, arbiter: Arbiter):
        self.spec = spec
        self.arbiter = arbiter
        self.loop = arbiter.loop
        self.state = "stopped"
        self.wanted = 0
        self.processes: dict[int, Process] = {}
        self.failures: dict[int, int] = {}
        self.refusals: dict[int, int] = {}  # before_spawn said no, times in a row
        # slot -> its respawn timer, or the task running its spawn hooks
        self.pending: dict[int, asyncio.TimerHandle | asyncio.Task[None]] = {}
        self.lock = asyncio.Lock()
        self.restarts = 0
        self.last_exits: deque[dict[str, Any]] = deque(maxlen=RECENT_EXITS)
        # (time, pid, wid, stream, chunk of lines) of the latest output
        self.recent_output: deque[tuple[float, int, int, str, bytes]] = deque()
        self._recent_bytes = 0
        self.failure: str | None = None
        self._ready: asyncio.Future[bool] = self.loop.create_future()
        self._tasks: set[asyncio.Task[Any]] = set()
        # stream name -> its configured sink (a file, the daemon's stdout), if any
        self.sinks: dict[str, StreamSink] = {}
        self._sinks_spec: WatcherSpec | None = None
        self._dropped_closed = 0  # by sinks since replaced or closed

    def __repr__(self) -> str:
        return f"<Watcher {self.name} {self.state} {len(self.processes)}/{self.wanted}>"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def topic(self) -> str:
        return f"watcher.{self.name.lower()}"

    @property
    def status(self) -> str:
        """active, starting, stopping, stopped, failed, or backoff (a slot is
        waiting out a backoff delay)."""
        if self.state == "active" and any(isinstance(h, asyncio.TimerHandle)
                                           for h in self.pending.values()):
            return "backoff"
        return self.state

    # -- what a hook may read, with Circus's names (read-only) -------------

    @property
    def numprocesses(self) -> int:
        return self.spec.numprocesses

    @property
    def pids(self) -> list[int]:
        return [p.pid for _, p in sorted(self.processes.items())]

    @property
    def env(self) -> dict[str, str]:
        """The environment the processes get (without per-process variables)."""
        return process_env(self.spec, 0, {})

    @property
    def cmd(self) -> str:
        return self.spec.cmd

    @property
    def args(self) -> str | None:
        return self.spec.args

    @property
    def working_dir(self) -> str | None:
        return self.spec.working_dir

    async def extended_stats(self, pid: int, stats: dict[str, Any]) -> None:
        """Let the extended_stats hook add to one process's stats (in place)."""
        if "extended_stats" in self.spec.hooks:
            await call_hook(self, "extended_stats", pid=pid, stats=stats)

    def emit(self, event: str, **payload: Any) -> None:
        self.arbiter.bus.emit(f"{self.topic}.{event}", payload)

    def _task(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- sockets ---------------------------------------------------------

    def socket_names(self) -> list[str]:
        """The daemon sockets this watcher's processes inherit, in the
        order they get them (fds 3, 4, ...): the ``sockets`` list first."""
        spec = self.spec
        names = {v[len("sockets."):] for v in circus_vars(f"{spec.cmd} {spec.args or ''}")
                 if v.startswith("sockets.")}
        names |= set(self.spec.sockets)
        if self.spec.stdin_socket:
            names.add(self.spec.stdin_socket)
        if self.spec.use_sockets and not names:
            names = set(self.arbiter.sockets)
        listed = [n for n in self.spec.sockets if n in names]
        return listed + sorted(names - set(listed))

    def _own_sockets(self, names: list[str]) -> dict[str, socket.socket | None]:
        """Each process's own listening socket, for the so_reuseport ones."""
        own: dict[str, socket.socket | None] = {}
        try:
            for name in names:
                own[name] = self.arbiter.sockets[name].for_process()
        except SocketError as err:
            for sock in own.values():
                if sock is not None:
                    sock.close()
            raise SpawnError(str(err)) from None
        return own

    # -- commands (serialised) -------------------------------------------

    async def start(self) -> None:
        async with self.lock:
            await self._start()

    async def stop(self) -> None:
        async with self.lock:
            await self._stop()

    async def restart(self) -> None:
        async with self.lock:
            await self._stop()
            await self._start()

    async def set_numprocesses(self, count: int) -> int:
        async with self.lock:
            if self.spec.singleton and count > 1:
                raise ValueError(f"{self.name} is a singleton: at most 1 process")
            self.spec = replace(self.spec, numprocesses=count)
            if self.state in ("active", "starting"):
                await self._scale(count)
            return count

    async def update(self, spec: WatcherSpec, graceful: bool = False) -> None:
        """Apply a changed spec, replacing the processes only if needed:
        stop then start, or with ``graceful`` new processes first (if they
        fail, the old spec and processes stay and ReloadAborted is raised)."""
        async with self.lock:
            old, self.spec = self.spec, spec
            changed = spec.changed_from(old)
            if self.state not in ("active", "starting"):
                self.emit("updated")
                return
            if changed & PROCESS_OPTIONS:
                log.info("%s: %s changed, replacing the processes", self.name,
                         ", ".join(sorted(changed)))
                if graceful and self.state == "active":
                    try:
                        await self._roll(self._batch(spec.rolling_reload))
                    except ReloadAborted:
                        self.spec = old
                        raise
                else:
                    await self._stop()
                    await self._start()
            if spec.numprocesses != len(self.processes) or "numprocesses" in changed:
                await self._scale(spec.numprocesses)
            self.emit("updated")

    async def kill(self, pid: int | None = None, signum: int | None = None,
                   timeout: float | None = None) -> None:
        """Stop processes (all, or ``pid``) with a signal and timeout of the
        caller's choosing, then replace them without counting a failure."""
        async with self.lock:
            targets = [p for p in self.processes.values() if pid is None or p.pid == pid]
            await asyncio.gather(*(self._stop_process(p, signum, timeout) for p in targets))
            if self.state == "active":
                for process in targets:
                    if process.wid <= self.wanted and process.wid not in self.processes:
                        self._spawn(process.wid)

    def detach(self) -> None:
        """Forget the processes, leaving them running (``rm --nostop``)."""
        self.state = "stopped"
        for handle in self.pending.values():
            handle.cancel()
        self.pending.clear()
        for process in self.processes.values():
            process.stopping = True
            self.arbiter.unregister(process)
        self.processes.clear()

    def _batch(self, rolling: bool) -> int:
        return 1 if rolling else max(len(self.processes), 1)

    async def reload(self, graceful: bool = True, sequential: bool | None = None) -> None:
        """Replace every process. Graceful: new processes first, each old one
        stopped only once its replacement is ready, all at once or one slot
        at a time (``sequential``, a rolling restart; by default the
        watcher's ``rolling_reload``). A replacement that fails aborts the
        reload and keeps the old processes serving. With ``send_hup``, the
        processes are sent SIGHUP instead."""
        async with self.lock:
            if self.state != "active" or not graceful:
                await self._stop()
                await self._start()
            elif self.spec.send_hup:
                for process in list(self.processes.values()):
                    self._signal(process, signal.SIGHUP)
            else:
                await self._roll(self._batch(
                    self.spec.rolling_reload if sequential is None else sequential))
            self.emit("reload")

    async def _roll(self, batch: int) -> None:
        wids = sorted(self.processes)
        for start in range(0, len(wids), batch):
            group = wids[start:start + batch]
            fresh: dict[int, Process] = {}
            try:
                for wid in group:
                    if not await call_hook(self, "before_spawn"):
                        await self._abort_roll(fresh, "the before_spawn hook said no")
                    fresh[wid] = self._launch(wid, replacing=True)
                    if not await call_hook(self, "after_spawn", pid=fresh[wid].pid):
                        await self._abort_roll(fresh, "the after_spawn hook said no")
            except SpawnError as err:
                await self._abort_roll(fresh, f"cannot spawn a new process: {err}")
            timeout = self.spec.ready_timeout or 60.0
            await asyncio.wait([asyncio.shield(p.ready) for p in fresh.values()],
                               timeout=timeout)
            if not all(p.is_ready for p in fresh.values()):
                late = [p for p in fresh.values() if not p.is_ready]
                await self._abort_roll(fresh, f"new process {late[0].wid} (pid {late[0].pid}) "
                                              "did not become ready")
            old = [self.processes[wid] for wid in group if wid in self.processes]
            for wid, process in fresh.items():
                process.replacing = False
                self.processes[wid] = process
            await asyncio.gather(*(self._stop_process(p) for p in old))
            self.emit("reload_progress", done=start + len(group), total=len(wids))
            log.info("%s: reloaded %d of %d", self.name, start + len(group), len(wids))

    async def _abort_roll(self, fresh: dict[int, Process], reason: str) -> None:
        log.error("%s: reload aborted, old processes kept: %s", self.name, reason)
        await asyncio.gather(*(self._stop_process(p) for p in fresh.values()))
        self.emit("reload_aborted", reason=reason)
        raise ReloadAborted(reason)

    def send_signal(self, signum: int, pid: int | None = None, children: bool = False,
                    recursive: bool = False) -> list[int]:
        """Signal the processes (or one of them, by pid); with ``children``
        their direct children too, with ``recursive`` all descendants.
        Returns the pids signalled."""
        targets = [p for p in self.processes.values() if pid is None or p.pid == pid]
        if pid is not None and not targets:
            # A child of one of our processes?
            for process in self.processes.values():
                if pid in process.tree(self.arbiter.managed_pids()):
                    os.kill(pid, signum)
                    return [pid]
            raise ProcessLookupError(f"process {pid} is not managed by {self.name}")
        if "before_signal" in self.spec.hooks or "after_signal" in self.spec.hooks:
            # The hooks cannot be waited for here: the signals go once the
            # before_signal hook agrees; the reply names the processes.
            for process in targets:
                self._task(self._signal_hooked(process, signum, children, recursive))
            return [p.pid for p in targets]
        sent = []
        for process in targets:
            sent += self._signal(process, signum, children, recursive)
        return sent

    async def _signal_hooked(self, process: Process, signum: int, children: bool,
                             recursive: bool) -> None:
        allowed = await call_hook(self, "before_signal", pid=process.pid, signum=signum)
        if allowed or signum == signal.SIGKILL:
            if process.returncode is None:
                self._signal(process, signum, children, recursive)
        else:
            log.info("%s: the before_signal hook kept signal %d from pid %d", self.name,
                     signum, process.pid)
        await call_hook(self, "after_signal", pid=process.pid, signum=signum)

    def _signal(self, process: Process, signum: int, children: bool = False,
                recursive: bool = False) -> list[int]:
        pids = [process.pid] if not children or recursive else []
        if recursive:
            pids += sorted(descendants(process.pid))
        elif children:
            pids += tree_children(process.pid)
        sent = []
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue
            sent.append(pid)
        self.emit("signal", process_pid=process.pid, signum=signum)
        return sent

    # -- readiness -------------------------------------------------------

    async def wait_ready(self) -> bool:
        """True once every wanted process is ready; False if the watcher
        failed or was stopped first."""
        return await asyncio.shield(self._ready)

    def _check_ready(self) -> None:
        if self._ready.done() or self.state != "active":
            return
        wanted = range(1, self.wanted + 1)
        if all(w in self.processes and self.processes[w].is_ready for w in wanted):
            self._ready.set_result(True)
            self.emit("ready")
            log.info("%s: ready", self.name)

    def _settle_ready(self, value: bool) -> None:
        if not self._ready.done():
            self._ready.set_result(value)

    # -- the state machine -----------------------------------------------

    async def _start(self) -> None:
        if self.state in ("active", "starting") or self.arbiter.stopping:
            return
        if self._ready.done():
            self._ready = self.loop.create_future()
        self.state = "starting"
        self.failure = None
        self.failures.clear()
        self.refusals.clear()
        if "before_start" in self.spec.hooks and (
                not await call_hook(self, "before_start") or self.arbiter.stopping):
            self.state = "stopped"
            self._settle_ready(False)
            if not self.arbiter.stopping:
                self.failure = "not started: the before_start hook said no"
                log.warning("%s: %s", self.name, self.failure)
            return
        await self._scale(self.spec.numprocesses)
        if (self.state == "starting" and "after_start" in self.spec.hooks
                and not await call_hook(self, "after_start") and self.state == "starting"):
            await self._stop()
            self.failure = "stopped: the after_start hook said no"
            log.warning("%s: %s", self.name, self.failure)
            return
        if self.state == "starting":
            self.state = "active"
            self.emit("start")
            log.info("%s: started %d process(es)", self.name, len(self.processes))
        self._check_ready()

    async def _scale(self, count: int) -> None:
        self.wanted = count
        for wid in sorted(self.pending):
            if wid > count:
                self.pending.pop(wid).cancel()
        extra = [p for w, p in self.processes.items() if w > count]
        hooked: list[asyncio.Task[None]] = []  # spawns waiting on their hooks
        for wid in range(1, count + 1):
            if self.state not in ("active", "starting"):
                return
            if wid not in self.processes and wid not in self.pending:
                self._spawn(wid)
                spawning = self.pending.get(wid)
                if isinstance(spawning, asyncio.Task):
                    hooked.append(spawning)
                if self.spec.warmup_delay and wid < count:
                    await asyncio.sleep(self.spec.warmup_delay)
        if hooked:
            await asyncio.wait(hooked)
        if extra:
            await asyncio.gather(*(self._stop_process(p) for p in extra))
        self._check_ready()

    async def _stop(self) -> None:
        if self.state == "stopped":
            return
        was_failed = self.state == "failed"
        self.state = "stopping"
        self.wanted = 0
        for handle in self.pending.values():
            handle.cancel()
        self.pending.clear()
        self._settle_ready(False)
        await call_hook(self, "before_stop")  # its answer changes nothing, as in Circus
        await asyncio.gather(*(self._stop_process(p) for p in list(self.processes.values())))
        self.state = "failed" if was_failed else "stopped"
        if not was_failed:
            self.emit("stop")
            log.info("%s: stopped", self.name)
        await call_hook(self, "after_stop")

    async def _stop_process(self, process: Process, signum: int | None = None,
                            timeout: float | None = None) -> None:
        sig = self.spec.stop_signal if signum is None else signum
        wait = self.spec.graceful_timeout if timeout is None else timeout
        hooks = self.spec.hooks
        if "before_signal" in hooks or "after_signal" in hooks:
            await self._stop_process_hooked(process, sig, wait)
            return
        self.emit("kill", process_pid=process.pid)
        await process.stop(sig, wait, self.arbiter.managed_pids())

    async def _stop_process_hooked(self, process: Process, sig: int, wait: float) -> None:
        """As Circus: before_signal may keep the stop signal from a process,
        which then gets SIGKILL once graceful_timeout has passed;
        after_signal runs once the signal is sent."""
        process.stopping = True
        if (not await call_hook(self, "before_signal", pid=process.pid, signum=sig)
                and sig != signal.SIGKILL):
            log.info("%s: the before_signal hook kept signal %d from pid %d; SIGKILL in %gs",
                     self.name, sig, process.pid, wait)
            await asyncio.wait([process.exited], timeout=wait)
            sig, wait = signal.SIGKILL, 0.0
        self.emit("kill", process_pid=process.pid)
        # Both start in this order: the signal is sent before after_signal runs.
        await asyncio.gather(process.stop(sig, wait, self.arbiter.managed_pids()),
                             call_hook(self, "after_signal", pid=process.pid, signum=sig))

    def _spawn(self, wid: int) -> None:
        """Fill slot wid with a new process (or apply the failure policy)."""
        hooks = self.spec.hooks
        if "before_spawn" in hooks or "after_spawn" in hooks:
            self.pending[wid] = self._task(self._spawn_hooked(wid))
            return
        self.pending.pop(wid, None)
        self._spawn_now(wid)

    def _spawn_now(self, wid: int) -> Process | None:
        try:
            return self._launch(wid)
        except SpawnError as err:
            if self.spec.restart == "never":
                self._give_up(f"process {wid} could not start: {err}")
            else:
                self._failed(wid, 0.0, str(err))
            return None

    async def _spawn_hooked(self, wid: int) -> None:
        """before_spawn, the spawn, after_spawn. A no from before_spawn
        delays the spawn with backoff (Circus stopped the watcher); a no
        from after_spawn stops the watcher (failed, with the reason)."""
        task = asyncio.current_task()
        allowed = await call_hook(self, "before_spawn")
        if self.pending.get(wid) is not task:
            return  # cancelled by a stop, or replaced
        del self.pending[wid]
        if (self.state not in ("active", "starting") or wid > self.wanted
                or wid in self.processes):
            return
        if not allowed:
            self._refused(wid)
            return
        self.refusals.pop(wid, None)
        process = self._spawn_now(wid)
        if process is None or "after_spawn" not in self.spec.hooks:
            return
        if (not await call_hook(self, "after_spawn", pid=process.pid)
                and self.processes.get(wid) is process
                and self.state in ("active", "starting")):
            self._give_up(f"the after_spawn hook said no to process {wid} (pid {process.pid})")

    def _refused(self, wid: int) -> None:
        """before_spawn said no: ask again after a backoff delay. Not a
        failure of the process: max_retry does not count these."""
        spec = self.spec
        count = self.refusals[wid] = self.refusals.get(wid, 0) + 1
        delay = min(spec.backoff_max, spec.backoff_initial * spec.backoff_factor ** (count - 1))
        delay = max(delay, 0.01)
        log.info("%s: the before_spawn hook said no to process %d, asking again in %.2fs",
                 self.name, wid, delay)
        self.emit("backoff", wid=wid, delay=delay, failures=count, reason="before_spawn")
        self.pending[wid] = self.loop.call_later(delay, self._spawn, wid)

    def _launch(self, wid: int, replacing: bool = False) -> Process:
        """Start a process for slot wid (or, replacing, beside the one in
        it) and watch it; raises SpawnError."""
        process = Process(self.spec, wid)
        process.replacing = replacing
        arbiter = self.arbiter
        try:
            names = self.socket_names()
            missing = [n for n in names if n not in arbiter.sockets]
            if missing:
                raise SpawnError(f"socket {missing[0]!r} is not bound")
            own = self._own_sockets(names)
            try:
                process.spawn(
                    {name: sock.fileno() if (sock := own[name]) else arbiter.sockets[name].fd
                     for name in names},
                    arbiter.child_env(self.spec),
                    capture_stdout=not self.spec.close_child_stdout,
                    capture_stderr=not self.spec.close_child_stderr,
                )
            finally:
                for sock in own.values():
                    if sock is not None:
                        sock.close()  # the child's now
        except SpawnError as err:
            log.error("%s: cannot spawn process %d: %s", self.name, wid, err)
            self.emit("spawn_failure", wid=wid, reason=str(err))
            self.last_exits.append({"wid": wid, "pid": None, "exit_code": None,
                                    "reason": str(err), "time": time.time()})
            raise
        arbiter.register(self, process)
        if not replacing:
            # In its slot before the reaper can report its exit (which may
            # happen at once, from inside watch()).
            self.processes[wid] = process
        readers = [PipeReader(self.loop, fd, self._line_sink(process, stream),
                              max_line=self.spec.max_line, hold=arbiter.output_held)
                   for stream, fd in process.pipes.items()]
        # Announced before it is watched: its reap may be reported at once.
        self.emit("spawn", process_pid=process.pid)
        log.debug("%s: spawned process %d (pid %d)", self.name, wid, process.pid)
        arbiter.reaper.watch(process.pid, lambda status: self._exited(process, status, readers))
        self._arm_readiness(process)
        if self.spec.max_age:
            variance = int.from_bytes(os.urandom(4), "big") % (self.spec.max_age_variance + 1)
            age = self.spec.max_age + variance
            handle = self.loop.call_later(age, lambda: self._task(self._recycle(process)))
            process.exited.add_done_callback(lambda _: handle.cancel())
        return process

    def _line_sink(self, process: Process, stream: str) -> Any:
        topic = f"stream.{self.name.lower()}.{stream}"
        arbiter = self.arbiter

        def sink(chunk: bytes) -> None:
            self._remember(time.time(), process, stream, chunk)
            if self._sinks_spec is not self.spec:  # options changed: files too
                self._refresh_sinks()
            out = self.sinks.get(stream)
            if out is not None:
                out.write(chunk, process.pid, process.wid, stream)
            tailed = arbiter.tails and arbiter.tailed(topic)
            if out is not None and not tailed:
                return  # the fast path: no line-by-line work here at all
            for line in chunk.decode("utf-8", "replace").split("\n")[:-1]:
                if out is None:
                    arbiter.output(self, process, stream, line)
                if tailed:
                    arbiter.bus.emit(topic, {"watcher": self.name, "pid": process.pid,
                                             "wid": process.wid, "stream": stream,
                                             "line": line})

        return sink

    def _remember(self, now: float, process: Process, stream: str, chunk: bytes) -> None:
        """The recent output, in chunks, bounded in bytes."""
        self.recent_output.append((now, process.pid, process.wid, stream, chunk))
        self._recent_bytes += len(chunk)
        while self._recent_bytes > RECENT_BYTES and len(self.recent_output) > 1:
            self._recent_bytes -= len(self.recent_output.popleft()[4])

    def recent_lines(self, count: int, stream: str | None = None,
                     since: float | None = None) -> list[tuple[Any, ...]]:
        """The last ``count`` lines (read at or after ``since``, if given):
        (time, pid, wid, stream, text)."""
        lines: list[tuple[Any, ...]] = []
        for now, pid, wid, which, chunk in reversed(self.recent_output):
            if since is not None and now < since:
                break
            if stream is not None and which != stream:
                continue
            texts = chunk.decode("utf-8", "replace").split("\n")[:-1]
            lines[:0] = [(now, pid, wid, which, text) for text in texts]
            if len(lines) >= count:
                break
        return lines[-count:] if count > 0 else []

    def stream_options(self, stream: str) -> dict[str, str]:
        """The options of where a stream goes: as configured, or with
        nothing configured and no console (daemon mode), a file in log_dir."""
        options = getattr(self.spec, f"{stream}_stream").options
        if not options and self.arbiter.log_dir:
            options = {"class": "FileStream", "max_bytes": str(10 * 1024 * 1024),
                       "backup_count": "5", "filename": os.path.join(
                           self.arbiter.log_dir, f"{self.name}.{stream}.log")}
        return options

    def _refresh_sinks(self) -> None:
        """Open, keep or close the sinks of the streams to match the spec
        (``set NAME stdout_stream.filename ...`` or ``stdout_stream.class``
        applies without a restart)."""
        for stream in ("stdout", "stderr"):
            options = self.stream_options(stream)
            current = self.sinks.get(stream)
            if current is not None and current.options == options:
                continue
            if current is not None:
                self._close_sink(self.sinks.pop(stream))
            sink = open_sink(self.arbiter.writer, options, self.name)
            if sink is not None:
                self.sinks[stream] = sink
        self._sinks_spec = self.spec

    def _close_sink(self, sink: StreamSink) -> None:
        sink.close()  # what it holds goes to the writer before a new sink's lines
        self._dropped_closed += sink.dropped

    @property
    def dropped(self) -> int:
        """Output lines dropped because a sink (a disk, the daemon's stdout)
        did not keep up, counting sinks replaced since."""
        return self._dropped_closed + sum(sink.dropped for sink in self.sinks.values())

    def close_sinks(self) -> None:
        for sink in self.sinks.values():
            self._close_sink(sink)
        self.sinks.clear()
        self._sinks_spec = None

    def _arm_readiness(self, process: Process) -> None:
        ready = self.spec.ready
        process.ready.add_done_callback(lambda _: self._check_ready())
        if ready.kind == "spawned":
            process.mark_ready()
            return
        if ready.kind == "delay":
            handle = self.loop.call_later(ready.delay, process.mark_ready)
            process.exited.add_done_callback(lambda _: handle.cancel())
        elif ready.kind == "tcp":
            probe = self._task(self._probe_tcp(process))
            process.ready.add_done_callback(lambda _: probe.cancel())
        if self.spec.ready_timeout:
            timeout = self.loop.call_later(self.spec.ready_timeout, self._ready_timeout, process)
            process.ready.add_done_callback(lambda _: timeout.cancel())

    async def _probe_tcp(self, process: Process) -> None:
        host, port = self.spec.ready.host, self.spec.ready.port
        delay = 0.01
        while not process.ready.done():
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            except (TimeoutError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            process.mark_ready()

    def _ready_timeout(self, process: Process) -> None:
        if process.ready.done() or process.returncode is not None:
            return
        log.error("%s: process %d not ready after %gs (%s), stopping it", self.name,
                  process.wid, self.spec.ready_timeout, self.spec.ready)
        self.emit("ready_timeout", process_pid=process.pid)
        process.timed_out = True
        self._task(process.stop(self.spec.stop_signal, self.spec.graceful_timeout,
                                self.arbiter.managed_pids(), requested=False))

    async def _recycle(self, process: Process) -> None:
        """max_age reached: replace the process without counting a failure."""
        async with self.lock:
            if self.processes.get(process.wid) is not process:
                return
            log.info("%s: process %d reached max_age, recycling", self.name, process.wid)
            await self._stop_process(process)
            if self.state == "active" and process.wid <= self.wanted:
                self._spawn(process.wid)

    def _exited(self, process: Process, status: int, readers: list[PipeReader]) -> None:
        code = exit_code(status)
        process.on_exit(status, code)
        for reader in readers:
            reader.close()
        if self.processes.get(process.wid) is process:
            del self.processes[process.wid]
        self.arbiter.unregister(process)
        self.last_exits.append({"wid": process.wid, "pid": process.pid, "exit_code": code,
                                "time": time.time(), "uptime": round(process.age, 3),
                                "requested": process.stopping})
        self.emit("reap", process_pid=process.pid, exit_code=code, requested=process.stopping)
        if "before_reap" in self.spec.hooks or "after_reap" in self.spec.hooks:
            self._task(self._reap_hooks(process.pid, code))
        if process.stopping or process.replacing:
            return
        level = logging.INFO if code in self.spec.success_exit_codes else logging.WARNING
        log.log(level, "%s: process %d (pid %d) exited with %s after %.3fs", self.name,
                process.wid, process.pid, describe_exit(code), process.age)
        self._task(self.arbiter.clean_leftovers(self, process))
        if self.state not in ("active", "starting") or process.wid > self.wanted:
            return
        restart = self.spec.restart
        if restart == "never" or (
            restart == "on-failure" and code in self.spec.success_exit_codes
            and not process.timed_out
        ):
            # Not replaced: if it was never ready, the watcher will not be.
            self._settle_ready(False)
            return
        self._failed(process.wid, process.age, describe_exit(code))

    async def _reap_hooks(self, pid: int, code: int) -> None:
        """Run after the exit is known (the reaper has already waited for
        it); their answers change nothing, as in Circus."""
        now = time.time()
        await call_hook(self, "before_reap", process_pid=pid, time=now)
        await call_hook(self, "after_reap", process_pid=pid, time=now, exit_code=code,
                        process_status=_UNEXISTING)

    def _failed(self, wid: int, uptime: float, reason: str) -> None:
        """Refill a slot whose process ended: now, later, or never."""
        if self.state not in ("active", "starting"):
            return
        spec = self.spec
        if uptime >= spec.backoff_reset:
            self.failures[wid] = 0
        count = self.failures[wid] = self.failures.get(wid, 0) + 1
        if 0 <= spec.max_retry < count:
            times = "once" if count == 1 else f"{count} times in a row"
            self._give_up(f"process {wid} failed {times}, last: {reason}")
            return
        self.restarts += 1
        delay = 0.0 if count == 1 else min(
            spec.backoff_max, spec.backoff_initial * spec.backoff_factor ** (count - 2))
        if delay <= 0:
            self._spawn(wid)
            return
        log.info("%s: restarting process %d in %.2fs (failure %d)", self.name, wid, delay, count)
        self.emit("backoff", wid=wid, delay=delay, failures=count)
        self.pending[wid] = self.loop.call_later(delay, self._spawn, wid)

    def _give_up(self, reason: str) -> None:
        self.failure = reason
        self.state = "failed"
        for handle in self.pending.values():
            handle.cancel()
        self.pending.clear()
        self.wanted = 0
        self._settle_ready(False)
        lines = [entry[4] for entry in self.recent_lines(5)]
        log.error("%s: failed: %s%s", self.name, reason,
                  "".join(f"\n    | {line}" for line in lines))
        self.emit("failed", reason=reason, exits=list(self.last_exits), output=lines)
        for process in list(self.processes.values()):
            self._task(self._stop_process(process))

def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"
