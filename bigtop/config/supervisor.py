"""supervisord's configuration files, read as bigtop's raw sections.

``bigtopd /etc/supervisor/supervisord.conf`` runs what supervisord would.
This module reads supervisord's dialect (configparser's rules, its
``%(name)s`` expansions, ``[include] files =``), keeping the file and line
of every key, and writes each program's processes as ``[watcher:NAME]``
sections of bigtop INI value strings, which build.py checks and converts
like those of any other file. What bigtop has no equivalent for is said in
a warning, never dropped silently.
"""

from __future__ import annotations

import difflib
import glob
import os
import pwd
import re
import resource
import string
from collections.abc import Callable, Mapping
from socket import SOMAXCONN
from typing import Any

from .bounds import MAX_PROCESSES
from .convert import non_negative, signal_name, to_bool, to_exit_codes, to_int, to_octal
from .convert import to_signal as to_signal_number
from .errors import Problem
from .names import name_problem
from .raw import RawSection, RawValue, merge, read_text

AUTO, NONE, SYSLOG = "auto", ("none", "off"), "syslog"

# Each supervisord key: (its default, what it becomes in bigtop).
PROGRAM: dict[str, tuple[str | None, str]] = {
    "command": (None, "cmd"),
    "process_name": ("%(program_name)s", "the watcher's name"),
    "numprocs": ("1", "numprocesses, or one watcher per process (see process_num)"),
    "numprocs_start": ("0", "the first %(process_num)"),
    "priority": ("999", "priority, negated: supervisord starts lower first, bigtop higher"),
    "autostart": ("true", "autostart"),
    "autorestart": ("unexpected", "restart: true always, false never, unexpected on-failure"),
    "exitcodes": ("0", "success_exit_codes"),
    "startsecs": ("1", "backoff_reset"),
    "startretries": ("3", "max_retry"),
    "stopsignal": ("TERM", "stop_signal"),
    "stopwaitsecs": ("10", "graceful_timeout"),
    "stopasgroup": ("false", "accepted: bigtop always stops the whole process tree"),
    "killasgroup": (None, "accepted: bigtop always stops the whole process tree"),
    "user": (None, "uid"),
    "directory": (None, "working_dir"),
    "umask": (None, "umask"),
    "environment": ("", "env, over SUPERVISOR_ENABLED/PROCESS_NAME/GROUP_NAME; copy_env"),
    "redirect_stderr": ("false", "stderr_stream: where stdout goes"),
    "serverurl": (None, "a warning: there is no XML-RPC server"),
} | {f"{stream}_{key}": value for stream in ("stdout", "stderr") for key, value in {
    "logfile": ("AUTO", "X_stream = FileStream, or close_child_X with NONE"),
    "logfile_maxbytes": ("50MB", "X_stream.max_bytes"),
    "logfile_backups": ("10", "X_stream.backup_count"),
    "capture_maxbytes": ("0", "a warning: no capture mode"),
    "events_enabled": ("false", "a warning: output events are stream.* when tailed"),
    "syslog": ("false", "a warning: no syslog stream"),
}.items()}
FCGI = PROGRAM | {
    "socket": (None, "a [socket:NAME] (the program's name), given as stdin_socket"),
    "socket_backlog": (None, "the socket's backlog"),
    "socket_mode": (None, "the socket's umask"),
    "socket_owner": (None, "a warning: bigtop does not chown sockets"),
}
SUPERVISORD: dict[str, tuple[str | None, str]] = {
    "logfile": (None, "logoutput"),
    "loglevel": (None, "loglevel (trace and blather: debug)"),
    "pidfile": (None, "pidfile"),
    "umask": ("022", "umask (when it would daemonize, as supervisord sets it only then)"),
    "environment": ("", "an [env] section, for every program"),
    "childlogdir": (None, "where AUTO log files go"),
    "nodaemon": ("false", "a warning: bigtopd detaches only with --daemon"),
    "user": (None, "uid of the programs without user"),
    "directory": (None, "working_dir of the programs without directory, when daemonizing"),
    "minfds": ("1024", "a warning when the limit is lower"),
    "minprocs": ("200", "a warning when the limit is lower"),
    "logfile_maxbytes": ("50MB", "a warning: bigtopd does not rotate its log"),
    "logfile_backups": ("10", "a warning: bigtopd does not rotate its log"),
    "strip_ansi": ("false", "a warning: output is kept as written"),
    "nocleanup": ("false", "a warning with AUTO log files"),
    "identifier": ("supervisor", "unused"),
    "silent": ("false", "unused: bigtopd logs to logoutput only"),
}
GROUP: dict[str, tuple[str | None, str]] = {
    "programs": ("", "SUPERVISOR_GROUP_NAME and %(group_name)s of these programs"),
    "priority": ("999", "orders the group's programs before their own priority"),
}
INCLUDE: dict[str, tuple[str | None, str]] = {"files": (None, "more files to read")}
KEYS = {"supervisord": SUPERVISORD, "program": PROGRAM, "fcgi-program": FCGI, "group": GROUP,
        "include": INCLUDE}
