"""The one rule for the names of watchers and sockets, whatever brings them
(an INI or TOML file, a supervisord file, ``add``).

A name reaches file paths (``log_dir/NAME.log``), topics, environment
variables (``LISTEN_FDNAMES`` joins socket names with ``:``), log lines
and web pages, so it is kept to what is safe in all of them: letters,
digits and ``_ . - @``, not starting with ``. - @``, at most ``NAME_MAX``
characters. No path separator, control character, space or markup.
"""

from __future__ import annotations

import re

NAME_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-@]*")


def name_problem(name: object, what: str = "watcher") -> str | None:
    """Why ``name`` cannot name a ``what``, or None if it can."""
    if not isinstance(name, str) or not name:
        return f"a {what} needs a name (a non-empty string)"
    if len(name) > NAME_MAX:
        return (f"{name[:20]!r}... cannot name a {what}: {len(name)} characters, "
                f"{NAME_MAX} at most")
    if not _NAME.fullmatch(name):
        return (f"{name[:NAME_MAX]!r} cannot name a {what}: letters, digits and _ . - @ only, "
                "not starting with . - @")
    return None
