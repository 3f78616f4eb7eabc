"""systemd's readiness protocol: children send ``READY=1`` to $NOTIFY_SOCKET.

One datagram socket in the abstract namespace serves every child; the kernel
attaches the sender's credentials (SO_PASSCRED), so a message is matched to
the process that sent it, or to the managed process whose group it is in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Callable

log = logging.getLogger("bigtop.notify")

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NotifyListener:
    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[int, dict[str, str]], None], fd: int | None = None):
        """``fd``: the socket of this daemon's previous image (handover.py),
        whose address the children already have."""
        self.loop = loop
        self.on_message = on_message
        if fd is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.sock.bind("\0" + f"bigtop-notify-{os.getpid()}-{os.urandom(4).hex()}")
        else:
            self.sock = socket.socket(fileno=fd)
            self.sock.set_inheritable(False)
        self.sock.setblocking(False)
        name = self.sock.getsockname()
        self.address = "@" + (name[1:].decode() if isinstance(name, bytes) else name[1:])
        loop.add_reader(self.sock.fileno(), self._read)

    def detach(self) -> int:
        """Stop reading; the socket's fd, left open for the next image."""
        self.loop.remove_reader(self.sock.fileno())
        return self.sock.detach()

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _read(self) -> None:
        while True:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(
                    4096, socket.CMSG_SPACE(_CREDS.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            pid = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _CREDS.unpack(payload[: _CREDS.size])[0]
            if not pid:
                continue
            fields: dict[str, str] = {}
            for line in data.decode("utf-8", "replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key.strip()] = value
            try:
                self.on_message(pid, fields)
            except Exception:
                log.exception("notify message from %d failed", pid)
