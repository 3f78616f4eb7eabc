"""Signals to a watcher's processes: a stop of a whole tree, or a signal
on request, with the before_signal/after_signal hooks where set.

As in Circus, before_signal may keep the stop signal from a process, which
then gets SIGKILL once ``graceful_timeout`` has passed; after_signal runs
once the signal is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from .hooks import WatcherHooks
from .process import Process
from .tree import children as tree_children
from .tree import descendants

log = logging.getLogger("bigtop.watcher")


def send(process: Process, signum: int, children: bool = False,
         recursive: bool = False) -> list[int]:
    """Signal a process (with ``children`` its direct children instead,
    with ``recursive`` it and all its descendants); the pids signalled."""
    pids = [process.pid] if not children or recursive else []
    if recursive:
        pids += sorted(descendants(process.pid))
    elif children:
        pids += tree_children(process.pid)
    sent = []
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue
        sent.append(pid)
    return sent


async def send_hooked(hooks: WatcherHooks, process: Process, signum: int, children: bool,
                      recursive: bool, emit: Callable[..., None]) -> None:
    """A signal on request, once before_signal agrees."""
    name = process.spec.name
    allowed = await hooks.call("before_signal", pid=process.pid, signum=signum)
    if allowed or signum == signal.SIGKILL:
        if process.running:
            send(process, signum, children, recursive)
            emit("signal", process_pid=process.pid, signum=signum)
    else:
        log.info("%s: the before_signal hook kept signal %d from pid %d", name, signum,
                 process.pid)
    await hooks.call("after_signal", pid=process.pid, signum=signum)


async def stop(hooks: WatcherHooks, process: Process, sig: int, wait: float, managed: set[int],
               emit: Callable[..., None]) -> None:
    """Stop a process and its tree: ``sig``, then SIGKILL after ``wait``."""
    if not hooks.has("before_signal", "after_signal"):
        emit("kill", process_pid=process.pid)
        await process.stop(sig, wait, managed)
        return
    process.stopping = True
    if (not await hooks.call("before_signal", pid=process.pid, signum=sig)
            and sig != signal.SIGKILL):
        log.info("%s: the before_signal hook kept signal %d from pid %d; SIGKILL in %gs",
                 process.spec.name, sig, process.pid, wait)
        await asyncio.wait([process.exited], timeout=wait)
        sig, wait = signal.SIGKILL, 0.0
    emit("kill", process_pid=process.pid)
    # Both start in this order: the signal is sent before after_signal runs.
    await asyncio.gather(process.stop(sig, wait, managed),
                         hooks.call("after_signal", pid=process.pid, signum=sig))
