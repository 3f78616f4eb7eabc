"""The daemon's state machine: arbiter, watchers, processes, sockets.

The names below are imported on first use, so that a module of this
package (``core.handover``, read by ``bigtopd --handover-check``) can be
imported without the whole state machine."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arbiter import Arbiter, ReloadError
    from .events import EventBus
    from .rolling import ReloadAborted
    from .sockets import SocketError

__all__ = ["Arbiter", "EventBus", "ReloadAborted", "ReloadError", "SocketError"]
_HOME = {"Arbiter": "arbiter", "ReloadError": "arbiter", "EventBus": "events",
         "ReloadAborted": "rolling", "SocketError": "sockets"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOME[name]}", __name__), name)
