"""Configuration: files in (INI, Circus-compatible; TOML), one typed model out."""

from .convert import to_bool
from .errors import ConfigError, Problem
from .loader import load
from .model import (
    Config,
    HookSpec,
    Origin,
    PluginSpec,
    ReadySpec,
    Settings,
    SocketSpec,
    StreamSpec,
    WatcherSpec,
)

__all__ = [
    "Config",
    "ConfigError",
    "HookSpec",
    "Origin",
    "PluginSpec",
    "Problem",
    "ReadySpec",
    "Settings",
    "SocketSpec",
    "StreamSpec",
    "WatcherSpec",
    "load",
    "to_bool",
]
