"""Commands to the daemon, for every front end (cli, top, web, plugins).

``Client`` is synchronous, ``AsyncClient`` is for asyncio code; both send
one request on a DEALER and wait for its reply (matched by id) up to a
timeout. Events are the subscribers' (subscriber.py).
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import zmq

from ..control import protocol
from .connect import DEFAULT_TIMEOUT, connect_socket
from .endpoints import resolve_endpoint
from .errors import CallError, CommandFailed


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
        self.by = protocol.this_client()  # who asks, for the daemon's activity log

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, command: str, raise_on_error: bool = True, by: dict[str, str] | None = None,
             **properties: Any) -> dict[str, Any]:
        """``by``: who asks, from where (default: this process, ``self.by``)."""
        msg_id = f"{self._prefix}{next(self._counter)}"
        # Timeouts, not a poll: no Poller built for every call. A send waits
        # too while no connection is up (a handshake refused, say).
        if self._rcvtimeo != self.timeout:
            self.socket.rcvtimeo = self.socket.sndtimeo = int(self.timeout * 1000)
            self._rcvtimeo = self.timeout
        try:
            self.socket.send(protocol.encode(protocol.request(command, msg_id, by=by or self.by,
                                                              **properties)))
        except zmq.Again:
            raise CallError(f"timed out after {self.timeout:g}s: {self.endpoint} takes no "
                            "request (no connection is up)") from None
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
        self.socket.send(protocol.encode(protocol.request(command, cast=True, by=self.by,
                                                          **properties)))


class AsyncClient:
    def __init__(self, endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 key: str | None = None, server_key: str | bytes | None = None):
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout = timeout
        import zmq.asyncio  # here: importing asyncio would slow every CLI start

        self.context = zmq.asyncio.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        connect_socket(self.socket, self.endpoint, key, server_key)
        self._pending: dict[str, Any] = {}
        self._reader: Any = None
        self.by = protocol.this_client()  # who asks, for the daemon's activity log

    def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        self.socket.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        reader = self._reader
        self.close()
        if reader is not None:
            import asyncio

            await asyncio.wait([reader])  # ended, not left pending

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
                   by: dict[str, str] | None = None, **properties: Any) -> dict[str, Any]:
        """``by``: who asks, from where (default: this process, ``self.by``)."""
        import asyncio

        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())
        msg_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self.socket.send(protocol.encode(protocol.request(command, msg_id,
                                                                by=by or self.by, **properties)))
        try:
            reply = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise CallError(
                f"timed out after {self.timeout:g}s waiting for {self.endpoint}") from None
        finally:
            self._pending.pop(msg_id, None)
        return _check(reply, raise_on_error)

