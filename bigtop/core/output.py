"""Reading a child's stdout/stderr pipe on the loop, in chunks of lines.

This is the capture half; where lines go (console, files, live tails) is a
sink's business. Each read is handed on as one chunk of whole lines, every
one ending in a newline, with no per-line work here (a plain file sink
writes the chunk as it is). A line split across reads is joined; a line
longer than ``max_line`` is cut with a marker rather than dropped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

READ_SIZE = 256 * 1024
MAX_LINE = 64 * 1024
CUT_MARKER = b" [...cut]"

ChunkSink = Callable[[bytes], None]


class PipeReader:
    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, on_chunk: ChunkSink,
                 max_line: int = MAX_LINE):
        self.loop = loop
        self.fd: int | None = fd
        self.on_chunk = on_chunk
        self.max_line = max_line
        self._partial = b""
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read)

    def _read(self) -> None:
        while self.fd is not None:
            try:
                data = os.read(self.fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self._feed(data)
            if len(data) < READ_SIZE:
                return

    def _feed(self, data: bytes) -> None:
        end = data.rfind(b"\n") + 1
        if end:
            chunk = self._partial + data[:end] if self._partial else data[:end]
            self._partial = data[end:]
            self.on_chunk(chunk)
        else:
            self._partial += data
        while len(self._partial) > self.max_line:
            self.on_chunk(self._partial[: self.max_line] + CUT_MARKER + b"\n")
            self._partial = self._partial[self.max_line :]

    def close(self) -> None:
        """Drain, deliver a last partial line, and close the pipe."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        self.loop.remove_reader(fd)
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:
                break
            if not data:
                break
            self._feed(data)
        os.close(fd)
        if self._partial:
            self.on_chunk(self._partial + b"\n")
            self._partial = b""

