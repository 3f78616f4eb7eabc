"""Write a model back out as TOML (``bigtopd --check``): every option with
its resolved value, readable, and loadable again as a bigtop config."""

from __future__ import annotations

import json
from typing import Any

from .convert import signal_name
from .model import Config, SocketSpec, WatcherSpec


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _table(header: str, values: dict[str, Any]) -> list[str]:
    lines = [f"[{header}]"]
    for key, value in values.items():
        if value is None or value == {}:
            continue
        lines.append(f"{_key(key)} = {_value(value)}")
    return lines + [""]


def watcher_values(spec: WatcherSpec) -> dict[str, Any]:
    values = spec.option_values()
    values.pop("name")
    values["stop_signal"] = signal_name(spec.stop_signal)
    values["env"] = {k: v.replace("$", "$$") for k, v in spec.env.items()}
    if spec.umask is not None:
        values["umask"] = f"{spec.umask:03o}"
    for name, limit in spec.rlimits.items():
        values[f"rlimit_{name}"] = "unlimited" if limit < 0 else limit
    values.pop("rlimits")
    return values


def socket_values(spec: SocketSpec) -> dict[str, Any]:
    values = {k: getattr(spec, k) for k in spec.__dataclass_fields__ if k not in ("name", "origin")}
    if spec.umask is not None:
        values["umask"] = f"{spec.umask:03o}"
    return values


def render(config: Config) -> str:
    settings = {k: getattr(config.settings, k) for k in config.settings.__dataclass_fields__}
    if config.settings.umask is not None:
        settings["umask"] = f"{config.settings.umask:03o}"
    lines = [f"# resolved from {', '.join(config.files)}", ""]
    lines += _table("circus", settings)
    if config.env:
        lines += _table("env", {k: v.replace("$", "$$") for k, v in config.env.items()})
    for spec in config.sockets:
        lines += _table(f"sockets.{_key(spec.name)}", socket_values(spec))
    for watcher in config.watchers:
        lines += _table(f"watchers.{_key(watcher.name)}", watcher_values(watcher))
    for plugin in config.plugins:
        lines += _table(f"plugins.{_key(plugin.name)}",
                        {"use": plugin.use, "priority": plugin.priority, **plugin.options})
    return "\n".join(lines)
