"""What a watcher may use of the daemon: a small, typed view of it.

A watcher is given this, never the arbiter: the loop, the event bus, the
reaper, the process registry, the sockets, output routing, and whether
the daemon is stopping. A test can build one without a daemon, and the
arbiter can change without its watchers noticing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import WatcherSpec
from .events import EventBus
from .reaper import Reaper
from .registry import ProcessRegistry
from .routing import OutputRouting
from .sockets import Socket


@dataclass
class Runtime:
    loop: asyncio.AbstractEventLoop
    bus: EventBus
    reaper: Reaper
    registry: ProcessRegistry
    sockets: Mapping[str, Socket]
    output: OutputRouting
    #: Variables the daemon adds to a watcher's environment (NOTIFY_SOCKET, ...)
    child_env: Callable[[WatcherSpec], dict[str, str]] = lambda spec: {}
    stopping: Callable[[], bool] = lambda: False
    #: What hooks get as their ``arbiter`` argument (Circus's signature)
    hook_arbiter: Any = None
    #: Where hook modules are looked for besides sys.path
    hook_paths: list[str] = field(default_factory=list)
