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

from ..tasks import TaskOwner
from . import protocol
from .activity import Activity, BadBy, checked_by
from .commands import COMMANDS, log_targets
from .endpoints import ipc_path, let_through, listening
from .gate import HANDSHAKE_S, Gate
from .protocol import MessageError

if TYPE_CHECKING:
    from ..core import Arbiter
    from .multicast import Responder

log = logging.getLogger("bigtop.control")


class EndpointInUse(OSError):
    pass


class ControlServer:
    """Plain (not asyncio) ZeroMQ sockets driven by the loop through their
    notification fds: a request that needs no waiting is answered within
    the same loop callback, with no task or future in between."""

    def __init__(self, arbiter: Arbiter, endpoint: str, pubsub_endpoint: str,
                 curve: tuple[bytes, bytes, str] | None = None,
                 endpoint_owner: int | None = None, stats_endpoint: str | None = None):
        """``curve``: the server's public and secret keys and the directory
        of authorized client public keys, for TCP endpoints.
        ``stats_endpoint``: where stat.* topics are published (bigtop.stats)."""
        self.arbiter = arbiter
        self.endpoint = endpoint
        self.pubsub_endpoint = pubsub_endpoint
        self.curve = curve
        self.endpoint_owner = endpoint_owner
        self.loop = asyncio.get_running_loop()
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.router: zmq.Socket[bytes] | None = None
        self.pub: zmq.Socket[bytes] | None = None
        self.stats_endpoint = stats_endpoint
        self.stats_pub: zmq.Socket[bytes] | None = None
        self.stats: Any = None  # bigtop.stats.publisher.StatsPublisher
        self.authenticator: Any = None
        self._zap_busy = False
        self._draining = False  # in _drain, which looks at the socket again itself
        self._recheck = False  # a drain is scheduled
        self.tasks = TaskOwner("control server")
        self._unsubscribe: Any = None
        self.gates: list[Gate] = []
        self.discovery: Responder | None = None  # answers LAN discovery probes
        # With CurveZMQ: each authorized public key (z85) -> its name and role.
        self.keys: dict[str, tuple[str, str]] = {}
        # The activity log, the daemon's (the history command reads it there).
        if arbiter.activity is None:
            arbiter.activity = Activity(arbiter.bus.emit)
        self.activity: Activity = arbiter.activity

    async def start(self) -> None:
        try:
            if self.curve:
                self._start_authenticator(self.curve[2])
            self.router = self._bind(zmq.ROUTER, self.endpoint)
            # XPUB: a PUB that also tells who subscribes to what.
            self.pub = self._bind(zmq.XPUB, self.pubsub_endpoint, manual=True)
            if self.stats_endpoint:
                from ..stats.publisher import SNDHWM

                self.stats_pub = self._bind(zmq.XPUB, self.stats_endpoint, sndhwm=SNDHWM)
        except Exception:
            self._close_sockets()
            raise
        most = self.arbiter.config.settings.max_connections
        self.gates = [Gate(sock, _bound(sock), most, self._listen)
                      for sock in (self.router, self.pub, self.stats_pub) if sock is not None]
        self._unsubscribe = self.arbiter.bus.subscribe(self.publish)
        self.loop.add_reader(_fd(self.router), self._drain)
        self.loop.add_reader(_fd(self.pub), self._subscriptions)
        self.loop.call_soon(self._drain)
        if self.stats_pub is not None:
            from ..stats.publisher import StatsPublisher
            from ..stats.sampler import Sampler

            self.stats = StatsPublisher(Sampler.of(self.arbiter), self.stats_pub)
            self.stats.start()
        log.info("control on %s, events on %s, stats on %s", self.endpoint,
                 self.pubsub_endpoint, self.stats_endpoint)
        await self._start_discovery()

    async def _start_discovery(self) -> None:
        """Answer Circus's LAN discovery probes (docs/discovery.md) with the
        control endpoint: a tcp:// one only, an ipc:// path being of no use
        on another machine. An empty multicast_endpoint turns it off, as in
        Circus. A convenience: when it cannot start, one warning, and the
        daemon starts all the same."""
        if not self.endpoint.startswith("tcp://") or self.router is None:
            return
        group = self.arbiter.config.settings.multicast_endpoint
        from .multicast import DEFAULT_ENDPOINT, start_responder

        if group is None:
            group = DEFAULT_ENDPOINT
        if not group:
            return
        # As bound: a port given as * is known, a name is an address. The
        # responder itself says what it announces for tcp://0.0.0.0 and *.
        answer = _bound(self.router)
        try:
            self.discovery = await start_responder(group, answer)
        except Exception as err:  # EndpointError, OSError (ENODEV, EADDRINUSE...)
            log.warning("discovery off: cannot answer probes on %s: %s", group, err)
            return
        log.info("discovery: answering probes on %s with %s", group, answer)

    def _bind(self, kind: int, endpoint: str, sndhwm: int | None = None,
              manual: bool = False) -> zmq.Socket[bytes]:
        path = ipc_path(endpoint)
        if path and os.path.exists(path):
            if listening(path):
                raise EndpointInUse(f"{endpoint} is in use: is another bigtopd running?")
            os.unlink(path)
        sock = self.context.socket(kind)
        sock.linger = 0
        if sndhwm is not None:  # before bind: the listener copies the options
            sock.sndhwm = sndhwm
        if manual:  # an XPUB whose subscriptions _subscriptions applies, each told
            sock.setsockopt(zmq.XPUB_MANUAL, 1)
            sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        if self.curve and endpoint.startswith("tcp://"):
            sock.curve_publickey, sock.curve_secretkey = self.curve[0], self.curve[1]
            sock.curve_server = True
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            sock.maxmsgsize = protocol.MAX_FRAME
        if endpoint.startswith("tcp://"):
            sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_S * 1000)
        try:
            self._listen(sock, endpoint)
        except zmq.ZMQError as err:
            sock.close()
            raise EndpointInUse(f"cannot bind {endpoint}: {err}") from None
        return sock

    def _listen(self, sock: zmq.Socket[bytes], endpoint: str) -> None:
        """Bind sock to endpoint: an ipc:// file only its owner (or
        endpoint_owner) may use. Also how a gate listens again."""
        path = ipc_path(endpoint)
        old_umask = os.umask(0o177) if path else None
        try:
            sock.bind(endpoint)
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        if path and self.endpoint_owner is not None:
            os.chown(path, self.endpoint_owner, -1)
            let_through(os.path.dirname(path))

    async def close(self, flush: float = 0.0) -> None:
        """Stop answering, end the commands still running, unbind.
        ``flush``: seconds the replies and events already sent may take to
        leave (the daemon is about to re-execute, which would drop them)."""
        self._close_sockets(flush)
        await self.tasks.cancel_all()

    def _close_sockets(self, flush: float = 0.0) -> None:
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
        if self._unsubscribe:
            self._unsubscribe()
        if self.stats is not None:
            self.stats.close()
            self.stats = None
        for gate in self.gates:
            gate.close()
        self.gates = []
        for sock, endpoint in ((self.router, self.endpoint), (self.pub, self.pubsub_endpoint),
                               (self.stats_pub, self.stats_endpoint)):
            if sock is None:
                continue
            if sock is self.router or sock is self.pub:
                self.loop.remove_reader(_fd(sock))
            sock.close(linger=int(flush * 1000))
            path = ipc_path(endpoint) if endpoint else None
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.router = self.pub = self.stats_pub = None
        if self.authenticator:
            self.loop.remove_reader(_fd(self.authenticator.zap_socket))
            self.authenticator.stop()
        self.context.term()

    # -- CurveZMQ authentication (ZAP), on the loop --------------------------

    def _start_authenticator(self, authorized_keys: str) -> None:
        from zmq.auth.base import Authenticator

        self.authenticator = Authenticator(self.context, log=log)
        self.authenticator.start()
        self.authenticator.configure_curve(domain="*", location=authorized_keys)
        self.keys = authorized(authorized_keys)
        # The read-only keys are let in too (the authenticator reads one directory).
        self.authenticator.certs["*"].update({key.encode(): True for key, (_, role)
                                              in self.keys.items() if role == READ_ONLY})
        self.loop.add_reader(_fd(self.authenticator.zap_socket), self._zap)

    def _zap(self) -> None:
        """One ZAP request at a time: its REP socket must answer in turn."""
        if self._zap_busy or self.authenticator is None:
            return
        zap = self.authenticator.zap_socket
        if not _readable(zap):
            return
        message = zap.recv_multipart(zmq.NOBLOCK)
        self._zap_busy = True
        task = self.tasks.spawn(self.authenticator.handle_zap_message(message), name="zap")

        def done(_: object) -> None:
            self._zap_busy = False
            self.loop.call_soon(self._zap)

        task.add_done_callback(done)

    # -- events ----------------------------------------------------------

    def _subscriptions(self) -> None:
        """Subscribe (1 + prefix) and unsubscribe (0 + prefix) messages.
        The socket is in manual mode: what a subscriber asks for is in force
        once applied here (``_in_force``). The output of watchers is
        published only while a prefix wants it (``tails``, a count per
        prefix, the private mark left out: each subscriber's messages come
        up)."""
        pub = self.pub
        while pub is not None and _readable(pub):
            try:
                frame = pub.recv(_NOBLOCK, copy=False)
            except zmq.ZMQError:
                return
            message = frame.bytes
            if not message:
                continue
            subscribe = message[0] == 1
            # libzmq's own message for a subscriber gone has no metadata:
            # what it applies then reaches no one (the subscriptions went
            # with the subscriber).
            option = zmq.SUBSCRIBE if subscribe else zmq.UNSUBSCRIBE
            for topic in self._in_force(message[1:], _user(frame)):
                pub.setsockopt(option, topic)
            if protocol.is_sync(message):
                handshake = protocol.sync_reply(message)
                if handshake is not None:
                    with contextlib.suppress(zmq.ZMQError):
                        pub.send_multipart(handshake, flags=zmq.NOBLOCK)
                continue
            prefix = message[1:].decode("utf-8", "replace").removeprefix(protocol.PRIVATE_MARK)
            if not ("stream.".startswith(prefix) or prefix.startswith("stream.")):
                continue
            tails = self.arbiter.output.tails
            if subscribe:
                tails[prefix] += 1
            elif tails[prefix] > 1:
                tails[prefix] -= 1
            else:
                tails.pop(prefix, None)

    def _in_force(self, prefix: bytes, key: str | None) -> list[bytes]:
        """The prefixes a subscription applies for this key: as asked with
        full control, else (``private_safe``) none reaching a private
        watcher's output. Without a key, on an endpoint with keys, as for
        a read-only one."""
        keyed = self.curve is not None and self.pubsub_endpoint.startswith("tcp://")
        role = self.keys.get(key, ("", READ_ONLY))[1] if key else READ_ONLY if keyed else ""
        return private_safe(prefix) if role == READ_ONLY else [prefix]

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        if self.pub is None:
            return
        if payload.get("private") is True and topic.startswith("stream."):
            topic = protocol.PRIVATE_MARK + topic
        try:
            self.pub.send_multipart([topic.encode(), protocol.encode(payload)], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # a PUB socket drops what slow subscribers cannot take
        if _readable(self.pub):  # sending can swallow the fd's signal
            self._subscriptions()

    # -- commands --------------------------------------------------------

    def _drain(self) -> None:
        """Read every waiting request (the fd only signals changes)."""
        self._recheck = False
        self._draining = True
        try:
            self._drain_all()
        finally:
            self._draining = False

    def _drain_all(self) -> None:
        """Read requests until ZMQ_EVENTS says none is left: that look takes
        in what libzmq had to tell, so the fd signals the next request. The
        fd woke us for a request, most likely: the first read goes ahead
        without a look (one fails with EAGAIN when it did not)."""
        router = self.router
        while router is not None:
            try:
                frames, key = _receive(router, self.curve is not None)
            except zmq.Again:
                return
            except zmq.ZMQError as err:
                log.warning("control socket: %s", err)
                return
            try:
                self._handle(frames, self.keys.get(key) if key else None)
            except Exception:  # never let one message stop the others
                log.exception("control message not handled")
            router = self.router
            if router is None or not _readable(router):
                return

    def _handle(self, frames: list[bytes], key: tuple[str, str] | None = None) -> None:
        """``key``: the name and role of the CurveZMQ key the request came
        with (None on an endpoint without keys)."""
        identity, body = frames[0], frames[1:]
        if len(body) != 1:
            self._reply(identity, None, False, protocol.error(
                f"expected one frame holding a JSON object, got {len(body)}",
                protocol.MESSAGE_ERROR))
            return
        raw = body[0]
        if len(raw) > protocol.MAX_MESSAGE:
            self._reply(identity, None, False, protocol.error(
                f"message of {len(raw)} bytes is over the limit of {protocol.MAX_MESSAGE}",
                protocol.MESSAGE_ERROR))
            return
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            self._reply(identity, None, False, protocol.error("json invalid",
                                                              protocol.INVALID_JSON))
            return
        if not isinstance(message, dict):
            self._reply(identity, None, False, protocol.error(
                "a message must be a JSON object", protocol.MESSAGE_ERROR))
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
        try:
            by = checked_by(message.get("by"))
        except BadBy as err:
            self._reply(identity, msg_id, cast, protocol.error(str(err),
                                                              protocol.MESSAGE_ERROR))
            return
        if key is not None:
            by = {**(by or {}), "key": key[0]}  # the one part of `by` the daemon checked
            refused = self._refused(key, command, props) if key[1] == READ_ONLY else None
            if refused is not None:
                reply = protocol.error(refused, protocol.COMMAND_ERROR)
                self._done(identity, msg_id, cast, command, props, by, reply)
                return
        if command.instant:
            try:
                command.validate(props)
                reply = protocol.ok(command.run(self.arbiter, props))
            except Exception as err:
                reply = self._failure(command, err)
            self._done(identity, msg_id, cast, command, props, by, reply)
            return
        # Owned by the arbiter, which ends the commands in progress when it stops.
        self.arbiter.tasks.spawn(self._run(identity, msg_id, cast, command, props, by),
                                 name=command.name)

    def _refused(self, key: tuple[str, str], command: Any, props: dict[str, Any]) -> str | None:
        """Why a read-only key may not run this: it changes something, or
        it reads the output of a ``private`` watcher."""
        if command.changes:
            return f"the key {key[0]!r} is read-only: {command.name} changes something"
        if command.name == "logs":
            try:
                targets = log_targets(self.arbiter, props)
            except MessageError:
                return None  # the command says what is wrong with it
            private = sorted(w.name for w in targets if w.spec.private)
            if private:
                return (f"the key {key[0]!r} is read-only: the output of {', '.join(private)} "
                        "is private")
        return None

    async def _run(self, identity: bytes, msg_id: Any, cast: bool, command: Any,
                   props: dict[str, Any], by: dict[str, str] | None) -> None:
        try:
            command.validate(props)
            reply = protocol.ok(await command.execute(self.arbiter, props))
        except asyncio.CancelledError:
            self._reply(identity, msg_id, cast, protocol.error(
                f"command {command.name!r} ended: the daemon is stopping",
                protocol.COMMAND_ERROR))
            raise
        except Exception as err:
            reply = self._failure(command, err)
        self._done(identity, msg_id, cast, command, props, by, reply)
        if command.name == "quit" and reply["status"] == "ok":
            self.tasks.spawn(self.arbiter.stop(), name="quit")

    @staticmethod
    def _failure(command: Any, err: Exception) -> dict[str, Any]:
        if isinstance(err, (MessageError, protocol.CommandError)):
            return protocol.error(str(err), err.errno)
        if isinstance(err, OSError):
            return protocol.error(str(err), protocol.OS_ERROR)
        log.exception("command %s failed", command.name, exc_info=err)
        return protocol.error(f"command {command.name!r}: {err}", protocol.COMMAND_ERROR,
                              "".join(traceback.format_exception(err)))

    def _done(self, identity: bytes, msg_id: Any, cast: bool, command: Any,
              props: dict[str, Any], by: dict[str, str] | None, reply: dict[str, Any]) -> None:
        """Reply; an action (a command that changes something) is logged."""
        if command.changes:
            self.activity.record(command.name, props, by, reply)
        self._reply(identity, msg_id, cast, reply)

    def _reply(self, identity: bytes, msg_id: Any, cast: bool, reply: dict[str, Any]) -> None:
        if cast:
            return
        reply["id"] = msg_id
        self._send(identity, reply)

    def _send(self, identity: bytes, reply: dict[str, Any]) -> None:
        if self.router is None:
            return
        try:
            self.router.send(identity, _MORE)
            self.router.send(protocol.encode(reply), _NOBLOCK)
        except zmq.ZMQError as err:
            log.debug("could not reply: %s", err)
        # Sending can consume the edge the fd would have signalled: look
        # again (the _drain loop in progress, if any, does that itself).
        if not self._draining and not self._recheck:
            self._recheck = True
            self.loop.call_soon(self._drain)


def _fd(sock: zmq.Socket[bytes]) -> int:
    """The fd that becomes readable when the socket's events change."""
    return int(sock.getsockopt(zmq.FD))


# Plain ints: pyzmq's flag enums cost a constructor call per operation,
# which shows on a socket answering thousands of requests a second.
_EVENTS, _POLLIN, _RCVMORE = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.RCVMORE)
_NOBLOCK, _MORE = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)


