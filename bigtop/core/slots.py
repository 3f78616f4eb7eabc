"""The processes in a watcher's slots: filling a slot, learning of an
exit, applying the restart policy's decision, giving up.

The base of ``Watcher`` (watcher.py), which adds the commands and the
start/stop state machine. A slot is filled at once when nothing stands in
the way, or in a task when spawn hooks must run around the spawn; it waits
out a backoff on a timer. Every task belongs to the watcher's owner.

A one-shot task (``ready = exited``) completes a slot when its process
exits with a success status; once every wanted slot is complete the
watcher is ``done`` (and ready: its dependents may start), with nothing
left to respawn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..config import WatcherSpec
from ..tasks import TaskOwner
from . import readiness, signalling, spawning
from .capture import OutputCapture
from .hooks import WatcherHooks
from .output import PipeReader
from .policy import Decision, RestartPolicy, describe_exit
from .process import Process, SpawnError
from .reaper import exit_code
from .runtime import Runtime
from .writer import Dropped

log = logging.getLogger("bigtop.watcher")

RUNNING = ("active", "starting")
_UNEXISTING = 2  # Circus's process_status for a process that is gone


class Slots:
    spec: WatcherSpec
    runtime: Runtime
    loop: asyncio.AbstractEventLoop
    state: str  # stopped, starting, active, stopping, failed, done (a one-shot that completed)
    wanted: int  # slots 1..wanted are to be filled
    processes: dict[int, Process]  # slot -> its process
    completed: set[int]  # a one-shot's slots whose process exited with success, this run
    policy: RestartPolicy
    backoff: dict[int, asyncio.TimerHandle]  # slot -> its respawn timer
    spawning: dict[int, asyncio.Task[None]]  # slot -> its spawn hooks running
    lock: asyncio.Lock
    restarts: int
    short: int  # spawns put off for want of resources since the last that went ahead
    last_exits: deque[dict[str, Any]]
    failure: str | None
    tasks: TaskOwner
    capture: OutputCapture
    hooks: WatcherHooks
    output_drops: Dropped  # lines and bytes of its output dropped, all its sinks
    _ready: asyncio.Future[bool]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def topic(self) -> str:
        return f"watcher.{self.name.lower()}"

    def emit(self, event: str, **payload: Any) -> None:
        self.runtime.bus.emit(f"{self.topic}.{event}", payload)

    async def stop_process(self, process: Process, signum: int | None = None,
                           timeout: float | None = None) -> None:
        sig = self.spec.stop_signal if signum is None else signum
        wait = self.spec.graceful_timeout if timeout is None else timeout
        await signalling.stop(self.hooks, process, sig, wait, self.runtime.registry.managed(),
                              self.emit)

    def _output_held(self, stream: str) -> Callable[[], bool]:
        """What tells the reader of a stream to wait: the writer is behind,
        or the file the stream goes to cannot be written (for a while:
        past writer.py's bound its lines are dropped instead). The writer
        learns here where this watcher's drops add up."""
        output = self.runtime.output
        output.writer().count_drops(self.name, self.output_drops)

        def held() -> bool:
            if output.held():
                return True
            sink = self.capture.sinks.get(stream)
            return sink is not None and sink.writer.holds(sink.target)

        return held

    # -- readiness -------------------------------------------------------

    async def wait_ready(self) -> bool:
        """True once every wanted process is ready (a one-shot: once it is
        done); False if the watcher failed or was stopped first."""
        return await asyncio.shield(self._ready)

    def _check_ready(self) -> None:
        if self._ready.done() or self.state != "active":
            return
        wanted = range(1, self.wanted + 1)
        if self.spec.ready.one_shot:
            if all(w in self.completed for w in wanted):
                self._complete()
            return
        if all(w in self.processes and self.processes[w].is_ready for w in wanted):
            self._ready.set_result(True)
            self.emit("ready")
            log.info("%s: ready", self.name)

    def _settle_ready(self, value: bool) -> None:
        if not self._ready.done():
            self._ready.set_result(value)

    def _complete(self) -> None:
        """Every wanted slot of a one-shot completed: done, and ready."""
        count = len(self.completed)
        self.state = "done"
        self.wanted = 0
        self._cancel_pending()
        self._settle_ready(True)
        self.emit("ready")
        self.emit("done")
        log.info("%s: done: %d process(es) exited with success", self.name, count)

    def _not_ready_in_time(self, process: Process) -> None:
        if self.spec.ready.one_shot:
            log.error("%s: process %d still running after ready_timeout = %gs (ready = exited), "
                      "stopping it", self.name, process.wid, self.spec.ready_timeout)
        else:
            log.error("%s: process %d not ready after %gs (%s), stopping it", self.name,
                      process.wid, self.spec.ready_timeout, self.spec.ready)
        self.emit("ready_timeout", process_pid=process.pid)
        process.timed_out = True
        self.tasks.spawn(process.stop(self.spec.stop_signal, self.spec.graceful_timeout,
                                      self.runtime.registry.managed(), requested=False))

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

    def _fill_now(self, wid: int, said: Callable[[], None] | None = None) -> Process | None:
        try:
            return self.launch(wid, said=said)
        except SpawnError as err:
            if err.shortage:
                self._put_off(wid, self.policy.refused(self.spec, wid, str(err)))
            else:
                self._apply(wid, self.policy.spawn_failed(self.spec, wid, str(err)))
            return None

    def _spawn_failed(self, wid: int, err: SpawnError) -> None:
        """Log, tell and remember a spawn that failed. One put off for want
        of resources is logged once until a spawn goes ahead again."""
        if not err.shortage:
            log.error("%s: cannot spawn process %d: %s", self.name, wid, err)
        elif not self.short:
            log.error("%s: cannot spawn process %d: %s; retrying with backoff (this and the "
                      "other processes waiting; logged again once a spawn goes ahead)",
                      self.name, wid, err)
        else:
            log.debug("%s: cannot spawn process %d: %s", self.name, wid, err)
        self.short += err.shortage
        self.emit("spawn_failure", wid=wid, reason=str(err))
        self.last_exits.append({"wid": wid, "pid": None, "exit_code": None,
                                "reason": str(err), "time": time.time()})

    def _put_off(self, wid: int, decision: Decision) -> None:
        """Fill slot wid later, as the policy decided for a spawn put off."""
        self.emit("backoff", wid=wid, delay=decision.delay, failures=decision.failures,
                  reason=decision.reason)
        self.backoff[wid] = self.loop.call_later(decision.delay, self._fill, wid)

    async def _fill_hooked(self, wid: int) -> None:
        """before_spawn, the spawn, after_spawn. A no from before_spawn
        delays the spawn with backoff (Circus stopped the watcher); a no
        from after_spawn stops the watcher (failed, with the reason)."""
        allowed = await self.hooks.call("before_spawn")
        if self.spawning.get(wid) is not asyncio.current_task():
            return  # the slot was given another spawn meanwhile
        del self.spawning[wid]  # (a stop or a scale down cancels this task)
        if self.state not in RUNNING or wid > self.wanted or wid in self.processes:
            return
        if not allowed:
            decision = self.policy.refused(self.spec, wid)
            log.info("%s: the before_spawn hook said no to process %d, asking again in %.2fs",
                     self.name, wid, decision.delay)
            self._put_off(wid, decision)
            return
        process = self._fill_now(wid)
        if process is None or not self.hooks.has("after_spawn"):
            return
        if (not await self.hooks.call("after_spawn", pid=process.pid)
                and self.processes.get(wid) is process and self.state in RUNNING):
            self._give_up(f"the after_spawn hook said no to process {wid} (pid {process.pid})")

    def launch(self, wid: int, replacing: bool = False,
               said: Callable[[], None] | None = None) -> Process:
        """Start a process for slot wid (or, replacing, beside the one in
        it) and watch it; raises SpawnError. ``said``: called once the spawn
        is done or failed, before either is said (a respawn's exit is told
        there, see _exited)."""
        runtime = self.runtime
        try:
            process = spawning.spawn(self.spec, wid, runtime.sockets,
                                     runtime.child_env(self.spec))
        except SpawnError as err:
            if said is not None:
                said()
            self._spawn_failed(wid, err)
            raise
        if said is not None:
            said()
        self.policy.spawned(wid)
        if self.short:
            log.warning("%s: spawning again, after %d spawns put off for want of resources",
                        self.name, self.short)
            self.short = 0
        process.replacing = replacing
        self._attach(process, announce=True)
        return process

    def adopt(self, process: Process, partials: dict[str, bytes]) -> None:
        """Take on a process this daemon's previous image started (handover.py),
        its pipes read on from where that image stopped."""
        self._attach(process, partials)

    def _attach(self, process: Process, partials: dict[str, bytes] | None = None,
                announce: bool = False) -> None:
        """Register a process, read its pipes, learn of its exit and of its
        readiness, and recycle it at max_age; ``announce``: a spawn."""
        runtime = self.runtime
        runtime.registry.register(self.name, process)
        if not process.replacing:
            # In its slot before the reaper can report its exit (which may
            # happen at once, from inside watch()).
            self.processes[process.wid] = process
        process.readers = {
            stream: PipeReader(self.loop, fd, self.capture.line_sink(process, stream),
                               max_line=self.spec.max_line, hold=self._output_held(stream),
                               partial_delay=lambda: self.spec.partial_line_delay,
                               partial=(partials or {}).get(stream, b""))
            for stream, fd in process.pipes.items()}
        readers = list(process.readers.values())
        if announce:  # before it is watched: its reap may be reported at once
            self.emit("spawn", process_pid=process.pid)
            log.debug("%s: spawned process %d (pid %d)", self.name, process.wid, process.pid)
        if process.foreign is not None:
            runtime.reaper.watch_foreign(process.pid, *process.foreign,
                                         lambda status: self._exited(process, status, readers))
        else:
            runtime.reaper.watch(process.pid,
                                 lambda status: self._exited(process, status, readers))
        process.ready.add_done_callback(lambda _: self._check_ready())
        if not process.ready.done():
            readiness.arm(process, self.spec, self.tasks, self._not_ready_in_time)
        if self.spec.max_age:
            variance = int.from_bytes(os.urandom(4), "big") % (self.spec.max_age_variance + 1)
            due = max(0.0, self.spec.max_age + variance - process.age)
            handle = self.loop.call_later(due, lambda: self.tasks.spawn(self._recycle(process)))
            process.exited.add_done_callback(lambda _: handle.cancel())

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

    def _exited(self, process: Process, status: int | None,
                readers: list[PipeReader]) -> None:
        code = exit_code(status) if status is not None else None  # None: not known
        process.on_exit(code)
        for reader in readers:
            reader.close()
        if self.processes.get(process.wid) is process:
            del self.processes[process.wid]
        self.runtime.registry.unregister(process)
        self.last_exits.append({"wid": process.wid, "pid": process.pid, "exit_code": code,
                                "time": time.time(), "uptime": round(process.age, 3),
                                "requested": process.stopping})
        decision = None  # the slot is refilled (or not) only after an exit no one asked for
        if not (process.stopping or process.replacing or self.state not in RUNNING
                or process.wid > self.wanted):
            decision = self.policy.exited(self.spec, process.wid, code, process.started,
                                          process.timed_out)
        if (decision is not None and decision.action == "respawn" and decision.delay <= 0
                and not self.hooks.has("before_spawn", "after_spawn")):
            # The replacement is exec'd first, and the exit told after (its
            # event and log line still come before the spawn's): telling
            # costs about as long as the spawn itself.
            self.restarts += 1
            self.backoff.pop(process.wid, None)
            self._fill_now(process.wid, said=lambda: self._tell_exit(process, code))
            return
        self._tell_exit(process, code)
        if decision is None:
            return
        if decision.action == "complete":
            self.completed.add(process.wid)
            self._check_ready()
            return
        if decision.action == "leave":
            self._settle_ready(False)  # not replaced: if it was never ready, nor is the watcher
            return
        self._apply(process.wid, decision)

    def _tell_exit(self, process: Process, code: int | None) -> None:
        """The event, hooks and log line of an exit; the process's group,
        if it leaves any, stopped."""
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

    async def _reap_hooks(self, pid: int, code: int | None) -> None:
        """Run after the exit is known (the reaper has already waited for
        it); their answers change nothing, as in Circus."""
        now = time.time()
        await self.hooks.call("before_reap", process_pid=pid, time=now)
        await self.hooks.call("after_reap", process_pid=pid, time=now, exit_code=code,
                              process_status=_UNEXISTING)

    def _apply(self, wid: int, decision: Decision) -> None:
        """Refill a slot whose process ended (or could not start): now,
        later, or never, as the policy decided."""
        if self.state not in RUNNING:
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
        # The restarts are said as status counts them, beside it.
        if self.restarts:
            reason += f" ({self.restarts} restart{'s' if self.restarts > 1 else ''} in all)"
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
