"""A hello-world WSGI app, served by bigtop-wsgi workers on the socket
bigtopd owns (see examples/quickstart.ini)."""

import os


def app(environ, start_response):
    body = f"Hello from bigtop worker {os.environ.get('BIGTOP_WID')} (pid {os.getpid()})\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body.encode()]
