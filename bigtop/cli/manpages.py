"""Man pages for bigtop's five commands, written from their own argparse
parsers: a page says what ``--help`` says, so the two cannot disagree.

``python -m bigtop.cli.manpages OUTDIR`` (``make man``) writes
``OUTDIR/bigtopd.1``, ``bigtopctl.1`` (with every command of its table),
``bigtop-top.1``, ``bigtop-web.1`` and ``bigtop-wsgi.1``; read one with
``man -l man/bigtopctl.1``. What a parser does not say (the environment,
the files, bigtopd's exit statuses) is in the tables below. The roff is
plain man(7), written here: no dependency.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__

Entries = tuple[tuple[str, str], ...]  # (term, what it is)


@dataclass(frozen=True)
class Page:
    name: str
    parser: Callable[[], argparse.ArgumentParser]
    docstring: str | None = None  # the module's, for its "Exit status:" paragraph
    signals: Entries = ()
    exit_status: Entries = ()
    environment: Entries = ()
    files: Entries = ()
    see_also: tuple[str, ...] = ()
    commands: bool = False  # bigtopctl: its command table
    docs: tuple[str, ...] = ()  # pages of docs/ in the source


RUNDIR = ("$BIGTOP_RUNTIME_DIR if set, else /run/bigtop for root, $XDG_RUNTIME_DIR/bigtop for "
          "other users (/tmp/bigtop-UID without it)")
RUNTIME_ENV = (
    ("BIGTOP_RUNTIME_DIR", "The directory of the default ipc:// control, events and statistics "
                           "sockets (RUNDIR): " + RUNDIR + "."),
    ("XDG_RUNTIME_DIR", "Where RUNDIR is for a user other than root, without "
                        "$BIGTOP_RUNTIME_DIR."),
)
CLIENT_ENV = (
    ("BIGTOPCTL_ENDPOINT", "The daemon's control endpoint, when --endpoint is not given "
                           "(then $CIRCUSCTL_ENDPOINT, then ipc://RUNDIR/control.sock)."),
    ("CIRCUSCTL_ENDPOINT", "Read after $BIGTOPCTL_ENDPOINT, as circusctl does."),
    ("BIGTOPCTL_KEY", "This client's CurveZMQ secret key file, for tcp:// endpoints."),
    ("BIGTOPCTL_SERVER_KEY", "The daemon's CurveZMQ public key file, for tcp:// endpoints."),
    ("BIGTOPCTL_PUBSUB_ENDPOINT", "The events endpoint (otherwise asked from the daemon)."),
    *RUNTIME_ENV,
)
SOCKETS = (("RUNDIR/control.sock", "The daemon's default control endpoint (ipc://)."),
           ("RUNDIR/events.sock", "Its default events endpoint."),
           ("RUNDIR/stats.sock", "Its default statistics endpoint."))


def _bigtopd() -> argparse.ArgumentParser:
    from .bigtopd import build_parser

    return build_parser()


def _bigtopctl() -> argparse.ArgumentParser:
    from .dispatch import top_parser

    return top_parser()


def _top() -> argparse.ArgumentParser:
    from .top import parser

    return parser()


def _web() -> argparse.ArgumentParser:
    from ..web.cli import parser

    return parser()


def _wsgi() -> argparse.ArgumentParser:
    from ..wsgi.cli import build_parser

    return build_parser()


def _docstring(module: str) -> str | None:
    import importlib

    return importlib.import_module(module).__doc__


PAGES = (
    Page("bigtopd", _bigtopd,
         signals=(
             ("SIGTERM, SIGINT", "Stop every watcher, in stop order (each process gets its "
                                 "stop_signal, then SIGKILL after its graceful_timeout), then "
                                 "exit with status 0. A second SIGINT, or a third SIGTERM, "
                                 "kills every process at once."),
             ("SIGHUP", "Read the configuration file again and apply the difference; a "
                        "file that is not valid is refused, and nothing changes."),
             ("SIGUSR2", "Upgrade, as bigtopctl upgrade: re-execute the daemon's program, "
                         "keeping every process, socket and pipe."),
         ),
         exit_status=(
             ("0", "Stopped after SIGTERM, SIGINT or the quit command, every process stopped "
                   "first; also --check on a valid configuration."),
             ("1", "A fatal error: the control endpoints cannot be bound (another bigtopd, a "
                   "runtime directory that is not its own), a socket cannot be bound, the log "
                   "or the pidfile cannot be written; nothing is started. Also an unexpected "
                   "error, after every process was stopped."),
             ("2", "The configuration is invalid (nothing is started), or the command line."),
             ("70", "After an upgrade, the new program could not take over the state it was "
                    "handed."),
         ),
         environment=(
             *RUNTIME_ENV,
             ("XDG_STATE_HOME", "With --daemon, for a user other than root: the output of "
                                "watchers without a stream goes to "
                                "$XDG_STATE_HOME/bigtop/log (default ~/.local/state)."),
         ),
         files=(*SOCKETS,
                ("/var/log/bigtop", "With --daemon, as root: the output of watchers without a "
                                    "stream ([circus] log_dir).")),
         see_also=("bigtopctl", "bigtop-top", "bigtop-web", "bigtop-wsgi"),
         docs=("config.md", "protocol.md", "upgrade.md", "containers.md", "faults.md")),
    Page("bigtopctl", _bigtopctl, commands=True,
         environment=CLIENT_ENV,
         files=(SOCKETS[0],
                ("$XDG_DATA_HOME/bigtop/history", "The interactive shell's history (default "
                                                  "~/.local/share/bigtop/history).")),
         see_also=("bigtopd", "bigtop-top", "bigtop-web"),
         docs=("protocol.md", "migrating.md")),
    Page("bigtop-top", _top,
         environment=CLIENT_ENV,
         see_also=("bigtopd", "bigtopctl", "bigtop-web"),
         docs=("top.md",)),
    Page("bigtop-web", _web,
         environment=(
             ("BIGTOP_WEB_TOKEN", "The login token, instead of the token file."),
             ("XDG_CONFIG_HOME", "Where the token file is by default: "
                                 "$XDG_CONFIG_HOME/bigtop/web-token."),
             *(entry for entry in CLIENT_ENV if entry[0] != "BIGTOPCTL_PUBSUB_ENDPOINT"),
         ),
         files=(("~/.config/bigtop/web-token", "The login token, made at the first start "
                                               "(--token-file)."),),
         see_also=("bigtopd", "bigtopctl", "bigtop-top"),
         docs=("web.md",)),
    Page("bigtop-wsgi", _wsgi, docstring="bigtop.wsgi.cli",
         environment=(
             ("LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES", "Socket activation: the sockets "
                                                        "passed, without --fd or --host/--port."),
             ("NOTIFY_SOCKET", "Where the server says READY=1 once it accepts connections "
                               "(bigtopd's ready = notify, or systemd)."),
         ),
         see_also=("bigtopd",),
         docs=("wsgi.md",)),
)


# -- roff ---------------------------------------------------------------------

def roff(text: str) -> str:
    """Text as roff reads it literally: backslashes and hyphens escaped
    (a hyphen-minus as ``\\-``, what a command line types), anything
    beyond ASCII by its code point, no line taken for a request."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    out = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in out)
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line
                     for line in out.split("\n"))


