"""A hello-world WSGI app served on a listening socket inherited from bigtopd.

Usage: hello.py --fd N  (bigtopd passes the fd as $(circus.sockets.NAME)).
"""

import argparse
import os
import signal
import socket
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


def app(environ, start_response):
    body = f"Hello from bigtop worker {os.environ.get('BIGTOP_WID')} (pid {os.getpid()})\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def notify_ready():
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", address)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args()
    server = Server(("", 0), QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=args.fd)
    server.socket.setblocking(True)
    server.server_name, server.server_port = "localhost", server.socket.getsockname()[1]
    server.setup_environ()
    server.set_app(app)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    notify_ready()
    print(f"worker {os.environ.get('BIGTOP_WID')} serving on fd {args.fd}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