# Sections read for nothing: what bigtop does instead (one warning each).
EXPLAINED = {
    "unix_http_server": "supervisorctl's socket is not served: bigtopctl drives bigtopd "
                        "over its own private ipc socket ([circus] endpoint)",
    "inet_http_server": "the XML-RPC and web interface is not served: bigtopctl reaches a "
                        "remote bigtopd over tcp:// with CurveZMQ keys, bigtop-web is the "
                        "web console",
    "supervisorctl": "read by supervisorctl only: use bigtopctl",
    "rpcinterface": "XML-RPC interfaces are not loaded: bigtop's control protocol and "
                    "plugins ([plugin:NAME]) take their place",
    "eventlistener": "not run: bigtop has no event listener protocol; follow the events "
                     "endpoint (bigtopctl listen, the client's Subscriber) or write a plugin",
    "ctlplugin": "supervisorctl plugins are not loaded: bigtopctl has its own commands",
}
NAMED = ("program", "fcgi-program", "group", "eventlistener", "rpcinterface", "ctlplugin")
SECTION_KINDS = (*KEYS, *EXPLAINED)
# Keys expanded once per process (they see %(process_num)d, %(numprocs)d
# and the program's environment as %(ENV_X)s).
PER_PROCESS = {"command", "directory", "process_name"} | {
    f"{s}_{k}" for s in ("stdout", "stderr")
    for k in ("logfile", "logfile_maxbytes", "logfile_backups", "syslog")}


# -- reading, with configparser's rules -------------------------------------

_HEADER = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(r"(?P<key>.*?)\s*[=:]\s*(?P<value>.*)$")


def _comment_start(line: str) -> int | None:
    """Where a comment starts: a line starting with ``;`` or ``#``, or one of
    them after white space (configparser looks at the first occurrence of
    each, then the second of each, and so on, until one counts)."""
    if line.strip().startswith((";", "#")):
        return 0
    last = {";": -1, "#": -1}
    while last:
        hits, found = [], {}
        for prefix, index in last.items():
            index = line.find(prefix, index + 1)
            if index >= 0:
                found[prefix] = index
                if index == 0 or line[index - 1].isspace():
                    hits.append(index)
        if hits:
            return min(hits)
        last = found
    return None


def parse(text: str, file: str) -> tuple[list[RawSection], list[Problem], list[str]]:
    """One file's sections (kind and name as supervisord's: ``program``,
    ``web``), keys in lower case; a continuation line is indented more than
    its key's line."""
    sections: list[RawSection] = []
    problems: list[Problem] = []
    warnings: list[str] = []
    current: RawSection | None = None
    last: RawValue | None = None
    indent = blank = 0
    for number, line in enumerate(text.splitlines(), start=1):
        cut = _comment_start(line)
        value = (line if cut is None else line[:cut]).strip()
        if not value:  # blank and comment lines do not end a value
            blank += cut is None  # a blank line inside a value is kept
            continue
        level = len(line) - len(line.lstrip())
        if last is not None and level > indent:
            last.value += "\n" * (blank + 1) + value
            blank = 0
            continue
        indent, last, blank = level, None, 0
        header = _HEADER.match(value)
        if header:
            kind, _, name = (p.strip() for p in header.group("header").partition(":"))
            current = RawSection(kind, name, file, number)
            sections.append(current)
            continue
        option = _OPTION.match(value)
        if current is None:
            problems.append(Problem("option before any section header such as [supervisord]",
                                    file, number))
        elif not option or not option.group("key").strip():
            problems.append(Problem(f"expected 'key = value', got {value!r}", file, number,
                                    current.title))
        else:
            key = option.group("key").strip().lower()
            if key in current.values:
                warnings.append(str(Problem(f"given twice; line {current.values[key].line} is "
                                            "overridden", file, number, current.title, key)))
            last = current.values[key] = RawValue(option.group("value"), file, number)
    return sections, problems, warnings


# -- expansions and values --------------------------------------------------

_FORMAT = re.compile(r"%(?:(%)|\(([^)]*)\)([#0 +\-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa])|)")


