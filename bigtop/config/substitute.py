"""Variable substitution in configuration values and commands.

``$(circus.X)`` and ``((circus.X))`` name a variable case-insensitively:
``circus.env.NAME``, ``circus.wid``, ``circus.sockets.NAME`` or any watcher
option. Unknown names are left in place. ``$VAR`` and ``${VAR}`` in
environment values name environment variables, in any case (Circus matched
upper case only); ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_CIRCUS_VAR = re.compile(r"\$\(circus\.([\w.\-]+)\)|\(\(circus\.([\w.\-]+)\)\)", re.I)
_ENV_VAR = re.compile(r"\$(?:\$|\{(\w+)\}|([A-Za-z_]\w*))")


def circus_vars(text: str) -> list[str]:
    """The lower-cased names of the ``$(circus.X)`` variables in text."""
    return [(a or b).lower() for a, b in _CIRCUS_VAR.findall(text)]


def substitute(text: str, variables: Mapping[str, Any]) -> str:
    """Replace ``$(circus.X)`` with ``variables[x]`` (keys lower-case)."""

    def repl(match: re.Match[str]) -> str:
        name = (match.group(1) or match.group(2)).lower()
        value = variables.get(name)
        return match.group(0) if value is None else str(value)

    return _CIRCUS_VAR.sub(repl, text)


def env_variables(env: Mapping[str, str]) -> dict[str, str]:
    """``env.name`` keys for :func:`substitute`; an exact-case name wins."""
    out: dict[str, str] = {}
    for key, value in env.items():
        out.setdefault(f"env.{key.lower()}", value)
    for key, value in env.items():
        if key == key.lower():
            out[f"env.{key}"] = value
    return out


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """Expand ``$VAR``/``${VAR}``; an unset variable expands to nothing."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name is None:
            return "$"
        return env.get(name, "")

    return _ENV_VAR.sub(repl, value)
