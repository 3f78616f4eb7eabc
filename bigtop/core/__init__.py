"""The daemon's state machine: arbiter, watchers, processes, sockets."""

from .arbiter import Arbiter, ReloadError
from .events import EventBus
from .rolling import ReloadAborted
from .sockets import SocketError

__all__ = ["Arbiter", "EventBus", "ReloadAborted", "ReloadError", "SocketError"]
