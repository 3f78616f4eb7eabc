"""systemd's notification protocol, sender side: state lines (``READY=1``,
``STATUS=...``, ``RELOADING=1``, ``STOPPING=1``, ``WATCHDOG=1``), one
datagram a message, to the address ``$NOTIFY_SOCKET`` names.

Two programs send them: bigtop-wsgi, to bigtopd (or systemd) for a
``ready = notify`` watcher, and bigtopd itself when systemd runs it as a
``Type=notify`` service (docs/boot.md). A leaf module, which imports
nothing of bigtop, so that both may use it without crossing the layers of
docs/architecture.md.

The address is a path or a name in Linux's abstract namespace (``@name``:
bigtopd gives its children one of those).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

# What systemd tells the main process of a service: where to report, and
# how often it must say it is alive (sd_watchdog_enabled(3)).
SERVICE_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends state lines to the address that was in ``$NOTIFY_SOCKET`` when
    the process started. The variable is taken out of the environment, so
    that programs the process starts do not report for it."""

    def __init__(self, address: str | None, timeout: float | None = None,
                 logger: logging.Logger | None = None) -> None:
        """``timeout``: how long a send may block on a receiver whose queue
        is full (None: as long as it takes)."""
        self.address = address or None
        self.timeout = timeout
        self.log = logger or logging.getLogger("bigtop.sdnotify")
        self.failing = False  # the last send failed: the next failure is not logged again

    @classmethod
    def from_environ(cls) -> Notifier:
        return cls(os.environ.pop("NOTIFY_SOCKET", None))

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines (``ready="1"`` becomes ``READY=1``);
        False when there is no address or the send failed (logged once
        for a run of failures)."""
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        payload = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(self.timeout)
                sock.connect(address)
                sock.sendall(payload.encode())
        except OSError as err:
            if not self.failing:
                self.log.warning("could not notify %s: %s", self.address, err)
            self.failing = True
            return False
        if self.failing:
            self.log.info("notifying %s again", self.address)
        self.failing = False
        return True

    def ready(self, status: str) -> bool:
        return self.send(ready="1", status=status, mainpid=str(os.getpid()))

    def reloading(self, status: str) -> bool:
        """``RELOADING=1``, with ``MONOTONIC_USEC=`` (the moment, which
        systemd 253 and later wants beside it); ``ready`` ends the reload."""
        return self.send(reloading="1", status=status, monotonic_usec=monotonic_usec())

    def stopping(self, status: str) -> bool:
        return self.send(stopping="1", status=status)


def monotonic_usec() -> str:
    """Now on CLOCK_MONOTONIC, in microseconds, as ``MONOTONIC_USEC=`` wants it."""
    return str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two ``WATCHDOG=1`` that systemd asks of process
    ``pid``: half of ``$WATCHDOG_USEC``, unless ``$WATCHDOG_PID`` names
    another process (None: no watchdog)."""
    owner = environ.get("WATCHDOG_PID", "").strip()
    if owner and owner != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class ServiceNotifier(Notifier):
    """A daemon's reports to the service manager that started it: its
    states, and the watchdog's pings from its event loop, so that a loop
    that is stuck stops them and systemd steps in.

    The service variables are taken out of the environment (children must
    never report to systemd's socket); ``environ`` gives them back, for an
    exec of the same process (``bigtopctl upgrade``)."""

    SEND_TIMEOUT_S = 5.0  # a send blocks the loop for that long at most

    def __init__(self, kept: Mapping[str, str], logger: logging.Logger | None = None) -> None:
        super().__init__(kept.get("NOTIFY_SOCKET"), self.SEND_TIMEOUT_S, logger)
        self.environ = dict(kept)
        self.interval = watchdog_interval(kept, os.getpid())
        self.stopped = False  # STOPPING=1 was sent
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def from_environ(cls) -> ServiceNotifier:
        kept = {name: os.environ.pop(name) for name in SERVICE_VARIABLES if name in os.environ}
        return cls(kept)

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ping now, then every ``interval`` seconds, from ``loop``."""
        if self.interval is None or self._timer is not None:
            return
        every = max(self.interval, 0.01)  # not a busy loop, whatever the variable says

        def ping() -> None:
            self.send(watchdog="1")
            self._timer = loop.call_later(every, ping)

        ping()

    def stopping(self, status: str) -> bool:
        """``STOPPING=1``, once."""
        if self.stopped:
            return False
        self.stopped = True
        return super().stopping(status)

    def before_exec(self, status: str) -> dict[str, str]:
        """The process is about to execute a new image of itself (the same
        pid): ``RELOADING=1`` until that image says ``READY=1``, with a
        last ping; the service variables, for the new image's environment."""
        self.close()
        extra = {"watchdog": "1"} if self.interval is not None else {}
        self.send(reloading="1", status=status, monotonic_usec=monotonic_usec(), **extra)
        return dict(self.environ)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
