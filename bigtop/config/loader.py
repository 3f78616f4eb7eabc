"""Read a configuration file and everything it includes."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping

from .build import build
from .errors import ConfigError, Problem
from .ini import read_ini
from .model import Config
from .options import table
from .raw import RawSection, merge, read_text
from .substitute import env_variables, substitute

MAX_FILES = 1000  # a configuration and everything it includes


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
    problems: list[Problem] = []
    main = os.path.abspath(path)
    first = read_text(main, problems)  # read once: for its format, then its sections
    if first is not None and not main.endswith(".toml") and looks_like_supervisor(first):
        from .supervisor import load_supervisor

        found, errors, notes, names = load_supervisor(main, env, strict, first)
        if errors:
            raise ConfigError(errors)
        return build(found, env, names, notes, strict)
    sections: dict[tuple[str, str], RawSection] = {}
    warnings: list[str] = []
    files: list[str] = []

    def read(file: str) -> None:
        file = os.path.abspath(file)
        if file in files:
            return
        files.append(file)
        if len(files) > MAX_FILES:  # said once, for the first file left out
            if len(files) == MAX_FILES + 1:
                problems.append(Problem(f"not read: more than {MAX_FILES} files included",
                                        file))
            return
        text = first if file == main else read_text(file, problems)
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


def looks_like_supervisor(text: str) -> bool:
    """Whether a file has supervisord's sections and none of Circus's."""
    kinds = set()
    for match in re.finditer(r"(?m)^\[([^\]\n]+)\]", text):
        kind, sep, name = (part.strip() for part in match.group(1).partition(":"))
        kinds.add(kind if not sep or not name else f"{kind}:")
    ours = {"supervisord", "include", "unix_http_server", "inet_http_server", "supervisorctl",
            "program:", "group:", "fcgi-program:", "eventlistener:", "rpcinterface:",
            "inet_http_server:", "unix_http_server:"}
    circus = {"circus", "watcher:", "socket:", "plugin:"}
    return bool(kinds & ours) and not kinds & circus
