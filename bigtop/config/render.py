"""Write a model back out (``bigtopd --check [--to ini|toml]``): every
option with its resolved value, readable, and loadable again into an equal
model. TOML is bigtop's own format; INI is Circus's dialect, for those who
keep it (a value INI cannot hold, such as one with a newline, is refused
with a pointer to TOML)."""

from __future__ import annotations

import json
import re
from typing import Any

from .convert import signal_name
from .model import ClusterSettings, Config, SocketSpec, WatcherSpec

Table = tuple[str, str, dict[str, Any]]  # kind, name ("" for circus, env), values


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


def cluster_values(spec: ClusterSettings) -> dict[str, Any]:
    values = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
    values["etcd"] = " ".join(spec.etcd)
    values["labels"] = " ".join(f"{k}={v}" for k, v in spec.labels) or None
    return values


def tables(config: Config) -> list[Table]:
    """The sections to write, in the order a reader expects them."""
    settings = {k: getattr(config.settings, k) for k in config.settings.__dataclass_fields__}
    if config.settings.umask is not None:
        settings["umask"] = f"{config.settings.umask:03o}"
    out: list[Table] = [("circus", "", settings)]
    if config.env:
        out.append(("env", "", {k: v.replace("$", "$$") for k, v in config.env.items()}))
    if config.cluster is not None:
        out.append(("cluster", "", cluster_values(config.cluster)))
    out += [("socket", s.name, socket_values(s)) for s in config.sockets]
    out += [("watcher", w.name, watcher_values(w)) for w in config.watchers]
    out += [("plugin", p.name, {"use": p.use, "priority": p.priority, **p.options})
            for p in config.plugins]
    return out


def render(config: Config, form: str = "toml") -> str:
    """The model as a file of ``form`` (``toml`` or ``ini``); ValueError if
    INI cannot hold one of its values."""
    head = [f"# resolved from {', '.join(config.files)}", ""]
    write = _toml if form == "toml" else _ini
    return "\n".join(head + [line for t in tables(config) for line in write(*t)])


# -- TOML -------------------------------------------------------------------

_TOML_TABLES = {"socket": "sockets", "watcher": "watchers", "plugin": "plugins"}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml(kind: str, name: str, values: dict[str, Any]) -> list[str]:
    header = f"{_TOML_TABLES[kind]}.{toml_key(name)}" if name else kind
    lines = [f"[{header}]"]
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items()
              if v is not None and v != {}]
    return lines + [""]


# -- INI --------------------------------------------------------------------

_INI_KEY = re.compile(r"[^:=\s\[;#][^:=]*")


def _ini_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_ini_text(v) for v in value)
    return str(value)


def _ini_line(title: str, key: str, value: Any) -> str:
    """``key = value``; a value of several lines goes on indented
    continuation lines, which the reader joins with newlines."""
    text = _ini_text(value)
    if not _INI_KEY.fullmatch(key) or key != key.strip():
        raise ValueError(f"[{title}] {key!r}: INI cannot hold this name; use --to toml")
    lines = text.split("\n")
    if text == '""' or any(
        line != line.strip() or re.search(r"\s;", line)
        or (i and (not line or line[0] in "#;")) for i, line in enumerate(lines)
    ):
        raise ValueError(f"[{title}] {key}: INI cannot hold the value {text!r}; use --to toml")
    return f"{key} = {lines[0]}" + "".join(f"\n    {line}" for line in lines[1:]) if text \
        else f'{key} = ""'


def _ini(kind: str, name: str, values: dict[str, Any]) -> list[str]:
    title = f"{kind}:{name}" if name else kind
    lines = [f"[{title}]"]
    env: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value == {}:
            continue
        if kind == "watcher" and key == "env":
            env = value  # a section of its own: a value may hold a comma
        elif key == "hooks":
            lines += [_ini_line(title, f"hooks.{hook}", f"{target}, {_ini_text(ignore)}")
                      for hook, (target, ignore) in value.items()]
        elif isinstance(value, dict):  # flapping, stdout_stream, stderr_stream
            lines += [_ini_line(title, f"{key}.{k}", v) for k, v in value.items()]
        else:
            lines.append(_ini_line(title, key, value))
    lines.append("")
    if env:
        lines += [f"[env:{name}]"] + [_ini_line(f"env:{name}", k, v) for k, v in env.items()]
        lines.append("")
    return lines
