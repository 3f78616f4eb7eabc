"""bigtopctl's command table: each command's arguments, and how they become
the properties of a request.

One table serves the one-shot command line, the interactive shell, ``help``
and the generated shell-completion scripts, so they cannot disagree. This
module imports nothing heavy: ``bigtopctl --help`` and completion run
without ZeroMQ or rich.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from typing import Any, NoReturn

Props = dict[str, Any]
PropsBuilder = Callable[[argparse.Namespace], Props]


class UsageError(Exception):
    """Bad arguments; ``parser`` knows the usage line to print with it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser
        self.message = message

    def report(self, prog: str | None = None) -> str:
        return f"{self.parser.format_usage()}{prog or self.parser.prog}: error: {self.message}\n"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of exiting, so the
    shell can report a bad line and carry on."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


# -- global options ----------------------------------------------------------

def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text!r}")
    return value


class GlobalOption:
    def __init__(self, flag: str, metavar: str | None, help: str,
                 type: Callable[[str], Any] | None = None):
        self.flag = flag
        self.metavar = metavar  # None: a switch without a value
        self.help = help
        self.type = type


GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption("--endpoint", "ENDPOINT",
                 "the daemon's control endpoint (default: $BIGTOPCTL_ENDPOINT, then "
                 "$CIRCUSCTL_ENDPOINT, then ipc://RUNDIR/control.sock)"),
    GlobalOption("--timeout", "SECONDS", "how long to wait for a reply (default: 5)",
                 non_negative),
    GlobalOption("--json", None, "print the daemon's reply as JSON, as it came"),
    GlobalOption("--key", "FILE",
                 "this client's CurveZMQ secret key (.key_secret) for tcp:// endpoints "
                 "(default: $BIGTOPCTL_KEY)"),
    GlobalOption("--server-key", "FILE",
                 "the daemon's public key (.key) for tcp:// endpoints "
                 "(default: $BIGTOPCTL_SERVER_KEY)"),
    GlobalOption("--pubsub-endpoint", "ENDPOINT",
                 "the events endpoint, for listen and reload progress (default: "
                 "$BIGTOPCTL_PUBSUB_ENDPOINT, else asked from the daemon)"),
    GlobalOption("--nodes", "NODES",
                 "run the command on these cluster nodes, which the daemon at --endpoint "
                 "lists: all, names or globs, LABEL=VALUE, @WATCHER (where a cluster "
                 "watcher runs), several by commas"),
    GlobalOption("--node-timeout", "SECONDS",
                 "with --nodes: how long each node may take to answer (default: 0.5)",
                 non_negative),
)

GLOBAL_DESTS = tuple(o.flag[2:].replace("-", "_") for o in GLOBAL_OPTIONS)


def add_global_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                       hidden: bool) -> None:
    """On a command's parser the global options are hidden and have no
    default, so a value given before the command word is not overwritten."""
    for option in GLOBAL_OPTIONS:
        kwargs: dict[str, Any] = {"help": argparse.SUPPRESS if hidden else option.help}
        if hidden:
            kwargs["default"] = argparse.SUPPRESS
        if option.type is not None:
            kwargs["type"] = option.type
        if option.metavar is None:
            parser.add_argument(option.flag, action="store_true", **kwargs)
        else:
            parser.add_argument(option.flag, metavar=option.metavar, **kwargs)


# -- the table ---------------------------------------------------------------

GROUPS = (
    ("watchers", "Watchers"),
    ("processes", "Processes"),
    ("state", "State and resources"),
    ("options", "Options"),
    ("daemon", "The daemon"),
    ("cluster", "The cluster"),
    ("client", "Client side"),
)


