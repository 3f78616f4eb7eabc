"""What goes wrong talking to a daemon, as every front end catches it: no
usable reply (CallError), an error reply (CommandFailed), and, for the
people reading it, a daemon that cannot be reached (Unreachable)."""

from __future__ import annotations

from typing import Any

from ..control.protocol import NOT_SPECIFIED


class CallError(Exception):
    """No usable reply: the daemon is unreachable, timed out, or answered
    with something that is not a reply."""


class CommandFailed(Exception):
    """The daemon answered with ``status: error``."""

    def __init__(self, reply: dict[str, Any]):
        self.reply = reply
        self.errno = reply.get("errno", NOT_SPECIFIED)
        super().__init__(reply.get("reason", "unknown error"))


class Unreachable(Exception):
    """No reply from the daemon; the message says where we looked and what
    to try next."""
