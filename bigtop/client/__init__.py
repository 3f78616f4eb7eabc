"""The client library every front end and plugin uses to talk to a daemon:
commands (``Client``, ``AsyncClient``), a bigtopctl-style ``Session``, the
events and statistics (``Subscriber``, ``AsyncSubscriber``), the endpoints
and CurveZMQ keys, and the output lines as ``logs`` gives them.

It knows the daemon only by its wire (bigtop.control.protocol and
bigtop.control.endpoints). Names load on first use, so importing it (as
``bigtop-top --help`` and ``bigtopctl --help`` do) loads no ZeroMQ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .calls import AsyncClient, Client
    from .connect import DEFAULT_TIMEOUT, connect_socket
    from .endpoints import (
        check_ipc,
        default_endpoint,
        default_pubsub_endpoint,
        default_stats_endpoint,
        guess_pubsub,
        reachable_host,
        resolve_endpoint,
        resolve_pubsub,
    )
    from .errors import CallError, CommandFailed, Unreachable
    from .keys import generate, load_keys
    from .loglines import LOG_KEYS, Shown, log_entries
    from .session import Session, timeout_message
    from .subscriber import AsyncSubscriber, Event, Subscriber

_WHERE = {
    "calls": ("AsyncClient", "Client"),
    "connect": ("DEFAULT_TIMEOUT", "connect_socket"),
    "endpoints": ("check_ipc", "default_endpoint", "default_pubsub_endpoint",
                  "default_stats_endpoint", "guess_pubsub", "reachable_host",
                  "resolve_endpoint", "resolve_pubsub"),
    "errors": ("CallError", "CommandFailed", "Unreachable"),
    "keys": ("generate", "load_keys"),
    "loglines": ("LOG_KEYS", "Shown", "log_entries"),
    "session": ("Session", "timeout_message"),
    "subscriber": ("AsyncSubscriber", "Event", "Subscriber"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "DEFAULT_TIMEOUT", "LOG_KEYS", "AsyncClient", "AsyncSubscriber", "CallError", "Client",
    "CommandFailed", "Event", "Session", "Shown", "Subscriber", "Unreachable", "check_ipc",
    "connect_socket", "default_endpoint", "default_pubsub_endpoint", "default_stats_endpoint",
    "generate", "guess_pubsub", "load_keys", "log_entries", "reachable_host",
    "resolve_endpoint", "resolve_pubsub", "timeout_message",
]


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