def _readable(sock: zmq.Socket[bytes]) -> bool:
    return bool(int(sock.getsockopt(_EVENTS)) & _POLLIN)


def _receive(sock: zmq.Socket[bytes], keyed: bool) -> tuple[list[bytes], str | None]:
    """recv_multipart without the flag enums. A ROUTER's message is the
    sender's identity and at least one frame, all there once the first is.
    ``keyed`` (CurveZMQ): also the sender's public key, which the ZAP
    handler made the frame's User-Id (z85)."""
    key = None
    if keyed:
        identity, first = sock.recv(_NOBLOCK), sock.recv(_NOBLOCK, copy=False)
        key = _user(first)
        frames = [identity, first.bytes]
    else:
        frames = [sock.recv(_NOBLOCK), sock.recv(_NOBLOCK)]
    while sock.getsockopt(_RCVMORE):
        frames.append(sock.recv(_NOBLOCK))
    return frames, key


_PRIVATE = protocol.PRIVATE_MARK.encode()


def private_safe(prefix: bytes) -> list[bytes]:
    """What a read-only key's subscription applies: the prefix, as long as
    no topic of a private watcher's output (``PRIVATE_MARK`` first) can
    start with it. Every topic but those: each first byte but the mark."""
    if prefix.startswith(_PRIVATE):
        return []
    if not prefix:
        return [bytes([byte]) for byte in range(256) if byte != _PRIVATE[0]]
    return [prefix]


def _user(frame: zmq.Frame) -> str | None:
    """The sender's public key (z85), which the ZAP handler made the
    frame's User-Id; None for a frame without one."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return user if isinstance(user, str) and user else None


READ_ONLY = "read"
READ_ONLY_DIR = "read-only"  # in authorized_keys: the keys that may only read


def authorized(directory: str) -> dict[str, tuple[str, str]]:
    """The public keys in ``authorized_keys`` (full control) and in its
    ``read-only`` subdirectory: z85 key -> (the file's name, role)."""
    import zmq.auth

    keys: dict[str, tuple[str, str]] = {}
    for where, role in ((os.path.join(directory, READ_ONLY_DIR), READ_ONLY),
                        (directory, "control")):
        try:
            names = sorted(os.listdir(where))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".key"):
                continue
            try:
                public, _ = zmq.auth.load_certificate(os.path.join(where, name))
            except (OSError, ValueError):
                continue
            keys[public.decode()] = (name.removesuffix(".key"), role)
    return keys


def _bound(sock: zmq.Socket[bytes]) -> str:
    """The endpoint sock is bound to, resolved (a port given as * is known)."""
    return bytes(sock.getsockopt(zmq.LAST_ENDPOINT)).decode()
