"""bigtopctl's interactive shell.

On a terminal: a prompt_toolkit prompt (``bigtop> ``) with completion of
commands, options, watcher names and option names, and history in
``~/.local/share/bigtop/history``. Otherwise the commands are read from
stdin one per line, so the shell can be scripted (and tested).

Every line is a bigtopctl command line, run on the same connection; an
error is reported and the shell goes on. Destructive commands (``quit``,
``rm``, ``stop``/``restart`` of every watcher) ask for confirmation, or
need ``--yes`` when the commands come from a pipe. ``quit`` keeps
circusctl's meaning: it stops the daemon (and then leaves the shell);
``exit`` or Ctrl-D leaves the shell and nothing else.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..client import Session, Unreachable
from .ctlcommands import COMMANDS, GLOBAL_OPTIONS, UsageError, summary_lines
from .dispatch import OK, USAGE, execute, help_text, split_argv

if TYPE_CHECKING:
    from prompt_toolkit.completion import CompleteEvent, Completion
    from prompt_toolkit.document import Document

LEAVE_WORDS = ("exit", "bye")
CHANGES_WATCHERS = ("add", "rm", "reloadconfig", "quit")
SIGNALS = ("HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "TERM", "CONT", "STOP", "WINCH")
PROMPT = "bigtop> "

Confirm = Callable[[str], bool]


class LeaveShell(Exception):
    pass


class ShellState:
    """What the shell knows about the daemon, for completion."""

    def __init__(self, session: Session):
        self.session = session
        self.watchers: list[str] = []
        self.option_keys: list[str] = []
        self.last_failure = 0

    def refresh_watchers(self) -> None:
        try:
            reply = self.session.call("list", timeout=min(self.session.timeout, 2.0))
        except Unreachable:
            return
        if reply.get("status") != "error":
            self.watchers = [str(w) for w in reply.get("watchers") or []]

    def keys(self, watcher: str | None) -> list[str]:
        """Option names (the keys of ``options``), fetched once."""
        if not self.option_keys:
            name = watcher or (self.watchers[0] if self.watchers else None)
            if name is None:
                return []
            try:
                reply = self.session.call("options", timeout=min(self.session.timeout, 1.0),
                                          name=name)
            except Unreachable:
                return []
            self.option_keys = sorted(reply.get("options") or {})
        return self.option_keys

    def candidates(self, words: list[str], current: str) -> list[str]:
        """Completions for the word being typed after ``words``."""
        global_flags = [o.flag for o in GLOBAL_OPTIONS]
        before, word, rest = split_argv(words)
        if word is None:
            if current.startswith("-"):
                return global_flags
            if before and before[-1] in global_flags and before[-1] != "--json":
                return []
            return sorted([*COMMANDS, *LEAVE_WORDS])
        spec = COMMANDS.get(word.lower())
        if spec is None:
            return []
        if current.startswith("-"):
            return [*spec.options(), "--help"]
        previous = rest[-1] if rest else None
        choices = spec.choices()
        if previous in choices:
            return choices[previous]
        if previous == "--signum":
            return list(SIGNALS)
        takes_value = {o.flag for o in GLOBAL_OPTIONS if o.metavar} | {
            "--dir", "--graceful-timeout", "--graceful_timeout", "--childpid", "-n",
            "--lines", "--count", "-o", "--option"}
        positionals = []
        skip = False
        for item in rest:
            if skip:
                skip = False
            elif item in takes_value or item in choices:
                skip = True
            elif not item.startswith("-"):
                positionals.append(item)
        if spec.name == "help":
            return sorted(COMMANDS) if not positionals else []
        if spec.positional_choices():
            return spec.positional_choices() if not positionals else []
        if spec.watcher and not positionals:
            return self.watchers
        if spec.option_keys and positionals and (
                spec.name == "get" or len(positionals) % 2 == 1):
            return self.keys(positionals[0])
        if spec.name == "signal" and positionals:
            return list(SIGNALS)
        return []


# -- one line ---------------------------------------------------------------------

def question(spec_name: str, ns: argparse.Namespace, session: Session) -> str:
    if spec_name == "quit":
        return f"Stop the daemon at {session.endpoint} and every process it runs?"
    if spec_name == "rm":
        if getattr(ns, "nostop", False):
            return f"Remove watcher {ns.name!r} (its processes keep running)?"
        return f"Remove watcher {ns.name!r} and stop its processes?"
    return f"{spec_name.capitalize()} every watcher?"


def shell_help(topic: str | None) -> str | None:
    if topic is None:
        return (summary_lines() + "\n\nIn the shell:\n"
                "  help [COMMAND]  this list, or a command's usage\n"
                "  exit            leave the shell (also Ctrl-D); 'quit' stops the daemon\n")
    return help_text(topic)


def run_line(session: Session, state: ShellState, line: str, confirm: Confirm | None) -> int:
    """Run one shell line; its status. Raises LeaveShell."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE
    if not words:
        return OK
    before, word, rest = split_argv(words)
    if word is None:
        print("error: no command; 'help' lists them", file=sys.stderr)
        return USAGE
    name = word.lower()
    if name in LEAVE_WORDS:
        raise LeaveShell
    if name == "help":
        topic = rest[0] if rest else None
        text = shell_help(topic)
        if text is None:
            print(f"error: no command {topic!r}; 'help' lists them", file=sys.stderr)
            return USAGE
        sys.stdout.write(text)
        return OK
    if name == "shell":
        print("already in the shell")
        return OK
    spec = COMMANDS.get(name)
    if spec is None:
        print(f"error: unknown command {word!r}; 'help' lists them", file=sys.stderr)
        return USAGE
    try:
        ns = spec.parse(before + rest)
        props = spec.props(ns)
    except UsageError as err:
        sys.stderr.write(err.report())
        return USAGE
    except SystemExit as done:  # --help printed the usage
        return int(done.code or 0)
    if spec.destructive is not None and spec.destructive(ns) and not ns.yes:
        if confirm is None:
            print(f"error: {spec.name} asks for confirmation: add --yes (commands are "
                  "read from a pipe)", file=sys.stderr)
            return USAGE
        if not confirm(question(spec.name, ns, session)):
            print("cancelled")
            return OK
    sub = session.with_overrides(ns)
    try:
        status = execute(sub, spec, ns, props)
    finally:
        if sub is not session and sub._client is not session._client:
            sub.close()
    if status == OK and spec.name in CHANGES_WATCHERS:
        state.option_keys = []
        if spec.name == "quit":
            raise LeaveShell
        state.refresh_watchers()
    return status


