"""Changes made at run time (``add``, ``rm``, ``set``, ``incr``, ``decr``),
kept across restarts: ``bigtopctl save`` writes them to a state file
beside the configuration (``FILE.saved.toml``), and bigtopd applies that
file over the configuration at each start and reload. The configuration
file itself is never rewritten.

The state holds, per watcher, the options that differ from the file, each
with the value the file had when it was saved. A saved value is applied
only while the file still has that value: an option edited in the file
since then is the file's again, and the start says so. A watcher added at
run time is kept whole; one removed is kept removed. The result is checked
as a whole, like a file, with the reader the daemon uses for everything:
if it does not hold (a saved watcher depends on one the file no longer
has, say), the daemon runs the file alone, says why, and leaves the state
file as it is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

from .build import build, update_watcher
from .errors import ConfigError
from .loader import load
from .model import Config, WatcherSpec
from .render import render, toml_key, toml_value, watcher_values

VERSION = 1
SUFFIX = ".saved.toml"
MAX_STATE_BYTES = 4 * 1024 * 1024


def state_file(config: Config) -> str:
    """Where the state of this configuration is saved."""
    return os.path.abspath(config.files[0]) + SUFFIX


def _plain(value: Any) -> Any:
    """A value as it reads back from TOML (tuples are lists)."""
    return json.loads(json.dumps(value))


@dataclass
class Changes:
    """What the running daemon has that the file does not."""
    added: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> every option
    removed: list[str] = field(default_factory=list)
    # name -> option -> (the file's value, the value kept)
    changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        out = [f"+ {name} (added)" for name in sorted(self.added)]
        out += [f"- {name} (removed)" for name in sorted(self.removed)]
        for name, options in sorted(self.changed.items()):
            out += [f"~ {name}: {key} {_shown(was)} -> {_shown(now)}"
                    for key, (was, now) in sorted(options.items())]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"added": sorted(self.added), "removed": sorted(self.removed),
                "changed": {name: {key: [was, now] for key, (was, now) in options.items()}
                            for name, options in self.changed.items()}}


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def compare(base: Config, running: tuple[WatcherSpec, ...]) -> Changes:
    """The running watchers against the file's."""
    changes = Changes()
    files = {spec.name: spec for spec in base.watchers}
    for spec in running:
        now = _plain(watcher_values(spec))
        if spec.name not in files:
            changes.added[spec.name] = now
            continue
        was = _plain(watcher_values(files[spec.name]))
        differ = {key: (was.get(key), value) for key, value in now.items()
                  if was.get(key) != value}
        if differ:
            changes.changed[spec.name] = differ
    names = {spec.name for spec in running}
    changes.removed = [name for name in files if name not in names]
    return changes


def write(path: str, changes: Changes, config_file: str) -> None:
    """The state file, replaced in one step (written beside, then renamed);
    removed when there is nothing to keep. OSError if it cannot be."""
    if not changes:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    lines = [f"# bigtop's saved state for {config_file}: written by `bigtopctl save`,",
             "# applied over that file at each start and reload (docs/config.md#saved-state).",
             "# `bigtopctl save` again replaces it; deleting it forgets what it holds.",
             "", "[saved]", f"version = {VERSION}", f"removed = {toml_value(changes.removed)}",
             ""]
    for name, options in sorted(changes.changed.items()):
        lines += [f"[changed.{toml_key(name)}]"]
        # TOML has no null: an option the file (or the daemon) leaves unset has no key
        lines += [f"{toml_key(k)} = " + toml_value(
                      {tag: v for tag, v in (("file", was), ("saved", now)) if v is not None})
                  for k, (was, now) in sorted(options.items())]
        lines.append("")
    for name, values in sorted(changes.added.items()):
        lines += [f"[added.{toml_key(name)}]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read(path: str) -> Changes | None:
    """The state saved at path; None if there is none; ConfigError if it
    cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the saved state: {err.strerror}") from None
    if len(data) > MAX_STATE_BYTES:
        raise ConfigError(f"{path}: the saved state is larger than {MAX_STATE_BYTES} bytes")
    try:
        import tomllib  # here, as the TOML reader in apply(): most daemons have no saved state

        table = tomllib.loads(data.decode("utf-8"))
        saved = table["saved"]
        if saved.get("version") != VERSION:
            raise ValueError(f"state version {saved.get('version')!r}; this bigtop reads "
                             f"version {VERSION}")
        return Changes(
            added={str(name): dict(values) for name, values in table.get("added", {}).items()},
            removed=[str(name) for name in saved.get("removed", [])],
            changed={str(name): {str(k): (v.get("file"), v.get("saved"))
                                 for k, v in options.items()}
                     for name, options in table.get("changed", {}).items()})
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"{path}: not a saved state: {err}") from None


def apply(base: Config, changes: Changes) -> tuple[Config, list[str]]:
    """The file's configuration with the saved changes, and notes on what
    was not applied; ConfigError if the result does not hold."""
    notes: list[str] = []
    removed = set(changes.removed)
    watchers: list[WatcherSpec] = []
    for spec in base.watchers:
        if spec.name in removed:
            continue
        saved = changes.changed.get(spec.name, {})
        now = _plain(watcher_values(spec))
        kept = {}
        for key, (was, value) in saved.items():
            if now.get(key) == was:
                kept[key] = value
            else:
                notes.append(f"{spec.name}: {key} changed in the file since it was saved; "
                             "the file's value is used")
        watchers.append(update_watcher(spec, kept) if kept else spec)
    for name, values in changes.added.items():
        if any(spec.name == name for spec in base.watchers):
            notes.append(f"{name}: added at run time, and now in the file too; the file's "
                         "is used")
            continue
        watchers.append(update_watcher(WatcherSpec(name=name, cmd=str(values.get("cmd"))),
                                       values))
    merged = replace(base, watchers=tuple(watchers))
    # Checked as a whole, as the file itself was (dependencies, sockets,
    # bounds): the merged configuration is read again like a file.
    from .toml import read_toml

    sections, problems, _ = read_toml(render(merged, "toml"), "<saved state>")
    if problems:
        raise ConfigError(problems)
    checked = build(sections, os.environ)
    return replace(checked, files=base.files, strict=base.strict,
                   warnings=base.warnings), notes


def load_saved(path: str, strict: bool = False) -> Config:
    """``path`` loaded as ``load`` does, with its saved state applied. A
    state that cannot be read or applied is a warning of the result, which
    is then the file alone."""
    base = load(path, strict=strict)
    where = state_file(base)
    try:
        changes = read(where)
        if not changes:
            return base
        config, notes = apply(base, changes)
    except ConfigError as err:
        return replace(base, warnings=(*base.warnings, f"{where}: the saved state is not "
                                       f"applied, the file alone runs: {err}"))
    said = [f"{where}: applying the saved state: {'; '.join(changes.lines())}"]
    return replace(config, warnings=(*config.warnings, *said,
                                     *(f"{where}: {note}" for note in notes)))