def bold(text: str) -> str:
    return f"\\fB{roff(text)}\\fR"


def italic(text: str) -> str:
    return f"\\fI{roff(text)}\\fR"


def words(text: str) -> str:
    """One filled paragraph's text."""
    return roff(" ".join(text.split()))


def paragraphs(text: str | None) -> list[str]:
    if not text:
        return []
    return [p for p in re.split(r"\n\s*\n", text.strip("\n")) if p.strip()]


def block(paragraph: str) -> list[str]:
    """A paragraph of a description or an epilog: filled, or kept as laid
    out when it is (indented lines: a table of keys)."""
    lines = paragraph.rstrip().split("\n")
    if any(line[:1].isspace() for line in lines):
        import textwrap

        return [".PP", ".nf", *(roff(line) for line in textwrap.dedent(paragraph).split("\n")),
                ".fi"]
    return [".PP", words(paragraph)]


# -- from a parser --------------------------------------------------------------

def visible(actions: Iterable[argparse.Action]) -> list[argparse.Action]:
    return [a for a in actions if a.help != argparse.SUPPRESS]


def metavar(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """What follows an option (``SECONDS``, ``{toml,ini}``), or a
    positional's own name, as --help writes it; "" for a switch."""
    formatter = parser._get_formatter()
    if action.option_strings:
        if action.nargs == 0:
            return ""
        return formatter._format_args(action, action.dest.upper())
    return formatter._format_args(action, action.dest)


def help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def usage_item(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """One action in a synopsis: ``[--to {toml,ini}]``, ``config``."""
    after = metavar(parser, action)
    if not action.option_strings:
        return italic(after)
    item = bold(action.option_strings[0])
    if after:
        item += "\\ " + "\\ ".join(italic(part) for part in after.split(" "))
    return item if action.required else f"[{item}]"


def synopsis(parser: argparse.ArgumentParser, prog: str, skip_help: bool = False) -> str:
    """The usage line: the parser's own when it sets one, else built from
    its actions, options first as argparse orders them."""
    if parser.usage:
        usage = " ".join((parser.usage % {"prog": prog}).split())
        rest = usage[len(prog):] if usage.startswith(prog) else " " + usage
        return bold(prog) + roff(rest)
    actions = [a for a in visible(parser._actions)
               if not (skip_help and isinstance(a, argparse._HelpAction))]
    items = [usage_item(parser, a) for a in actions if a.option_strings]
    items += [usage_item(parser, a) for a in actions if not a.option_strings]
    return " ".join([bold(prog), *items])


def option_entry(parser: argparse.ArgumentParser, action: argparse.Action) -> list[str]:
    """An option (or a positional that has a help) as --help lists it."""
    said = help_of(parser, action)
    if action.option_strings:
        tag = ", ".join(bold(flag) for flag in action.option_strings)
        after = metavar(parser, action)
        if after:
            tag += " " + italic(after)
    elif said:
        (name,) = parser._get_formatter()._metavar_formatter(action, action.dest)(1)
        tag = italic(name)
    else:  # in the synopsis, and nothing to say of it
        return []
    return [".TP", tag, words(said) or "\\&"]


GENERIC_GROUPS = ("positional arguments", "options", "optional arguments")


def options_section(parser: argparse.ArgumentParser, skip_help: bool = False) -> list[str]:
    """Every visible action, group by group as --help shows them."""
    out: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in visible(group._group_actions)
                   if not (skip_help and isinstance(a, argparse._HelpAction))]
        if not actions:
            continue
        if group.title not in GENERIC_GROUPS and group.title:
            out.append(f'.SS "{roff(group.title.capitalize())}"')
            if group.description:
                out += [words(group.description)]
        for action in actions:
            out += option_entry(parser, action)
    return out


def commands_section() -> list[str]:
    """bigtopctl's command table: each command's usage, summary and options."""
    from .ctlcommands import COMMANDS, GROUPS

    out: list[str] = []
    for group, title in GROUPS:
        specs = [spec for spec in COMMANDS.values() if spec.group == group]
        if not specs:
            continue
        out.append(f'.SS "{roff(title)}"')
        for spec in specs:
            parser = spec.parser()
            out += [".TP", synopsis(parser, f"bigtopctl {spec.name}", skip_help=True),
                    words(spec.summary)]
            entries = options_section(parser, skip_help=True)
            entries = [line for line in entries if not line.startswith(".SS")]
            if parser.epilog:
                entries += [".PP", words(parser.epilog)]
            if entries:
                out += [".RS", *entries, ".RE"]
    return out


def short_description(parser: argparse.ArgumentParser) -> str:
    """The NAME line's: the description's first sentence, to its colon."""
    text = " ".join((parser.description or "").split())
    first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".")
    first = first.split(": ", 1)[0].split(" (", 1)[0]
    if len(first) > 1 and first[1].islower():
        first = first[0].lower() + first[1:]
    return first


