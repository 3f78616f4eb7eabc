"""Circus-compatible INI reader that keeps the line of every value.

Follows Circus's dialect: ``key = value`` or ``key: value``, indented
continuation lines, ``#``/``;`` comment lines, `` ;`` inline comments,
``""`` as the empty string. Unlike Circus, a key given twice keeps the last
value (so later includes override earlier ones).
"""

from __future__ import annotations

import difflib
import re

from .errors import Problem
from .raw import SECTION_KINDS, RawSection, RawValue

_SECTION = re.compile(r"\[(?P<header>[^\]]*)\]\s*(?:[#;].*)?$")
_OPTION = re.compile(r"(?P<key>[^:=\s][^:=]*?)\s*[:=]\s*(?P<value>.*)$")


SECTIONS_HELP = ("sections are [circus], [watcher:NAME], [socket:NAME], [plugin:NAME], "
                 "[env], [env:NAMES] and [cluster]")
_UNNAMED = ("circus", "cluster")


def parse_header(header: str, file: str, line: int) -> tuple[str, str]:
    kind, sep, name = (part.strip() for part in header.partition(":"))
    if kind in ("circus", "env", "cluster") and not sep:
        return kind, ""
    if kind in SECTION_KINDS and kind not in _UNNAMED and name:
        return kind, name
    if kind in _UNNAMED:
        raise _problem(f"section [{header}]: [{kind}] takes no name", file, line)
    if kind in SECTION_KINDS:
        raise _problem(f"section [{header}] needs a name, as in [{kind}:NAME]", file, line)
    raise _Unknown(header)


def unknown_section(header: str) -> str:
    kind, _, name = (part.strip() for part in header.partition(":"))
    close = difflib.get_close_matches(kind, SECTION_KINDS, n=1)
    hint = f" (did you mean [{close[0]}{':' + name if name else ''}]?)" if close else ""
    return f"unknown section [{header}]{hint}; {SECTIONS_HELP}"


class _Unknown(Exception):
    """A header of no kind bigtop (or Circus) reads."""


class _ParseError(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


def _problem(message: str, file: str, line: int) -> _ParseError:
    return _ParseError(Problem(message, file, line))


def read_ini(text: str, file: str,
             strict: bool = False) -> tuple[list[RawSection], list[Problem], list[str]]:
    """Parse one file; returns its sections, the problems found and warnings.
    A section of unknown kind is skipped with a warning, as Circus ignores
    it (``strict``: it is a problem)."""
    sections: list[RawSection] = []
    problems: list[Problem] = []
    warnings: list[str] = []
    current: RawSection | None = None
    last: RawValue | None = None
    seen_header = False
    headers: dict[tuple[str, str], int] = {}  # (kind, name) -> the line it is first on
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0] in " \t":
            if last is not None:
                kept = _strip_comment(stripped)
                last.value = f"{last.value}\n{kept}".strip("\n")
                last.cut = last.cut or kept != stripped
                continue
            problems.append(Problem("indented line outside a value", file, number))
            continue
        if re.match(r"(?i)rem(\s|$)", line):
            continue
        last = None
        if line.startswith("["):
            seen_header = True
            match = _SECTION.match(stripped)
            if not match:
                problems.append(Problem(f"malformed section header {stripped!r}", file, number))
                current = None
                continue
            try:
                kind, name = parse_header(match.group("header"), file, number)
            except _ParseError as err:
                problems.append(err.problem)
                current = None
                continue
            except _Unknown:
                message = unknown_section(match.group("header"))
                if strict:
                    problems.append(Problem(message, file, number))
                else:
                    warnings.append(f"{file}:{number}: {message}: ignored "
                                    "(an error with --strict)")
                current = None
                continue
            first = headers.setdefault((kind, name.lower()), number)
            if first != number:  # Circus's parser refuses it too
                problems.append(Problem(f"section [{match.group('header').strip()}] again (first "
                                        f"at line {first}): write a section once in a file",
                                        file, number))
                current = None
                continue
            current = RawSection(kind, name, file, number)
            sections.append(current)
            continue
        match = _OPTION.match(line)
        if not match:
            problems.append(Problem(f"expected 'key = value', got {stripped!r}", file, number))
            continue
        if current is None:
            if not seen_header:
                problems.append(
                    Problem("option before any section header such as [circus]", file, number)
                )
            continue  # inside a broken section: its header was reported
        key = match.group("key").strip()
        full = match.group("value").strip()
        value = _strip_comment(full)
        if value == '""':
            value = ""
        if key in current.values:
            warnings.append(
                f"{file}:{number}: [{current.title}] {key} given twice; "
                f"line {current.values[key].line} is overridden"
            )
        last = current.values[key] = RawValue(value, file, number, cut=value != full)
    return sections, problems, warnings


def _strip_comment(value: str) -> str:
    """Drop a `` ;`` comment: ``;`` counts only after white space."""
    match = re.search(r"\s;", value)
    return value[: match.start()].rstrip() if match else value
