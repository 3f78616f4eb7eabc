"""The one way the daemon starts a background task: an owner keeps it.

Every task belongs to a ``TaskOwner`` (the arbiter, a watcher, the control
server), which cancels *and awaits* what it still holds when its owner
stops, so nothing outlives the object that started it and no error is
lost: a task that fails is logged when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("bigtop.tasks")

T = TypeVar("T")


class TaskOwner:
    def __init__(self, name: str):
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def others(self) -> int:
        """Tasks held besides the one asking."""
        current = asyncio.current_task()
        return sum(1 for task in self._tasks if task is not current)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s failed", self.name, task.get_name(),
                      exc_info=task.exception())

    async def cancel_all(self) -> None:
        """Cancel every task held (and those they start meanwhile) and wait
        until each has ended. The owner can be used again afterwards."""
        current = asyncio.current_task()
        while pending := [t for t in self._tasks if t is not current]:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
