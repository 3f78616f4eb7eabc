"""Graceful reloads: new processes first, each old one stopped only once
its replacement is ready, all at once or one slot at a time (a rolling
restart). A replacement that cannot start, that a spawn hook refuses or
that is not ready in time aborts the reload: the old processes serve on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ..config import WatcherSpec
from .hooks import WatcherHooks
from .process import Process, SpawnError

log = logging.getLogger("bigtop.watcher")

DEFAULT_READY_WAIT = 60.0  # seconds, with no ready_timeout


class ReloadAborted(Exception):
    """A graceful reload stopped part way; the old processes still serve."""


class Rollable(Protocol):
    """What a reload needs of a watcher."""

    spec: WatcherSpec
    processes: dict[int, Process]
    hooks: WatcherHooks

    @property
    def name(self) -> str: ...

    def launch(self, wid: int, replacing: bool = False) -> Process: ...

    async def stop_process(self, process: Process) -> None: ...

    def emit(self, event: str, **payload: Any) -> None: ...


async def roll(watcher: Rollable, batch: int) -> None:
    """Replace every process, ``batch`` slots at a time."""
    wids = sorted(watcher.processes)
    for start in range(0, len(wids), batch):
        group = wids[start:start + batch]
        fresh = await _start_group(watcher, group)
        timeout = watcher.spec.ready_timeout or DEFAULT_READY_WAIT
        try:
            await asyncio.wait([asyncio.shield(p.ready) for p in fresh.values()],
                               timeout=timeout)
        except asyncio.CancelledError:  # the daemon stops: no process left out of a slot
            await asyncio.gather(*(watcher.stop_process(p) for p in fresh.values()))
            raise
        late = [p for p in fresh.values() if not p.is_ready]
        if late:
            await _abort(watcher, fresh, f"new process {late[0].wid} (pid {late[0].pid}) "
                                         "did not become ready")
        old = [watcher.processes[wid] for wid in group if wid in watcher.processes]
        for wid, process in fresh.items():
            process.replacing = False
            watcher.processes[wid] = process
        await asyncio.gather(*(watcher.stop_process(p) for p in old))
        watcher.emit("reload_progress", done=start + len(group), total=len(wids))
        log.info("%s: reloaded %d of %d", watcher.name, start + len(group), len(wids))


async def _start_group(watcher: Rollable, group: list[int]) -> dict[int, Process]:
    fresh: dict[int, Process] = {}
    try:
        for wid in group:
            if not await watcher.hooks.call("before_spawn"):
                await _abort(watcher, fresh, "the before_spawn hook said no")
            fresh[wid] = watcher.launch(wid, replacing=True)
            if not await watcher.hooks.call("after_spawn", pid=fresh[wid].pid):
                await _abort(watcher, fresh, "the after_spawn hook said no")
    except SpawnError as err:
        await _abort(watcher, fresh, f"cannot spawn a new process: {err}")
    return fresh


async def _abort(watcher: Rollable, fresh: dict[int, Process], reason: str) -> None:
    log.error("%s: reload aborted, old processes kept: %s", watcher.name, reason)
    await asyncio.gather(*(watcher.stop_process(p) for p in fresh.values()))
    watcher.emit("reload_aborted", reason=reason)
    raise ReloadAborted(reason)
