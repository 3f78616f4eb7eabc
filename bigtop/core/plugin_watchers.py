"""Plugins run as watchers.

Each ``[plugin:NAME]`` runs as a watcher named ``plugin:NAME`` (as in
Circus): one process of ``python -m bigtop.plugins.run``, restarted with
backoff like any watcher, started once the control endpoints are up, its
configuration in its environment (which only its user and root can read),
never in its argv (which ``ps`` shows to everyone).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping

from ..config import Config, PluginSpec, Settings, WatcherSpec

PLUGIN_ENV = "BIGTOP_PLUGIN"  # the plugin's configuration, as JSON


def watcher_name(plugin: PluginSpec) -> str:
    return f"plugin:{plugin.name}"


def watcher_spec(plugin: PluginSpec) -> WatcherSpec:
    return WatcherSpec(
        name=watcher_name(plugin),
        cmd=sys.executable,
        args=f"-m bigtop.plugins.run {shlex.quote(plugin.name)}",
        singleton=True,
        copy_env=True,
        copy_path=True,
        priority=plugin.priority,
        graceful_timeout=10.0,
        origin=plugin.origin,
    )


def watcher_specs(config: Config) -> dict[str, tuple[WatcherSpec, PluginSpec]]:
    return {watcher_name(p): (watcher_spec(p), p) for p in config.plugins}


def plugin_config(plugin: PluginSpec, settings: Settings,
                  endpoints: Mapping[str, str | None]) -> str:
    """What a plugin process is told (the runner removes it from its own
    environment)."""
    return json.dumps({
        "name": plugin.name,
        "use": plugin.use,
        "options": plugin.options,
        "endpoint": endpoints.get("endpoint"),
        "pubsub_endpoint": endpoints.get("pubsub_endpoint"),
        "stats_endpoint": endpoints.get("stats_endpoint"),
        "check_delay": settings.check_delay,
        "loglevel": "debug" if settings.debug else settings.loglevel,
    })
