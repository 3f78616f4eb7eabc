"""The activity log: every action taken on the daemon (a command that
changes something, from bigtopctl, the web console, bigtop-top, a plugin
or any client), who asked, from where, and the reply. The daemon keeps the
last ``MAX_ENTRIES`` (handed over by ``bigtopctl upgrade``), publishes each
as an ``activity`` event, and answers ``history``.

Who and where are what the client says in the request's ``by`` (bigtop's
clients fill it in: the user and host, the program, and for the web
console the browser's address); a client that says nothing (circusctl) is
logged without. ``by`` is checked like any input: an object of at most
``MAX_BY_KEYS`` short strings.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

MAX_ENTRIES = 1000
MAX_BY_KEYS = 8
MAX_TEXT = 200  # characters of one field of ``by``
MAX_PROPERTIES = 2000  # characters of the properties kept; more is cut, and said
SECRET = re.compile(r"pass|secret|token|key", re.IGNORECASE)


class BadBy(ValueError):
    """A request's ``by`` is not an object of short strings."""


def checked_by(by: Any) -> dict[str, str] | None:
    """``by`` as the daemon keeps it; BadBy if it is not one."""
    if by is None:
        return None
    if not isinstance(by, dict) or len(by) > MAX_BY_KEYS or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= MAX_TEXT
            and len(v) <= MAX_TEXT for k, v in by.items()):
        raise BadBy(f"'by' must be an object of at most {MAX_BY_KEYS} strings of at most "
                    f"{MAX_TEXT} characters (who asked, from where)")
    return dict(by)


def _masked(props: dict[str, Any]) -> Any:
    kept = {k: ("********" if SECRET.search(k) else v) for k, v in props.items()}
    text = json.dumps(kept, default=str)
    if len(text) > MAX_PROPERTIES:
        return {"cut": f"{len(text)} characters of properties, not kept"}
    return kept


class Activity:
    def __init__(self, publish: Callable[[str, dict[str, Any]], None],
                 entries: Iterable[dict[str, Any]] = ()):
        self.publish = publish
        self.entries: deque[dict[str, Any]] = deque(entries, maxlen=MAX_ENTRIES)

    def record(self, command: str, props: dict[str, Any], by: dict[str, str] | None,
               reply: dict[str, Any]) -> None:
        entry = {"time": time.time(), "command": command, "properties": _masked(props),
                 "by": by, "status": reply.get("status"), "reason": reply.get("reason")}
        self.entries.append(entry)
        self.publish("activity", entry)

    def last(self, count: int) -> list[dict[str, Any]]:
        return list(self.entries)[-count:] if count > 0 else []
