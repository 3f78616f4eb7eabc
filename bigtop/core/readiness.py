"""When a process counts as ready: at once, after a delay, on a TCP
connect, or on systemd's ``READY=1`` (set by the notify listener).

A one-shot task (``ready = exited``) has nothing to arm: its process is
never ready itself, its watcher is done once it exited with a success
status (slots.py).

A process that is not ready within ``ready_timeout`` (a one-shot: that is
still running) is stopped as a failure (the restart policy decides what
follows); ``ready_timeout = 0`` sets no limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..config import WatcherSpec
from ..tasks import TaskOwner
from .process import Process

PROBE_FIRST_DELAY = 0.01  # seconds between TCP probes, doubling ...
PROBE_MAX_DELAY = 0.25  # ... up to this
PROBE_CONNECT_TIMEOUT = 1.0


def arm(process: Process, spec: WatcherSpec, tasks: TaskOwner,
        on_timeout: Callable[[Process], None]) -> None:
    """Start the readiness check of a just spawned process."""
    loop = asyncio.get_running_loop()
    ready = spec.ready
    if ready.kind == "spawned":
        process.mark_ready()
        return
    if ready.kind == "delay":
        handle = loop.call_later(ready.delay, process.mark_ready)
        process.exited.add_done_callback(lambda _: handle.cancel())
    elif ready.kind == "tcp":
        probe = tasks.spawn(probe_tcp(process, ready.host, ready.port),
                            name=f"probe {process.spec.name}#{process.wid}")
        process.ready.add_done_callback(lambda _: probe.cancel())
    if spec.ready_timeout:
        timeout = loop.call_later(spec.ready_timeout, _check_in_time, process, on_timeout)
        process.ready.add_done_callback(lambda _: timeout.cancel())


def _check_in_time(process: Process, on_timeout: Callable[[Process], None]) -> None:
    if not process.ready.done() and process.running:
        on_timeout(process)


async def probe_tcp(process: Process, host: str | None, port: int | None) -> None:
    delay = PROBE_FIRST_DELAY
    while not process.ready.done():
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                               PROBE_CONNECT_TIMEOUT)
        except (TimeoutError, OSError):
            await asyncio.sleep(delay)
            delay = min(delay * 2, PROBE_MAX_DELAY)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        process.mark_ready()
