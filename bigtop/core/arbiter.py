"""The arbiter owns the sockets and the watchers, and orders their lives.

It builds each watcher a ``Runtime`` (the parts of the daemon a watcher
may use), starts and stops watchers in order (ordering.py), applies
reloads as a plan (reload.py), and holds what commands need beyond one
watcher: reference checks for new specs, per-watcher command queues, and
reading output back. Plugins run as watchers (plugin_watchers.py), started
once the control endpoints are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..config import Config, PluginSpec, WatcherSpec
from ..config.build import find_cycle, with_httpd
from ..tasks import TaskOwner
from . import adoption, hooks, leftovers, ordering, plugin_watchers
from .events import EventBus
from .notify import NotifyListener
from .ondemand import OnDemand
from .reaper import Reaper
from .registry import ProcessRegistry
from .reload import Current, ReloadPlan, plan_reload
from .routing import Console, OutputRouting
from .runtime import Runtime
from .sockets import Socket, SocketError
from .tree import signal_tree
from .watcher import Watcher

if TYPE_CHECKING:
    from .logtail import LogLine

log = logging.getLogger("bigtop.arbiter")


def has_section(path: str) -> bool:
    """Whether a configuration file has a section header (INI or TOML)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return any(line.lstrip().startswith("[") for line in handle)
    except OSError:
        return False


class ReloadError(Exception):
    pass


