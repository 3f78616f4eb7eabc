"""systemd's notification protocol, sender side: ``READY=1`` (and
``STATUS=...``, ``STOPPING=1``) as one datagram to ``$NOTIFY_SOCKET``.

bigtopd sets ``NOTIFY_SOCKET`` for a watcher with ``ready = notify``, to a
name in Linux's abstract namespace (``@name``); systemd may give a path.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("bigtop.wsgi")


class Notifier:
    """Sends state lines to the address that was in ``$NOTIFY_SOCKET`` when
    the process started. The variable is taken out of the environment so
    that programs the application starts do not report for it."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None

    @classmethod
    def from_environ(cls) -> Notifier:
        return cls(os.environ.pop("NOTIFY_SOCKET", None))

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines (``ready="1"`` becomes ``READY=1``);
        False when there is no address or the send failed (logged)."""
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        payload = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(payload.encode())
        except OSError as err:
            log.warning("could not notify %s: %s", self.address, err)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(ready="1", status=status, mainpid=str(os.getpid()))

    def stopping(self, status: str) -> bool:
        return self.send(stopping="1", status=status)