def expand(text: str, names: Mapping[str, Any]) -> str:
    """supervisord's ``%(name)s`` expansion (Python's %-formatting over a
    mapping); ``%%`` is a literal %."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return "%"
        name, spec = match.group(2), match.group(3)
        if name is None:
            raise ValueError("a % must be written %% or start %(NAME)s")
        if name not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f" (did you mean %({close[0]})?)" if close else ""
            known = ", ".join(sorted(n for n in names if not n.startswith("ENV_")))
            raise ValueError(f"%({name}) cannot be expanded{hint}; names are {known} and "
                             "ENV_X for each environment variable X")
        try:
            return ("%" + spec) % (names[name],)
        except (TypeError, ValueError) as err:
            raise ValueError(f"%({name}){spec}: {err}") from None

    return _FORMAT.sub(one, text)


# supervisord's values are read with bigtop's own converters (its booleans,
# integers, modes and signals are bigtop's), plus what only it has.
to_count = non_negative(to_int)


def to_size(text: str) -> int:
    """``50MB``, ``1KB``, ``1GB`` (any case) or a number of bytes."""
    low = text.strip().lower()
    unit = {"kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}.get(low[-2:], 1)
    return to_count(low[:-2] if unit > 1 else low) * unit


def to_signal(text: str) -> str:
    return signal_name(to_signal_number(text))


def to_exitcodes(text: str) -> str:
    return ", ".join(map(str, to_exit_codes(text)))


def to_restart(text: str) -> str:
    if text.strip().lower() == "unexpected":
        return "on-failure"
    try:
        return "always" if to_bool(text) else "never"
    except ValueError:
        raise ValueError(f"{text!r} is not true, false or unexpected") from None


def to_user(text: str) -> str:
    """A user name or uid that exists, as supervisord checks at start."""
    try:
        pwd.getpwuid(int(text)) if text.strip().isdigit() else pwd.getpwnam(text.strip())
    except KeyError:
        raise ValueError(f"no user {text.strip()!r} on this system") from None
    return text.strip()


_WORD = set(string.ascii_letters + string.digits + "_/.+-():")


def parse_environment(text: str) -> dict[str, str]:
    """``KEY="val",KEY2=val2`` as supervisord reads it: words of letters,
    digits and ``_/.+-():``, or quoted (commas and spaces allowed inside),
    ``#`` a comment to the end of the line."""
    tokens: list[tuple[str, str]] = []  # (text, "word" | "quoted" | "mark")
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif char in "'\"":
            end = text.find(char, i + 1)
            if end < 0:
                raise ValueError(f"no closing quotation in {text!r}")
            tokens.append((text[i + 1:end], "quoted"))
            i = end + 1
        elif char in _WORD:
            end = i
            while end < len(text) and (text[end] in _WORD or text[end] in "'\""):
                end += 1
            tokens.append((text[i:end].strip("'\""), "word"))
            i = end
        else:
            tokens.append((char, "mark"))
            i += 1
    out: dict[str, str] = {}
    for at in range(0, len(tokens), 4):
        triple = tokens[at:at + 3]
        if len(triple) < 3 or triple[0][1] != "word" or triple[1][0] != "=":
            raise ValueError(f"expected KEY=VALUE pairs separated by commas in {text!r}")
        if triple[2][1] == "mark":
            raise ValueError(f"{triple[0][0]}: quote a value holding {triple[2][0]!r}")
        if at + 3 < len(tokens) and tokens[at + 3][1] != "mark":
            raise ValueError(f"expected ',' after {triple[0][0]}={triple[2][0]}")
        out[triple[0][0]] = triple[2][0]
    return out


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _path(text: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(text)))


# -- translation ------------------------------------------------------------

_CIRCUS_VAR = re.compile(r"\$\(circus\.|\(\(circus\.", re.I)


