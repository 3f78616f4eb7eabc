"""Which watcher each live process belongs to, by pid.

Stopping a tree must not signal processes of other watchers that happen
to sit under it, readiness messages arrive with a pid, and statistics
list every managed process: all of them ask this one table.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .process import Process


class ProcessRegistry:
    def __init__(self) -> None:
        self.by_pid: dict[int, tuple[str, Process]] = {}

    def register(self, watcher: str, process: Process) -> None:
        self.by_pid[process.pid] = (watcher, process)

    def unregister(self, process: Process) -> None:
        self.by_pid.pop(process.pid, None)

    def managed(self) -> set[int]:
        return set(self.by_pid)

    def processes(self) -> Iterator[Process]:
        return (process for _, process in list(self.by_pid.values()))

    def find(self, pid: int) -> Process | None:
        """The process with this pid, or whose process group it leads (a
        child of a shell script reporting for it)."""
        entry = self.by_pid.get(pid)
        if entry is None:
            with contextlib.suppress(OSError):
                entry = self.by_pid.get(os.getpgid(pid))
        return entry[1] if entry is not None else None
