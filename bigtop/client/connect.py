"""A client socket on a daemon endpoint: every client (calls, subscribers;
sync or asyncio) connects through here, with CurveZMQ keys on tcp://."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import CallError
from .keys import load_keys, load_public

if TYPE_CHECKING:
    import zmq

DEFAULT_TIMEOUT = 5.0  # seconds a client waits for the daemon


def connect_socket(sock: zmq.Socket[Any], endpoint: str, key: str | None,
                   server_key: str | bytes | None) -> None:
    """Connect sock (REQ, DEALER, SUB) to endpoint: ``key`` is the client's
    ``.key_secret`` file, ``server_key`` the daemon's public ``.key`` (or
    the key itself, Z85 bytes, as a cluster node publishes it), both
    needed on tcp://. Raises CallError, or OSError for an unreadable key."""
    sock.linger = 0
    if endpoint.startswith("tcp://") and key:
        sock.curve_publickey, sock.curve_secretkey = load_keys(key)
        if not server_key:
            raise CallError("a TCP endpoint with --key also needs the server's public key")
        sock.curve_serverkey = (server_key if isinstance(server_key, bytes)
                                else load_public(server_key))
    sock.connect(endpoint)
