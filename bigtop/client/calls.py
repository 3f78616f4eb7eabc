"""Clients of the daemon, used by every front end (cli, top, web, plugins).

``Client`` is synchronous, ``AsyncClient`` is for asyncio code; both send
one request and wait for its reply (matched by id) up to a timeout.
``subscribe``/``AsyncSubscriber`` follow the event stream.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import zmq

from . import protocol
from .endpoints import default_endpoint, default_pubsub_endpoint

DEFAULT_TIMEOUT = 5.0


class CallError(Exception):
    """No usable reply: the daemon is unreachable, timed out, or answered
    with something that is not a reply."""


class CommandFailed(Exception):
    """The daemon answered with ``status: error``."""

    def __init__(self, reply: dict[str, Any]):
        self.reply = reply
        self.errno = reply.get("errno", protocol.NOT_SPECIFIED)
        super().__init__(reply.get("reason", "unknown error"))


def resolve_endpoint(endpoint: str | None = None) -> str:
    return (endpoint or os.environ.get("BIGTOPCTL_ENDPOINT")
            or os.environ.get("CIRCUSCTL_ENDPOINT") or default_endpoint())


def load_keys(key_file: str) -> tuple[bytes, bytes]:
    """A client key pair from ``bigtopctl keygen`` (the ``.key_secret`` file)."""
    import zmq.auth

    public, secret = zmq.auth.load_certificate(key_file)
    if secret is None:
        raise CallError(f"{key_file} holds no secret key (use the .key_secret file)")
    return public, secret


def connect_socket(sock: zmq.Socket[Any], endpoint: str, key: str | None,
                   server_key: str | None) -> None:
    """Connect a client socket (REQ, DEALER, SUB; sync or asyncio) to a
    daemon endpoint, with CurveZMQ keys on tcp://; raises CallError."""
    sock.linger = 0
    if endpoint.startswith("tcp://") and key:
        import zmq.auth

        sock.curve_publickey, sock.curve_secretkey = load_keys(key)
        if not server_key:
            raise CallError("a TCP endpoint with --key also needs the server's public key")
        sock.curve_serverkey = zmq.auth.load_certificate(server_key)[0]
    sock.connect(endpoint)


def _check(reply: dict[str, Any], raise_on_error: bool) -> dict[str, Any]:
    # Not `!= "ok"`: `status NAME` puts the watcher's state there, as Circus.
    if raise_on_error and reply.get("status") == "error":
        raise CommandFailed(reply)
    return reply


class Client:
    def __init__(self, endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 key: str | None = None, server_key: str | None = None):
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout = timeout
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        connect_socket(self.socket, self.endpoint, key, server_key)
        # Request ids: unique per client, cheap to make.
        self._prefix = uuid.uuid4().hex[:12] + "-"
        self._counter = itertools.count()
        self._rcvtimeo = -1.0

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, command: str, raise_on_error: bool = True, **properties: Any) -> dict[str, Any]:
        msg_id = f"{self._prefix}{next(self._counter)}"
        self.socket.send(protocol.encode(protocol.request(command, msg_id, **properties)))
        # A receive timeout, not a poll: no Poller built for every call.
        if self._rcvtimeo != self.timeout:
            self.socket.rcvtimeo = int(self.timeout * 1000)
            self._rcvtimeo = self.timeout
        while True:
            try:
                raw = self.socket.recv()
            except zmq.Again:
                raise CallError(
                    f"timed out after {self.timeout:g}s waiting for {self.endpoint}") from None
            try:
                reply = json.loads(raw)
            except ValueError as err:
                raise CallError(f"not a JSON reply: {err}") from None
            if isinstance(reply, dict) and reply.get("id") == msg_id:
                return _check(reply, raise_on_error)

    def cast(self, command: str, **properties: Any) -> None:
        self.socket.send(protocol.encode(protocol.request(command, cast=True, **properties)))


class AsyncClient:
    def __init__(self, endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 key: str | None = None, server_key: str | None = None):
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout = timeout
        import zmq.asyncio  # here: importing asyncio would slow every CLI start

        self.context = zmq.asyncio.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        connect_socket(self.socket, self.endpoint, key, server_key)
        self._pending: dict[str, Any] = {}
        self._reader: Any = None

    def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        self.socket.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _read(self) -> None:
        while True:
            raw = await self.socket.recv()
            try:
                reply = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(reply, dict):
                continue
            future = self._pending.pop(str(reply.get("id")), None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def call(self, command: str, raise_on_error: bool = True,
                   **properties: Any) -> dict[str, Any]:
        import asyncio

        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())
        msg_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self.socket.send(protocol.encode(protocol.request(command, msg_id, **properties)))
        try:
            reply = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise CallError(
                f"timed out after {self.timeout:g}s waiting for {self.endpoint}") from None
        finally:
            self._pending.pop(msg_id, None)
        return _check(reply, raise_on_error)


def subscribe(topics: list[str] | None = None, endpoint: str | None = None,
              timeout: float | None = None, key: str | None = None,
              server_key: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(topic, payload)`` events as they come (prefix-matched topics);
    stop after ``timeout`` seconds without one."""
    endpoint = endpoint or os.environ.get("BIGTOPCTL_PUBSUB_ENDPOINT") or default_pubsub_endpoint()
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    connect_socket(sock, endpoint, key, server_key)
    for topic in topics or [""]:
        sock.subscribe(topic.encode())
    try:
        while True:
            if timeout is not None and not sock.poll(int(timeout * 1000)):
                return
            frames = sock.recv_multipart()
            yield frames[0].decode(), json.loads(frames[1])
    finally:
        sock.close()
