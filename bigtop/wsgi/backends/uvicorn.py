"""uvicorn: the ASGI server, on uvloop and httptools when they are
installed (``uvicorn[standard]``), asyncio and h11 otherwise.

uvicorn already stops gracefully (stop accepting, close idle keep-alive
connections, wait for responses in progress up to a timeout). Two things
are changed: it handles SIGQUIT too, and it does not re-raise the stop
signal after its shutdown, so that a graceful stop exits with status 0.
The inherited socket is handed over as a socket object: uvicorn's own
``fd=`` option takes every fd for a Unix socket, which leaves TCP_NODELAY
off on the connections.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

from . import STOP_SIGNALS, Serving, StopSignals

log = logging.getLogger("bigtop.wsgi")


def serve(ctx: Serving) -> None:
    import uvicorn

    config = uvicorn.Config(
        ctx.app,
        interface="asgi3" if ctx.asgi3 else "auto",
        log_config=None,  # our logging setup stays; uvicorn's loggers propagate to it
        log_level=ctx.log_level,
        access_log=ctx.access_log,
        backlog=ctx.listener.backlog,
        # typed int, used as asyncio.wait_for()'s timeout: fractions work
        timeout_graceful_shutdown=ctx.graceful_timeout,  # type: ignore[arg-type]
    )

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
            stopper = StopSignals(self._begin_stop)
            stopper.install()
            try:
                yield
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)

        def _begin_stop(self) -> None:
            self.should_exit = True
            ctx.on_stopping()

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                ctx.on_ready()

    server = Server(config)
    server.run(sockets=[ctx.listener.sock])
    if not server.started:
        raise SystemExit(1)  # the application's lifespan startup failed (uvicorn logged why)
