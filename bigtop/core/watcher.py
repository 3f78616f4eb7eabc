"""A watcher keeps N processes of one spec running, as its policy says.

It holds the desired state (``numprocesses`` slots, numbered by wid from 1)
and makes the world match it. This module has the commands and the
start/stop state machine; filling slots and handling exits is slots.py's,
what to do when a process ends the restart policy's (policy.py), how a
process starts spawning.py's, its output capture.py's, its readiness
readiness.py's, a graceful reload rolling.py's. A watcher sees the daemon
only through its ``Runtime``.

Commands on one watcher run one at a time, in arrival order: ``lock``
serialises the watcher's own steps, ``queue`` whole commands (a restart is
a stop and a start that nothing may come between).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from dataclasses import replace
from typing import Any

from ..config import WatcherSpec
from ..config.options import RESTART_OPTIONS
from ..tasks import TaskOwner
from . import rolling, signalling, spawning
from .adoption import Orphan
from .capture import OutputCapture
from .hooks import WatcherHooks
from .policy import RestartPolicy
from .process import Process, process_env
from .runtime import Runtime
from .slots import RUNNING, Slots
from .tree import descendants
from .writer import Dropped

log = logging.getLogger("bigtop.watcher")

RECENT_EXITS = 10


class Watcher(Slots):
    def __init__(self, spec: WatcherSpec, runtime: Runtime):
        self.spec = spec
        self.runtime = runtime
        self.loop = runtime.loop
        self.state = "stopped"
        self.wanted = 0
        self.processes = {}
        self.completed = set()
        self.policy = RestartPolicy()
        self.backoff = {}
        self.spawning = {}
        self.lock = asyncio.Lock()
        self.queue = asyncio.Lock()
        self.restarts = 0
        self.short = 0
        self.last_exits = deque(maxlen=RECENT_EXITS)
        self.failure = None
        self._ready = self.loop.create_future()
        self.tasks = TaskOwner(f"watcher {spec.name}")
        self.capture = OutputCapture(spec.name, lambda: self.spec, runtime.output, runtime.bus)
        # Its sinks' drops add up here (status, stats); output_dropped tells
        # when one of its files starts and stops dropping lines.
        self.output_drops = Dropped(lambda payload: self.emit("output_dropped", **payload),
                                    self.loop)
        self.hooks = WatcherHooks(self, runtime.hook_arbiter, lambda: self.spec, self.emit,
                                  runtime.hook_paths)

    def __repr__(self) -> str:
        return f"<Watcher {self.name} {self.state} {len(self.processes)}/{self.wanted}>"

    @property
    def status(self) -> str:
        """active, starting, stopping, stopped, failed, done (a one-shot task
        whose processes all exited with success), or backoff (a slot is
        waiting out a backoff delay)."""
        return "backoff" if self.state == "active" and self.backoff else self.state

    @property
    def wanted_processes(self) -> int:
        """How many processes it should run, as every summary counts them:
        its ``numprocesses`` while active or starting, and once failed (what
        it could not keep running); none once stopped or done."""
        return self.spec.numprocesses if self.state in ("active", "starting", "failed") else 0

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

    def socket_names(self) -> list[str]:
        return spawning.socket_names(self.spec, self.runtime.sockets)

    # -- commands (serialised) -------------------------------------------

    def resume(self, entry: dict[str, Any]) -> None:
        """Take on the state and processes the previous image of this daemon
        had for this watcher (handover.py)."""
        self.state = str(entry.get("state", "stopped"))
        self.wanted = int(entry.get("wanted", 0))
        self.restarts = int(entry.get("restarts", 0))
        self.failure = entry.get("failure")
        self.completed = set(entry.get("completed", ()))
        for item in entry.get("processes", ()):
            wid, pid, started = int(item["wid"]), int(item["pid"]), float(item["started"])
            if item.get("foreign"):  # adopted after a crash: its pidfd came along
                pidfd, ticks = item["foreign"]
                process = Process.orphan(self.spec, wid, pid, started, item["pipes"],
                                         int(pidfd), int(ticks), bool(item["ready"]))
            else:
                process = Process.adopted(self.spec, wid, pid, started, item["pipes"],
                                          bool(item["ready"]))
            process.stdin_hold = item.get("stdin")
            self.adopt(process, item.get("partial", {}))

    def adopt_orphan(self, orphan: Orphan) -> None:
        """Take on a process a daemon that died left running in one of this
        watcher's slots (adoption.py); the start fills the others."""
        left = orphan.left
        assert left.wid is not None
        self._attach(Process.orphan(self.spec, left.wid, left.pid, orphan.started,
                                    orphan.pipes, left.pidfd, left.ticks))

    def fill_missing(self) -> None:
        """An active watcher's empty slots (a process that was in backoff,
        or ended during the exec) are filled now."""
        if self.state in ("active", "starting"):
            for wid in range(1, self.wanted + 1):
                if wid not in self.processes and wid not in self.completed:
                    self._fill(wid)
        self._check_ready()

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
            if self.state in RUNNING:
                await self._scale(count)
            return count

    async def update(self, spec: WatcherSpec, graceful: bool = False) -> None:
        """Apply a changed spec, replacing the processes only if needed:
        stop then start, or with ``graceful`` new processes first (if they
        fail, the old spec and processes stay and ReloadAborted is raised)."""
        async with self.lock:
            old, self.spec = self.spec, spec
            changed = spec.changed_from(old)
            if self.state not in RUNNING:
                self.emit("updated")
                return
            if changed & RESTART_OPTIONS:
                log.info("%s: %s changed, replacing the processes", self.name,
                         ", ".join(sorted(changed)))
                # A one-shot task is never ready while it runs: run it again.
                if graceful and self.state == "active" and not spec.ready.one_shot:
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
        ``rolling_reload``). With ``send_hup``, the processes get SIGHUP.
        A one-shot task (running, done or not) is stopped and run again."""
        async with self.lock:
            if self.state != "active" or not graceful or self.spec.ready.one_shot:
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
            if pid is None or not self._owns(pid):
                raise ProcessLookupError(f"process {pid} is not managed by {self.name}")
            if childpid not in descendants(pid):
                raise ProcessLookupError(f"process {childpid} is not a child of {pid}")
            os.kill(childpid, signum)
            return [childpid]
        targets = [p for p in self.processes.values() if pid is None or p.pid == pid]
        if pid is not None and not targets:
            if self._owns(pid):
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

    def _owns(self, pid: int) -> bool:
        """Whether pid is one of this watcher's processes or a descendant of one."""
        managed = self.runtime.registry.managed()
        return any(pid == process.pid or pid in process.tree(managed)
                   for process in self.processes.values())

    def _send(self, process: Process, signum: int, children: bool = False,
              recursive: bool = False) -> list[int]:
        sent = signalling.send(process, signum, children, recursive)
        self.emit("signal", process_pid=process.pid, signum=signum)
        return sent

    # -- the state machine -----------------------------------------------

    async def _start(self) -> None:
        stopping = self.runtime.stopping
        if self.state in RUNNING or stopping():
            return
        if self._ready.done():
            self._ready = self.loop.create_future()
        self.state = "starting"
        self.failure = None
        self.completed.clear()
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
        self.completed.intersection_update(range(1, count + 1))
        for wid in [w for w in self.backoff if w > count]:
            self.backoff.pop(wid).cancel()
        for wid in [w for w in self.spawning if w > count]:
            self.spawning.pop(wid).cancel()
        extra = [p for w, p in self.processes.items() if w > count]
        hooked: list[asyncio.Task[None]] = []  # spawns waiting on their hooks
        for wid in range(1, count + 1):
            if self.state not in RUNNING:
                return
            if (wid not in self.processes and wid not in self.backoff
                    and wid not in self.spawning and wid not in self.completed):
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