class Spec:
    """One command. Its parser is built on first use (a one-shot run
    builds only the one it runs)."""

    def __init__(self, name: str, summary: str, group: str,
                 define: Callable[[Parser], PropsBuilder | None], watcher: bool = False,
                 option_keys: bool = False, local: bool = False,
                 destructive: Callable[[argparse.Namespace], bool] | None = None):
        self.name = name
        self.summary = summary
        self.group = group
        self.define = define
        # Completion hints: the first positional is a watcher name; the
        # positionals after it are option names (set/get).
        self.watcher = watcher
        self.option_keys = option_keys
        # Client-side commands are not sent to the daemon.
        self.local = local
        # Asks for confirmation in the interactive shell.
        self.destructive = destructive
        self._parser: Parser | None = None
        self._props: PropsBuilder | None = None

    def parser(self) -> Parser:
        if self._parser is None:
            parser = Parser(prog=f"bigtopctl {self.name}", description=self.summary,
                            add_help=True, allow_abbrev=False)
            add_global_options(parser, hidden=True)
            if self.destructive is not None:
                parser.add_argument("-y", "--yes", action="store_true",
                                    help="do not ask for confirmation in the shell")
            self._props = self.define(parser)
            self._parser = parser
        return self._parser

    def parse(self, args: list[str]) -> argparse.Namespace:
        return self.parser().parse_intermixed_args(args)

    def props(self, ns: argparse.Namespace) -> Props:
        self.parser()
        return self._props(ns) if self._props else {}

    def options(self) -> list[str]:
        """The option strings of this command (for completion)."""
        found = []
        for action in self.parser()._actions:
            if action.help == argparse.SUPPRESS:
                continue
            found += [s for s in action.option_strings if s.startswith("--")]
        return found + [o.flag for o in GLOBAL_OPTIONS]

    def choices(self) -> dict[str, list[str]]:
        """Options whose values are a fixed list (for completion)."""
        out = {}
        for action in self.parser()._actions:
            if action.choices and action.option_strings:
                for flag in action.option_strings:
                    out[flag] = [str(c) for c in action.choices]
        return out

    def positional_choices(self) -> list[str]:
        for action in self.parser()._actions:
            if not action.option_strings and action.choices:
                return [str(c) for c in action.choices]
        return []


COMMANDS: dict[str, Spec] = {}


def command(name: str, summary: str, group: str, **hints: Any
            ) -> Callable[[Callable[[Parser], PropsBuilder | None]], Spec]:
    def register(define: Callable[[Parser], PropsBuilder | None]) -> Spec:
        spec = Spec(name, summary, group, define, **hints)
        COMMANDS[name] = spec
        return spec

    return register


def always(ns: argparse.Namespace) -> bool:
    return True


def without_name(ns: argparse.Namespace) -> bool:
    """Every watcher, without saying ``all``."""
    return getattr(ns, "name", None) is None


EVERY = "all"  # as NAME of start/stop/restart: every watcher, said (as in supervisorctl)


def every_said(ns: argparse.Namespace) -> bool:
    """NAME is ``all`` (with --match, NAME is only ever a name)."""
    return getattr(ns, "name", None) == EVERY and getattr(ns, "match", None) is None


def waiting_flag(p: Parser, default: bool = False) -> None:
    if default:
        p.add_argument("--waiting", action=argparse.BooleanOptionalAction, default=True,
                       help="wait until it is done and show the result (default: wait)")
    else:
        p.add_argument("--waiting", action="store_true",
                       help="reply once it is done, with the result")


def with_waiting(ns: argparse.Namespace, props: Props) -> Props:
    if ns.waiting:
        props["waiting"] = True
    return props


# -- option values -------------------------------------------------------------

