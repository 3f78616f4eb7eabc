"""bigtop-wsgi: serve a WSGI or ASGI application on a socket inherited
from bigtopd (``--fd $(circus.sockets.NAME)``), passed by socket activation
(``LISTEN_FDS``), or bound here (``--host``/``--port``, ``unix:PATH``).

Exit status: 0 after a stop signal and a graceful stop, 2 for a usage or
application-loading error (one line, a traceback only with ``--debug``),
1 if the server failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    from .listen import Listener

log = logging.getLogger("bigtop.wsgi")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
BACKEND_NAMES = ("waitress", "gevent", "uvicorn", "bjoern")  # checked against backends.BACKENDS


class UsageError(Exception):
    """Exit status 2 with this one-line message."""


def _fd(value: str) -> int:
    try:
        fd = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a file descriptor number") from None
    if fd < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a file descriptor number")
    return fd


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number")
    return port


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be 0 or more")
    return seconds


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigtop-wsgi",
        description="Serve a WSGI or ASGI application on a socket inherited from bigtopd "
                    "(--fd), passed by socket activation (LISTEN_FDS), or bound here "
                    "(--host/--port).",
        epilog="backends: waitress (WSGI, threads; the WSGI default), gevent (WSGI, "
               "greenlets), bjoern (WSGI, C), uvicorn (ASGI; the ASGI default). "
               "See docs/wsgi.md.")
    parser.add_argument("app", metavar="MODULE:APP",
                        help="the application, e.g. myproject.wsgi:application")
    where = parser.add_argument_group("socket")
    where.add_argument("--fd", type=_fd, metavar="N",
                       help="serve on this inherited listening socket, e.g. "
                            "--fd $(circus.sockets.web)")
    where.add_argument("--fd-name", metavar="NAME",
                       help="with socket activation, the socket named NAME in LISTEN_FDNAMES "
                            "(default: the first, fd 3)")
    where.add_argument("--host", metavar="HOST",
                       help="bind here for standalone use: an address, or unix:PATH "
                            "(default 127.0.0.1 when --port is given)")
    where.add_argument("--port", type=_port, metavar="PORT",
                       help="bind this TCP port for standalone use (0: any free port)")
    serving = parser.add_argument_group("serving")
    serving.add_argument("--backend", default="auto", choices=("auto", *BACKEND_NAMES),
                         help="the server (default: auto, waitress for WSGI and uvicorn "
                              "for ASGI)")
    serving.add_argument("--interface", default="auto", choices=("auto", "wsgi", "asgi"),
                         help="the application's interface (default: auto, ASGI for an "
                              "async callable)")
    serving.add_argument("--threads", type=_positive, metavar="N",
                         help="worker threads of the waitress backend (default 4)")
    serving.add_argument("--graceful-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                         help="on SIGTERM/SIGQUIT/SIGINT, how long requests in progress may "
                              "take to finish (default 30)")
    serving.add_argument("--access-log", action="store_true",
                         help="log one line per request (off by default)")
    setup = parser.add_argument_group("process")
    setup.add_argument("--chdir", metavar="DIR", help="change to DIR before loading the app")
    setup.add_argument("--pythonpath", action="append", default=[], metavar="DIRS",
                       help=f"prepend DIRS ({os.pathsep}- or comma-separated) to sys.path; "
                            "may be repeated")
    setup.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                       help="default: info (debug with --debug)")
    setup.add_argument("--debug", action="store_true",
                       help="show tracebacks for startup errors; log level debug")
    parser.add_argument("--version", action="version", version=f"bigtop-wsgi {__version__}")
    return parser


# bigtopd names the watcher and slot of every child it starts in these
# variables (bigtop/core/tree.py; not imported: bigtop-wsgi stands alone).
DAEMON_VARS = ("BIGTOP_WATCHER", "BIGTOP_WID")
STANDALONE_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
MANAGED_FORMAT = "%(levelname)s %(name)s: %(message)s"  # bigtopd adds the time and who


def under_bigtopd(environ: Mapping[str, str]) -> bool:
    """Whether bigtopd started this process, and so stamps every line of
    its output with the time and the watcher's process."""
    return all(environ.get(name) for name in DAEMON_VARS)


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def _setup_logging(level: str, environ: Mapping[str, str] | None = None) -> None:
    """DEBUG and INFO on stdout, WARNING and above on stderr, so that what
    goes to stderr (red in bigtop's consoles) is what needs a look. The time
    and the pid lead each line when standalone; under bigtopd, whose
    consoles and files add their own, they are left out."""
    managed = under_bigtopd(os.environ if environ is None else environ)
    formatter = logging.Formatter(MANAGED_FORMAT if managed else STANDALONE_FORMAT)
    info = logging.StreamHandler(sys.stdout)
    info.addFilter(_BelowWarning())
    problems = logging.StreamHandler(sys.stderr)
    problems.setLevel(logging.WARNING)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in (info, problems):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())


