"""gevent: ``gevent.pywsgi`` serving each connection on a greenlet, with
keep-alive. ``prepare()`` monkey-patches the standard library before the
application is imported, so the application's sockets, sleeps and locks
cooperate; a library that blocks in C code (some database drivers) blocks
every request of the worker, which is why this is not the default backend.

On a stop signal: stop accepting (closing our copy of the listening
socket), close connections that wait for their next request (a new one
only if it sends nothing for a moment), let the ones with a request in
progress finish (their response says ``Connection:
close``), and kill what is left after ``--graceful-timeout``.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from ..middleware import closing_when_draining
from . import STOP_SIGNALS, Serving, StopSignals

log = logging.getLogger("bigtop.wsgi")


# How long a connection accepted just before the stop may take to send its
# first request.
FIRST_REQUEST_GRACE = 2.0


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
    # Handlers blocked reading a request line: the next one of a kept-alive
    # connection, or the first one of a new connection.
    waiting: set[Any] = set()
    waiting_first: set[Any] = set()

    class Handler(WSGIHandler):  # type: ignore[misc]
        served = False

        def read_requestline(self) -> str:
            if draining.active and self.served:
                return ""  # ends the connection's keep-alive loop
            # A new connection's client has sent, or is sending, its first
            # request: it is read and answered even while stopping.
            which = waiting if self.served else waiting_first
            self.served = True
            which.add(self)
            try:
                line: str = super().read_requestline()
                return line
            finally:
                which.discard(self)

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
    hang_up(waiting)
    # A new connection that sends nothing is only given so long.
    gevent.spawn_later(FIRST_REQUEST_GRACE, hang_up, waiting_first)
    if not pool.join(timeout=ctx.graceful_timeout):
        log.warning("graceful timeout (%gs): stopping %d request(s) in progress",
                    ctx.graceful_timeout, len(pool))
        pool.kill(block=True, timeout=1)