def convert_value(key: str, text: str) -> Any:
    """A command-line value as the JSON value the daemon expects: JSON
    objects, lists and strings as written, true/false/yes/no/on/off, null,
    integers and floats; circusctl's ``hooks`` form ``name:callable,...``;
    anything else (and the free-text options of the option table) as text."""
    from ..config import to_bool
    from ..config.options import HOOK_NAMES, TEXT_OPTIONS

    key = key.lower()
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    if key == "hooks":
        hooks = {}
        for item in filter(None, (i.strip() for i in stripped.split(","))):
            hook, sep, target = item.partition(":")
            if not sep or hook not in HOOK_NAMES:
                raise ValueError(f"hooks: expected HOOK:module.callable, with HOOK one of "
                                 f"{', '.join(HOOK_NAMES)}; got {item!r}")
            hooks[hook] = target
        return hooks
    if key in TEXT_OPTIONS:
        return text
    if stripped.lower() == "null":
        return None
    if not stripped.isdigit():  # 1 and 0 are numbers here
        try:
            return to_bool(stripped)
        except ValueError:
            pass
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            continue
    return text


def key_values(p: Parser, pairs: list[str]) -> Props:
    if len(pairs) % 2:
        raise UsageError(p, f"expected KEY VALUE pairs, got an odd number of words: "
                            f"{' '.join(pairs)}")
    out: Props = {}
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        try:
            out[key.lower()] = convert_value(key, value)
        except ValueError as err:
            raise UsageError(p, str(err)) from None
    return out