class Arbiter:
    def __init__(self, config: Config, console: Console | None = None,
                 log_dir: str | None = None):
        """``log_dir``: in daemon mode, where output with no configured
        stream goes (else to ``console``, the daemon's stdout by default)."""
        self.config = with_httpd(config)  # httpd = true: the web console's watcher
        self.loop = asyncio.get_running_loop()
        self.bus = EventBus()
        self.reaper = Reaper(self.loop)
        self.registry = ProcessRegistry()
        self.output = OutputRouting(console, log_dir)
        self.sockets: dict[str, Socket] = {}
        self.watchers: dict[str, Watcher] = {}
        self.notify: NotifyListener | None = None
        self.started = time.time()
        self.stopping = False
        self.stopped = asyncio.Event()
        # Set once every watcher of the start has spawned its processes or
        # waits for something (ordering.start_in_order), or the start is
        # over: bigtopd logs it, for whoever waits for a daemon to be up.
        self.settled = asyncio.Event()
        self._starting: asyncio.Task[None] | None = None  # start() or resume(), while it runs
        # Background work: commands in progress (the control server's too),
        # on-demand starts, the plugins' start; ended first by stop().
        self.tasks = TaskOwner("arbiter")
        self.on_demand = OnDemand(self.loop, self.sockets, self._first_connection)
        self._endpoints: dict[str, str | None] = {}
        self._control_up = asyncio.Event()
        self.plugins: dict[str, PluginSpec] = {}  # watcher name (plugin:NAME) -> its plugin
        # The cluster agent when this daemon is a node ([cluster]); set by
        # bigtopd for the control commands. The core never calls it.
        self.cluster: Any = None
        # The activity log (control/activity.py), made by the control server;
        # handed over by an upgrade. The core never calls it.
        self.activity: Any = None
        # bigtopd's re-execution of itself (handover.py), for `upgrade`: a
        # coroutine function answering why not, or None once on its way.
        self.upgrader: Any = None
        files = self.config.files
        # Which daemon started a process (leftovers.py), set at the start.
        self.tag: str | None = None
        self.runtime = Runtime(
            loop=self.loop, bus=self.bus, reaper=self.reaper, registry=self.registry,
            sockets=self.sockets, output=self.output, child_env=self.child_env,
            stopping=lambda: self.stopping, hook_arbiter=self,
            hook_paths=[os.path.dirname(os.path.abspath(files[0]))] if files else [])

    @property
    def endpoints(self) -> dict[str, str | None]:
        """Where the control plane listens (globaloptions, plugins)."""
        return self._endpoints

    @endpoints.setter
    def endpoints(self, value: dict[str, str | None]) -> None:
        self._endpoints = value
        if value.get("endpoint"):
            self._control_up.set()  # plugins can be told where to connect

    # -- life of the daemon ----------------------------------------------

    async def start(self) -> None:
        """Bind every socket, then start the watchers in order. A socket that
        cannot be bound aborts the start with nothing running."""
        self._starting = asyncio.current_task()
        try:
            await self._start()
        finally:
            self._starting = None
            self.settled.set()

    async def _start(self) -> None:
        self.reaper.install()
        endpoint = self.endpoints.get("endpoint")
        found = adoption.Plan()
        if self.config.files and endpoint:  # what a predecessor killed with -9 left running
            self.tag = leftovers.daemon_tag(self.config.files[0], endpoint)
            found = await asyncio.to_thread(self._leftovers, self.tag)
            await leftovers.stop(found.stop, {
                w.name: (w.stop_signal, w.graceful_timeout) for w in self.config.watchers})
        self.notify = NotifyListener(self.loop, self._on_notify)
        try:
            for spec in self.config.sockets:
                sock = Socket(spec)
                if spec.name in found.sockets:
                    sock.adopt(found.sockets.pop(spec.name))
                    log.info("socket %s on %s taken back from an adopted process", spec.name,
                             sock.address)
                else:
                    sock.bind()
                    log.info("socket %s bound to %s", spec.name, sock.address)
                self.sockets[spec.name] = sock
        except SocketError:
            self._close_sockets()
            self.notify.close()
            self.reaper.uninstall()
            found.close()  # not adopted after all: nothing started
            raise
        for watcher_spec in self.config.watchers:
            self.watchers[watcher_spec.name] = Watcher(watcher_spec, self.runtime)
        for orphan in found.adopt:
            self.watchers[orphan.spec.name].adopt_orphan(orphan)
        plugins = []
        for name, (watcher_spec, plugin) in plugin_watchers.watcher_specs(self.config).items():
            self.plugins[name] = plugin
            self.watchers[name] = Watcher(watcher_spec, self.runtime)
            plugins.append(self.watchers[name])
        if plugins:
            self.tasks.spawn(self._start_plugins(plugins), name="start plugins")
        await ordering.start_in_order(
            self._boot_watchers(w for w in self.watchers.values() if w.name not in self.plugins),
            self.watchers.get, self.config.settings.warmup_delay, self.settled.set)
        self.bus.emit("arbiter.started", {"pid": os.getpid()})

    def _leftovers(self, tag: str) -> adoption.Plan:
        return adoption.plan(leftovers.find(tag), self.config)

    async def resume(self, state: dict[str, Any]) -> None:
        """Take over from the image this daemon re-executed from
        (handover.py): its sockets, its processes (still ours: same pid),
        each watcher's state; start what is missing from active watchers."""
        self._starting = asyncio.current_task()
        try:
            await self._resume(state)
        finally:
            self._starting = None
            self.settled.set()

    async def _resume(self, state: dict[str, Any]) -> None:
        self.started = float(state.get("started") or self.started)
        if self.activity is not None:  # the control server's log, made before
            self.activity.entries.extend(state.get("activity") or ())
        self.tag = state.get("tag")
        notify = state.get("notify")
        self.notify = NotifyListener(self.loop, self._on_notify, fd=notify)
        specs = {s.name: s for s in self.config.sockets}
        for name, fd in state.get("sockets", {}).items():
            sock = Socket(specs[name])
            sock.adopt(fd)
            self.sockets[name] = sock
        watchers = {spec.name: spec for spec in self.config.watchers}
        for name, (spec, plugin) in plugin_watchers.watcher_specs(self.config).items():
            self.plugins[name] = plugin
            watchers[name] = spec
        taken = state.get("watchers", {})
        for name, spec in watchers.items():
            watcher = self.watchers[name] = Watcher(spec, self.runtime)
            if name in taken:
                watcher.resume(taken[name])
        # Each process is watched (its exit reported even if it came during
        # the exec) before the SIGCHLD sweep, which would reap it unknown.
        self.reaper.install()
        for watcher in self.watchers.values():
            watcher.fill_missing()
        for watcher in self.watchers.values():
            names = watcher.socket_names()
            if watcher.state == "stopped" and watcher.spec.on_demand and names:
                self.on_demand.arm(watcher.name, names)
        log.info("took over %d process(es) of %d watcher(s) from the previous image",
                 sum(len(w.processes) for w in self.watchers.values()), len(self.watchers))
        self.bus.emit("arbiter.started", {"pid": os.getpid()})

    async def _start_plugins(self, watchers: list[Watcher]) -> None:
        """Plugins connect to the control endpoints: they start once those
        are bound, without holding back the other watchers."""
        await self._control_up.wait()
        if not self.stopping:
            await self.start_watchers(watchers)

    def _boot_watchers(self, watchers: Iterable[Watcher]) -> list[Watcher]:
        out = []
        for watcher in watchers:
            if watcher.processes:  # adopted (adoption.py): it was running
                out.append(watcher)
                continue
            names = watcher.socket_names()
            if watcher.spec.on_demand and names and self.on_demand.arm(watcher.name, names):
                continue
            if watcher.spec.autostart:
                out.append(watcher)
        return out

    def _first_connection(self, name: str) -> None:
        watcher = self.watchers.get(name)
        if watcher is not None and not self.stopping:
            log.info("%s: first connection, starting", watcher.name)
            self.tasks.spawn(self.start_watchers([watcher]), name=f"on demand {name}")

    async def stop(self) -> None:
        """End the commands in progress (a rolling reload waiting for
        readiness is aborted), stop every watcher in reverse order, write
        out what was read, then release the sockets."""
        if self.stopping:
            await self.stopped.wait()
            return
        self.stopping = True
        log.info("stopping")
        starting = self._starting
        if starting is not None and starting is not asyncio.current_task():
            # A stop asked during the start: the start goes no further, and
            # what it started is stopped below.
            starting.cancel()
            await asyncio.wait([starting])
        self.on_demand.disarm()
        await self.tasks.cancel_all()
        await self.stop_watchers(list(self.watchers.values()))
        for watcher in self.watchers.values():
            await watcher.close()
        await self.output.close()  # everything read is written first
        self._close_sockets()
        if self.notify:
            self.notify.close()
        self.reaper.uninstall()
        self.bus.emit("arbiter.stopped")
        self.stopped.set()

    def kill_all(self) -> None:
        """Last resort (a second Ctrl-C): SIGKILL every process tree now."""
        managed = self.registry.managed()
        for process in self.registry.processes():
            signal_tree(process.pgid, process.tree(managed) | {process.pid}, 9)

    def _close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    # -- ordering --------------------------------------------------------

    async def start_watchers(self, watchers: Iterable[Watcher]) -> None:
        await ordering.start_in_order(watchers, self.watchers.get,
                                      self.config.settings.warmup_delay)

    async def stop_watchers(self, watchers: Iterable[Watcher]) -> None:
        await ordering.stop_in_order(watchers)

    # -- what the daemon gives processes ---------------------------------

    def child_env(self, spec: WatcherSpec) -> dict[str, str]:
        env: dict[str, str] = {leftovers.DAEMON_ENV: self.tag} if self.tag else {}
        if spec.ready.kind == "notify" and self.notify is not None:
            env["NOTIFY_SOCKET"] = self.notify.address
        plugin = self.plugins.get(spec.name)
        if plugin is not None:
            env[plugin_watchers.PLUGIN_ENV] = plugin_watchers.plugin_config(
                plugin, self.config.settings, self.endpoints)
        return env

    def _on_notify(self, pid: int, fields: dict[str, str]) -> None:
        process = self.registry.find(pid)
        if process is None:
            log.debug("notify message from unknown pid %d: %s", pid, fields)
            return
        if fields.get("READY") == "1":
            process.mark_ready()

    # -- what commands need ----------------------------------------------

    def get_watcher(self, name: str) -> Watcher | None:
        """Watcher names are case-insensitive, as in Circus."""
        found = self.watchers.get(name)
        if found is None:
            found = next((w for n, w in self.watchers.items() if n.lower() == name.lower()), None)
        return found

    def check_references(self, spec: WatcherSpec) -> None:
        """What a new or changed spec names must exist: its dependencies
        (with no cycle) and its sockets; raises ValueError."""
        for dep in spec.depends_on:
            if dep != spec.name and self.get_watcher(dep) is None:
                raise ValueError(f"depends_on: no watcher named {dep!r}")
        graph = {w.name: w.spec.depends_on for w in self.watchers.values()}
        graph[spec.name] = spec.depends_on
        cycle = find_cycle(graph)
        if cycle or spec.name in spec.depends_on:
            raise ValueError("depends_on: dependency cycle: " +
                             " -> ".join(cycle or [spec.name, spec.name]))
        for name in spec.sockets + ((spec.stdin_socket,) if spec.stdin_socket else ()):
            if name not in self.sockets:
                raise ValueError(f"no socket named {name!r}")

    @contextlib.asynccontextmanager
    async def queued(self, watchers: Iterable[Watcher]) -> AsyncIterator[None]:
        """Run a command on these watchers after those already queued on
        any of them (locks taken in name order: no deadlock)."""
        async with contextlib.AsyncExitStack() as stack:
            for watcher in sorted(set(watchers), key=lambda w: w.name.lower()):
                await stack.enter_async_context(watcher.queue)
            yield

    async def read_logs(self, watchers: list[Watcher], count: int, streams: tuple[str, ...],
                        since: float | None) -> dict[str, list[LogLine]]:
        """The last ``count`` output lines of each watcher (the modules that
        read files back load with the first ``logs``: not in every daemon)."""
        from . import logread

        captures = [w.capture for w in watchers]
        if not self.stopping:  # stopping: the writer may be gone
            await logread.flush(self.output, captures)
        return {w.name: await logread.last_lines(w.capture, count, streams, since)
                for w in watchers}

    # -- watchers added and removed at run time ---------------------------

    async def add_watcher(self, spec: WatcherSpec) -> Watcher:
        if self.get_watcher(spec.name) is not None:
            raise ValueError(f"a watcher named {spec.name!r} already exists")
        watcher = Watcher(spec, self.runtime)
        self.watchers[spec.name] = watcher
        watcher.emit("add")
        log.info("%s: added", spec.name)
        return watcher

    async def rm_watcher(self, name: str, nostop: bool = False) -> None:
        """Remove a watcher; its processes are stopped, or with ``nostop``
        left running, no longer managed."""
        watcher = self.get_watcher(name)
        if watcher is None:
            raise KeyError(name)
        watcher.emit("remove")
        if nostop:
            watcher.detach()
        else:
            # Still listed meanwhile: if the daemon stops now (this is
            # cancelled), its own stop takes these processes down too.
            await self.stop_watchers([watcher])
        del self.watchers[watcher.name]
        await watcher.close()
        log.info("%s: removed", watcher.name)

    # -- reload ----------------------------------------------------------

    async def reload_from_file(self) -> dict[str, list[str]]:
        """Read the main configuration file again (in a thread: reading
        must not stall the loop) and apply the difference; raises
        ConfigError or ReloadError with nothing changed. A file with no
        section at all (emptied, or cut short by an editor) would stop
        everything: refused, unless nothing runs."""
        from ..config import ConfigError
        from ..config.saved import load_saved

        main = self.config.files[0]
        new = await asyncio.to_thread(load_saved, main, strict=self.config.strict)
        if not (new.watchers or new.sockets) and (self.watchers or self.config.sockets) \
                and not await asyncio.to_thread(has_section, main):
            raise ConfigError(f"{main}: no section at all: a reload would stop every watcher "
                              "and socket (to stop them all on purpose, leave a [circus] "
                              "section in the file)")
        for warning in new.warnings:
            log.warning("%s", warning)
        return await self.reload(new)

    async def reload(self, new: Config) -> dict[str, list[str]]:
        """Apply a new configuration as a diff (reload.plan_reload): only what
        changed restarts, unchanged sockets stay bound. Returns what was
        done."""
        new = with_httpd(new)
        old = self.config
        current = {name: Current(w.spec, w.state, tuple(w.socket_names()))
                   for name, w in self.watchers.items()}
        plan = plan_reload(old, new, current, self.plugins)
        old_sockets = {s.name: s for s in old.sockets}
        bound = self._bind_all(plan.bind_first(old_sockets), plan)
        removed = [self.watchers[n] for n in plan.removed]
        restart = [self.watchers[n] for n in plan.restarted]

        await self.stop_watchers(removed + restart)
        self.plugins = plan.plugins
        hooks.forget()  # a hook may now name another function
        for watcher in removed:
            del self.watchers[watcher.name]
            await watcher.close()
            watcher.emit("remove")
        problems = self._rebind(plan, bound)
        for watcher in restart:
            if watcher.spec != plan.specs[watcher.name]:
                watcher.spec = plan.specs[watcher.name]
                watcher.emit("updated")
        for name in plan.updated:
            await self.watchers[name].update(plan.specs[name])
        for name in plan.added:
            self.watchers[name] = Watcher(plan.specs[name], self.runtime)
            self.watchers[name].emit("add")
        self.config = new
        to_start = [self.watchers[n] for n in plan.restart_running]
        to_start += self._boot_watchers(self.watchers[n] for n in plan.added)
        await self.start_watchers(to_start)
        if new.settings != old.settings:
            log.warning("reload: [circus] settings changed; they take effect at the next "
                        "daemon start")
        summary = {
            "added": plan.added,
            "removed": plan.removed,
            "restarted": plan.restarted,
            "updated": plan.updated,
            "sockets_added": plan.sockets_added,
            "sockets_removed": plan.sockets_removed,
            "sockets_rebound": plan.sockets_changed,
            "errors": problems,
        }
        log.info("reload: %s", ", ".join(f"{k} {', '.join(v)}" for k, v in summary.items() if v)
                 or "nothing changed")
        return summary

    def _bind_all(self, names: list[str], plan: ReloadPlan) -> dict[str, Socket]:
        """Bind these sockets of the plan, or none (ReloadError)."""
        bound: dict[str, Socket] = {}
        try:
            for name in names:
                sock = Socket(plan.sockets[name])
                sock.bind()
                bound[name] = sock
        except SocketError as err:
            for sock in bound.values():
                sock.close()
            raise ReloadError(str(err)) from None
        return bound

    def _rebind(self, plan: ReloadPlan, bound: dict[str, Socket]) -> list[str]:
        """Close the removed and changed sockets and put the new ones in
        their place (a changed one that cannot be bound keeps serving on
        its old options). Returns the problems met."""
        problems = []
        for name in plan.sockets_removed + plan.sockets_changed:
            old_sock = self.sockets.pop(name)
            old_sock.close()
            if name in plan.sockets_changed and name not in bound:
                sock = Socket(plan.sockets[name])
                try:
                    sock.bind()
                except SocketError as err:
                    problems.append(f"{err}; kept the old socket")
                    log.error("reload: %s; keeping the old socket", err)
                    sock = Socket(old_sock.spec)
                    try:
                        sock.bind()
                    except SocketError as again:
                        log.error("reload: %s", again)
                        continue
                bound[name] = sock
        self.sockets.update(bound)
        return problems


