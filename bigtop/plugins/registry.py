"""From a ``use = ...`` value to the class that runs.

In this order:

1. a Circus plugin class name (``circus.plugins.statsd.StatsdEmitter``)
   gives the bigtop built-in that does its job, with defaults that make it
   behave as that class did;
2. a built-in's short name (``statsd``);
3. a name in the ``bigtop.plugins`` entry-point group (third-party
   packages: ``[project.entry-points."bigtop.plugins"] name = "pkg.mod:Class"``);
4. a dotted path, ``package.module.Class`` or ``package.module:Class``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

ENTRY_POINT_GROUP = "bigtop.plugins"


@dataclass(frozen=True)
class Builtin:
    target: str  # module:Class
    # options that make it act as the Circus class named (the user's win)
    defaults: dict[str, str] = field(default_factory=dict)


# bigtop's built-ins by short name. The later ones are reserved: their
# modules come in a later version.
BUILTINS: dict[str, Builtin] = {
    "statsd": Builtin("bigtop.plugins.statsd:StatsdEmitter"),
    "flapping": Builtin("bigtop.plugins.flapping:Flapping"),
    "prometheus": Builtin("bigtop.plugins.prometheus:PrometheusExporter"),
    "watchdog": Builtin("bigtop.plugins.watchdog:WatchDog"),
    "resource_watcher": Builtin("bigtop.plugins.resource_watcher:ResourceWatcher"),
    "http_observer": Builtin("bigtop.plugins.http_observer:HttpObserver"),
    "command_reloader": Builtin("bigtop.plugins.command_reloader:CommandReloader"),
    "redis_observer": Builtin("bigtop.plugins.redis_observer:RedisObserver"),
}

# Circus's classes -> (built-in, defaults that give Circus's behaviour)
CIRCUS_CLASSES: dict[str, tuple[str, dict[str, str]]] = {
    "circus.plugins.statsd.StatsdEmitter": ("statsd", {"events": "true", "stats": "false"}),
    "circus.plugins._statsd.StatsdEmitter": ("statsd", {"events": "true", "stats": "false"}),
    "circus.plugins.statsd.FullStats": ("statsd", {"events": "false", "stats": "true"}),
    "circus.plugins.flapping.Flapping": ("flapping", {}),
    "circus.plugins.watchdog.WatchDog": ("watchdog", {}),
    "circus.plugins.resource_watcher.ResourceWatcher": ("resource_watcher", {}),
    "circus.plugins.http_observer.HttpObserver": ("http_observer", {}),
    "circus.plugins.command_reloader.CommandReloader": ("command_reloader", {}),
    "circus.plugins.redis_observer.RedisObserver": ("redis_observer", {}),
}


class PluginNotFound(Exception):
    pass


def _import(target: str) -> Any:
    if ":" in target:
        module_name, _, attribute = target.partition(":")
    else:
        module_name, _, attribute = target.rpartition(".")
    if not module_name or not attribute:
        raise PluginNotFound(f"{target!r} is not a plugin name nor a module.Class path")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise PluginNotFound(f"cannot import {module_name}: {err}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginNotFound(f"{module_name} has no {attribute}") from None
    return obj


def _builtin(name: str, extra: dict[str, str]) -> tuple[Any, dict[str, str]]:
    builtin = BUILTINS[name]
    module_name = builtin.target.partition(":")[0]
    try:
        cls = _import(builtin.target)
    except PluginNotFound:
        if importlib.util.find_spec(module_name) is None:
            raise PluginNotFound(f"the {name} plugin is not available in this version of "
                                 "bigtop") from None
        raise
    return cls, {**builtin.defaults, **extra}


def _entry_point(name: str) -> Any | None:
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            try:
                return entry.load()
            except Exception as err:
                raise PluginNotFound(f"entry point {name} ({entry.value}): {err}") from None
    return None


def find(use: str) -> tuple[Any, dict[str, str]]:
    """The class named by use, and default options to give it; raises
    PluginNotFound with a message for the operator."""
    use = use.strip()
    if use in CIRCUS_CLASSES:
        name, defaults = CIRCUS_CLASSES[use]
        return _builtin(name, defaults)
    if use in BUILTINS:
        return _builtin(use, {})
    found = _entry_point(use)
    if found is not None:
        return found, {}
    return _import(use), {}


def available() -> dict[str, str]:
    """Every plugin name use can give, with what it loads (for docs and --list)."""
    from importlib.metadata import entry_points

    names = {name: b.target for name, b in BUILTINS.items()
             if importlib.util.find_spec(b.target.partition(":")[0]) is not None}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(entry.name, entry.value)
    return names
