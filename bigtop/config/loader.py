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
from .raw import RawSection, merge
from .substitute import env_variables, substitute


def load(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (INI, or TOML when it ends in ``.toml``) with its includes.

    Included files are read after the file that names them, in the order
    listed (``include_dir``: ``*.ini`` and ``*.toml`` in name order); a key
    set again later overrides the earlier value.
    """
    env = dict(os.environ if environ is None else environ)
    sections: dict[tuple[str, str], RawSection] = {}
    problems: list[Problem] = []
    warnings: list[str] = []
    files: list[str] = []

    def read(file: str) -> None:
        file = os.path.abspath(file)
        if file in files:
            return
        files.append(file)
        try:
            with open(file, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            problems.append(Problem(f"cannot read: {reason}", file))
            return
        if file.endswith(".toml"):
            from .toml import read_toml as reader
        else:
            reader = read_ini
        found, file_problems, file_warnings = reader(text, file)
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
                    problems.append(Problem(f"{item!r} is not a directory", raw.file, raw.line,
                                            "circus", key))
                elif not matched and key == "include":
                    warnings.append(f"{raw.file}:{raw.line}: include {item!r} matches no file")
                out += sorted(matched)
        return out

    read(path)
    if problems:
        raise ConfigError(problems)
    return build(list(sections.values()), env, tuple(files), warnings)
