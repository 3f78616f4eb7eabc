"""The option tables of docs/config.md, rendered from the option table.

Each table sits between marker comments, ``<!-- options:watcher -->`` and
``<!-- /options:watcher -->``; the prose around them is written by hand.
``python -m bigtop.config.doc`` rewrites what is between the markers;
with ``--check`` it changes nothing and exits 1 if the file is out of date
(tests/test_options_table.py runs the same check).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from .declare import Option
from .options import table

CONFIG_MD = Path(__file__).resolve().parents[2] / "docs" / "config.md"
COMMAND = "python -m bigtop.config.doc"

_MARKED = re.compile(
    r"(?P<open><!-- options:(?P<name>[\w-]+) -->).*?(?P<close><!-- /options:(?P=name) -->)",
    re.S)


def default_text(option: Option) -> str:
    """The default as the tables show it: ``1``, ``true``, none, —."""
    value = option.default
    if option.shown:
        return option.shown
    if option.required:
        return "—"
    if value is None or value in ((), {}):
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`" + ", ".join(str(v) for v in value) + "`"
    return f"`{value}`"


def run_time(option: Option) -> str:
    if not option.runtime:
        return "no"
    return "`set`, restarts" if option.restarts else "`set`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def options_table(options: Mapping[str, Option], prefix: str = "") -> str:
    """One Markdown table: option, accepts, default, run time, what it does."""
    lines = ["| option | accepts | default | run time | what it does |",
             "| --- | --- | --- | --- | --- |"]
    for o in options.values():
        cells = (f"`{prefix}{o.key}`", o.accepts, default_text(o), run_time(o), o.doc)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n" + "\n".join(lines) + "\n"


def restart_list() -> str:
    """The watcher options whose change restarts the processes, inline."""
    keys = [o.prefix + "*" if o.form == "entries" else o.key
            for o in table("watcher").values() if o.restarts]
    return ", ".join(f"`{k}`" for k in keys)


BLOCKS: dict[str, Callable[[], str]] = {
    "circus": lambda: options_table(table("circus")),
    "watcher": lambda: options_table(table("watcher")),
    "flapping": lambda: options_table(table("flapping"), table("watcher")["flapping"].prefix),
    "socket": lambda: options_table(table("socket")),
    "plugin": lambda: options_table(table("plugin")),
    "cluster": lambda: options_table(table("cluster")),
    "placement": lambda: options_table(table("placement")),
    "restarts": restart_list,
}


def render(text: str) -> str:
    """text with every marked block rendered again; ValueError if a block
    is unknown or missing."""
    seen: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise ValueError(f"unknown block <!-- options:{name} -->; "
                             f"blocks are {', '.join(BLOCKS)}")
        seen.append(name)
        return match.group("open") + BLOCKS[name]() + match.group("close")

    out = _MARKED.sub(fill, text)
    missing = [name for name in BLOCKS if name not in seen]
    if missing:
        raise ValueError("no <!-- options:NAME --> ... <!-- /options:NAME --> block for "
                         + ", ".join(missing))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Render the option tables "
                                     "of docs/config.md from the option table.")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if the tables are out of date")
    parser.add_argument("path", nargs="?", type=Path, default=CONFIG_MD,
                        help="the Markdown file (default: docs/config.md)")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    try:
        fresh = render(text)
    except ValueError as err:
        print(f"{args.path}: {err}", file=sys.stderr)
        return 2
    if fresh == text:
        return 0
    if args.check:
        print(f"{args.path}: the option tables are out of date; run {COMMAND}", file=sys.stderr)
        return 1
    args.path.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