class Translation:
    """supervisord's merged sections in, bigtop's raw sections out; every
    problem and warning collected, named by the supervisord key."""

    def __init__(self, environ: Mapping[str, str], strict: bool, defaults: RawSection | None):
        self.strict = strict
        self.defaults = defaults.values if defaults else {}
        self.names: dict[str, Any] = {f"ENV_{k}": v for k, v in environ.items()}
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.out: list[RawSection] = []
        self.watchers: dict[str, tuple[RawSection, RawSection]] = {}  # name: (watcher, origin)
        self.order: list[tuple[RawSection, int, int, RawValue]] = []  # group, own priority
        self.global_env: dict[str, str] = {}
        import tempfile

        self.childlogdir = tempfile.gettempdir()  # supervisord's default
        self.user: str | None = None
        self.directory: str | None = None
        self.auto: RawSection | None = None  # the first program with an AUTO log file
        self.nocleanup = False

    # -- reporting and reading values -------------------------------------

    def raw(self, sec: RawSection, key: str) -> RawValue | None:
        return sec.values.get(key) or self.defaults.get(key)

    def where(self, sec: RawSection, key: str) -> tuple[str, int]:
        raw = self.raw(sec, key)
        return (raw.file, raw.line) if raw else (sec.file, sec.line)

    def report(self, message: str, sec: RawSection, key: str | None = None,
               error: bool = True) -> None:
        file, line = self.where(sec, key) if key else (sec.file, sec.line)
        problem = Problem(message, file, line, sec.title, key)
        if error:
            self.problems.append(problem)
        else:
            self.warnings.append(str(problem))

    def warn(self, message: str, sec: RawSection, key: str | None = None) -> None:
        self.report(message, sec, key, error=False)

    def unknown(self, message: str, sec: RawSection, key: str | None = None) -> None:
        """What supervisord ignores: a warning, an error with --strict."""
        if self.strict:
            self.report(message, sec, key)
        else:
            self.warn(f"{message}, ignored (an error with --strict)", sec, key)

    def value(self, sec: RawSection, key: str, conv: Callable[[str], Any] = str,
              names: Mapping[str, Any] | None = None) -> Any:
        """A key's value (or its default), expanded, ``%(here)s`` being the
        directory of the file it is written in, and converted. A bad value
        is a problem; its default stands in, so that the rest is checked."""
        raw, default = self.raw(sec, key), KEYS[sec.kind][key][0]

        def convert(text: str, file: str) -> Any:
            return conv(expand(text, {**(names or self.names), "here": os.path.dirname(file)}))

        if raw is not None:
            try:
                return convert(raw.value, raw.file)
            except ValueError as err:
                self.report(str(err), sec, key)
        return None if default is None else convert(default, sec.file)

    def environment(self, sec: RawSection, names: Mapping[str, Any]) -> dict[str, str]:
        try:
            return parse_environment(self.value(sec, "environment", str, names))
        except ValueError as err:
            self.report(str(err), sec, "environment")
            return {}

    # -- sections ----------------------------------------------------------

    def check(self, sections: list[RawSection]) -> list[RawSection]:
        """Unknown sections and keys, the sections explained away; the
        sections left to translate."""
        kept = []
        for sec in sections:
            kind, named = sec.kind, bool(sec.name)
            takes_name = kind in NAMED or kind in ("unix_http_server", "inet_http_server")
            if kind not in SECTION_KINDS or (named and not takes_name):
                close = difflib.get_close_matches(kind, SECTION_KINDS, n=1)
                hint = f" (did you mean [{close[0]}{':' + sec.name if named else ''}]?)" \
                    if close else ""
                self.unknown(f"unknown section{hint}", sec)
            elif kind in NAMED and not named:
                self.report(f"[{kind}] needs a name, as in [{kind}:NAME]", sec)
            elif kind in EXPLAINED:
                self.warn(EXPLAINED[kind], sec)
            elif kind in NAMED and re.search(r"[\s:/]", sec.name):
                self.report("a name may not hold spaces, ':' or '/' (supervisord refuses it)", sec)
            else:
                for key in sec.values:
                    if key not in KEYS[kind]:
                        close = difflib.get_close_matches(key, list(KEYS[kind]), n=1)
                        self.unknown("unknown option" + (f" (did you mean {close[0]!r}?)"
                                                         if close else ""), sec, key)
                kept.append(sec)
        return kept

    def supervisord(self, sec: RawSection | None, path: str) -> None:
        if sec is None:
            message = "no [supervisord] section: supervisord refuses such a file"
            if self.strict:
                self.problems.append(Problem(message, path))
            else:
                self.warnings.append(f"{path}: {message}; read anyway (an error with --strict)")
            return
        circus = RawSection("circus", "", sec.file, sec.line)

        def get(key: str, conv: Callable[[str], Any] = str) -> Any:
            return self.value(sec, key, conv)

        def put(target: str, key: str, value: str) -> None:
            circus.values[target] = RawValue(value, *self.where(sec, key))

        def in_a_directory(key: str, path: str, itself: bool = False) -> bool:
            """As supervisord refuses a file whose log, pidfile or directory
            is nowhere (bigtopd could not start with it either)."""
            where = path if itself else os.path.dirname(path)
            if not os.path.isdir(where):
                self.report(f"{where!r} is not a directory: supervisord refuses this file, "
                            "and bigtopd could not start with it", sec, key)
                return False
            return True

        logfile = get("logfile")
        special = {"syslog": "syslog://", "/dev/stdout": "stdout", "/dev/stderr": "stderr"}
        if logfile and (logfile.strip() in special
                        or in_a_directory("logfile", _path(logfile))):
            put("logoutput", "logfile", special.get(logfile.strip()) or _path(logfile))
            if logfile.strip() not in special and get("logfile_maxbytes", to_size):
                self.warn("bigtopd does not rotate its own log file (use logrotate)", sec,
                          "logfile_maxbytes")
        level = (get("loglevel") or "").strip().lower()
        level = "debug" if level in ("trace", "blather") else level
        if level and level not in ("critical", "error", "warn", "info", "debug"):
            self.report(f"{level!r} is not a level: critical, error, warn, info, debug, "
                        "trace, blather", sec, "loglevel")
        elif level:
            put("loglevel", "loglevel", level)
        pidfile = get("pidfile")
        if pidfile and in_a_directory("pidfile", _path(pidfile)):
            put("pidfile", "pidfile", _path(pidfile))
        daemonizes = not get("nodaemon", to_bool)
        if daemonizes:
            self.warn("supervisord would detach; bigtopd stays in the foreground unless "
                      "started with --daemon", sec, "nodaemon")
        if daemonizes or self.raw(sec, "umask"):
            put("umask", "umask", f"{get('umask', to_octal):03o}")
        env = self.environment(sec, self.names)
        if env:
            file, line = self.where(sec, "environment")
            self.out.append(RawSection("env", "", file, line, {
                k: RawValue(v.replace("$", "$$"), file, line) for k, v in env.items()}))
            self.global_env = env
            self.names |= {f"ENV_{k}": v for k, v in env.items()}
        if get("childlogdir"):
            self.childlogdir = os.path.expanduser(get("childlogdir"))
        self.user = get("user", to_user)
        if self.user:
            self.warn(f"bigtopd keeps the user it is started as (start it as {self.user} to "
                      f"match); programs without user run as {self.user}", sec, "user")
        directory = get("directory")
        if directory and in_a_directory("directory", _path(directory), itself=True) \
                and daemonizes:
            self.directory = directory
        for key, limit, what in (("minfds", "RLIMIT_NOFILE", "ulimit -n"),
                                 ("minprocs", "RLIMIT_NPROC", "ulimit -u")):
            soft, wanted = resource.getrlimit(getattr(resource, limit))[0], get(key, to_count)
            if soft != resource.RLIM_INFINITY and soft < wanted:
                self.warn(f"bigtopd does not raise its limit ({soft}) to {wanted}: "
                          f"raise it before starting it ({what}) or give watchers "
                          f"rlimit_{limit[7:].lower()}", sec, key)
        if get("strip_ansi", to_bool):
            self.warn("not applied: output is written as the programs write it", sec,
                      "strip_ansi")
        self.nocleanup = get("nocleanup", to_bool)
        self.out.append(circus)

    def groups(self, sections: list[RawSection],
               programs: dict[str, list[RawSection]]) -> dict[str, tuple[str, int]]:
        """Each grouped program's group name and priority."""
        member: dict[str, tuple[str, int]] = {}
        for sec in sections:
            priority = self.value(sec, "priority", to_int)
            for name in filter(None, (p.strip() for p in self.value(sec, "programs").split(","))):
                found = programs.get(name, [])
                if not found:
                    close = difflib.get_close_matches(name, list(programs), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.report(f"names no [program:{name}] or [fcgi-program:{name}]{hint}",
                                sec, "programs")
                elif len(found) > 1:
                    self.report(f"{name!r} is ambiguous: there are [program:{name}] and "
                                f"[fcgi-program:{name}]", sec, "programs")
                elif name in member:
                    self.report(f"{name!r} is already in [group:{member[name][0]}]", sec,
                                "programs")
                else:
                    member[name] = (sec.name, priority)
        return member

    def socket(self, sec: RawSection) -> str | None:
        """An fcgi-program's socket, named as the program; None if wrong."""
        names = {**self.names, "program_name": sec.name}

        def get(key: str, conv: Callable[[str], Any] = str) -> Any:
            return self.value(sec, key, conv, names)

        address, mode, owner = get("socket"), get("socket_mode", to_octal), get("socket_owner")
        backlog = get("socket_backlog", to_int)
        if not address:
            self.report("missing 'socket' (tcp://HOST:PORT or unix:///PATH)", sec)
            return None
        out = RawSection("socket", sec.name.lower(), *self.where(sec, "socket"))

        def put(target: str, key: str, value: str) -> None:
            out.values[target] = RawValue(value, *self.where(sec, key))

        tcp = re.fullmatch(r"tcp://([^\s:]+):(\d+)", address.strip())
        if address.startswith("unix://"):
            if not os.path.isabs(address[7:]):
                self.report(f"{address[7:]!r} is not an absolute path", sec, "socket")
            put("path", "socket", _path(address[7:]))
            put("family", "socket", "AF_UNIX")
            put("replace", "socket", "true")  # supervisord removes an old socket file
            put("umask", "socket_mode", f"{0o777 & ~(0o700 if mode is None else mode):03o}")
            user = self.value(sec, "user") or self.user
            if owner or user:
                self.warn("not applied: the socket file belongs to bigtopd's user; "
                          "socket_mode says who may connect", sec,
                          "socket_owner" if owner else "user")
        elif owner or mode is not None:
            self.report("socket_owner and socket_mode are for unix:// sockets only", sec,
                        "socket_owner" if owner else "socket_mode")
        elif tcp and 0 < int(tcp.group(2)) < 65536:
            put("host", "socket", tcp.group(1).lower())
            put("port", "socket", tcp.group(2))
        else:
            self.report(f"{address!r} is not tcp://HOST:PORT or unix:///PATH", sec, "socket")
        if backlog is not None and not 1 <= backlog <= 65535:
            self.report(f"{backlog} is not a backlog between 1 and 65535", sec, "socket_backlog")
        put("backlog", "socket_backlog", str(backlog or SOMAXCONN))
        self.out.append(out)
        return out.name

    def program(self, sec: RawSection, group: str, group_priority: int | None,
                socket: str | None) -> None:
        """A program's processes: one watcher of numprocs processes, or one
        watcher each when their options differ by %(process_num)."""
        base = {**self.names, "program_name": sec.name, "host_node_name": os.uname().nodename,
                "group_name": group}

        def get(key: str, conv: Callable[[str], Any] = str, names: Mapping[str, Any] = base
                ) -> Any:
            return self.value(sec, key, conv, names)

        count, first = get("numprocs", to_count), get("numprocs_start", to_int)
        if count > MAX_PROCESSES:
            self.report(f"at most {MAX_PROCESSES} processes", sec, "numprocs")
            return
        priority = get("priority", to_int)
        together = get("stopasgroup", to_bool)
        kills = get("killasgroup", to_bool) if self.raw(sec, "killasgroup") else together
        if together and not kills:
            self.report("stopasgroup = true needs killasgroup = true", sec, "killasgroup")
        common: dict[str, tuple[str, str]] = {  # bigtop key: (supervisord key, value)
            "copy_env": ("environment", "true"),  # children inherit supervisord's environment
            "autostart": ("autostart", _flag(get("autostart", to_bool))),
            "restart": ("autorestart", get("autorestart", to_restart)),
            "success_exit_codes": ("exitcodes", get("exitcodes", to_exitcodes)),
            "backoff_reset": ("startsecs", str(get("startsecs", to_count))),
            "max_retry": ("startretries", str(get("startretries", to_count))),
            "stop_signal": ("stopsignal", get("stopsignal", to_signal)),
            "graceful_timeout": ("stopwaitsecs", str(get("stopwaitsecs", to_count))),
        }
        user, umask = get("user", to_user) or self.user, get("umask", to_octal)
        if user:
            common["uid"] = ("user", user)
        if umask is not None:
            common["umask"] = ("umask", f"{umask:03o}")
        if socket:
            common["stdin_socket"] = ("socket", socket)
        else:  # supervisord holds a pipe on the child's stdin: reads wait, never end
            common["stdin_pipe"] = ("command", "true")
        url = get("serverurl")
        if url and url.strip().upper() != "AUTO":
            self.warn("not applied: bigtopd has no XML-RPC server, so SUPERVISOR_SERVER_URL "
                      "is not set", sec, "serverurl")
        for stream in ("stdout", "stderr"):
            if get(f"{stream}_capture_maxbytes", to_size):
                self.warn("not applied: bigtop has no capture mode", sec,
                          f"{stream}_capture_maxbytes")
            if get(f"{stream}_events_enabled", to_bool):
                self.warn("not applied: output lines are stream.* events while someone tails "
                          "the watcher", sec, f"{stream}_events_enabled")
        redirect = get("redirect_stderr", to_bool)
        template = self.raw(sec, "process_name")
        if count > 1 and "%(process_num)" not in (template.value if template else ""):
            self.report("with numprocs > 1, process_name must hold %(process_num)", sec,
                        "process_name" if template else "numprocs")
            return
        varies = [k for k in (PER_PROCESS - {"process_name"}) | {"environment"}
                  if "%(process_num)" in getattr(self.raw(sec, k), "value", "")]

        def auto(stream: str) -> bool:  # an AUTO log file is one per process
            raw = self.raw(sec, f"{stream}_logfile")
            return ((raw.value if raw else "AUTO").strip().lower() == AUTO
                    and not (stream == "stderr" and redirect))

        split = count > 1 and (bool(varies) or auto("stdout") or auto("stderr"))
        before = len(self.problems)
        for num in range(first, first + count) if split else [first]:
            if len(self.problems) > before:
                break  # one process's problems are every process's
            names = {**base, "process_num": num, "numprocs": count}
            env = self.environment(sec, names)
            names |= {f"ENV_{k}": v for k, v in env.items()}
            process = get("process_name", str, names)
            name = process if split or count == 1 else sec.name
            values = {k: RawValue(v, *self.where(sec, key)) for k, (key, v) in common.items()}

            def put(target: str, key: str, value: Any, values: dict[str, RawValue] = values
                    ) -> None:
                values[target] = RawValue(value, *self.where(sec, key))

            directory = get("directory", str, names) or self.directory
            if directory:
                put("working_dir", "directory", directory)
            command = get("command", str, names)
            if command is None and self.raw(sec, "command") is None:
                self.report("missing 'command' (the program to run)", sec)
                return
            put("cmd", "command", command)
            put("numprocesses", "numprocs", "1" if split else str(count))
            own = {"SUPERVISOR_ENABLED": "1", "SUPERVISOR_GROUP_NAME": group}
            if split or count == 1:
                own["SUPERVISOR_PROCESS_NAME"] = process
            own = {k: v for k, v in own.items() if k not in self.global_env} | env
            put("env", "environment", {k: v.replace("$", "$$") for k, v in own.items()})
            self.logs(sec, values, names, name, redirect)
            if command is not None:  # else its expansion failed: a problem already
                self.add(sec, name, values,
                         priority if group_priority is None else group_priority, priority)

    def logs(self, sec: RawSection, values: dict[str, RawValue], names: Mapping[str, Any],
             name: str, redirect: bool) -> None:
        """stdout_logfile and stderr_logfile: a FileStream, /dev/null (NONE),
        or the default output (syslog, which bigtop does not have)."""
        targets: dict[str, tuple[str, str, int, int] | str | None] = {}
        for stream in ("stdout", "stderr"):
            key = f"{stream}_logfile"
            text = self.value(sec, key, str, names).strip()
            low = text.lower()
            size = self.value(sec, f"{key}_maxbytes", to_size, names)
            backups = self.value(sec, f"{key}_backups", to_count, names)
            syslog = self.value(sec, f"{stream}_syslog", to_bool, names)
            if stream == "stderr" and redirect:
                if self.raw(sec, key) and low not in (AUTO, *NONE):
                    self.warn("ignored: redirect_stderr = true sends stderr where stdout goes",
                              sec, key)
                targets[stream] = targets["stdout"]
                continue
            if low == SYSLOG or syslog:
                self.warn("not applied: bigtop has no syslog stream" +
                          ("; output goes to bigtopd's console" if low in (SYSLOG, *NONE)
                           else ""), sec, key if low == SYSLOG else f"{stream}_syslog")
            if low == SYSLOG or (low in NONE and syslog):
                targets[stream] = None
                continue
            if low in NONE:
                targets[stream] = "close"
                continue
            if low == AUTO:
                self.auto = self.auto or sec
                text = os.path.join(self.childlogdir, f"{name}-{stream}.log")
            filename = os.path.expanduser(text)
            if filename.startswith("/dev/"):
                size = 0  # /dev/stdout and the like: not rotated
            elif size and not backups:
                self.warn("supervisord empties the file when it reaches maxbytes; with no "
                          "backups bigtop does not rotate it, it grows", sec, f"{key}_backups")
            targets[stream] = (key, filename, size, backups)
        for stream, target in targets.items():
            if target == "close":
                values[f"close_child_{stream}"] = RawValue("true", *self.where(sec, stream +
                                                                             "_logfile"))
            elif isinstance(target, tuple):
                key, filename, size, backups = target
                prefix = f"{stream}_stream."
                for option, value in (("class", "FileStream"), ("filename", filename),
                                      ("max_bytes", str(size)), ("backup_count", str(backups))):
                    values[prefix + option] = RawValue(value, *self.where(sec, key))

    def add(self, sec: RawSection, name: str, values: dict[str, RawValue], group_priority: int,
            priority: int) -> None:
        key = "process_name" if self.raw(sec, "process_name") else None
        if (problem := name_problem(name, "bigtop watcher")) is not None:
            self.report(problem, sec, key)
        elif name in self.watchers:
            other = self.watchers[name][1]
            self.report(f"process name {name!r} is also one of [{other.title}] ({other.file}:"
                        f"{other.line}): bigtop's watcher names are global", sec, key)
        else:
            watcher = RawSection("watcher", name, sec.file, sec.line, values)
            self.watchers[name] = (watcher, sec)
            self.order.append((watcher, group_priority, priority,
                               RawValue("", *self.where(sec, "priority"))))

    def finish(self) -> list[RawSection]:
        """What needs every watcher: priorities, warnings."""
        # supervisord starts lower (group priority, priority) first, bigtop higher first.
        ranks = sorted({(g, p) for _, g, p, _ in self.order})
        plain = all(g == p for _, g, p, _ in self.order)  # no [group:] with its own order
        for watcher, g, p, at in self.order:
            at.value = str(-p if plain else -1 - ranks.index((g, p)))
            watcher.values["priority"] = at
        if self.auto:
            self.warn(f"AUTO log files are PROCESS-stdout.log and PROCESS-stderr.log in "
                      f"{self.childlogdir}, kept across restarts (supervisord names them at "
                      "random" + ("" if self.nocleanup else " and removes old ones at start")
                      + ")", self.auto)
        watchers = [watcher for watcher, _ in self.watchers.values()]
        for watcher in watchers:
            origin = self.watchers[watcher.name][1]
            for key, raw in watcher.values.items():
                texts = raw.value.values() if isinstance(raw.value, dict) else [raw.value]
                if any(_CIRCUS_VAR.search(t) for t in texts):
                    self.warnings.append(str(Problem(
                        "holds $(circus.X) or ((circus.X)), which bigtop substitutes "
                        f"(in {key}); supervisord passes it as written", raw.file, raw.line,
                        origin.title)))
        return self.out + watchers


def load_supervisor(path: str, environ: Mapping[str, str], strict: bool,
                    text: str | None = None
                    ) -> tuple[list[RawSection], list[Problem], list[str], tuple[str, ...]]:
    """Read a supervisord file (its ``text``, if the caller has read it)
    and the files its [include] names; returns bigtop's raw sections, the
    problems, the warnings and the files read."""
    problems: list[Problem] = []
    warnings: list[str] = []
    files: list[str] = []
    merged: dict[tuple[str, str], RawSection] = {}

    def read(file: str, main: bool) -> None:
        file = os.path.abspath(file)
        if file in files:
            return  # read once, however often it is included
        files.append(file)
        content = text if main and text is not None else read_text(file, problems)
        if content is None:
            return
        found, file_problems, file_warnings = parse(content, file)
        problems.extend(file_problems)
        warnings.extend(file_warnings)
        for section in found:
            if section.kind == "include" and not main:
                warnings.append(str(Problem("not followed: supervisord reads the [include] of "
                                            "the main file only", file, section.line,
                                            "include")))
            else:
                merge(merged, section)

    read(path, True)
    include = merged.get(("include", ""))
    if include is not None:
        raw = include.values.get("files")
        if raw is None:
            problems.append(Problem("missing 'files' (globs, separated by spaces)",
                                    include.file, include.line, "include"))
        else:
            names = {**{f"ENV_{k}": v for k, v in environ.items()},
                     "host_node_name": os.uname().nodename, "here": os.path.dirname(raw.file)}
            try:
                patterns = expand(raw.value, names).split()
            except ValueError as err:
                problems.append(Problem(str(err), raw.file, raw.line, "include", "files"))
                patterns = []
            for pattern in patterns:
                matched = sorted(glob.glob(os.path.join(os.path.dirname(files[0]), pattern)))
                if not matched:
                    warnings.append(str(Problem(f"{pattern!r} matches no file", raw.file,
                                                raw.line, "include", "files")))
                for file in matched:
                    read(file, False)

    if not merged:
        return [], problems, warnings, tuple(files)
    t = Translation(environ, strict, merged.pop(("DEFAULT", ""), None))
    sections = t.check(list(merged.values()))
    t.supervisord(merged.get(("supervisord", "")), files[0])
    programs: dict[str, list[RawSection]] = {}
    for sec in sections:
        if sec.kind in ("program", "fcgi-program"):
            programs.setdefault(sec.name, []).append(sec)
    member = t.groups([s for s in sections if s.kind == "group"], programs)
    for same in programs.values():
        for sec in same:
            group, priority = member.get(sec.name, (sec.name, None))
            socket = t.socket(sec) if sec.kind == "fcgi-program" else None
            if sec.kind == "program" or socket:
                t.program(sec, group, priority, socket)
    out = t.finish()
    return (out, list(dict.fromkeys(problems + t.problems)),
            list(dict.fromkeys(warnings + t.warnings)), tuple(files))
