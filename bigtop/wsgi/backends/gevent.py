"""gevent: ``gevent.pywsgi`` serving each connection on a greenlet, with
keep-alive. ``prepare()`` monkey-patches the standard library before the
application is imported, so the application's sockets, sleeps and locks
cooperate; a library that blocks in C code (some database drivers) blocks
every request of the worker, which is why this is not the default backend.

On a stop signal: stop accepting (closing our copy of the listening
socket), give every connection a moment to send one more request (answered
with ``Connection: close``) before closing the idle ones, let the ones with
a request in progress finish (their response says ``Connection:
close``), and kill what is left after ``--graceful-timeout``.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from ..middleware import closing_when_draining
from . import STOP_SIGNALS, Serving, StopSignals

log = logging.getLogger("bigtop.wsgi")


# On a stop, how long a connection may take to send its next request (the
# first of a new one, or one more on a kept-alive one) before it is closed.
IDLE_GRACE = 2.0


def hang_up(handlers: set[Any]) -> None:
    for handler in list(handlers):
        try:
            handler.socket.shutdown(socket.SHUT_RDWR)  # the client's own connection
        except (OSError, AttributeError):
            pass


def prepare() -> None:
    from gevent import monkey

    monkey.patch_all()


def serve(ctx: Serving) -> None:
    import gevent
    from gevent.event import Event
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIHandler, WSGIServer

    draining = ctx.draining
    waiting: set[Any] = set()  # handlers blocked reading their next request line

    class Handler(WSGIHandler):  # type: ignore[misc]
        answered = False  # a request answered while stopping: the connection ends

        def read_requestline(self) -> str:
            if self.answered:
                return ""
            # The client may have sent, or be sending, its next request:
            # while stopping it is still read, and answered with
            # "Connection: close" (closing_when_draining).
            self.answered = draining.active
            waiting.add(self)
            try:
                line: str = super().read_requestline()
                return line
            finally:
                waiting.discard(self)

    tcp = ctx.listener.sock.family in (socket.AF_INET, socket.AF_INET6)

    class Server(WSGIServer):  # type: ignore[misc]
        def handle(self, client: Any, address: Any) -> Any:
            if tcp:
                # Without it, responses were measured to wait 40 ms each:
                # Nagle's algorithm against the client's delayed ACK.
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle(client, address)

    environ: dict[str, Any] = {"wsgi.multiprocess": True}
    address = ctx.listener.sock.getsockname()
    if isinstance(address, tuple):  # spares pywsgi a reverse DNS lookup of the address
        environ.update(SERVER_NAME=str(address[0]), SERVER_PORT=str(address[1]))
    pool = Pool()  # unbounded; lets the stop wait for the handlers
    server = Server(ctx.listener.sock, closing_when_draining(ctx.app, draining), spawn=pool,
                    handler_class=Handler, environ=environ,
                    log=logging.getLogger("bigtop.wsgi.access") if ctx.access_log else None,
                    error_log=logging.getLogger("bigtop.wsgi.gevent"))

    stop = Event()
    stopper = StopSignals(stop.set)
    for signum in STOP_SIGNALS:
        gevent.signal_handler(signum, stopper, signum, None)
    server.start()
    ctx.on_ready()
    stop.wait()

    draining.active = True
    ctx.on_stopping()
    server.close()
    ctx.listener.close()
    # A connection that sends nothing more is only given so long.
    gevent.spawn_later(IDLE_GRACE, hang_up, waiting)
    if not pool.join(timeout=ctx.graceful_timeout):
        log.warning("graceful timeout (%gs): stopping %d request(s) in progress",
                    ctx.graceful_timeout, len(pool))
        pool.kill(block=True, timeout=1)
