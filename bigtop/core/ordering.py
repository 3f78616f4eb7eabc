"""The order of starts and stops.

Higher ``priority`` starts first (as Circus), and a watcher with
``depends_on`` starts only once those watchers are ready; a dependency
outside the batch is started first if it is stopped. Stop order is the
reverse: a watcher stops only after the watchers of lower priority and
every watcher that depends on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from .watcher import Watcher

log = logging.getLogger("bigtop.arbiter")


async def start_in_order(watchers: Iterable[Watcher], lookup: Callable[[str], Watcher | None],
                         warmup: float = 0.0,
                         settled: Callable[[], None] | None = None) -> None:
    """A watcher starts once those of higher priority have begun (and, with
    ``warmup``, that long after the previous one), and once its
    dependencies are ready.

    ``settled`` is called once every watcher has spawned its processes or
    waits for something (a higher priority, a dependency, its before_start
    hook): the moment the rest of the daemon can load without holding back
    a process that could already run."""
    batch = sorted(watchers, key=lambda w: -w.spec.priority)
    begun = {w.name: asyncio.Event() for w in batch}
    unsettled = {w.name for w in batch}

    def settle(watcher: Watcher) -> None:
        if watcher.name in unsettled:
            unsettled.discard(watcher.name)
            if not unsettled and settled is not None:
                settled()

    async def run(index: int, watcher: Watcher) -> None:
        try:
            for other in batch[:index]:
                if other.spec.priority > watcher.spec.priority or warmup:
                    settle(watcher)
                    await begun[other.name].wait()
            if warmup and index:
                await asyncio.sleep(warmup)
            for dep_name in watcher.spec.depends_on:
                dep = lookup(dep_name)
                if dep is None:
                    continue
                settle(watcher)
                if dep_name in begun:
                    await begun[dep_name].wait()
                elif dep.state == "stopped":
                    await dep.start()
                if not await dep.wait_ready():
                    log.error("%s: not started, dependency %s is %s", watcher.name,
                              dep_name, dep.status)
                    watcher.emit("dependency_failed", dependency=dep_name)
                    return
            if watcher.hooks.has("before_start"):
                settle(watcher)
            await watcher.start()
        finally:
            settle(watcher)
            begun[watcher.name].set()

    await asyncio.gather(*(run(i, w) for i, w in enumerate(batch)))


async def stop_in_order(watchers: Iterable[Watcher]) -> None:
    batch = sorted(watchers, key=lambda w: w.spec.priority)
    done = {w.name: asyncio.Event() for w in batch}

    async def run(watcher: Watcher) -> None:
        try:
            for other in batch:
                if (other.spec.priority < watcher.spec.priority
                        or watcher.name in other.spec.depends_on):
                    await done[other.name].wait()
            await watcher.stop()
        finally:
            done[watcher.name].set()

    await asyncio.gather(*(run(w) for w in batch))
