"""The control server: commands on a ROUTER socket, events on a PUB socket.

Every request is parsed and checked here, then run as its own task, so a
slow command never delays the others; commands that change one watcher are
serialised by that watcher's lock, in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import traceback
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio

from . import protocol
from .commands import COMMANDS
from .endpoints import ipc_path
from .protocol import MessageError

if TYPE_CHECKING:
    from ..core import Arbiter

log = logging.getLogger("bigtop.control")


class EndpointInUse(OSError):
    pass


class ControlServer:
    def __init__(self, arbiter: Arbiter, endpoint: str, pubsub_endpoint: str,
                 curve: tuple[bytes, bytes, str] | None = None,
                 endpoint_owner: int | None = None):
        """``curve``: the server's public and secret keys and the directory
        of authorized client public keys, for TCP endpoints."""
        self.arbiter = arbiter
        self.endpoint = endpoint
        self.pubsub_endpoint = pubsub_endpoint
        self.curve = curve
        self.endpoint_owner = endpoint_owner
        self.context = zmq.asyncio.Context()
        self.router: zmq.asyncio.Socket | None = None
        self.pub: zmq.asyncio.Socket | None = None
        self.authenticator: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None

    async def start(self) -> None:
        if self.curve:
            from zmq.auth.asyncio import AsyncioAuthenticator

            self.authenticator = AsyncioAuthenticator(self.context)
            self.authenticator.start()
            self.authenticator.configure_curve(domain="*", location=self.curve[2])
        try:
            self.router = self._bind(zmq.ROUTER, self.endpoint)
            self.pub = self._bind(zmq.PUB, self.pubsub_endpoint)
        except Exception:
            self.close()
            raise
        self._unsubscribe = self.arbiter.bus.subscribe(self.publish)
        self._reader = asyncio.get_running_loop().create_task(self._serve())
        log.info("control on %s, events on %s", self.endpoint, self.pubsub_endpoint)

    def _bind(self, kind: int, endpoint: str) -> zmq.asyncio.Socket:
        path = ipc_path(endpoint)
        if path and os.path.exists(path):
            if _listening(path):
                raise EndpointInUse(f"{endpoint} is in use: is another bigtopd running?")
            os.unlink(path)
        sock = self.context.socket(kind)
        sock.linger = 0
        if self.curve and endpoint.startswith("tcp://"):
            sock.curve_publickey, sock.curve_secretkey = self.curve[0], self.curve[1]
            sock.curve_server = True
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        try:
            old_umask = os.umask(0o177) if path else None
            try:
                sock.bind(endpoint)
            finally:
                if old_umask is not None:
                    os.umask(old_umask)
        except zmq.ZMQError as err:
            sock.close()
            raise EndpointInUse(f"cannot bind {endpoint}: {err}") from None
        if path and self.endpoint_owner is not None:
            os.chown(path, self.endpoint_owner, -1)
        return sock

    def close(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._reader:
            self._reader.cancel()
        for sock, endpoint in ((self.router, self.endpoint), (self.pub, self.pubsub_endpoint)):
            if sock is not None:
                sock.close()
                path = ipc_path(endpoint)
                if path:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        if self.authenticator:
            self.authenticator.stop()
        self.context.term()

    # -- events ----------------------------------------------------------

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        if self.pub is None:
            return
        try:
            self.pub.send_multipart([topic.encode(), protocol.encode(payload)], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # a PUB socket drops what slow subscribers cannot take

    # -- commands --------------------------------------------------------

    async def _serve(self) -> None:
        assert self.router is not None
        while True:
            try:
                frames = await self.router.recv_multipart(copy=True)
            except zmq.ZMQError as err:
                if err.errno == zmq.ETERM:
                    return
                log.warning("control socket: %s", err)
                continue
            self._handle(frames)

    def _handle(self, frames: list[bytes]) -> None:
        identity, body = frames[0], frames[1:]
        if len(body) != 1:
            self._send(identity, protocol.error(
                f"expected one frame holding a JSON object, got {len(body)}",
                protocol.MESSAGE_ERROR))
            return
        raw = body[0]
        if len(raw) > protocol.MAX_MESSAGE:
            self._send(identity, protocol.error(
                f"message of {len(raw)} bytes is over the limit of {protocol.MAX_MESSAGE}",
                protocol.MESSAGE_ERROR))
            return
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self._send(identity, protocol.error("json invalid", protocol.INVALID_JSON))
            return
        if not isinstance(message, dict):
            self._send(identity, protocol.error("a message must be a JSON object",
                                                protocol.MESSAGE_ERROR))
            return
        msg_id = message.get("id")
        cast = message.get("msg_type") == "cast"
        name = message.get("command")
        props = message.get("properties", {})
        if props is None:
            props = {}
        if not isinstance(name, str):
            self._reply(identity, msg_id, cast, protocol.error(
                "'command' must be a string", protocol.MESSAGE_ERROR))
            return
        command = COMMANDS.get(name.lower())
        if command is None:
            self._reply(identity, msg_id, cast, protocol.error(
                f"unknown command: {name!r}", protocol.UNKNOWN_COMMAND))
            return
        if not isinstance(props, dict):
            self._reply(identity, msg_id, cast, protocol.error(
                "'properties' must be a JSON object", protocol.MESSAGE_ERROR))
            return
        task = asyncio.get_running_loop().create_task(
            self._run(identity, msg_id, cast, command, props))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, identity: bytes, msg_id: Any, cast: bool, command: Any,
                   props: dict[str, Any]) -> None:
        try:
            command.validate(props)
            result = await command.execute(self.arbiter, props)
            reply = protocol.ok(result)
        except (MessageError, protocol.CommandError) as err:
            reply = protocol.error(str(err), err.errno)
        except OSError as err:
            reply = protocol.error(str(err), protocol.OS_ERROR)
        except Exception as err:
            log.exception("command %s failed", command.name)
            reply = protocol.error(f"command {command.name!r}: {err}", protocol.COMMAND_ERROR,
                                   traceback.format_exc())
        self._reply(identity, msg_id, cast, reply)
        if command.name == "quit" and reply["status"] == "ok":
            asyncio.get_running_loop().create_task(self.arbiter.stop())

    def _reply(self, identity: bytes, msg_id: Any, cast: bool, reply: dict[str, Any]) -> None:
        if cast:
            return
        reply["id"] = msg_id
        self._send(identity, reply)

    def _send(self, identity: bytes, reply: dict[str, Any]) -> None:
        if self.router is None:
            return
        try:
            self.router.send_multipart([identity, protocol.encode(reply)], flags=zmq.NOBLOCK)
        except zmq.ZMQError as err:
            log.debug("could not reply: %s", err)


def _listening(path: str) -> bool:
    """Is something accepting on this Unix socket path?"""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True
