"""The option table, gathered by scope from the model's declarations.

Every option is declared once, on its field in :mod:`.model`. The readers
take converters and defaults from here, the docs are rendered from here
(:mod:`.doc`), and the other layers ask here which options restart
processes, which ``set`` may change, which take free text and which hooks
exist, instead of keeping lists of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .declare import Option, declared
from .model import (
    ClusterSettings,
    FlappingSpec,
    Includes,
    Placement,
    PluginSpec,
    Settings,
    SocketSpec,
    WatcherSpec,
)
from .values import HOOK_NAMES

__all__ = [
    "HOOK_NAMES",
    "OPTIONS",
    "RESTART_OPTIONS",
    "RUNTIME_OPTIONS",
    "SCOPES",
    "TEXT_OPTIONS",
    "Option",
    "locate",
    "sub_tables",
    "suggestions",
    "table",
]

# Each scope (a kind of section) and the classes declaring its options.
SCOPES: Mapping[str, tuple[type, ...]] = MappingProxyType({
    "circus": (Includes, Settings),
    "watcher": (WatcherSpec,),
    "flapping": (FlappingSpec,),
    "socket": (SocketSpec,),
    "plugin": (PluginSpec,),
    "cluster": (ClusterSettings,),
    "placement": (Placement,),
})

OPTIONS: tuple[Option, ...] = tuple(
    option for classes in SCOPES.values() for cls in classes for option in declared(cls)
)

_TABLES = {scope: MappingProxyType({o.name: o for o in OPTIONS if o.scope == scope})
           for scope in SCOPES}


def table(scope: str) -> Mapping[str, Option]:
    """The options of one scope, by name, in declaration order."""
    return _TABLES[scope]


def _watcher_names(flag: str) -> frozenset[str]:
    return frozenset(name for name, o in table("watcher").items() if getattr(o, flag))


# Watcher options whose change restarts the processes (names as in
# WatcherSpec.changed_from: env, rlimits...).
RESTART_OPTIONS = _watcher_names("restarts")
# Watcher options the `set` command may change (and `get`/`options` read).
RUNTIME_OPTIONS = _watcher_names("runtime")
# Watcher options whose value bigtopctl sends as written, even "022" or "15".
TEXT_OPTIONS = _watcher_names("text")


def locate(options: Mapping[str, Option], key: str) -> tuple[Option, str] | None:
    """The option a section key sets, with the entry it names ("" for a
    ``key = value`` option); None for an unknown key. Table options (env)
    are read whole by their caller, so they are not located here."""
    found = options.get(key)
    if found is not None and found.form == "value":
        return found, ""
    for option in options.values():
        if option.form == "entries" and key.startswith(option.prefix):
            return option, key[len(option.prefix):]
    return None


def sub_tables(options: Mapping[str, Option]) -> tuple[str, ...]:
    """The entries options that may also be written as one table named
    after the option (TOML ``[watchers.web.hooks]``, ``set`` with an
    object): hooks, flapping, stdout_stream, stderr_stream."""
    return tuple(name for name, o in options.items() if o.prefix == f"{name}.")


def suggestions(options: Mapping[str, Option]) -> list[str]:
    """The keys to suggest for a misspelt one: ``name``, ``env``, ``hooks.*``."""
    return [o.prefix + "*" if o.form == "entries" else o.key for o in options.values()]
