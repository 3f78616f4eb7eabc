"""The format-neutral result of reading files: sections of keyed values,
each value remembering the file and line it came from."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from .errors import Problem

SECTION_KINDS = ("circus", "watcher", "socket", "plugin", "env", "cluster")
MAX_FILE_BYTES = 4 * 1024 * 1024  # one configuration file (an include too)


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
    """A configuration file's text; None, with the problem, if unreadable.
    Only a regular file of at most MAX_FILE_BYTES is read: a FIFO, a device
    (``/dev/zero``) or a directory is refused without waiting on it."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        problems.append(Problem(f"cannot read: {err.strerror}", file))
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "Is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            problems.append(Problem(f"cannot read: {what}", file))
            return None
        if info.st_size > MAX_FILE_BYTES:
            problems.append(Problem(f"cannot read: {info.st_size:,} bytes, "
                                    f"{MAX_FILE_BYTES:,} at most", file))
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:  # it grew since
            problems.append(Problem(f"cannot read: more than {MAX_FILE_BYTES:,} bytes", file))
            return None
        return data.decode("utf-8")
    except OSError as err:
        problems.append(Problem(f"cannot read: {err.strerror}", file))
        return None
    except UnicodeDecodeError:
        problems.append(Problem("cannot read: not UTF-8 text", file))
        return None
    finally:
        os.close(fd)
