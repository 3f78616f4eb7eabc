"""The order of starts and stops.

Higher ``priority`` starts first (as Circus), and a watcher with
``depends_on`` starts only once those watchers are ready (a one-shot task,
``ready = exited``: once it is done); a dependency outside the batch is
started first if it is stopped. A dependency that fails instead keeps its
dependents from starting, logged once per dependency with every dependent
held back. Stop order is the reverse: a watcher stops only after the
watchers of lower priority and every watcher that depends on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from .slots import RUNNING
from .watcher import Watcher

log = logging.getLogger("bigtop.arbiter")


async def start_in_order(watchers: Iterable[Watcher], lookup: Callable[[str], Watcher | None],
                         warmup: float = 0.0,
                         settled: Callable[[], None] | None = None) -> None:
    """A watcher starts once those of higher priority have begun (and, with
    ``warmup``, that long after the previous one), and once its
    dependencies are ready. One already running is left as it is.

    ``settled`` is called once every watcher has spawned its processes or
    waits for something (a higher priority, a dependency, its before_start
    hook): what could start has started."""
    batch = sorted(watchers, key=lambda w: -w.spec.priority)
    begun = {w.name: asyncio.Event() for w in batch}
    unsettled = {w.name for w in batch}
    held: dict[str, str] = {}  # watcher of the batch not started -> why
    # dependency -> None once ready, or what it is ("is failed") and why
    verdicts: dict[str, tuple[str, str | None] | None] = {}
    checking: dict[str, asyncio.Lock] = {}  # dependency -> held while it is waited for

    def settle(watcher: Watcher) -> None:
        if watcher.name in unsettled:
            unsettled.discard(watcher.name)
            if not unsettled and settled is not None:
                settled()

    async def not_ready(name: str, dep: Watcher) -> str | None:
        """What dependency ``name`` is when not ready (``is failed``; None
        once it is ready), asked once per batch: its dependents wait for
        the same answer, and its failure is logged once, with them all."""
        async with checking.setdefault(name, asyncio.Lock()):
            if name not in verdicts:
                verdict = verdicts[name] = await wait_for(name, dep)
                if verdict is not None:
                    kept = [w.name for w in batch
                            if name in w.spec.depends_on and w.state not in RUNNING]
                    what, why = verdict
                    log.error("%s %s%s; not started, as they depend on it: %s", name, what,
                              f" ({why})" if why else "", ", ".join(kept))
            verdict = verdicts[name]
            return None if verdict is None else verdict[0]

    async def wait_for(name: str, dep: Watcher) -> tuple[str, str | None] | None:
        if name in begun:
            await begun[name].wait()
            if name in held:
                return "was not started", held[name]
        elif dep.state == "stopped":
            await dep.start()
        if await dep.wait_ready():
            return None
        return f"is {dep.status}", dep.failure

    async def run(index: int, watcher: Watcher) -> None:
        try:
            if watcher.state in RUNNING:
                return
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
                why = await not_ready(dep_name, dep)
                if why is not None:
                    held[watcher.name] = f"dependency {dep_name} {why}"
                    watcher.failure = f"not started: {held[watcher.name]}"
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
