"""The servers bigtop-wsgi can run, and what each backend module provides.

A backend module has ``serve(ctx: Serving) -> None``, which serves until a
stop signal, drains, and returns; and may have ``prepare() -> None``, run
before the application is imported (gevent patches the standard library
there). It imports its server library inside those functions, never at
module level, and :func:`load` checks that the library is installed first.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

from ..listen import Listener
from ..middleware import Draining

log = logging.getLogger("bigtop.wsgi")

WSGI_EXTRA = "pip install 'bigtop[wsgi]'"


@dataclass(frozen=True)
class Backend:
    name: str
    interfaces: frozenset[str]
    requires: tuple[str, ...]  # importable names, which are also the distribution names
    install: str  # how to get them
    summary: str


BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("waitress", frozenset({"wsgi"}), ("waitress",), WSGI_EXTRA,
                "threaded, pure Python; runs any WSGI app unchanged (--threads)"),
        Backend("gevent", frozenset({"wsgi"}), ("gevent",), WSGI_EXTRA,
                "gevent.pywsgi on greenlets; patches the standard library (monkey-patching)"),
        Backend("uvicorn", frozenset({"asgi"}), ("uvicorn",), WSGI_EXTRA,
                "ASGI; uses uvloop and httptools when they are installed"),
        Backend("bjoern", frozenset({"wsgi"}), ("bjoern",),
                "pip install bjoern (it builds against libev: apt-get install libev-dev)",
                "C on libev, single-threaded; fastest, for apps that never block"),
    )
}

# The default for each interface: see docs/wsgi.md, "Choosing a backend".
DEFAULTS = {"wsgi": "waitress", "asgi": "uvicorn"}


class BackendError(Exception):
    """The backend cannot be used here; the message is for the user."""


def fitting(interface: str) -> list[str]:
    return [name for name, backend in BACKENDS.items() if interface in backend.interfaces]


def load(name: str) -> ModuleType:
    """The backend's module, after checking its server library is installed."""
    backend = BACKENDS[name]
    for package in backend.requires:
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise BackendError(f"backend {name} needs package {package}: {backend.install}")
    return importlib.import_module(f"{__name__}.{name}")


@dataclass
class Serving:
    """Everything a backend needs to serve, and to say how it is doing."""

    app: Callable[..., Any]
    interface: str  # "wsgi" or "asgi"
    listener: Listener
    graceful_timeout: float
    threads: int
    access_log: bool
    log_level: str
    on_ready: Callable[[], None]  # call once accepting connections
    on_stopping: Callable[[], None]  # call when the drain begins
    asgi3: bool = True  # False: --interface asgi forced on a callable of another shape
    draining: Draining = field(default_factory=Draining)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)


class StopSignals:
    """What every backend does on a stop signal: the first one (SIGTERM,
    SIGQUIT or SIGINT) starts a graceful stop through ``begin``; a second
    SIGINT (Ctrl-C again) exits at once."""

    def __init__(self, begin: Callable[[], None]) -> None:
        self.begin = begin
        self.received: int | None = None

    def __call__(self, signum: int, frame: FrameType | None = None) -> None:
        if self.received is None:
            self.received = signum
            log.info("%s: finishing requests in progress, then exiting",
                     signal.Signals(signum).name)
            self.begin()
        elif signum == signal.SIGINT:
            sys.stderr.write("bigtop-wsgi: second SIGINT: exiting now\n")
            os._exit(1)

    def install(self) -> None:
        """As plain Python handlers (backends on greenlets install their own way)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self)