def exit_paragraphs(*texts: str | None) -> tuple[list[str], list[str]]:
    """(the paragraphs that say the exit status, those that do not), of the
    first text; the later texts give only the former."""
    said: list[str] = []
    rest: list[str] = []
    for index, text in enumerate(texts):
        for paragraph in paragraphs(text):
            if paragraph.lstrip().lower().startswith("exit status"):
                said.append(re.sub(r"^\s*exit status:?\s*", "", paragraph,
                                   flags=re.I).replace("``", ""))
            elif index == 0:
                rest.append(paragraph)
    return said, rest


def entries(items: Entries, bold_terms: bool = True) -> list[str]:
    out: list[str] = []
    for term, what in items:
        out += [".TP", bold(term) if bold_terms else italic(term), words(what)]
    return out


def page_date() -> str:
    """SOURCE_DATE_EPOCH's date when set (reproducible builds), else today's."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = int(epoch) if epoch and epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%d", time.gmtime(stamp))


def render(page: Page) -> str:
    parser = page.parser()
    prog = page.name
    epilog = parser.epilog or ""
    if page.commands:  # the table is the COMMANDS section
        from .ctlcommands import summary_lines

        epilog = epilog.replace(summary_lines(), "")
    docstring = _docstring(page.docstring) if page.docstring else None
    said, notes = exit_paragraphs(epilog, docstring)
    lines = [
        f'.\\" {prog}(1): generated by python -m bigtop.cli.manpages from its parser;',
        '.\\" edit the parser (or bigtop/cli/manpages.py), not this file.',
        f'.TH "{prog.upper()}" "1" "{page_date()}" "bigtop {roff(__version__)}" '
        '"bigtop manual"',
        ".nh", ".ad l",
        ".SH NAME", f"{roff(prog)} \\- {words(short_description(parser))}",
        ".SH SYNOPSIS", synopsis(parser, prog),
        ".SH DESCRIPTION",
    ]
    for paragraph in [*paragraphs(parser.description), *notes]:
        lines += block(paragraph)
    lines += [".SH OPTIONS", *options_section(parser)]
    if page.commands:
        lines += [".SH COMMANDS", ".PP",
                  bold("bigtopctl help COMMAND") + " shows a command's usage.",
                  *commands_section()]
    if page.signals:
        lines += [".SH SIGNALS", *entries(page.signals)]
    if said or page.exit_status:
        lines.append(".SH EXIT STATUS")
        for paragraph in said:
            lines += [".PP", words(paragraph)]
        lines += entries(page.exit_status)
    if page.environment:
        lines += [".SH ENVIRONMENT", *entries(page.environment)]
    if page.files:
        lines += [".SH FILES", *entries(page.files, bold_terms=False)]
    lines.append(".SH SEE ALSO")
    refs = [f"{bold(name)}(1)" for name in page.see_also]
    lines.append(",\n".join(refs) if refs else "\\&")
    if page.docs:
        lines += [".PP", "In bigtop's source: " + ", ".join(italic(f"docs/{d}") for d in page.docs)
                  + "."]
    return "\n".join(lines) + "\n"


def write_all(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for page in PAGES:
        path = outdir / f"{page.name}.1"
        path.write_text(render(page), encoding="ascii")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bigtop.cli.manpages",
        description="Write the man pages of bigtopd, bigtopctl, bigtop-top, bigtop-web and "
                    "bigtop-wsgi, from their parsers.")
    parser.add_argument("outdir", metavar="OUTDIR", help="where to write NAME.1")
    args = parser.parse_args(argv)
    for path in write_all(Path(args.outdir)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
