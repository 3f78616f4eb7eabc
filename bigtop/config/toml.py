"""TOML reader producing the same raw sections as the INI reader.

Layout::

    [circus]            # daemon settings, same keys as INI
    [env]               # environment for every watcher
    [watchers.web]      # one table per watcher; env = {...}, hooks.X, stdout_stream.X
    [sockets.web]
    [plugins.statsd]

``tomllib`` keeps no positions, so lines are found by a light scan of the
text for table headers and keys.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from typing import Any

from .errors import Problem
from .options import sub_tables, table
from .raw import RawSection, RawValue

_TABLES = {"watchers": "watcher", "sockets": "socket", "plugins": "plugin"}
_TOP = ("circus", "env", "cluster", *_TABLES)
_NESTED = sub_tables(table("watcher"))  # hooks = {...} is read as hooks.X
_HEADER = re.compile(r"^\s*\[\[?\s*(?P<path>[^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_PART = r"""(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*(?P<key>{_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _split_path(path: str) -> tuple[str, ...]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.]+)\s*(?:\.|$)""", path)
    return tuple(p.strip().strip("\"'") for p in parts)


class _Lines:
    """Maps a table path plus key to the line that defines it."""

    def __init__(self, text: str):
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                table = _split_path(header.group("path"))
                for i in range(1, len(table) + 1):
                    self.lines.setdefault(table[:i], number)
                continue
            key = _KEY.match(line)
            if key:
                path = table + _split_path(key.group("key"))
                for i in range(len(table) + 1, len(path) + 1):
                    self.lines.setdefault(path[:i], number)

    def find(self, *path: str) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


def read_toml(text: str, file: str) -> tuple[list[RawSection], list[Problem], list[str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"\(at line (\d+), column \d+\)", str(err))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line.*\)", "", str(err))
        return [], [Problem(f"invalid TOML: {message}", file, line)], []
    except RecursionError:  # tomllib recurses once per nested array or table
        return [], [Problem("invalid TOML: nested too deep", file)], []
    where = _Lines(text)
    sections: list[RawSection] = []
    problems: list[Problem] = []

    def section(kind: str, name: str, table: Any, path: tuple[str, ...]) -> None:
        if not isinstance(table, dict):
            problems.append(Problem(f"[{'.'.join(path)}] must be a table", file, where.find(*path)))
            return
        raw = RawSection(kind, name, file, where.find(*path), strict=True)
        for key, value in table.items():
            if key in _NESTED and isinstance(value, dict):
                for sub, subvalue in value.items():
                    line = where.find(*path, key, sub)
                    raw.values[f"{key}.{sub}"] = RawValue(subvalue, file, line)
            else:
                raw.values[key] = RawValue(value, file, where.find(*path, key))
        sections.append(raw)

    for top, value in data.items():
        if top in ("circus", "env", "cluster"):
            section(top, "", value, (top,))
        elif top in _TABLES:
            if not isinstance(value, dict):
                problems.append(Problem(f"{top} must be a table", file, where.find(top)))
                continue
            for name, table in value.items():
                section(_TABLES[top], name, table, (top, name))
        else:
            close = difflib.get_close_matches(top, _TOP, n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            problems.append(
                Problem(
                    f"unknown table [{top}]{hint}; tables are {', '.join(_TOP)}",
                    file,
                    where.find(top),
                )
            )
    return sections, problems, []
