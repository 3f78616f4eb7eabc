"""A configuration reload as a plan: what the difference between two
configurations asks for, computed without touching anything.

``plan_reload()`` is pure (specs and states in, names out), so each rule is
tested without a daemon; the arbiter applies the plan. The rules: unchanged
watchers and sockets are not touched; a socket whose options changed is
rebound and the watchers using it restarted; a watcher whose process
options changed (or that had failed, or whose plugin changed) is
restarted, one whose other options changed is updated in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import Config, PluginSpec, SocketSpec, WatcherSpec
from ..config.options import RESTART_OPTIONS
from . import plugin_watchers


def same_address(a: SocketSpec, b: SocketSpec) -> bool:
    return (a.path, a.host, a.port, a.family) == (b.path, b.host, b.port, b.family)


@dataclass(frozen=True)
class Current:
    """What the plan needs to know of a running watcher."""

    spec: WatcherSpec
    state: str
    sockets: tuple[str, ...] = ()  # the names of the sockets it uses


@dataclass
class ReloadPlan:
    specs: dict[str, WatcherSpec]  # every watcher of the new configuration, plugins too
    plugins: dict[str, PluginSpec]  # plugin watcher name -> its plugin
    sockets: dict[str, SocketSpec]  # every socket of the new configuration
    sockets_added: list[str] = field(default_factory=list)
    sockets_removed: list[str] = field(default_factory=list)
    sockets_changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    restart_running: list[str] = field(default_factory=list)  # of restarted: to start again

    def bind_first(self, old: Mapping[str, SocketSpec]) -> list[str]:
        """Sockets to bind before anything stops (so that a failure changes
        nothing): the new ones, and changed ones on another address (a
        changed one on the same address can only be bound once the old
        one is closed)."""
        return self.sockets_added + [n for n in self.sockets_changed
                                     if not same_address(old[n], self.sockets[n])]


def plan_reload(old: Config, new: Config, current: Mapping[str, Current],
         plugins: Mapping[str, PluginSpec]) -> ReloadPlan:
    """``current``: the running watchers by name (plugins included);
    ``plugins``: the plugins they run now."""
    old_sockets = {s.name: s for s in old.sockets}
    new_sockets = {s.name: s for s in new.sockets}
    new_plugins = plugin_watchers.watcher_specs(new)
    old_plugins = plugin_watchers.watcher_specs(old)
    old_specs = {w.name: w for w in old.watchers} | {n: w for n, (w, _) in old_plugins.items()}
    specs = {w.name: w for w in new.watchers} | {n: w for n, (w, _) in new_plugins.items()}
    result = ReloadPlan(specs=specs, plugins={n: p for n, (_, p) in new_plugins.items()},
                        sockets=new_sockets)
    result.sockets_added = [n for n in new_sockets if n not in old_sockets]
    result.sockets_removed = [n for n in old_sockets if n not in new_sockets]
    result.sockets_changed = [n for n in new_sockets
                              if n in old_sockets and new_sockets[n] != old_sockets[n]]
    touched = set(result.sockets_changed + result.sockets_removed)
    result.removed = [n for n in old_specs if n not in specs and n in current]
    result.added = [n for n in specs if n not in current]
    for name, spec in specs.items():
        now = current.get(name)
        if now is None:
            continue
        uses_changed = bool(set(now.sockets) & touched)
        plugin_changed = name in result.plugins and plugins.get(name) != result.plugins[name]
        if spec == now.spec and not uses_changed and not plugin_changed:
            continue
        if (spec.changed_from(now.spec) & RESTART_OPTIONS or uses_changed or plugin_changed
                or now.state == "failed"):
            result.restarted.append(name)
            if now.state != "stopped":
                result.restart_running.append(name)
        else:
            result.updated.append(name)
    return result
