"""systemd's notification protocol for bigtop-wsgi: ``READY=1`` (and
``STATUS=...``, ``STOPPING=1``) to ``$NOTIFY_SOCKET``.

The sender is bigtop's one (bigtop/sdnotify.py, which bigtopd uses too);
here it logs as bigtop-wsgi does. bigtopd sets ``NOTIFY_SOCKET`` for a
watcher with ``ready = notify``, to a name in Linux's abstract namespace
(``@name``); systemd may give a path.
"""

from __future__ import annotations

import logging

from .. import sdnotify

log = logging.getLogger("bigtop.wsgi")


class Notifier(sdnotify.Notifier):
    """The shared sender, logging to bigtop-wsgi's logger."""

    def __init__(self, address: str | None, timeout: float | None = None,
                 logger: logging.Logger | None = None) -> None:
        super().__init__(address, timeout, logger or log)
