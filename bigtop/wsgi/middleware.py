"""WSGI wrappers shared by the WSGI backends.

``closing_when_draining``: once a stop has begun, responses carry
``Connection: close`` so that keep-alive clients go elsewhere (to a sibling
worker, or a replacement) instead of sending their next request here.

``access_logged``: one log line per request, for servers that have no
access log of their own. Off unless ``--access-log``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
StartResponse = Callable[..., Any]

access_log = logging.getLogger("bigtop.wsgi.access")


class Draining:
    """A flag the backend sets when its stop begins (read on every request,
    so it is a plain attribute, not a lock or an Event)."""

    def __init__(self) -> None:
        self.active = False


def _add_connection_close(start_response: StartResponse) -> StartResponse:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not any(name.lower() == "connection" for name, _ in headers):
            headers = [*headers, ("Connection", "close")]
        return start_response(status, headers, exc_info)

    return start


def closing_when_draining(app: WSGIApp, draining: Draining) -> WSGIApp:
    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if draining.active:
            return app(environ, _add_connection_close(start_response))
        return app(environ, start_response)

    return wrapped


class _LoggedBody:
    """Passes the body through, counting bytes; logs when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self.body = body
        self.done = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)


def access_logged(app: WSGIApp) -> WSGIApp:
    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        status = ["-"]

        def start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        def done(sent: int) -> None:
            path = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            access_log.info('%s "%s %s %s" %s %d %.1fms', environ.get("REMOTE_ADDR", "-"),
                            environ.get("REQUEST_METHOD", "-"), path,
                            environ.get("SERVER_PROTOCOL", "-"), status[0], sent,
                            (time.monotonic() - started) * 1000)

        return _LoggedBody(app(environ, start), done)

    return wrapped
