"""A watcher keeps N processes of one spec running, as its policy says.

It holds the desired state (``numprocesses`` slots, numbered by wid from 1)
and makes the world match it; what to do when a process ends is the
restart policy's (policy.py), how a process starts is spawning.py's, its
output capture.py's, its readiness readiness.py's, a graceful reload
rolling.py's. A watcher sees the daemon only through its ``Runtime``.

Commands on one watcher run one at a time, in arrival order: ``lock``
serialises the watcher's own steps, ``queue`` whole commands (a restart is
a stop and a start that nothing may come between).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import deque
from dataclasses import replace
from typing import Any

from ..config import WatcherSpec
from . import readiness, rolling, signalling, spawning
from .capture import OutputCapture
from .hooks import WatcherHooks
from .output import PipeReader
from .policy import Decision, RestartPolicy, describe_exit
from .process import Process, SpawnError, process_env
from .reaper import exit_code
from .runtime import Runtime
from .tasks import TaskOwner
from .tree import descendants

log = logging.getLogger("bigtop.watcher")

RECENT_EXITS = 10
_UNEXISTING = 2  # Circus's process_status for a process that is gone
_RUNNING = ("active", "starting")

# TEMPORARY until the option table lands
RESTART_OPTIONS = frozenset({
    "cmd", "args", "shell", "shell_args", "executable", "working_dir", "uid", "gid", "umask",
    "copy_env", "copy_path", "env", "rlimits", "use_sockets", "sockets", "virtualenv",
    "virtualenv_py_ver", "close_child_stdin", "close_child_stdout", "close_child_stderr",
    "stdin_socket", "ready",
})


class Watcher:
    def __init__(self, spec: WatcherSpec, runtime: Runtime):
        self.spec = spec
        self.runtime = runtime
        self.loop = runtime.loop
        self.state = "stopped"
        self.wanted = 0
        self.processes: dict[int, Process] = {}
        self.policy = RestartPolicy()
        self.backoff: dict[int, asyncio.TimerHandle] = {}  # slot -> its respawn timer
        self.spawning: dict[int, asyncio.Task[None]] = {}  # slot -> its spawn hooks running
        self.lock = asyncio.Lock()
        self.queue = asyncio.Lock()
        self.restarts = 0
        self.last_exits: deque[dict[str, Any]] = deque(maxlen=RECENT_EXITS)
        self.failure: str | None = None
        self._ready: asyncio.Future[bool] = self.loop.create_future()
        self.tasks = TaskOwner(f"watcher {spec.name}")
        self.capture = OutputCapture(spec.name, lambda: self.spec, runtime.output, runtime.bus)
        self.hooks = WatcherHooks(self, runtime.hook_arbiter, lambda: self.spec, self.emit,
                                  runtime.hook_paths)

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
        return "backoff" if self.state == "active" and self.backoff else self.state

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
        if self.hooks.has("extended_stats"):
            await self.hooks.call("extended_stats", pid=pid, stats=stats)

    def emit(self, event: str, **payload: Any) -> None:
        self.runtime.bus.emit(f"{self.topic}.{event}", payload)

    def socket_names(self) -> list[str]:
        return spawning.socket_names(self.spec, self.runtime.sockets)

    # -- commands (serialised) -------------------------------------------

    async def start(self) -> None:
        async with self.lock:
            await self._start()

    async def stop(self) -> None:
        async with self.lock:
            await self._stop()

    async def set_numprocesses(self, count: int) -> int:
        async with self.lock:
            if self.spec.singleton and count > 1:
                raise ValueError(f"{self.name} is a singleton: at most 1 process")
            self.spec = replace(self.spec, numprocesses=count)
            if self.state in _RUNNING:
                await self._scale(count)
            return count

    async def update(self, spec: WatcherSpec, graceful: bool = False) -> None:
        """Apply a changed spec, replacing the processes only if needed:
        stop then start, or with ``graceful`` new processes first (if they
        fail, the old spec and processes stay and ReloadAborted is raised)."""
        async with self.lock:
            old, self.spec = self.spec, spec
            changed = spec.changed_from(old)
            if self.state not in _RUNNING:
                self.emit("updated")
                return
            if changed & RESTART_OPTIONS:
                log.info("%s: %s changed, replacing the processes", self.name,
                         ", ".join(sorted(changed)))
                if graceful and self.state == "active":
                    try:
                        await rolling.roll(self, self._batch(spec.rolling_reload))
                    except rolling.ReloadAborted:
                        self.spec = old
                        raise
                else:
                    await self._stop()
                    await self._start()
            if spec.numprocesses != len(self.processes) or "numprocesses" in changed:
                await self._scale(spec.numprocesses)
            self.emit("updated")

    async def reload(self, graceful: bool = True, sequential: bool | None = None) -> None:
        """Replace every process. Graceful: new processes first, each old one
        stopped only once its replacement is ready, all at once or one slot
        at a time (``sequential``; by default the watcher's
        ``rolling_reload``). With ``send_hup``, the processes get SIGHUP."""
        async with self.lock:
            if self.state != "active" or not graceful:
                await self._stop()
                await self._start()
            elif self.spec.send_hup:
                for process in list(self.processes.values()):
                    self._send(process, signal.SIGHUP)
            else:
                rolling_ = self.spec.rolling_reload if sequential is None else sequential
                await rolling.roll(self, self._batch(rolling_))
            self.emit("reload")

    def _batch(self, rolling_: bool) -> int:
        return 1 if rolling_ else max(len(self.processes), 1)

    async def kill(self, pid: int | None = None, signum: int | None = None,
                   timeout: float | None = None) -> None:
        """Stop processes (all, or ``pid``) with a signal and timeout of the
        caller's choosing, then replace them without counting a failure."""
        async with self.lock:
            targets = [p for p in self.processes.values() if pid is None or p.pid == pid]
            await asyncio.gather(*(self.stop_process(p, signum, timeout) for p in targets))
            if self.state == "active":
                for process in targets:
                    if process.wid <= self.wanted and process.wid not in self.processes:
                        self._fill(process.wid)

    def detach(self) -> None:
        """Forget the processes, leaving them running (``rm --nostop``)."""
        self.state = "stopped"
        self._cancel_pending()
        for process in self.processes.values():
            process.stopping = True
            self.runtime.registry.unregister(process)
        self.processes.clear()

    async def close(self) -> None:
        """The watcher is gone (removed, or the daemon stops): end its tasks
        and close its sinks. Its processes must be stopped or detached."""
        self._cancel_pending()
        await self.tasks.cancel_all()
        self.capture.close()

    def send_signal(self, signum: int, pid: int | None = None, children: bool = False,
                    recursive: bool = False, childpid: int | None = None) -> list[int]:
        """Signal the processes (or one of them, or a descendant of one, by
        pid); with ``children`` their direct children too, with
        ``recursive`` all descendants, with ``childpid`` that descendant of
        ``pid``. Returns the pids signalled."""
        if childpid:
            if childpid not in descendants(pid or 0):
                raise ProcessLookupError(f"process {childpid} is not a child of {pid}")
            os.kill(childpid, signum)
            return [childpid]
        targets = [p for p in self.processes.values() if pid is None or p.pid == pid]
        if pid is not None and not targets:
            managed = self.runtime.registry.managed()
            if any(pid in process.tree(managed) for process in self.processes.values()):
                os.kill(pid, signum)
                return [pid]
            raise ProcessLookupError(f"process {pid} is not managed by {self.name}")
        if self.hooks.has("before_signal", "after_signal"):
            # The hooks cannot be waited for here: the signals go once the
            # before_signal hook agrees; the reply names the processes.
            for process in targets:
                self.tasks.spawn(signalling.send_hooked(self.hooks, process, signum, children,
                                                        recursive, self.emit))
            return [p.pid for p in targets]
        sent = []
        for process in targets:
            sent += self._send(process, signum, children, recursive)
        return sent

    def _send(self, process: Process, signum: int, children: bool = False,
              recursive: bool = False) -> list[int]:
        sent = signalling.send(process, signum, children, recursive)
        self.emit("signal", process_pid=process.pid, signum=signum)
        return sent

    async def stop_process(self, process: Process, signum: int | None = None,
                           timeout: float | None = None) -> None:
        sig = self.spec.stop_signal if signum is None else signum
        wait = self.spec.graceful_timeout if timeout is None else timeout
        await signalling.stop(self.hooks, process, sig, wait, self.runtime.registry.managed(),
                              self.emit)

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

    def _not_ready_in_time(self, process: Process) -> None:
        log.error("%s: process %d not ready after %gs (%s), stopping it", self.name,
                  process.wid, self.spec.ready_timeout, self.spec.ready)
        self.emit("ready_timeout", process_pid=process.pid)
        process.timed_out = True
        self.tasks.spawn(process.stop(self.spec.stop_signal, self.spec.graceful_timeout,
                                      self.runtime.registry.managed(), requested=False))

    # -- the state machine -----------------------------------------------

    async def _start(self) -> None:
        stopping = self.runtime.stopping
        if self.state in _RUNNING or stopping():
            return
        if self._ready.done():
            self._ready = self.loop.create_future()
        self.state = "starting"
        self.failure = None
        self.policy.reset()
        if self.hooks.has("before_start") and (
                not await self.hooks.call("before_start") or stopping()):
            self.state = "stopped"
            self._settle_ready(False)
            if not stopping():
                self.failure = "not started: the before_start hook said no"
                log.warning("%s: %s", self.name, self.failure)
            return
        await self._scale(self.spec.numprocesses)
        if (self.state == "starting" and self.hooks.has("after_start")
                and not await self.hooks.call("after_start") and self.state == "starting"):
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
        for wid in [w for w in self.backoff if w > count]:
            self.backoff.pop(wid).cancel()
        for wid in [w for w in self.spawning if w > count]:
            self.spawning.pop(wid).cancel()
        extra = [p for w, p in self.processes.items() if w > count]
        hooked: list[asyncio.Task[None]] = []  # spawns waiting on their hooks
        for wid in range(1, count + 1):
            if self.state not in _RUNNING:
                return
            if wid not in self.processes and wid not in self.backoff and wid not in self.spawning:
                self._fill(wid)
                if wid in self.spawning:
                    hooked.append(self.spawning[wid])
                if self.spec.warmup_delay and wid < count:
                    await asyncio.sleep(self.spec.warmup_delay)
        if hooked:
            await asyncio.wait(hooked)
        if extra:
            await asyncio.gather(*(self.stop_process(p) for p in extra))
        self._check_ready()

    async def _stop(self) -> None:
        if self.state == "stopped":
            return
        was_failed = self.state == "failed"
        self.state = "stopping"
        self.wanted = 0
        self._cancel_pending()
        self._settle_ready(False)
        await self.hooks.call("before_stop")  # its answer changes nothing, as in Circus
        await asyncio.gather(*(self.stop_process(p) for p in list(self.processes.values())))
        self.state = "failed" if was_failed else "stopped"
        if not was_failed:
            self.emit("stop")
            log.info("%s: stopped", self.name)
        await self.hooks.call("after_stop")

    def _cancel_pending(self) -> None:
        for handle in self.backoff.values():
            handle.cancel()
        self.backoff.clear()
        for task in self.spawning.values():
            task.cancel()
        self.spawning.clear()

    # -- filling slots ---------------------------------------------------

    def _fill(self, wid: int) -> None:
        """Fill slot wid with a new process (or apply the failure policy);
        with spawn hooks, in a task that runs them around the spawn."""
        self.backoff.pop(wid, None)
        if self.hooks.has("before_spawn", "after_spawn"):
            self.spawning[wid] = self.tasks.spawn(self._fill_hooked(wid),
                                                  name=f"spawn {self.name}#{wid}")
        else:
            self._fill_now(wid)

    def _fill_now(self, wid: int) -> Process | None:
        try:
            return self.launch(wid)
        except SpawnError as err:
            self._apply(wid, self.policy.spawn_failed(self.spec, wid, str(err)))
            return None

    async def _fill_hooked(self, wid: int) -> None:
        """before_spawn, the spawn, after_spawn. A no from before_spawn
        delays the spawn with backoff (Circus stopped the watcher); a no
        from after_spawn stops the watcher (failed, with the reason)."""
        allowed = await self.hooks.call("before_spawn")
        # A stop or a scale down cancels this task: it is still the slot's.
        del self.spawning[wid]
        if self.state not in _RUNNING or wid > self.wanted or wid in self.processes:
            return
        if not allowed:
            decision = self.policy.refused(self.spec, wid)
            log.info("%s: the before_spawn hook said no to process %d, asking again in %.2fs",
                     self.name, wid, decision.delay)
            self.emit("backoff", wid=wid, delay=decision.delay, failures=decision.failures,
                      reason="before_spawn")
            self.backoff[wid] = self.loop.call_later(decision.delay, self._fill, wid)
            return
        self.policy.spawned(wid)
        process = self._fill_now(wid)
        if process is None or not self.hooks.has("after_spawn"):
            return
        if (not await self.hooks.call("after_spawn", pid=process.pid)
                and self.processes.get(wid) is process and self.state in _RUNNING):
            self._give_up(f"the after_spawn hook said no to process {wid} (pid {process.pid})")

    def launch(self, wid: int, replacing: bool = False) -> Process:
        """Start a process for slot wid (or, replacing, beside the one in
        it) and watch it; raises SpawnError."""
        runtime = self.runtime
        try:
            process = spawning.spawn(self.spec, wid, runtime.sockets,
                                     runtime.child_env(self.spec))
        except SpawnError as err:
            log.error("%s: cannot spawn process %d: %s", self.name, wid, err)
            self.emit("spawn_failure", wid=wid, reason=str(err))
            self.last_exits.append({"wid": wid, "pid": None, "exit_code": None,
                                    "reason": str(err), "time": time.time()})
            raise
        process.replacing = replacing
        runtime.registry.register(self.name, process)
        if not replacing:
            # In its slot before the reaper can report its exit (which may
            # happen at once, from inside watch()).
            self.processes[wid] = process
        readers = [PipeReader(self.loop, fd, self.capture.line_sink(process, stream),
                              max_line=self.spec.max_line, hold=runtime.output.held)
                   for stream, fd in process.pipes.items()]
        # Announced before it is watched: its reap may be reported at once.
        self.emit("spawn", process_pid=process.pid)
        log.debug("%s: spawned process %d (pid %d)", self.name, wid, process.pid)
        runtime.reaper.watch(process.pid, lambda status: self._exited(process, status, readers))
        process.ready.add_done_callback(lambda _: self._check_ready())
        readiness.arm(process, self.spec, self.tasks, self._not_ready_in_time)
        if self.spec.max_age:
            variance = int.from_bytes(os.urandom(4), "big") % (self.spec.max_age_variance + 1)
            handle = self.loop.call_later(self.spec.max_age + variance,
                                          lambda: self.tasks.spawn(self._recycle(process)))
            process.exited.add_done_callback(lambda _: handle.cancel())
        return process

    async def _recycle(self, process: Process) -> None:
        """max_age reached: replace the process without counting a failure."""
        async with self.lock:
            if self.processes.get(process.wid) is not process:
                return
            log.info("%s: process %d reached max_age, recycling", self.name, process.wid)
            await self.stop_process(process)
            if self.state == "active" and process.wid <= self.wanted:
                self._fill(process.wid)

    # -- exits -------------------------------------------------------------

    def _exited(self, process: Process, status: int, readers: list[PipeReader]) -> None:
        code = exit_code(status)
        process.on_exit(status, code)
        for reader in readers:
            reader.close()
        if self.processes.get(process.wid) is process:
            del self.processes[process.wid]
        self.runtime.registry.unregister(process)
        self.last_exits.append({"wid": process.wid, "pid": process.pid, "exit_code": code,
                                "time": time.time(), "uptime": round(process.age, 3),
                                "requested": process.stopping})
        self.emit("reap", process_pid=process.pid, exit_code=code, requested=process.stopping)
        if self.hooks.has("before_reap", "after_reap"):
            self.tasks.spawn(self._reap_hooks(process.pid, code))
        if process.stopping or process.replacing:
            return
        level = logging.INFO if code in self.spec.success_exit_codes else logging.WARNING
        log.log(level, "%s: process %d (pid %d) exited with %s after %.3fs", self.name,
                process.wid, process.pid, describe_exit(code), process.age)
        self.tasks.spawn(process.stop_leftovers(self.runtime.registry.managed,
                                                self.spec.stop_signal,
                                                self.spec.graceful_timeout))
        if self.state not in _RUNNING or process.wid > self.wanted:
            return
        decision = self.policy.exited(self.spec, process.wid, code, process.started,
                                      process.timed_out)
        if decision.action == "leave":
            self._settle_ready(False)  # not replaced: if it was never ready, nor is the watcher
            return
        self._apply(process.wid, decision)

    async def _reap_hooks(self, pid: int, code: int) -> None:
        """Run after the exit is known (the reaper has already waited for
        it); their answers change nothing, as in Circus."""
        now = time.time()
        await self.hooks.call("before_reap", process_pid=pid, time=now)
        await self.hooks.call("after_reap", process_pid=pid, time=now, exit_code=code,
                              process_status=_UNEXISTING)

    def _apply(self, wid: int, decision: Decision) -> None:
        """Refill a slot whose process ended (or could not start): now,
        later, or never, as the policy decided."""
        if self.state not in _RUNNING:
            return
        if decision.action == "give_up":
            self._give_up(decision.reason)
            return
        self.restarts += 1
        if decision.delay <= 0:
            self._fill(wid)
            return
        log.info("%s: restarting process %d in %.2fs (failure %d)", self.name, wid,
                 decision.delay, decision.failures)
        self.emit("backoff", wid=wid, delay=decision.delay, failures=decision.failures)
        self.backoff[wid] = self.loop.call_later(decision.delay, self._fill, wid)

    def _give_up(self, reason: str) -> None:
        self.failure = reason
        self.state = "failed"
        self._cancel_pending()
        self.wanted = 0
        self._settle_ready(False)
        lines = [entry[4] for entry in self.capture.recent_lines(5)]
        log.error("%s: failed: %s%s", self.name, reason,
                  "".join(f"\n    | {line}" for line in lines))
        self.emit("failed", reason=reason, exits=list(self.last_exits), output=lines)
        for process in list(self.processes.values()):
            self.tasks.spawn(self.stop_process(process))