def _split_paths(values: list[str]) -> list[str]:
    paths: list[str] = []
    for value in values:
        for chunk in value.split(os.pathsep):
            paths.extend(part for part in chunk.split(",") if part)
    return paths


def _listener(args: argparse.Namespace) -> Listener:
    """The socket to serve on, from --fd, socket activation, or bound here."""
    from . import listen

    if args.fd is not None:
        if os.environ.get("LISTEN_PID") == str(os.getpid()):
            listen.systemd_fd(None, os.environ)  # passed both ways: clear the variables
        return listen.from_fd(args.fd, "--fd")
    if args.host is not None or args.port is not None:
        if args.fd_name is not None:
            raise UsageError("--fd-name is for socket activation (LISTEN_FDS); "
                             "not with --host/--port")
        return listen.bind(args.host or "127.0.0.1", args.port or 0)
    fd = listen.systemd_fd(args.fd_name, os.environ)
    if fd is None:
        hint = ""
        if os.environ.get("LISTEN_FDS"):
            hint = (f" (LISTEN_FDS is set but LISTEN_PID={os.environ.get('LISTEN_PID')} "
                    f"is not this process, {os.getpid()})")
        raise UsageError("no socket to serve on: give --fd N, or --host/--port, or run "
                         f"with socket activation{hint}")
    return listen.from_fd(fd, "LISTEN_FDS")


def run(args: argparse.Namespace) -> int:
    # Imports here, not at module level: `bigtop-wsgi --help` stays fast.
    from ..sdnotify import Notifier
    from . import appload, backends

    if args.fd is not None and (args.host is not None or args.port is not None):
        raise UsageError("--fd and --host/--port are exclusive")
    if args.fd_name is not None and args.fd is not None:
        raise UsageError("--fd-name is for socket activation (LISTEN_FDS); not with --fd")
    if args.chdir:
        try:
            os.chdir(args.chdir)
        except OSError as err:
            raise UsageError(f"--chdir {args.chdir}: {err.strerror}") from err
    appload.extend_path(_split_paths(args.pythonpath), os.getcwd())

    # Read (and taken out of the environment) before the application is
    # imported, so that nothing it starts takes them for its own.
    notifier = Notifier(os.environ.pop("NOTIFY_SOCKET", None),
                        logger=log)
    # A named backend is prepared first: gevent must patch the standard
    # library before anything else makes sockets or locks.
    backend_name = None if args.backend == "auto" else args.backend
    module = backends.load(backend_name) if backend_name else None
    if module is not None and hasattr(module, "prepare"):
        module.prepare()
    listener = _listener(args)
    try:
        app = appload.load_app(args.app)
        interface = appload.detect_interface(app, args.interface)
        if backend_name is None:  # "auto" needed the application to choose
            backend_name = backends.DEFAULTS[interface]
            module = backends.load(backend_name)
            if hasattr(module, "prepare"):
                module.prepare()
        assert module is not None
        backend = backends.BACKENDS[backend_name]
        if interface not in backend.interfaces:
            fit = ", ".join(backends.fitting(interface))
            detected = "" if args.interface != "auto" else " (detected; --interface overrides)"
            raise UsageError(f"backend {backend_name} does not serve {interface.upper()} apps, "
                             f"and {args.app} is one{detected}; backends that do: {fit}")
    except BaseException:
        listener.close()
        raise
    if args.threads is not None and backend_name != "waitress":
        log.warning("--threads applies to the waitress backend only; ignored by %s",
                    backend_name)

    status = f"{backend_name} serving {args.app} ({interface.upper()}) on {listener.where}"

    def on_ready() -> None:
        log.info("%s", status)
        notifier.ready(status)

    def on_stopping() -> None:
        notifier.stopping(f"{backend_name} stopping: finishing requests in progress")

    ctx = backends.Serving(
        app=app, interface=interface, listener=listener,
        graceful_timeout=args.graceful_timeout, threads=args.threads or 4,
        access_log=args.access_log, log_level=args.log_level,
        on_ready=on_ready, on_stopping=on_stopping,
        asgi3=args.interface == "auto" or appload.is_asgi(app))
    try:
        module.serve(ctx)
    finally:
        listener.close()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log_level is None:
        args.log_level = "debug" if args.debug else "info"
    _setup_logging(args.log_level)
    from .appload import AppError
    from .backends import BackendError
    from .listen import ListenError

    try:
        return run(args)
    except (UsageError, AppError, BackendError, ListenError) as err:
        print(f"bigtop-wsgi: {err}", file=sys.stderr)
        if args.debug:
            traceback.print_exception(err)
        return 2
    except KeyboardInterrupt:
        return 1
