"""bjoern: a WSGI server in C on libev, one thread, the application called
on the event loop. The fastest backend for applications that never block
(a request that waits holds every other request of the worker); not in the
``wsgi`` extra, as it builds from source against libev.

bjoern stops on SIGINT, handled by libev: it stops accepting and returns
once its open connections have closed. It runs Python code only while a
request is being served, so a Python signal handler would not run while it
is idle: the stop signals are blocked in every thread and a helper thread
waits for them with sigwait(), then hands a SIGINT to libev, and ends the
process if connections are still open after ``--graceful-timeout``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from ..middleware import access_logged, closing_when_draining
from . import STOP_SIGNALS, Serving, StopSignals

log = logging.getLogger("bigtop.wsgi")


def _sigint_caught() -> bool:
    """Whether a handler (libev's, once bjoern runs) is set for SIGINT: the
    SigCgt mask of /proc/self/status, as Python cannot see C handlers."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def serve(ctx: Serving) -> None:
    import bjoern

    app = ctx.app
    if ctx.access_log:
        app = access_logged(app)
    app = closing_when_draining(app, ctx.draining)
    stop_set = set(STOP_SIGNALS)

    def expire() -> None:
        log.warning("graceful timeout (%gs): exiting with connections still open",
                    ctx.graceful_timeout)
        ctx.listener.close()
        logging.shutdown()
        os._exit(0)

    watchdog = threading.Timer(ctx.graceful_timeout, expire)
    watchdog.daemon = True

    def begin() -> None:
        ctx.draining.active = True
        ctx.on_stopping()
        watchdog.start()
        # A signal right after the start may come before bjoern has set
        # libev's SIGINT handler; until then SIGINT is ignored (see below).
        deadline = time.monotonic() + ctx.graceful_timeout
        while not _sigint_caught() and time.monotonic() < deadline:
            time.sleep(0.005)
        # libev's SIGINT handler is process-wide; unblocked only in this
        # thread, only for this one signal directed at it.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    stopper = StopSignals(begin)

    def wait_for_signals() -> None:
        while True:
            signum = signal.sigwait(stop_set)
            stopper(signum)

    signal.pthread_sigmask(signal.SIG_BLOCK, stop_set)  # inherited by the helper thread
    # Not Python's handler (KeyboardInterrupt): ignored until libev replaces it.
    # Linux keeps a blocked signal pending even when ignored, for sigwait().
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=wait_for_signals, name="bigtop-wsgi-signals", daemon=True).start()
    ctx.on_ready()
    try:
        bjoern.server_run(ctx.listener.sock, app)
    finally:
        watchdog.cancel()
        ctx.listener.close()