def run_lines(session: Session, lines: Iterable[str]) -> int:
    """Commands from a pipe: 0, or the status of the last one that failed."""
    state = ShellState(session)
    for line in lines:
        try:
            status = run_line(session, state, line, confirm=None)
        except LeaveShell:
            break
        if status:
            state.last_failure = status
        sys.stdout.flush()
    return state.last_failure


# -- the interactive shell ------------------------------------------------------------

def history_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(base, "bigtop", "history")


def make_completer(state: ShellState) -> Any:
    from prompt_toolkit.completion import Completer
    from prompt_toolkit.completion import Completion as PTCompletion

    class ShellCompleter(Completer):
        def get_completions(self, document: Document,
                            complete_event: CompleteEvent) -> Iterable[Completion]:
            text = document.text_before_cursor
            try:
                words = shlex.split(text)
            except ValueError:
                words = text.split()
            if text and not text[-1].isspace() and words:
                current, words = words[-1], words[:-1]
            else:
                current = ""
            for candidate in state.candidates(words, current):
                if candidate.startswith(current):
                    yield PTCompletion(candidate, start_position=-len(current))

    return ShellCompleter()


def interactive(session: Session) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory

    from .. import __version__
    from . import display

    state = ShellState(session)
    path = history_path()
    history: History
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        history = FileHistory(path)
    except OSError as err:
        display.error(f"no history file ({err})", prefix="warning: ")
        history = InMemoryHistory()
    prompt: PromptSession[str] = PromptSession(
        history=history, completer=make_completer(state), auto_suggest=AutoSuggestFromHistory(),
        complete_while_typing=True)

    def confirm(text: str) -> bool:
        try:
            answer = PromptSession[str]().prompt(f"{text} [y/N] ")
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")

    out = display.console()
    out.print(f"bigtopctl {__version__}, talking to {session.endpoint}", style="bold")
    out.print("help lists the commands; exit or Ctrl-D leaves.", style="dim")
    try:
        reply = session.call("status", details=True)
        if reply.get("status") != "error":
            display.show("status", reply, argparse.Namespace(name=None), out)
        state.refresh_watchers()
    except Unreachable as err:
        print(err, file=sys.stderr)
    while True:
        try:
            line = prompt.prompt(PROMPT)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            run_line(session, state, line, confirm)
        except LeaveShell:
            break
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
    return 0


def run_shell(session: Session) -> int:
    try:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return interactive(session)
        return run_lines(session, sys.stdin)
    finally:
        session.close()
