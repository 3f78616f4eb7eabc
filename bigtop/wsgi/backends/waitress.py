"""waitress: a pure-Python server that runs the application in a pool of
threads (``--threads``), so a WSGI app that blocks (a database driver
written in C, a slow upstream) only holds its own thread.

waitress has no graceful stop of its own, so the main loop is driven here:
on a stop signal the listening socket leaves the loop (and our copy of it is
closed), connections get ``IDLE_GRACE`` seconds to send one more request
before the idle ones are closed, and connections with a request in progress
are closed once their response has been sent (the responses not
started yet say ``Connection: close``), until none is left or
``--graceful-timeout`` has passed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..middleware import access_logged
from . import Serving, StopSignals

log = logging.getLogger("bigtop.wsgi")


# On a stop, a connection's client may have sent, or be sending, its next
# request (the first of a new connection, or one more on a kept-alive one):
# every connection gets this long to send it, and is answered with
# "Connection: close", before an idle one is closed. Closing at once would
# reset those requests.
IDLE_GRACE = 2.0


def _is_idle(channel: Any, stopping_for: float) -> bool:
    """Past the grace period, no request queued or running, none
    half-received, nothing to send."""
    return (stopping_for >= IDLE_GRACE and not channel.requests and channel.request is None
            and not channel.total_outbufs_len)


def _channel_class(draining: Any) -> Any:
    """waitress's channel, whose requests parsed while stopping ask for the
    connection to be closed after their response (an application may not
    set a hop-by-hop header itself: waitress enforces PEP 3333)."""
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser

    class Parser(HTTPRequestParser):  # type: ignore[misc]
        def received(self, data: bytes) -> int:
            used: int = super().received(data)
            if self.completed and draining.active:
                self.headers["CONNECTION"] = "close"
            return used

    class Channel(HTTPChannel):  # type: ignore[misc]
        parser_class = Parser

    return Channel


def serve(ctx: Serving) -> None:
    from waitress.channel import HTTPChannel
    from waitress.server import create_server

    if ctx.log_level != "debug":
        # waitress warns "Task queue depth is N" for every request that waits
        # for a free thread: under load that is a line per request.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = ctx.app
    if ctx.access_log:
        app = access_logged(app)

    listener = ctx.listener
    channels: dict[int, Any] = {}
    server = create_server(app, map=channels, sockets=[listener.sock], threads=ctx.threads,
                           backlog=listener.backlog)
    server.channel_class = _channel_class(ctx.draining)
    stop_requested = False

    def begin() -> None:
        nonlocal stop_requested
        stop_requested = True
        server.pull_trigger()  # wake the loop out of poll()

    StopSignals(begin).install()
    ctx.on_ready()
    loop = server.asyncore.loop
    timeout, use_poll = server.adj.asyncore_loop_timeout, server.adj.asyncore_use_poll
    while not stop_requested:
        loop(timeout=timeout, map=channels, use_poll=use_poll, count=1)

    ctx.draining.active = True
    ctx.on_stopping()
    server.accepting = False
    server.del_channel()  # out of the loop's map; the trigger stays in it
    listener.close()

    stopped_at = time.monotonic()
    deadline = stopped_at + ctx.graceful_timeout
    while True:
        busy = 0
        for channel in list(channels.values()):
            if not isinstance(channel, HTTPChannel):
                continue
            with channel.requests_lock:
                if _is_idle(channel, time.monotonic() - stopped_at):
                    channel.close_when_flushed = True  # closed by the loop's next pass
                    continue
                busy += 1
                # Responses not started yet say "Connection: close" and close
                # the connection when sent (an application may not set a
                # hop-by-hop header itself: waitress enforces PEP 3333).
                for request in channel.requests:
                    request.headers["CONNECTION"] = "close"
        if not any(isinstance(c, HTTPChannel) for c in channels.values()):
            break
        if time.monotonic() >= deadline:
            log.warning("graceful timeout (%gs): closing %d connection(s) with a request "
                        "in progress", ctx.graceful_timeout, busy)
            break
        # A worker thread that finishes a response pulls the trigger, which
        # ends this wait; the timeout only bounds how late the deadline is seen.
        loop(timeout=min(0.1, deadline - time.monotonic()), map=channels, use_poll=use_poll,
             count=1)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
    for channel in list(channels.values()):
        channel.close()
