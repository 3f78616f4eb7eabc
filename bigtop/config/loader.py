"""Read a configuration file and everything it includes."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping

from .build import build
from .errors import ConfigError, Problem
from .ini import read_ini
from .model import Config
from .options import table
from .raw import RawSection, merge, read_text
from .substitute import env_variables, substitute


def load(path: str, environ: Mapping[str, str] | None = None, strict: bool = False) -> Config:
    """Load ``path`` with its includes: TOML when it ends in ``.toml``, a
    supervisord file when its sections say so, else Circus's INI.

    Included files are read after the file that names them, in the order
    listed (``include_dir``: ``*.ini`` and ``*.toml`` in name order); a key
    set again later overrides the earlier value. An unknown key or section
    in an INI file is a warning, as Circus and supervisord ignore them;
    with ``strict``, and always in TOML, it is an error.
    """
    env = dict(os.environ if environ is None else environ)
    supervisor = _supervisor(path, env, strict)
    if supervisor is not None:
        return supervisor
    sections: dict[tuple[str, str], RawSection] = {}
    problems: list[Problem] = []
    warnings: list[str] = []
    files: list[str] = []

    def read(file: str) -> None:
        file = os.path.abspath(file)
        if file in files:
            return
        files.append(file)
        text = read_text(file, problems)
        if text is None:
            return
        if file.endswith(".toml"):
            from .toml import read_toml

            found, file_problems, file_warnings = read_toml(text, file)
        else:
            found, file_problems, file_warnings = read_ini(text, file, strict)
        problems.extend(file_problems)
        warnings.extend(file_warnings)
        for section in found:
            merge(sections, section)
        for section in found:
            if section.kind == "circus":
                for included in includes(section, os.path.dirname(file)):
                    read(included)

    def includes(section: RawSection, base: str) -> list[str]:
        out: list[str] = []
        variables = env_variables(env)
        for key, suffixes in (("include", ("",)), ("include_dir", ("*.ini", "*.toml"))):
            raw = section.values.get(key)
            if raw is None:
                continue
            items = table("circus")[key].converter()(raw.value)
            for item in items:
                pattern = os.path.join(base, substitute(str(item), variables))
                matched: list[str] = []
                for suffix in suffixes:
                    matched += glob.glob(os.path.join(pattern, suffix) if suffix else pattern)
                if key == "include_dir" and not os.path.isdir(pattern):
                    # Circus goes on without it; so do we, saying so.
                    warnings.append(f"{raw.file}:{raw.line}: include_dir {item!r} is not a "
                                    "directory; nothing read from it")
                elif not matched:
                    where = "no file" if key == "include" else "no *.ini or *.toml file"
                    warnings.append(f"{raw.file}:{raw.line}: {key} {item!r} matches {where}")
                out += sorted(matched)
        return out

    read(path)
    if problems:
        raise ConfigError(problems)
    return build(list(sections.values()), env, tuple(files), warnings, strict)


def _supervisor(path: str, env: dict[str, str], strict: bool) -> Config | None:
    """The model of a supervisord file; None if ``path`` is not one."""
    if path.endswith(".toml"):
        return None
    text = read_text(path, [])
    if text is None:
        return None  # the INI reader reports it
    from .supervisor import load_supervisor, looks_like_supervisor

    if not looks_like_supervisor(text):
        return None
    found, problems, warnings, files = load_supervisor(os.path.abspath(path), env, strict)
    if problems:
        raise ConfigError(problems)
    return build(found, env, files, warnings, strict)
