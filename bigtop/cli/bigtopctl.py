"""bigtopctl: drive a bigtop daemon (or a Circus one) from the command line.

``bigtopctl [global options] COMMAND [args]`` runs one command;
``bigtopctl`` alone (or ``bigtopctl shell``) opens an interactive shell.
Global options may come before or after the command word. What a command
line does is dispatch.py's, shared with the shell.

Imports are kept to what the command needs: ``--json`` never loads rich,
and only the interactive shell loads prompt_toolkit.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..client import Session, Unreachable
from .ctlcommands import COMMANDS, EVERY, GLOBAL_DESTS, UsageError, without_name
from .dispatch import OK, USAGE, execute, split_argv, top_parser
from .shell import run_shell


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (bigtopctl status | head): not our failure.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK


def run(argv: list[str]) -> int:
    before, word, rest = split_argv(argv)
    parser = top_parser()
    options = parser.parse_args(before)  # exits 2 on a bad global option
    if options.version:
        print(f"bigtopctl {__version__}")
        return OK
    if options.help:
        if word in COMMANDS:
            print(COMMANDS[word].parser().format_help(), end="")
        else:
            parser.print_help()
        return OK
    if word is None:
        return run_shell(Session.from_options(options))
    spec = COMMANDS.get(word.lower())
    if spec is None:
        return unknown_command(parser, word)
    try:
        ns = spec.parse(rest)
        props = spec.props(ns)
    except UsageError as err:
        sys.stderr.write(err.report())
        return USAGE
    for dest in GLOBAL_DESTS:
        if hasattr(ns, dest):
            setattr(options, dest, getattr(ns, dest))
    session = Session.from_options(options)
    if spec.name == "shell":  # the one command the shell itself does not run
        return run_shell(session)
    if spec.destructive is without_name and without_name(ns) and not ns.yes:
        refused = ask_every(spec.name, session)
        if refused is not None:
            session.close()
            return refused
    try:
        return execute(session, spec, ns, props)
    finally:
        session.close()


def ask_every(command: str, session: Session) -> int | None:
    """``stop`` without NAME acts on every watcher: on a terminal, ask
    first; elsewhere it must be said (``stop all``, or --yes). None: go on;
    else the exit status."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        sys.stderr.write(f"bigtopctl {command}: without NAME this acts on every watcher: say "
                         f"'bigtopctl {command} {EVERY}' (or add --yes)\n")
        return USAGE
    try:
        names = ", ".join(session.call("list").get("watchers") or ()) or "none"
    except Unreachable:
        names = "?"
    sys.stderr.write(f"{command.capitalize()} every watcher ({names})? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return None
    sys.stderr.write("cancelled\n")
    return OK


def unknown_command(parser: argparse.ArgumentParser, word: str) -> int:
    import difflib

    close = difflib.get_close_matches(word.lower(), list(COMMANDS), n=3)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    sys.stderr.write(f"{parser.format_usage()}bigtopctl: error: unknown command {word!r}"
                     f"{hint}; see bigtopctl --help\n")
    return USAGE


if __name__ == "__main__":
    sys.exit(main())
