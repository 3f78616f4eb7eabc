"""The in-process event bus.

Every state change is published as ``(topic, payload)``; topics follow
Circus (``watcher.<name>.<event>``) and payloads carry at least ``time``.
Subscribers are called synchronously on the loop and must not block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bigtop.events")

Subscriber = Callable[[str, dict[str, Any]], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []

    def subscribe(self, callback: Subscriber, prefix: str = "") -> Callable[[], None]:
        """Call ``callback(topic, payload)`` for topics starting with prefix;
        returns a function that unsubscribes."""
        entry = (prefix, callback)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def emit(self, topic: str, payload: dict[str, Any] | None = None) -> None:
        payload = dict(payload or {})
        payload.setdefault("time", time.time())
        for prefix, callback in list(self._subscribers):
            if topic.startswith(prefix):
                try:
                    callback(topic, payload)
                except Exception:
                    log.exception("event subscriber failed on %s", topic)
