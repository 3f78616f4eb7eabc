"""The arbiter owns the sockets and the watchers, and orders their lives.

Start order: higher ``priority`` first (as Circus), and a watcher with
``depends_on`` starts only once those watchers are ready. Stop order is the
reverse: a watcher stops only after every watcher that depends on it.

Each ``[plugin:NAME]`` runs as a watcher named ``plugin:NAME`` (as in
Circus): ``python -m bigtop.plugins.run``, started once the control
endpoints are up, its configuration in its environment (not in its argv).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..config import Config, PluginSpec, SocketSpec, WatcherSpec
from ..config.build import with_httpd
from . import hooks
from .events import EventBus
from .notify import NotifyListener
from .process import Process
from .reaper import Reaper
from .sockets import Socket, SocketError
from .streams import ConsoleSink, Writer
from .tree import adopted_orphans, group_alive, signal_tree, wait_gone
from .watcher import PROCESS_OPTIONS, Watcher

log = logging.getLogger("bigtop.arbiter")


class ReloadError(Exception):
    pass


def same_address(a: SocketSpec, b: SocketSpec) -> bool:
    return (a.path, a.host, a.port, a.family) == (b.path, b.host, b.port, b.family)


PLUGIN_ENV = "BIGTOP_PLUGIN"  # the plugin's configuration, as JSON


def plugin_watcher_name(plugin: PluginSpec) -> str:
    return f"plugin:{plugin.name}"


def plugin_watcher_spec(plugin: PluginSpec) -> WatcherSpec:
    """The watcher that runs a plugin: one process of the plugin runner
    (restarted with backoff like any watcher), with the daemon's
    environment and sys.path, as in Circus."""
    return WatcherSpec(
        name=plugin_watcher_name(plugin),
        cmd=sys.executable,
        args=f"-m bigtop.plugins.run {shlex.quote(plugin.name)}",
        singleton=True,
        copy_env=True,
        copy_path=True,
        priority=plugin.priority,
        graceful_timeout=10.0,
        origin=plugin.origin,
    )


def plugin_watcher_specs(config: Config) -> dict[str, tuple[WatcherSpec, PluginSpec]]:
    return {plugin_watcher_name(p): (plugin_watcher_spec(p), p) for p in config.plugins}


class Arbiter:
    def __init__(self, config: Config,
                 console: Callable[[str, int, int, str, str], None] | None = None):
        self.config = with_httpd(config)  # httpd = true: the web console's watcher
        self.loop = asyncio.get_running_loop()
        self.bus = EventBus()
        self.reaper = Reaper(self.loop)
        self.sockets: dict[str, Socket] = {}
        self.watchers: dict[str, Watcher] = {}
        self.by_pid: dict[int, tuple[Watcher, Process]] = {}
        self.notify: NotifyListener | None = None
        self.started = time.time()
        self.console = console or ConsoleSink(self.writer)
        self.stopping = False
        self.stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_demand: dict[int, str] = {}
        self._endpoints: dict[str, str | None] = {}
        self._control_up = asyncio.Event()
        # watcher name (plugin:NAME) -> the plugin it runs
        self.plugins: dict[str, PluginSpec] = {}
        self._writer: Writer | None = None
        # In daemon mode: where output with no configured stream goes.
        self.log_dir: str | None = None
        # Topic prefixes someone subscribes to: output lines are published
        # as stream.<watcher>.<stdout|stderr> only while one matches.
        self.tails: set[str] = set()

    @property
    def endpoints(self) -> dict[str, str | None]:
        """Where the control plane listens (globaloptions, plugins)."""
        return self._endpoints

    @endpoints.setter
    def endpoints(self, value: dict[str, str | None]) -> None:
        self._endpoints = value
        if value.get("endpoint"):
            self._control_up.set()  # plugins can be told where to connect

    def tailed(self, topic: str) -> bool:
        return any(topic.startswith(prefix) for prefix in self.tails)

    def writer(self) -> Writer:
        """The file-writing thread, started with the first file stream."""
        if self._writer is None:
            self._writer = Writer()
        return self._writer

    def output_held(self) -> bool:
        """Whether the pipe readers should wait for the writer to catch up."""
        return self._writer is not None and self._writer.holding()

    # -- life of the daemon ----------------------------------------------

    async def start(self) -> None:
        """Bind every socket, then start the watchers in order. A socket that
        cannot be bound aborts the start with nothing running."""
        self.reaper.install()
        self.notify = NotifyListener(self.loop, self._on_notify)
        try:
            for spec in self.config.sockets:
                sock = Socket(spec)
                sock.bind()
                self.sockets[spec.name] = sock
                log.info("socket %s bound to %s", spec.name, sock.address)
        except SocketError:
            self._close_sockets()
            self.notify.close()
            self.reaper.uninstall()
            raise
        for watcher_spec in self.config.watchers:
            self.watchers[watcher_spec.name] = Watcher(watcher_spec, self)
        plugins = []
        for name, (watcher_spec, plugin) in plugin_watcher_specs(self.config).items():
            self.plugins[name] = plugin
            self.watchers[name] = Watcher(watcher_spec, self)
            plugins.append(self.watchers[name])
        if plugins:
            self._task(self._start_plugins(plugins))
        await self.start_watchers(self._boot_watchers(
            w for w in self.watchers.values() if w.name not in self.plugins))
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
            if watcher.spec.on_demand and watcher.socket_names() and self._arm_on_demand(watcher):
                continue
            if watcher.spec.autostart:
                out.append(watcher)
        return out

    async def stop(self) -> None:
        """Stop every watcher in reverse order, then release the sockets."""
        if self.stopping:
            await self.stopped.wait()
            return
        self.stopping = True
        log.info("stopping")
        self._disarm_on_demand()
        await self.stop_watchers(list(self.watchers.values()))
        for task in list(self._tasks):
            task.cancel()
        for watcher in self.watchers.values():
            watcher.close_sinks()
        flush = getattr(self.console, "flush", None)
        if flush is not None:
            flush()
        if self._writer is not None:
            await self._writer.close()  # everything read is written first
        self._close_sockets()
        if self.notify:
            self.notify.close()
        self.reaper.uninstall()
        self.bus.emit("arbiter.stopped")
        self.stopped.set()

    def kill_all(self) -> None:
        """Last resort (a second Ctrl-C): SIGKILL every process tree now."""
        managed = self.managed_pids()
        for _, process in list(self.by_pid.values()):
            signal_tree(process.pgid, process.tree(managed) | {process.pid}, 9)

    def _close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    # -- ordering --------------------------------------------------------

    async def start_watchers(self, watchers: Iterable[Watcher]) -> None:
        """Higher priority first: a watcher starts once those of higher
        priority have begun (and, with [circus] warmup_delay, that long after
        the previous one), and once its dependencies are ready."""
        batch = sorted(watchers, key=lambda w: -w.spec.priority)
        begun = {w.name: asyncio.Event() for w in batch}
        warmup = self.config.settings.warmup_delay

        async def run(watcher: Watcher) -> None:
            try:
                index = batch.index(watcher)
                for other in batch[:index]:
                    if other.spec.priority > watcher.spec.priority or warmup:
                        await begun[other.name].wait()
                if warmup and index:
                    await asyncio.sleep(warmup)
                for dep_name in watcher.spec.depends_on:
                    dep = self.watchers.get(dep_name)
                    if dep is None:
                        continue
                    if dep_name in begun:
                        await begun[dep_name].wait()
                    elif dep.state == "stopped":
                        await dep.start()
                    if not await dep.wait_ready():
                        log.error("%s: not started, dependency %s is %s", watcher.name,
                                  dep_name, dep.status)
                        watcher.emit("dependency_failed", dependency=dep_name)
                        return
                await watcher.start()
            finally:
                begun[watcher.name].set()

        await asyncio.gather(*(run(w) for w in batch))

    async def stop_watchers(self, watchers: Iterable[Watcher]) -> None:
        """The reverse of the start: a watcher stops once the watchers of
        lower priority and those that depend on it have stopped."""
        batch = sorted(watchers, key=lambda w: w.spec.priority)
        done = {w.name: asyncio.Event() for w in batch}

        async def run(watcher: Watcher) -> None:
            try:
                for other in batch:
                    if (other.spec.priority < watcher.spec.priority
                            or watcher.name in other.spec.depends_on):
                        await done[other.name].wait()
                await watcher.stop()
            finally:
                done[watcher.name].set()

        await asyncio.gather(*(run(w) for w in batch))

    # -- on-demand start -------------------------------------------------

    def _arm_on_demand(self, watcher: Watcher) -> bool:
        """Start the watcher on a first connection; False if it cannot wait
        (an so_reuseport socket: the daemon's copy does not listen)."""
        names = watcher.socket_names()
        if any(self.sockets[name].spec.so_reuseport for name in names):
            log.warning("%s: on_demand does not apply to so_reuseport sockets, starting it",
                        watcher.name)
            return False
        for name in names:
            fd = self.sockets[name].fd
            if fd in self._on_demand:
                continue
            self._on_demand[fd] = watcher.name
            self.loop.add_reader(fd, self._on_connection, fd)
        log.info("%s: waiting for a first connection", watcher.name)
        return True

    def _on_connection(self, fd: int) -> None:
        name = self._on_demand.get(fd)
        for other_fd in [f for f, n in self._on_demand.items() if n == name]:
            self.loop.remove_reader(other_fd)
            del self._on_demand[other_fd]
        watcher = self.watchers.get(name or "")
        if watcher is not None and not self.stopping:
            log.info("%s: first connection, starting", watcher.name)
            self._task(self.start_watchers([watcher]))

    def _disarm_on_demand(self) -> None:
        for fd in self._on_demand:
            self.loop.remove_reader(fd)
        self._on_demand.clear()

    # -- processes -------------------------------------------------------

    def register(self, watcher: Watcher, process: Process) -> None:
        self.by_pid[process.pid] = (watcher, process)

    def unregister(self, process: Process) -> None:
        self.by_pid.pop(process.pid, None)

    def managed_pids(self) -> set[int]:
        return set(self.by_pid)

    def child_env(self, spec: WatcherSpec) -> dict[str, str]:
        env: dict[str, str] = {}
        if spec.ready.kind == "notify" and self.notify is not None:
            env["NOTIFY_SOCKET"] = self.notify.address
        plugin = self.plugins.get(spec.name)
        if plugin is not None:
            env[PLUGIN_ENV] = self.plugin_config(plugin)
        return env

    def plugin_config(self, plugin: PluginSpec) -> str:
        """What a plugin process is told: in its environment, which only
        its user (and root) can read, never in its argv, which ``ps`` shows
        to everyone; the runner removes it from its own environment."""
        settings = self.config.settings
        return json.dumps({
            "name": plugin.name,
            "use": plugin.use,
            "options": plugin.options,
            "endpoint": self.endpoints.get("endpoint"),
            "pubsub_endpoint": self.endpoints.get("pubsub_endpoint"),
            "stats_endpoint": self.endpoints.get("stats_endpoint"),
            "check_delay": settings.check_delay,
            "loglevel": "debug" if settings.debug else settings.loglevel,
        })

    def output(self, watcher: Watcher, process: Process, stream: str, line: str) -> None:
        self.console(watcher.name, process.wid, process.pid, stream, line)

    def _on_notify(self, pid: int, fields: dict[str, str]) -> None:
        entry = self.by_pid.get(pid)
        if entry is None:
            with contextlib.suppress(OSError):
                entry = self.by_pid.get(os.getpgid(pid))
        if entry is None:
            log.debug("notify message from unknown pid %d: %s", pid, fields)
            return
        if fields.get("READY") == "1":
            entry[1].mark_ready()

    async def clean_leftovers(self, watcher: Watcher, process: Process) -> None:
        """A process exited on its own; stop what it left behind (its group,
        and descendants the subreaper adopted), as systemd does."""
        await asyncio.sleep(0)
        pids = adopted_orphans(watcher.name, self.managed_pids(), process.wid)
        if not pids and not group_alive(process.pgid):
            return
        spec = watcher.spec
        log.info("%s: stopping %d process(es) left behind by pid %d", watcher.name,
                 len(pids), process.pid)
        signal_tree(process.pgid, pids, spec.stop_signal)
        left = await wait_gone(pids, spec.graceful_timeout)
        if left or group_alive(process.pgid):
            signal_tree(process.pgid, left, 9)

    def _task(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- watchers added and removed at run time ---------------------------

    def get_watcher(self, name: str) -> Watcher | None:
        """Watcher names are case-insensitive, as in Circus."""
        found = self.watchers.get(name)
        if found is None:
            found = next((w for n, w in self.watchers.items() if n.lower() == name.lower()), None)
        return found

    async def add_watcher(self, spec: WatcherSpec) -> Watcher:
        if self.get_watcher(spec.name) is not None:
            raise ValueError(f"a watcher named {spec.name!r} already exists")
        watcher = Watcher(spec, self)
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
        del self.watchers[watcher.name]
        watcher.emit("remove")
        if nostop:
            watcher.detach()
        else:
            await self.stop_watchers([watcher])
        watcher.close_sinks()
        log.info("%s: removed", watcher.name)

    # -- reload ----------------------------------------------------------

    async def reload_from_file(self) -> dict[str, list[str]]:
        """Read the main configuration file again and apply the difference;
        raises ConfigError or ReloadError with nothing changed."""
        from ..config import load

        return await self.reload(load(self.config.files[0]))

    async def reload(self, new: Config) -> dict[str, list[str]]:
        """Apply a new configuration as a diff: only what changed restarts,
        unchanged sockets stay bound. Returns what was done."""
        new = with_httpd(new)
        old = self.config
        old_sockets = {s.name: s for s in old.sockets}
        new_sockets = {s.name: s for s in new.sockets}
        added_sockets = [n for n in new_sockets if n not in old_sockets]
        removed_sockets = [n for n in old_sockets if n not in new_sockets]
        changed_sockets = [n for n in new_sockets
                           if n in old_sockets and new_sockets[n] != old_sockets[n]]

        # Bind new sockets, and changed ones on a new address, before
        # anything is stopped: if one fails, nothing has changed.
        bound: dict[str, Socket] = {}
        try:
            for name in added_sockets + changed_sockets:
                if name in changed_sockets and same_address(old_sockets[name], new_sockets[name]):
                    continue  # can only be bound once the old one is closed
                sock = Socket(new_sockets[name])
                sock.bind()
                bound[name] = sock
        except SocketError as err:
            for sock in bound.values():
                sock.close()
            raise ReloadError(str(err)) from None

        old_plugins = plugin_watcher_specs(old)
        new_plugins = plugin_watcher_specs(new)
        old_specs = {w.name: w for w in old.watchers} | {n: w for n, (w, _) in old_plugins.items()}
        new_specs = {w.name: w for w in new.watchers} | {n: w for n, (w, _) in new_plugins.items()}
        removed = [self.watchers[n] for n in old_specs
                   if n not in new_specs and n in self.watchers]
        added = [n for n in new_specs if n not in self.watchers]
        restart: list[Watcher] = []
        in_place: list[Watcher] = []
        for name, spec in new_specs.items():
            watcher = self.watchers.get(name)
            if watcher is None:
                continue
            uses_changed = set(watcher.socket_names()) & set(changed_sockets + removed_sockets)
            plugin_changed = name in new_plugins and self.plugins.get(name) != new_plugins[name][1]
            if spec == watcher.spec and not uses_changed and not plugin_changed:
                continue
            restarts = spec.changed_from(watcher.spec) & PROCESS_OPTIONS
            if restarts or uses_changed or plugin_changed or watcher.state == "failed":
                restart.append(watcher)
            else:
                in_place.append(watcher)
        was_running = {w.name for w in restart if w.state != "stopped"}

        await self.stop_watchers(removed + restart)
        self.plugins = {name: plugin for name, (_, plugin) in new_plugins.items()}
        hooks.forget()  # a hook may now name another function
        for watcher in removed:
            del self.watchers[watcher.name]
            watcher.close_sinks()
            watcher.emit("remove")
        problems = []
        for name in removed_sockets + changed_sockets:
            old_sock = self.sockets.pop(name)
            old_sock.close()
            if name in changed_sockets and name not in bound:
                sock = Socket(new_sockets[name])
                try:
                    sock.bind()
                except SocketError as err:
                    # Keep serving on the old one rather than on nothing.
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
        for watcher in restart:
            if watcher.spec != new_specs[watcher.name]:
                watcher.spec = new_specs[watcher.name]
                watcher.emit("updated")
        for watcher in in_place:
            await watcher.update(new_specs[watcher.name])
        for name in added:
            self.watchers[name] = Watcher(new_specs[name], self)
            self.watchers[name].emit("add")
        self.config = new
        to_start = [w for w in restart if w.name in was_running]
        to_start += self._boot_watchers(self.watchers[n] for n in added)
        await self.start_watchers(to_start)
        if new.settings != old.settings:
            log.warning("reload: [circus] settings changed; they take effect at the next "
                        "daemon start")
        summary = {
            "added": added,
            "removed": [w.name for w in removed],
            "restarted": [w.name for w in restart],
            "updated": [w.name for w in in_place],
            "sockets_added": added_sockets,
            "sockets_removed": removed_sockets,
            "sockets_rebound": changed_sockets,
            "errors": problems,
        }
        log.info("reload: %s", ", ".join(f"{k} {', '.join(v)}" for k, v in summary.items() if v)
                 or "nothing changed")
        return summary
