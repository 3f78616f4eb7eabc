"""Cluster watchers: the ``[watcher:NAME]`` sections of a file given to
``bigtopctl cluster apply``, each with the options of a local watcher plus
its placement (``nodes``, ``constraints``, ``spread``, ``conflicts``,
``partition``).

The options are checked here, by the node that receives the file, with the
same rules as a local file and ``add``; they are stored as written, so
that each node builds the watcher itself (``$(circus.env.X)`` takes the
value of the node that runs it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .bounds import MAX_WATCHERS
from .build import Builder, update_watcher
from .errors import ConfigError, Problem
from .model import Placement, WatcherSpec
from .names import name_problem
from .options import table
from .raw import MAX_FILE_BYTES, RawSection, RawValue

PLACEMENT = table("placement")
assert not set(PLACEMENT) & set(table("watcher")), "a placement key shadows a watcher option"


@dataclass(frozen=True)
class ClusterWatcher:
    name: str
    options: dict[str, Any]  # as written: strings from INI, values from TOML
    placement: dict[str, Any]  # as written too

    def spec(self, environ: Mapping[str, str] | None = None) -> WatcherSpec:
        """The watcher as a node runs it; ConfigError if a value is bad here."""
        return update_watcher(WatcherSpec(name=self.name, cmd=str(self.options.get("cmd", ""))),
                              self.options, environ)

    def where(self) -> Placement:
        return read_placement(self.name, self.placement)

    def dump(self) -> bytes:
        return json.dumps({"options": self.options, "placement": self.placement},
                          sort_keys=True).encode()

    @classmethod
    def load(cls, name: str, data: bytes) -> ClusterWatcher:
        """From the store; ValueError if it is not what dump() wrote."""
        value = json.loads(data)
        if not (isinstance(value, dict) and isinstance(value.get("options"), dict)
                and isinstance(value.get("placement"), dict)):
            raise ValueError("not a cluster watcher")
        return cls(name, value["options"], value["placement"])


def read_placement(name: str, raw: Mapping[str, Any]) -> Placement:
    b = Builder(os.environ, strict=True)
    section = RawSection("watcher", name, "", 0, {k: RawValue(v, "", 0) for k, v in raw.items()})
    values, _ = b.read(section, PLACEMENT, {})
    if b.problems:
        raise ConfigError(b.problems)
    return Placement(**values)


def read_cluster_file(text: str, file: str) -> list[ClusterWatcher]:
    """The cluster watchers a file declares; ConfigError with every problem.
    TOML when ``file`` ends in ``.toml``, else INI."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ConfigError([Problem(f"more than {MAX_FILE_BYTES} bytes", file)])
    if file.endswith(".toml"):
        from .toml import read_toml

        sections, problems, _ = read_toml(text, file)
    else:
        from .ini import read_ini

        sections, problems, _ = read_ini(text, file, strict=True)
    found: list[ClusterWatcher] = []
    for section in sections:
        if section.kind != "watcher":
            problems.append(Problem("a cluster file holds [watcher:NAME] sections only",
                                    section.file, section.line, section.title))
            continue
        if (problem := name_problem(section.name)) is not None:
            problems.append(Problem(problem, section.file, section.line, section.title))
            continue
        raw = {k: v.value for k, v in section.values.items()}
        where = {k: v for k, v in raw.items() if k in PLACEMENT}
        options = {k: v for k, v in raw.items() if k not in PLACEMENT}
        watcher = ClusterWatcher(section.name, options, where)
        for check in (watcher.where, watcher.spec):
            try:
                check()
            except ConfigError as err:
                problems += [Problem(p.message, section.file,
                                     _line(section, p.key), section.title, p.key)
                             for p in err.problems]
        found.append(watcher)
    if not found and not problems:
        problems.append(Problem("no [watcher:NAME] section", file))
    if len(found) > MAX_WATCHERS:
        problems.append(Problem(f"{len(found)} watchers, more than {MAX_WATCHERS}", file))
    if problems:
        raise ConfigError(problems)
    return found


def _line(section: RawSection, key: str | None) -> int:
    raw = section.values.get(key or "")
    return raw.line if raw else section.line