def signum(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def integer(p: Parser, what: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(p, f"{what} must be an integer, not {text!r}") from None


# -- watchers ------------------------------------------------------------------

@command("add", "add a watcher (CMD with its arguments; use -- before a CMD with options)",
         "watchers")
def _add(p: Parser) -> PropsBuilder:
    p.add_argument("--start", action="store_true", help="start it at once")
    waiting_flag(p)
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a watcher option (repeatable), e.g. -o numprocesses=2")
    p.add_argument("name", metavar="NAME")
    p.add_argument("cmd", nargs="+", metavar="CMD")

    def props(ns: argparse.Namespace) -> Props:
        cmd = ns.cmd[0] if len(ns.cmd) == 1 else shlex.join(ns.cmd)
        out: Props = {"name": ns.name, "cmd": cmd, "start": ns.start}
        if ns.option:
            pairs = []
            for item in ns.option:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise UsageError(p, f"--option expects KEY=VALUE, not {item!r}")
                pairs += [key, value]
            out["options"] = key_values(p, pairs)
        return with_waiting(ns, out)

    return props


@command("rm", "remove a watcher, stopping its processes", "watchers", watcher=True,
         destructive=always)
def _rm(p: Parser) -> PropsBuilder:
    p.add_argument("--nostop", action="store_true", help="leave its processes running")
    waiting_flag(p)
    p.add_argument("name", metavar="NAME")

    def props(ns: argparse.Namespace) -> Props:
        out: Props = {"name": ns.name}
        if ns.nostop:
            out["nostop"] = True
        return with_waiting(ns, out)

    return props


def lifecycle(p: Parser) -> PropsBuilder:
    waiting_flag(p)
    p.add_argument("--match", choices=("simple", "glob", "regex"),
                   help="how NAME selects watchers (default: glob)")
    p.add_argument("name", metavar="NAME", nargs="?",
                   help=f"a watcher, a pattern, or {EVERY} (every watcher; without NAME, "
                        "bigtopctl asks first on a terminal)")

    def props(ns: argparse.Namespace) -> Props:
        out: Props = {}
        if ns.name is not None and not every_said(ns):
            out["name"] = ns.name
        if ns.match:
            if ns.name is None:
                raise UsageError(p, "--match needs a NAME")
            out["match"] = ns.match
        return with_waiting(ns, out)

    return props


command("start", "start watchers (all, or those matching NAME)", "watchers",
        watcher=True)(lifecycle)
command("stop", "stop watchers (all, or those matching NAME)", "watchers", watcher=True,
        destructive=without_name)(lifecycle)
command("restart", "stop then start watchers (all, or those matching NAME)", "watchers",
        watcher=True, destructive=without_name)(lifecycle)


@command("reload", "replace the processes of a watcher (or all), gracefully", "watchers",
         watcher=True)
def _reload(p: Parser) -> PropsBuilder:
    p.add_argument("--rolling", action="store_true",
                   help="one process at a time, each replaced once its successor is ready; "
                        "shows progress")
    p.add_argument("--sequential", action="store_true", help="the same as --rolling")
    p.add_argument("--terminate", action="store_true",
                   help="stop then start (not graceful)")
    waiting_flag(p)
    p.add_argument("name", metavar="NAME", nargs="?", help="default: every watcher")

    def props(ns: argparse.Namespace) -> Props:
        out: Props = {}
        if ns.name is not None:
            out["name"] = ns.name
        out["graceful"] = not ns.terminate
        if ns.sequential or ns.rolling:
            out["sequential"] = True
        if ns.rolling:
            out["rolling"] = True
        return with_waiting(ns, out)

    return props


@command("depends", "the dependency tree, or one watcher's dependencies and dependents",
         "watchers", watcher=True)
def _depends(p: Parser) -> PropsBuilder:
    p.add_argument("name", metavar="NAME", nargs="?")
    return lambda ns: {"name": ns.name} if ns.name else {}


# -- processes ---------------------------------------------------------------

def scale(p: Parser) -> PropsBuilder:
    waiting_flag(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("nb", metavar="NB", nargs="?", help="how many (default: 1)")

    def props(ns: argparse.Namespace) -> Props:
        out: Props = {"name": ns.name}
        if ns.nb is not None:
            out["nb"] = integer(p, "NB", ns.nb)
            if out["nb"] < 0:
                raise UsageError(p, "NB must not be negative")
        return with_waiting(ns, out)

    return props


command("incr", "add NB processes to a watcher (default 1)", "processes", watcher=True)(scale)
command("decr", "remove NB processes from a watcher (default 1)", "processes",
        watcher=True)(scale)


@command("signal", "send a signal to a watcher's processes, or to one (PID)", "processes",
         watcher=True)
def _signal(p: Parser) -> PropsBuilder:
    p.usage = ("bigtopctl signal [-h] [--children] [--recursive] [--childpid PID] "
               "NAME [PID] SIGNUM")
    p.add_argument("--children", action="store_true", help="also their direct children")
    p.add_argument("--recursive", action="store_true", help="also all their descendants")
    p.add_argument("--childpid", metavar="PID", help="only this child of PID")
    p.add_argument("name", metavar="NAME")
    p.add_argument("args", nargs="+", metavar="[PID] SIGNUM",
                   help="an optional pid, then a signal: a number, HUP or SIGHUP")

    def props(ns: argparse.Namespace) -> Props:
        if len(ns.args) > 2:
            raise UsageError(p, "expected NAME [PID] SIGNUM")
        out: Props = {"name": ns.name, "signum": signum(ns.args[-1])}
        if len(ns.args) == 2:
            out["pid"] = integer(p, "PID", ns.args[0])
        if ns.childpid is not None:
            if len(ns.args) != 2:
                raise UsageError(p, "--childpid needs a PID")
            out["childpid"] = integer(p, "--childpid", ns.childpid)
        if ns.children:
            out["children"] = True
        if ns.recursive:
            out["recursive"] = True
        return out

    return props


@command("kill", "stop a watcher's processes (or one) now; they are replaced", "processes",
         watcher=True)
def _kill(p: Parser) -> PropsBuilder:
    p.add_argument("--signum", metavar="SIGNAL", help="default: the watcher's stop_signal")
    p.add_argument("--graceful-timeout", "--graceful_timeout", dest="graceful_timeout",
                   type=non_negative, metavar="SECONDS",
                   help="before SIGKILL (default: the watcher's graceful_timeout)")
    waiting_flag(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("pid", metavar="PID", nargs="?")

    def props(ns: argparse.Namespace) -> Props:
        out: Props = {"name": ns.name}
        if ns.pid is not None:
            out["pid"] = integer(p, "PID", ns.pid)
        if ns.signum is not None:
            out["signum"] = signum(ns.signum)
        if ns.graceful_timeout is not None:
            out["graceful_timeout"] = ns.graceful_timeout
        return with_waiting(ns, out)

    return props


# -- state and resources --------------------------------------------------------

@command("status", "the state of every watcher, or of one", "state", watcher=True)
def _status(p: Parser) -> PropsBuilder:
    p.add_argument("name", metavar="NAME", nargs="?")
    # details: bigtop's processes, uptime, restarts and last exit (a Circus
    # daemon ignores it).
    return lambda ns: {"name": ns.name, "details": True} if ns.name else {"details": True}


@command("list", "watcher names, or the pids of one watcher", "state", watcher=True)
def _list(p: Parser) -> PropsBuilder:
    p.add_argument("name", metavar="NAME", nargs="?")
    return lambda ns: {"name": ns.name} if ns.name else {}


@command("stats", "CPU, memory and age of processes (all, a watcher's, or one)", "state",
         watcher=True)
def _stats(p: Parser) -> PropsBuilder:
    p.add_argument("--extended", action="store_true",
                   help="more columns: user, nice, vms, threads, fds")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("pid", metavar="PID", nargs="?")

    def props(ns: argparse.Namespace) -> Props:
        out: Props = {}
        if ns.name:
            out["name"] = ns.name
        if ns.pid is not None:
            out["process"] = integer(p, "PID", ns.pid)
        if ns.extended:
            out["extended"] = True
        return out

    return props


@command("dstats", "CPU and memory of the daemon itself", "state")
def _dstats(p: Parser) -> None:
    return None


@command("numprocesses", "how many processes run (in all watchers, or in one)", "state",
         watcher=True)
def _numprocesses(p: Parser) -> PropsBuilder:
    p.add_argument("name", metavar="NAME", nargs="?")
    return lambda ns: {"name": ns.name} if ns.name else {}


@command("numwatchers", "how many watchers there are", "state")
def _numwatchers(p: Parser) -> None:
    return None


@command("listsockets", "the sockets the daemon holds", "state")
def _listsockets(p: Parser) -> None:
    return None


LOG_LINES = 20  # what `logs` shows of each watcher by default
LOG_LINES_SINCE = 10_000  # with --since: every line since, as many as the daemon gives


@command("logs", "the last output lines of watchers, or of all (-f: then follow)",
         "state", watcher=True)
def _logs(p: Parser) -> PropsBuilder:
    p.add_argument("-n", "--lines", metavar="N",
                   help=f"how many lines per watcher (default: {LOG_LINES}; with --since, "
                        f"every line since, up to {LOG_LINES_SINCE})")
    p.add_argument("-f", "--follow", action="store_true",
                   help="then print new lines as the processes write them (Ctrl-C to stop)")
    p.add_argument("--since", metavar="TIME",
                   help="only lines written since TIME: a time ago (30s, 10m, 2h, 1d, 1h30m), "
                        "an ISO time (2026-11-27T10:00:00, local time unless it has an "
                        "offset) or Unix seconds")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--stdout", dest="only", action="store_const", const="stdout",
                      help="standard output only")
    only.add_argument("--stderr", dest="only", action="store_const", const="stderr",
                      help="standard error only")
    p.add_argument("names", metavar="WATCHER", nargs="*", help="whose lines (default: all)")
    p.epilog = ("Lines read back from a file that does not record their process show as "
                "WATCHER | LINE. With --json (a global option): one JSON object a line, "
                "time, watcher, pid, wid, stream, line (null where a file does not say).")
    # bigtopctl.execute hands every `logs` to ctlevents.follow_logs, which
    # prints the lines itself (--json: one object a line), then follows.

    def props(ns: argparse.Namespace) -> Props:
        since = None
        if ns.since is not None:
            try:
                since = since_time(ns.since)
            except ValueError as err:
                raise UsageError(p, str(err)) from None
        if ns.lines is not None:
            lines = integer(p, "-n", ns.lines)
            if lines < 0:
                raise UsageError(p, f"-n must be 0 or more, not {lines}")
        else:
            lines = LOG_LINES if since is None else LOG_LINES_SINCE
        out: Props = {"lines": lines}
        if len(ns.names) == 1:
            out["name"] = ns.names[0]
        elif ns.names:
            out["name"] = ns.names
        if ns.only:
            out["stream"] = ns.only
        if since is not None:
            out["since"] = since
        return out

    return props


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_time(text: str, now: float | None = None) -> float:
    """``--since``: a time ago (30s, 10m, 2h, 1d, 1w, or together: 1h30m),
    an ISO 8601 time (local time unless it has an offset or Z) or Unix
    seconds; the Unix time it means. ValueError says what is accepted."""
    import math
    import re
    import time
    from datetime import datetime

    word = text.strip().lower()
    if re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", word):
        ago = sum(float(amount) * DURATION_UNITS[unit]
                  for amount, unit in re.findall(r"(\d+(?:\.\d+)?)([smhdw])", word))
        return (time.time() if now is None else now) - ago
    if re.fullmatch(r"\d+(?:\.\d*)?", word):
        seconds = float(word)
        if math.isfinite(seconds):
            return seconds
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        pass
    raise ValueError(f"--since: expected a time ago (30s, 10m, 2h, 1d), an ISO time "
                     f"(2026-11-27T10:00:00) or Unix seconds, not {text!r}")


# -- options --------------------------------------------------------------------

@command("options", "every option of a watcher", "options", watcher=True)
def _options(p: Parser) -> PropsBuilder:
    p.add_argument("name", metavar="NAME")
    return lambda ns: {"name": ns.name}


@command("get", "some options of a watcher", "options", watcher=True, option_keys=True)
def _get(p: Parser) -> PropsBuilder:
    p.add_argument("name", metavar="NAME")
    p.add_argument("keys", nargs="+", metavar="KEY")
    return lambda ns: {"name": ns.name, "keys": ns.keys}


@command("set", "change options of a watcher: set NAME KEY VALUE [KEY VALUE ...]", "options",
         watcher=True, option_keys=True)
def _set(p: Parser) -> PropsBuilder:
    waiting_flag(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("pairs", nargs="+", metavar="KEY VALUE",
                   help="values are read as JSON, numbers, true/false or text")

    def props(ns: argparse.Namespace) -> Props:
        return with_waiting(ns, {"name": ns.name, "options": key_values(p, ns.pairs)})

    return props


@command("globaloptions", "the daemon's options, or one", "options")
def _globaloptions(p: Parser) -> PropsBuilder:
    p.add_argument("option", metavar="OPTION", nargs="?")
    return lambda ns: {"option": ns.option} if ns.option else {}


# -- the daemon -----------------------------------------------------------------

@command("reloadconfig", "read the configuration file again and apply the difference",
         "daemon")
def _reloadconfig(p: Parser) -> PropsBuilder:
    waiting_flag(p, default=True)
    return lambda ns: with_waiting(ns, {})


@command("history", "the last actions taken on the daemon: who, from where, what, the reply",
         "daemon")
def _history(p: Parser) -> PropsBuilder:
    p.add_argument("-n", "--limit", type=int, default=20, metavar="N",
                   help="how many (default: 20; the daemon keeps the last 1000)")
    return lambda ns: {"limit": ns.limit}


@command("save", "keep what add, rm, set, incr and decr changed across restarts (in "
         "CONFIG.saved.toml)", "daemon")
def _save(p: Parser) -> None:
    return None


@command("diff", "what the daemon runs that its configuration file does not say, and "
         "whether it is saved", "daemon")
def _diff(p: Parser) -> None:
    return None


@command("quit", "stop every watcher, then the daemon", "daemon", destructive=always)
def _quit(p: Parser) -> PropsBuilder:
    waiting_flag(p)
    return lambda ns: with_waiting(ns, {})


@command("upgrade", "re-execute the daemon (a new version, if installed), keeping every "
         "process, socket and pipe", "daemon")
def _upgrade(p: Parser) -> None:
    return None


@command("version", "the versions of the daemon and of bigtopctl", "daemon")
def _version(p: Parser) -> None:
    return None


# -- the cluster ----------------------------------------------------------------

CLUSTER_ACTIONS = ("nodes", "apply", "rm", "placement", "forget")


@command("cluster", "the cluster: nodes | apply FILE | rm NAME... | placement | forget NODE",
         "cluster")
def _cluster(p: Parser) -> PropsBuilder:
    p.add_argument("action", choices=CLUSTER_ACTIONS,
                   help="nodes: the nodes and the leader; apply FILE: store the cluster "
                        "watchers FILE declares (- reads stdin); rm NAME...: remove cluster "
                        "watchers; placement: where each runs; forget NODE: drop a node that "
                        "is down from the list")
    p.add_argument("args", nargs="*", metavar="ARG")

    def props(ns: argparse.Namespace) -> Props:
        if ns.action == "apply":
            if len(ns.args) != 1:
                p.error("cluster apply takes one FILE")
            return {"text": read_file(p, ns.args[0]), "file": ns.args[0]}
        if ns.action == "rm":
            if not ns.args:
                p.error("cluster rm takes the NAMEs of cluster watchers")
            return {"names": ns.args}
        if ns.action == "forget":
            if len(ns.args) != 1:
                p.error("cluster forget takes one NODE")
            return {"name": ns.args[0]}
        if ns.args:
            p.error(f"cluster {ns.action} takes no argument")
        return {}

    return props


def read_file(p: Parser, path: str) -> str:
    import sys

    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read(4 * 1024 * 1024 + 1)
    except (OSError, UnicodeDecodeError) as err:
        p.error(f"cannot read {path}: {getattr(err, 'strerror', None) or err}")


def wire_command(spec: Spec, ns: argparse.Namespace) -> str:
    """The daemon's command a parsed line sends (``cluster nodes``: cluster_nodes)."""
    return f"cluster_{ns.action}" if spec.name == "cluster" else spec.name


# -- client side ----------------------------------------------------------------

@command("listen", "print the daemon's events as they come (Ctrl-C to stop)", "client",
         local=True)
def _listen(p: Parser) -> None:
    p.add_argument("-n", "--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("topics", nargs="*", metavar="TOPIC",
                   help="topic prefixes, e.g. watcher.web. (a bare watcher name means "
                        "watcher.NAME.; default: everything)")


@command("keygen", "write a CurveZMQ key pair for tcp:// endpoints", "client", local=True)
def _keygen(p: Parser) -> None:
    p.add_argument("--dir", default=".", metavar="DIR",
                   help="where to write NAME.key and NAME.key_secret (default: .)")
    p.add_argument("name", metavar="NAME")


@command("completion", "print a completion script: completion bash|zsh|fish", "client",
         local=True)
def _completion(p: Parser) -> None:
    p.add_argument("shell", choices=("bash", "zsh", "fish"))


@command("startup", "print a systemd unit that starts bigtopd on CONFIG at boot (--install)",
         "client", local=True)
def _startup(p: Parser) -> None:
    from .startup import arguments

    arguments(p)


@command("shell", "the interactive shell (also: bigtopctl with no command)", "client",
         local=True)
def _shell(p: Parser) -> None:
    return None


@command("help", "list the commands, or show one's usage", "client", local=True)
def _help(p: Parser) -> None:
    p.add_argument("topic", metavar="COMMAND", nargs="?")


def summary_lines(width: int = 14) -> str:
    lines = []
    for group, title in GROUPS:
        lines.append(f"{title}:")
        for spec in COMMANDS.values():
            if spec.group == group:
                lines.append(f"  {spec.name:<{width}} {spec.summary}")
        lines.append("")
    return "\n".join(lines).rstrip()
