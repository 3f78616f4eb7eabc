"""The plugin runner: ``python -m bigtop.plugins.run NAME``, started by the
daemon as the watcher ``plugin:NAME``.

Its configuration comes in the ``BIGTOP_PLUGIN`` environment variable (JSON:
name, use, options, endpoints, check_delay, loglevel), which the runner
removes from its environment at once; nothing of it is in the argv, which
``ps`` shows to every user. ``--list`` prints the plugins ``use`` can name.

Besides bigtop plugins it runs Circus plugin classes (subclasses of
``circus.plugins.CircusPlugin``, where Circus is installed), as Circus's
own runner does: bigtop speaks Circus's protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from .base import Plugin
from .registry import PluginNotFound, available, find

CONFIG_ENV = "BIGTOP_PLUGIN"

log = logging.getLogger("bigtop.plugin")


def _setup_logging(level: str | None, name: str) -> None:
    logging.basicConfig(
        level=getattr(logging, (level or "info").upper(), logging.INFO),
        format=f"%(levelname)s [plugin:{name}] %(message)s",
        stream=sys.stderr,
    )


def _run_circus_plugin(cls: Any, config: dict[str, Any], options: dict[str, str]) -> int:
    """A circus.plugins.CircusPlugin subclass, run as circus's runner does."""
    plugin = cls(config.get("endpoint"), config.get("pubsub_endpoint"),
                 float(config.get("check_delay") or 5.0), None, **options)

    def stop(*_: object) -> None:
        plugin.loop.add_callback_from_signal(plugin.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        plugin.start()
    finally:
        if plugin.running:
            plugin.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bigtop.plugins.run",
                                     description="Run a bigtop plugin (started by bigtopd).")
    parser.add_argument("name", nargs="?", help="the plugin's section name (informative)")
    parser.add_argument("--list", action="store_true", help="list the plugins use can name")
    args = parser.parse_args(argv)
    if args.list:
        for name, target in sorted(available().items()):
            print(f"{name:20} {target}")
        return 0
    raw = os.environ.pop(CONFIG_ENV, None)  # not passed on to the plugin's children
    if raw is None:
        print(f"{parser.prog}: no configuration: bigtopd runs this for each [plugin:NAME] "
              f"section (it passes ${CONFIG_ENV})", file=sys.stderr)
        return 2
    try:
        config = json.loads(raw)
        name, use = str(config["name"]), str(config["use"])
    except (ValueError, KeyError, TypeError) as err:
        print(f"{parser.prog}: bad ${CONFIG_ENV}: {err}", file=sys.stderr)
        return 2
    _setup_logging(config.get("loglevel"), name)
    try:
        cls, defaults = find(use)
    except PluginNotFound as err:
        log.error("use = %s: %s", use, err)
        return 2
    options = {**defaults, **{str(k): str(v) for k, v in (config.get("options") or {}).items()}}
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        if isinstance(cls, type) and any(c.__name__ == "CircusPlugin" for c in cls.__mro__):
            return _run_circus_plugin(cls, config, options)
        log.error("use = %s: %r is not a plugin class (a subclass of bigtop.plugins.Plugin)",
                  use, cls)
        return 2
    try:
        plugin = cls(options, name=name, endpoint=config.get("endpoint"),
                     pubsub_endpoint=config.get("pubsub_endpoint"),
                     stats_endpoint=config.get("stats_endpoint"),
                     check_delay=float(config.get("check_delay") or 5.0))
    except Exception as err:  # a plugin's __init__ checking its options
        log.error("cannot start: %s", err)
        return 2
    return asyncio.run(plugin.main())


if __name__ == "__main__":
    sys.exit(main())
