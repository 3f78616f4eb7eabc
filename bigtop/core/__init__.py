"""The daemon's state machine: arbiter, watchers, processes, sockets."""

from .arbiter import Arbiter, ReloadError
from .events import EventBus
from .sockets import SocketError
from .watcher import ReloadAborted

__all__ = ["Arbiter", "EventBus", "ReloadAborted", "ReloadError", "SocketError"]
