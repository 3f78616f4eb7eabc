"""Plugins: programs the daemon runs beside the watchers, each in its own
process, that follow its events and call its commands (docs/plugins.md).

``Plugin`` is the base class; the built-ins are ``statsd``, ``flapping``,
``prometheus``, ``resource_watcher``, ``http_observer``, ``watchdog``,
``command_reloader`` and ``redis_observer``. The built-in classes load on
first use, so importing this package costs nothing.
"""

from __future__ import annotations

from typing import Any

from .base import Plugin, PluginError, split_topic

_LAZY = {
    "StatsdEmitter": "bigtop.plugins.statsd",
    "Flapping": "bigtop.plugins.flapping",
    "PrometheusExporter": "bigtop.plugins.prometheus",
    "ResourceWatcher": "bigtop.plugins.resource_watcher",
    "HttpObserver": "bigtop.plugins.http_observer",
    "WatchDog": "bigtop.plugins.watchdog",
    "CommandReloader": "bigtop.plugins.command_reloader",
    "RedisObserver": "bigtop.plugins.redis_observer",
}

__all__ = ["Plugin", "PluginError", "split_topic", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
