"""The format-neutral result of reading files: sections of keyed values,
each value remembering the file and line it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Problem

SECTION_KINDS = ("circus", "watcher", "socket", "plugin", "env")


@dataclass
class RawValue:
    value: Any
    file: str
    line: int
    cut: bool = False  # an INI " ;" comment was removed from the value


@dataclass
class RawSection:
    kind: str  # one of SECTION_KINDS
    name: str  # "" for circus and the global env; the patterns for env:X
    file: str
    line: int
    values: dict[str, RawValue] = field(default_factory=dict)
    # An unknown key is an error (bigtop's own TOML format), not a warning
    # (INI files, which Circus reads ignoring unknown keys).
    strict: bool = False

    @property
    def title(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


def merge(target: dict[tuple[str, str], RawSection], section: RawSection) -> None:
    """Add a section; a later definition of the same key overrides."""
    key = (section.kind, section.name)
    existing = target.get(key)
    if existing is None:
        target[key] = section
    else:
        existing.values.update(section.values)


def read_text(file: str, problems: list[Problem]) -> str | None:
    """A configuration file's text; None, with the problem, if unreadable."""
    try:
        with open(file, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        problems.append(Problem(f"cannot read: {reason}", file))
        return None
