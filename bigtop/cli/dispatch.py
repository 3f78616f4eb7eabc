"""Running one bigtopctl command line, the same from the command line and
from the shell: splitting the global options from the command, the
top-level help, the client-side commands (listen, keygen, completion,
help) and how a reply is reported, with the exit status.

Imports are kept to what the command needs: ``--json`` never loads rich.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from ..client import Session, Unreachable
from .ctlcommands import (
    COMMANDS,
    GLOBAL_OPTIONS,
    Spec,
    add_global_options,
    summary_lines,
    wire_command,
)

OK, TRANSPORT, USAGE, FAILED = 0, 1, 2, 3

EPILOG = """\
{commands}

Exit status: 0 success; 1 the daemon could not be reached (or answered
nonsense); 2 bad arguments; 3 the daemon replied with an error (printed as
"error: REASON" on stderr). Unlike circusctl, an error reply gives 3 with
--json too (circusctl returns 0 there).

Global options may also follow the command word (bigtopctl status --json).
Put -- before a command line that has options of its own:
bigtopctl add web -- python -m http.server --bind 127.0.0.1

reloadconfig waits for the outcome by default, so that a refused
configuration is reported (--no-waiting replies at once, as circusctl does).

stop and restart act on every watcher with NAME 'all'. Without NAME, they
ask first on a terminal and need --yes elsewhere. In the shell,
destructive commands (quit, rm, stop or restart of every watcher) ask
first (from a pipe they need --yes); 'quit' there stops the daemon, as in
circusctl, while 'exit' or Ctrl-D leaves the shell.
"""


def top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigtopctl", usage="bigtopctl [global options] [COMMAND] [ARGS ...]",
        description="Control a bigtop daemon. With no COMMAND: an interactive shell,\n"
                    "or, when stdin is not a terminal, the commands on stdin, one per line.",
        epilog=EPILOG.format(commands=summary_lines()),
        formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False,
        allow_abbrev=False)
    group = parser.add_argument_group("global options")
    add_global_options(group, hidden=False)
    group.add_argument("--version", action="store_true", help="print bigtopctl's version")
    group.add_argument("-h", "--help", action="store_true",
                       help="this help, or with a command its usage")
    return parser


def split_argv(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """Global options before the command word, the command word, the rest."""
    takes_value = {o.flag for o in GLOBAL_OPTIONS if o.metavar}
    before: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return before, (argv[i + 1] if i + 1 < len(argv) else None), argv[i + 2:]
        if word.startswith("-") and word != "-":
            before.append(word)
            if word in takes_value and i + 1 < len(argv):
                before.append(argv[i + 1])
                i += 1
            i += 1
            continue
        return before, word, argv[i + 1:]
    return before, None, []


# -- running a command ------------------------------------------------------------

def execute(session: Session, spec: Spec, ns: argparse.Namespace, props: dict[str, Any]) -> int:
    """Run one parsed command; its exit status."""
    try:
        if spec.local:
            return LOCAL[spec.name](session, ns)
        if session.nodes:
            from .ctlnodes import on_nodes

            return on_nodes(session, spec, ns, props)
        if spec.name == "reload" and (ns.rolling or ns.sequential) and not ns.terminate:
            from .ctlevents import reload_with_progress

            reply = reload_with_progress(session, props)
        elif spec.name == "upgrade":
            reply = upgrade(session)
        elif spec.name == "logs":
            from .ctlevents import follow_logs

            return follow_logs(session, ns, props, lambda reply: report(
                session, spec.name, reply, ns))
        else:
            reply = session.call(wire_command(spec, ns), **props)
    except Unreachable as err:
        sys.stderr.write(f"{err}\n")
        return TRANSPORT
    return report(session, wire_command(spec, ns), reply, ns)


UPGRADE_REPLY_S = 100.0


def upgrade(session: Session) -> dict[str, Any]:
    """``upgrade``, then the daemon's version once it answers again: the
    new image took over (or the reply's error, with nothing changed)."""
    import time

    before = session.call("version")
    began = time.monotonic()
    # The daemon first lets what is under way end (60 s at most), then asks
    # the new program (30 s at most).
    reply = session.call("upgrade", timeout=max(session.timeout, UPGRADE_REPLY_S))
    if reply.get("status") == "error":
        return reply
    session.close()  # a connection of its own to the new image
    deadline = began + max(session.timeout, 10.0)
    while True:
        try:
            after = session.call("version", timeout=0.25)
            break
        except Unreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the new image binds its endpoints
    return {**reply, "before": before.get("version"), "after": after.get("version"),
            "seconds": round(time.monotonic() - began, 3)}


def report(session: Session, command: str, reply: dict[str, Any],
           ns: argparse.Namespace) -> int:
    failed = reply.get("status") == "error"
    if session.json:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        return FAILED if failed else OK
    from . import display

    if failed:
        display.error(said(session, str(reply.get("reason") or "the daemon gave no reason")))
        return FAILED
    display.show(command, reply, ns)
    return OK


UNKNOWN_WATCHER = re.compile(r"program (.+) not found")  # Circus's reason, on the wire


def said(session: Session, reason: str) -> str:
    """The daemon's reason as bigtopctl says it: an unknown watcher named
    so, with the closest names the daemon has (asked for only then)."""
    unknown = UNKNOWN_WATCHER.fullmatch(reason)
    if unknown is None:
        return reason
    import difflib

    name = unknown.group(1)
    try:
        names = [str(n) for n in session.call("list").get("watchers") or ()]
    except Unreachable:
        return f"no watcher named {name!r}"
    close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
    if close:
        return f"no watcher named {name!r} (did you mean {' or '.join(map(repr, close))}?)"
    return f"no watcher named {name!r}; the watchers are: {', '.join(names) or 'none'}"


# -- client-side commands ----------------------------------------------------------

def cmd_listen(session: Session, ns: argparse.Namespace) -> int:
    from .ctlevents import listen

    return listen(session, ns)


def cmd_keygen(session: Session, ns: argparse.Namespace) -> int:
    from ..client import generate

    if not ns.name or "/" in ns.name or ns.name in (".", ".."):
        sys.stderr.write(f"bigtopctl keygen: error: {ns.name!r} is not a usable key name\n")
        return USAGE
    try:
        public, secret = generate(ns.dir, ns.name)
    except (OSError, ValueError) as err:
        sys.stderr.write(f"bigtopctl keygen: {err}\n")
        return TRANSPORT
    public, secret = os.path.abspath(public), os.path.abspath(secret)
    if session.json:
        print(json.dumps({"public": public, "secret": secret}))
        return OK
    print(f"""\
public key: {public}
secret key: {secret}  (mode 0600: keep it private)

If this is the daemon's key pair, put in its [circus] section:
    server_key = {secret}
    authorized_keys = DIR    (a directory holding the clients' public .key files)
and give clients {public} for --server-key.

If this is a client's key pair, copy {os.path.basename(public)} into the daemon's
authorized_keys directory and connect with:
    bigtopctl --endpoint tcp://HOST:PORT --key {secret} --server-key SERVER.key""")
    return OK


def cmd_completion(session: Session, ns: argparse.Namespace) -> int:
    from .completion import script

    sys.stdout.write(script(ns.shell))
    return OK


def cmd_startup(session: Session, ns: argparse.Namespace) -> int:
    from .startup import run

    return run(ns, session.json)


def cmd_help(session: Session, ns: argparse.Namespace) -> int:
    text = help_text(ns.topic)
    if text is None:
        sys.stderr.write(f"bigtopctl help: no command {ns.topic!r}; 'help' lists them\n")
        return USAGE
    sys.stdout.write(text)
    return OK


def help_text(topic: str | None) -> str | None:
    """The top-level help, a command's usage, or None for no such command."""
    if topic is None:
        return top_parser().format_help()
    spec = COMMANDS.get(topic.lower())
    return spec.parser().format_help() if spec else None


LOCAL = {
    "listen": cmd_listen,
    "keygen": cmd_keygen,
    "completion": cmd_completion,
    "startup": cmd_startup,
    "help": cmd_help,
}
