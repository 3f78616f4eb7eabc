"""Reading a watcher's output back (the ``logs`` command).

Lines come from the streams' files (and their rotated backups) when a
stream has some, else from the recent output kept in memory, merged by
time. What the file sinks hold or have queued is written first, so the
lines just printed are in the files; that wait is bounded (a slow disk
answers with what is written).
"""

from __future__ import annotations

import asyncio
import logging
import os

from . import logtail
from .capture import OutputCapture
from .routing import OutputRouting

log = logging.getLogger("bigtop.logs")

DRAIN_TIMEOUT = 1.0  # seconds waited for queued output to reach the files


async def flush(routing: OutputRouting, captures: list[OutputCapture]) -> None:
    sinks = [s for c in captures for s in c.sinks.values() if logtail.is_file(s.options)]
    if not sinks:
        return
    for sink in sinks:
        sink.flush()
    try:
        await asyncio.wait_for(routing.writer().drain(), DRAIN_TIMEOUT)
    except TimeoutError:
        log.debug("logs: output still queued after %gs, not waiting more", DRAIN_TIMEOUT)


def files(capture: OutputCapture) -> dict[str, dict[str, str]]:
    """The options of the file each stream goes to, by stream."""
    out = {}
    for stream in ("stdout", "stderr"):
        sink = capture.sinks.get(stream)
        options = sink.options if sink is not None else capture.stream_options(stream)
        if logtail.is_file(options):
            out[stream] = options
    return out


async def last_lines(capture: OutputCapture, count: int, streams: tuple[str, ...],
                     since: float | None) -> list[logtail.LogLine]:
    """The lines of one watcher: of each file (read once, even when both
    streams go to it) and of the streams with no file, merged by time."""
    found = files(capture)
    runs = [[logtail.LogLine(*e) for e in capture.recent_lines(count, stream, since)]
            for stream in streams if stream not in found]
    writers: dict[str, list[str]] = {}  # file -> the streams that go to it
    for stream, options in found.items():
        writers.setdefault(os.path.abspath(options["filename"]), []).append(stream)
    for group in writers.values():
        if any(stream in streams for stream in group):
            runs.append(await _file_lines(capture, found[group[0]], group, count, since))
    return logtail.select(logtail.merge(runs), streams, since, count)


async def _file_lines(capture: OutputCapture, options: dict[str, str], group: list[str],
                      count: int, since: float | None) -> list[logtail.LogLine]:
    """The lines of one file: the recent ones from memory (they have a
    time, pid and wid), older ones read from the file (in a thread) when
    memory has too few. With ``since``, a file whose lines have no time
    adds nothing: only lines known to be recent enough are shown."""
    stream = group[0] if len(group) == 1 else None  # None: both streams write the file

    def recent() -> list[logtail.LogLine]:
        return [logtail.LogLine(*e) for e in capture.recent_lines(count, stream, since)]

    lines = recent()
    kept = capture.recent
    covered = since is not None and bool(kept) and kept[0][0] < since
    if len(lines) >= count or covered or (since is not None and not logtail.has_times(options)):
        return lines
    older = await asyncio.to_thread(logtail.tail, options["filename"], count,
                                    logtail.parser(options, stream), since)
    # Taken again after the file: whatever the file has, memory has too.
    return logtail.combine(older, recent())
