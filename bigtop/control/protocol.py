"""The wire format, shared by server and clients: Circus's JSON messages.

A request is one JSON object ``{"command", "properties", "id"}`` (plus
``"msg_type": "cast"`` for no reply) sent by a DEALER to the daemon's
ROUTER; the reply is ``{"status": "ok", "time", "id", ...}`` or
``{"status": "error", "reason", "errno", "tb", "time", "id"}``. Events are
published as two frames, ``[topic, json]``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

# Circus's errno values.
NOT_SPECIFIED = 0
INVALID_JSON = 1
UNKNOWN_COMMAND = 2
MESSAGE_ERROR = 3
OS_ERROR = 4
COMMAND_ERROR = 5
BAD_MSG_DATA_ERROR = 6

MAX_MESSAGE = 1024 * 1024  # larger requests are refused, with an error
# Larger still, ZeroMQ reads no further and drops the sender's connection
# (no reply): what one request can make the daemon hold.
MAX_FRAME = 8 * MAX_MESSAGE

# The subscription handshake: a subscriber that subscribes to
# ``SYNC_PREFIX + token`` (after its other topics) gets one message on that
# topic once the publisher has seen the subscription, so every subscription
# made before it is in force. Subscriptions travel in order on one
# connection, so nothing published after that message is missed.
SYNC_PREFIX = "bigtop.sync."


def is_sync(message: bytes) -> bool:
    """An XPUB (un)subscription message for a handshake topic: answered
    with ``sync_reply`` (a subscription) or ignored, never a topic of
    interest."""
    return message[1:].startswith(_SYNC)


def sync_reply(message: bytes) -> list[bytes] | None:
    """The frames to publish for an XPUB subscription message, if it is a
    handshake subscription (``1 + SYNC_PREFIX + token``)."""
    return [message[1:], b"{}"] if message[:1] == b"\x01" and is_sync(message) else None


_SYNC = SYNC_PREFIX.encode()

# Begins the topic of a private watcher's output (``~stream.NAME.STREAM``),
# which a read-only key's subscriptions never reach. A subscriber of
# ``stream.NAME.`` with full control gets it too; clients drop the mark.
PRIVATE_MARK = "~"


class MessageError(Exception):
    """A request that is well-formed JSON but asks for something invalid."""

    errno = MESSAGE_ERROR


class CommandError(Exception):
    """A valid request that could not be carried out."""

    errno = COMMAND_ERROR


def ok(props: dict[str, Any] | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"status": "ok", "time": time.time()}
    if props:
        reply.update(props)
    return reply


def error(reason: str, errno: int = NOT_SPECIFIED, tb: str | None = None) -> dict[str, Any]:
    return {"status": "error", "reason": reason, "tb": tb, "time": time.time(), "errno": errno}


# Made once: json.dumps with an option builds an encoder at every call,
# which was a good part of the control server's own time per reply.
_ENCODER = json.JSONEncoder(default=str)


def encode(message: dict[str, Any]) -> bytes:
    return _ENCODER.encode(message).encode()

def request(command: str, msg_id: str | None = None, cast: bool = False,
            by: dict[str, str] | None = None, **properties: Any) -> dict[str, Any]:
    """``by`` (bigtop): who asks, from where, for the activity log."""
    message: dict[str, Any] = {"command": command, "properties": properties}
    if msg_id is not None:
        message["id"] = msg_id
    if cast:
        message["msg_type"] = "cast"
    if by:
        message["by"] = by
    return message


_by: dict[str, str] | None = None


def this_client() -> dict[str, str]:
    """``by`` for a request from this process: its user, host and program."""
    global _by
    if _by is None:
        import getpass
        import socket
        import sys

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        program = program.removesuffix(".py")  # python -m bigtop.cli.bigtopctl: its file
        if program in ("", "-c", "__main__"):  # python -m PACKAGE, or -c
            spec = getattr(sys.modules.get("__main__"), "__spec__", None)
            program = spec.name if spec is not None else "python"
        _by = {"user": user[:60], "host": socket.gethostname()[:60], "via": program[:60]}
    return _by
