"""Real supervisord configuration files, read by supervisord's own parser and by bigtop.

bigtop promises to run supervisord's files unchanged (docs/migrating.md, "From
supervisord"). The corpus in ``tests/data/supervisor/corpus/`` holds real
files, unchanged (``SOURCES.md`` says where each comes from): supervisord's
sample configuration and test fixtures, Debian's default
``/etc/supervisor/supervisord.conf`` and files published by projects (Celery,
Zulip, CKAN, Laravel Sail, laradock, Sentry's Seer, Weblate, mailcow,
docker-mailserver, Nextcloud, ...).

For each file, supervisord 4.3.0 (``.venv-supervisor``, installed by ``make
test``) parses it in a subprocess, with a fixed environment, through
``ServerOptions().realize(["-c", FILE])``, and reports what it made of it:
``options.process_group_configs`` (every group, its priority, each process's
options, an fcgi group's socket) and the ``[supervisord]`` settings. bigtop
loads the same file with the same environment (``bigtop.config.load``).
Then:

- if supervisord refuses the file, bigtop must refuse it too, unless
  ``SUPERVISORD_REFUSES`` says why bigtop accepts it;
- if bigtop refuses a file supervisord accepts, the case fails unless
  ``BIGTOP_REFUSES`` says why that is deliberate;
- otherwise each supervisord process is matched with its bigtop watcher and
  every option is compared, after the normalisations below (each a documented
  difference or one of representation only), and so is the order in which
  the processes start; any other difference fails the case with the list of
  them;
- what supervisord acts on and bigtop does not (event listeners, the XML-RPC
  servers, output events, syslog, ...) must be named in a warning;
- every warning of bigtop's names the place it is about (``file:line: ``).

A file without ``[supervisord]`` (a ``conf.d`` program file) is a fragment:
supervisord reads such files through the ``[include]`` of a main file, so
the harness writes one (``WRAPPER``) in a scratch directory that includes the
fragment, and both parsers read that.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from socket import SOMAXCONN
from typing import Any

import pytest

from bigtop.config import Config, ConfigError, WatcherSpec, load
from bigtop.core.process import command_line

from .conftest import ROOT

CORPUS = ROOT / "tests" / "data" / "supervisor" / "corpus"
SUPERVISOR_PYTHON = ROOT / ".venv-supervisor" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not SUPERVISOR_PYTHON.exists(),
    reason="the real supervisord is missing: `make test` (or `make "
           ".venv-supervisor/.installed-4.3.0`) installs supervisor==4.3.0 into "
           f"{ROOT / '.venv-supervisor'}")

# Files read only through the file that includes them, never on their own.
INCLUDED = {
    # included by Supervisor/supervisor/.../fixtures/include.conf
    "Supervisor/supervisor/supervisor/tests/fixtures/example/included.conf",
}

CASES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*")
               if p.is_file() and p.name != "SOURCES.md"
               and p.relative_to(CORPUS).as_posix() not in INCLUDED)

# The main file the harness writes for a fragment (a file without
# [supervisord]): a [supervisord] section that keeps supervisord in the
# foreground, as in the containers most fragments come from, and an
# [include] of the fragment (an absolute path: both parsers glob it as is).
WRAPPER = "[supervisord]\nnodaemon = true\n\n[include]\nfiles = {fragment}\n"

# The environment both parsers get: fixed, plus what some files name.
ENV = {
    "HOME": os.path.expanduser("~"),  # bigtop expands ~ with its own process's HOME
    "TMPDIR": tempfile.gettempdir(),  # both default childlogdir to it
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    # laravel/sail runtimes/8.1: the command Sail's Dockerfile sets, and a
    # user of this machine instead of Sail's own "sail" (which does not exist
    # here, so both parsers would refuse the file and compare nothing).
    "SUPERVISOR_PHP_COMMAND": "/usr/bin/php -d variables_order=EGPCS "
                              "/var/www/html/artisan serve --host=0.0.0.0 --port=80",
    "SUPERVISOR_PHP_USER": "www-data",
}

# supervisord refuses these and bigtop accepts them, on purpose: file -> why.
SUPERVISORD_REFUSES: dict[str, str] = {
    # "supervisor_stdout:event_handler cannot be resolved within
    # [eventlistener:stdout]": supervisord imports an event listener's
    # result_handler while parsing (process_groups_from_parser); the package
    # is not installed here.
    "WeblateOrg/docker/etc/supervisor/supervisord.conf":
        "bigtop runs no event listener (a warning says what replaces it), so it imports no "
        "result_handler",
    # "Invalid sockchown value zulip:zulip": supervisord resolves the owner
    # of its XML-RPC socket file (server_configs_from_parser); the user zulip
    # does not exist here.
    "zulip/zulip/puppet/zulip/files/supervisor/supervisord.conf":
        "bigtop serves no [unix_http_server] (a warning says so), so it chowns no socket file",
}

# supervisord accepts these and bigtop refuses them, on purpose: file -> a
# text bigtop's error must contain.
BIGTOP_REFUSES: dict[str, str] = {
    # [program:test_öäü]: bigtop's watcher names are ASCII letters, digits and
    # _ . - @ (docs/config.md, "Watcher names are limited to ..."): they
    # appear in event topics, log lines and commands.
    "Supervisor/supervisor/supervisor/tests/fixtures/issue-664.conf":
        "cannot name a bigtop watcher",
}

WARNING_PLACE = re.compile(r"\S+:\d+: ")


# -- supervisord's side -------------------------------------------------------------

SUPERVISORD_SCRIPT = r'''
import io, json, linecache, os, re, sys

import supervisor.datatypes as datatypes
import supervisor.options as options_module
from supervisor.datatypes import Automatic, RestartUnconditionally, RestartWhenExitUnexpected
from supervisor.options import (EventListenerPoolConfig, FastCGIGroupConfig, ServerOptions,
                                UnhosedConfigParser)

# supervisord checks while parsing that some directories exist
# (datatypes.existing_directory, existing_dirpath): childlogdir, directory,
# and the directories of logfile, pidfile and each program's log files.
# Those depend on this machine, not on the file: each failed check is
# recorded (with the option it was for) and parsing goes on as it would
# where the directory exists.
missing = []


def option_checked():
    """The option a directory check is for: (section, key)."""
    frame = sys._getframe(2)
    if frame.f_code.co_name == "logfile_name":  # a program's stdout_logfile / stderr_logfile
        caller = frame.f_back.f_locals
        return caller.get("section"), caller.get("lf_key")
    for line in range(frame.f_lineno, frame.f_lineno - 6, -1):  # get('KEY', ...) at or above
        found = re.search(r"get\('(\w+)'", linecache.getline(frame.f_code.co_filename, line))
        if found:
            return "supervisord", found.group(1)
    return "supervisord", None


def recording(check):
    def checked(value):
        try:
            return check(value)
        except ValueError as err:
            section, key = option_checked()
            missing.append({"section": section, "key": key, "value": value,
                            "message": str(err)})
            return os.path.expanduser(value)
    return checked


datatypes.existing_dirpath = options_module.existing_dirpath = recording(
    datatypes.existing_dirpath)
datatypes.existing_directory = options_module.existing_directory = recording(
    datatypes.existing_directory)

# Which program section made which processes (a [group:] holds several).
programs = []
parse_section = ServerOptions.processes_from_section


def observed(self, parser, section, group_name, klass=None):
    found = parse_section(self, parser, section, group_name, klass)
    programs.append({"section": section, "group": group_name,
                     "processes": [p.name for p in found]})
    return found


ServerOptions.processes_from_section = observed


def logfile(value):
    return "AUTO" if value is Automatic else "NONE" if value is None else value


def restart(value):
    if value is RestartUnconditionally:
        return "true"
    if value is RestartWhenExitUnexpected:
        return "unexpected"
    return "false" if value is False else repr(value)


def process(p):
    out = {k: getattr(p, k) for k in (
        "name", "command", "directory", "uid", "umask", "environment", "priority",
        "autostart", "startsecs", "startretries", "stopwaitsecs", "stopasgroup",
        "killasgroup", "exitcodes", "redirect_stderr", "serverurl")}
    out["autorestart"] = restart(p.autorestart)
    out["stopsignal"] = int(p.stopsignal)
    for s in ("stdout", "stderr"):
        out[s + "_logfile"] = logfile(getattr(p, s + "_logfile"))
        for k in ("logfile_maxbytes", "logfile_backups", "syslog", "capture_maxbytes",
                  "events_enabled"):
            out[s + "_" + k] = getattr(p, s + "_" + k)
    return out


def sections(files):
    out = []
    for name in files:
        parser = UnhosedConfigParser()
        try:
            parser.read(name)
        except Exception:
            continue
        out += parser.sections()
    return out


def read(path):
    del missing[:], programs[:]
    options = ServerOptions()
    options.stderr = io.StringIO()  # usage() writes the error there, then exits
    try:
        options.realize(args=["-c", path])
    except SystemExit:
        message = options.stderr.getvalue().splitlines()[0]
        return {"error": message.replace("Error: ", "", 1), "missing_dirs": list(missing)}
    groups = []
    for group in options.process_group_configs:
        kind = ("eventlistener" if isinstance(group, EventListenerPoolConfig)
                else "fcgi" if isinstance(group, FastCGIGroupConfig) else "program")
        entry = {"name": group.name, "priority": group.priority, "kind": kind,
                 "processes": [process(p) for p in group.process_configs]}
        if kind == "fcgi":
            sock = group.socket_config
            entry["socket"] = {"url": sock.url, "backlog": sock.get_backlog(),
                               "path": getattr(sock, "path", None),
                               "mode": getattr(sock, "mode", None),
                               "owner": getattr(sock, "owner", None),
                               "host": getattr(sock, "host", None),
                               "port": getattr(sock, "port", None)}
        groups.append(entry)
    included = [i.split('"')[1] for i in options.parse_infos
                if i.startswith("Included extra file")]
    section = options.configroot.supervisord
    return {
        "missing_dirs": list(missing), "programs": list(programs), "groups": groups,
        "settings": {"logfile": options.logfile, "pidfile": options.pidfile,
                     "loglevel": options.loglevel, "childlogdir": options.childlogdir,
                     "umask": options.umask, "nodaemon": bool(options.nodaemon),
                     "uid": getattr(options, "uid", None), "directory": options.directory,
                     "environment": section.environment, "strip_ansi": bool(options.strip_ansi),
                     "serverurl": options.serverurl},
        "parse_warnings": options.parse_warnings,
        "files": [os.path.abspath(f) for f in [path] + included],
        "sections": sections([path] + included),
    }


print(json.dumps({path: read(path) for path in sys.argv[1:]}, default=repr))
'''


def is_fragment(path: Path) -> bool:
    return not re.search(r"(?m)^\s*\[supervisord\]", path.read_text())


def main_file(case: str, scratch: Path) -> Path:
    """The file both parsers read: the corpus file, or for a fragment the
    wrapper that includes it."""
    path = CORPUS / case
    if not is_fragment(path):
        return path
    wrapper = scratch / "wrappers" / case.replace("/", "__")
    if not wrapper.exists():
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(WRAPPER.format(fragment=path))
    return wrapper


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch directory for the module: the wrappers of fragments, and
    both parsers' working directory (relative paths in a file are relative
    to it)."""
    return tmp_path_factory.mktemp("supervisor-corpus")


@pytest.fixture(scope="module")
def supervisord_side(scratch: Path) -> dict[str, Any]:
    """What supervisord makes of every case, by file read: one subprocess for
    all of them, so that the module stays fast."""
    paths = [str(main_file(case, scratch)) for case in CASES]
    run = subprocess.run([str(SUPERVISOR_PYTHON), "-c", SUPERVISORD_SCRIPT, *paths],
                         cwd=scratch, env=ENV, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"the supervisord side crashed:\n{run.stderr}"
    return json.loads(run.stdout)


# -- normalisations: each a documented difference, or representation only ----------

def uid_number(user: str | int | None) -> int | None:
    """supervisord stores a user as its uid (``name_to_uid``), bigtop as
    written (a name or a number): representation only."""
    if user is None or isinstance(user, int):
        return user
    return int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid


def expected_uid(proc: dict[str, Any], settings: dict[str, Any]) -> int | None:
    """A process without ``user`` runs as ``[supervisord] user``: supervisord
    drops to that user at start (``options.drop_privileges``) and its children
    inherit it; bigtop gives those programs that ``uid`` (docs/migrating.md,
    "[supervisord] user")."""
    return proc["uid"] if proc["uid"] is not None else settings["uid"]


def expected_directory(proc: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """A process without ``directory`` inherits supervisord's working
    directory, which ``[supervisord] directory`` sets only when supervisord
    detaches (``ServerOptions._daemonize``); bigtop gives it as ``working_dir``
    in that case only (docs/migrating.md, "[supervisord] umask, directory")."""
    if proc["directory"] is not None:
        return proc["directory"]
    return None if settings["nodaemon"] else settings["directory"]


RESTART = {"true": "always", "false": "never", "unexpected": "on-failure"}


def restart_policy(autorestart: str) -> str:
    """``autorestart = true / false / unexpected`` is ``restart = always /
    never / on-failure`` (docs/migrating.md)."""
    return RESTART.get(autorestart, f"<{autorestart}>")


def exit_codes(codes: Any) -> list[int]:
    """A set of exit statuses: supervisord keeps a list as written, bigtop a
    tuple; the order means nothing (representation only)."""
    return sorted(int(c) for c in codes)


ADDED = ("SUPERVISOR_ENABLED", "SUPERVISOR_GROUP_NAME", "SUPERVISOR_PROCESS_NAME")


def own_environment(spec: WatcherSpec, proc: dict[str, Any]) -> dict[str, str]:
    """The file's variables in bigtop's watcher: its ``env`` without what
    bigtop adds (``SUPERVISOR_ENABLED``, ``SUPERVISOR_GROUP_NAME``,
    ``SUPERVISOR_PROCESS_NAME``), which supervisord adds when it spawns a
    process (``Subprocess._spawn_as_child``), not in its parsed configuration;
    a file that sets one of them itself keeps it, in both. bigtop's ``env``
    holds the ``[supervisord] environment`` too, as supervisord's parsed
    ``environment`` does (``read_config`` merges them)."""
    return {k: v for k, v in spec.env.items() if k not in ADDED or k in proc["environment"]}


def spawn_variables(group: str, proc: dict[str, Any], merged: bool) -> dict[str, str]:
    """What supervisord adds to a process's environment when it spawns it
    (``Subprocess._spawn_as_child``), unless the file's ``environment`` sets
    it: ``SUPERVISOR_ENABLED``, ``SUPERVISOR_GROUP_NAME``, and
    ``SUPERVISOR_PROCESS_NAME``, which bigtop sets for a watcher of one
    process only (docs/migrating.md, "environment"). ``SUPERVISOR_SERVER_URL``
    is left out: bigtop serves no XML-RPC (see ``unmentioned``)."""
    out = {"SUPERVISOR_ENABLED": "1", "SUPERVISOR_GROUP_NAME": group}
    if not merged:
        out["SUPERVISOR_PROCESS_NAME"] = proc["name"]
    return {k: v for k, v in out.items() if k not in proc["environment"]}


def start_ranks(keys: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Processes ranked by the order they start: equal keys start together.
    supervisord starts the groups in the order of their priority, and a
    group's processes in the order of theirs (``ProcessGroupConfig`` and
    ``ProcessConfig`` sort by priority, then name; the names only order the
    spawns of one pass of the main loop, which start together); bigtop starts
    higher ``priority`` first, equal priorities together (docs/config.md,
    "Start and stop order")."""
    order = sorted(set(keys.values()))
    return {name: order.index(key) for name, key in keys.items()}


def device(filename: str) -> bool:
    return filename.startswith("/dev/")


def expected_stream(proc: dict[str, Any], stream: str, settings: dict[str, Any],
                    watcher: str) -> dict[str, Any]:
    """Where supervisord sends a process's stream, in bigtop's terms:
    ``{"file": (filename, max_bytes, backups)}``, ``{"closed": True}`` or
    ``{"console": True}``.

    - ``redirect_stderr = true``: standard error goes where standard output
      goes (supervisord merges the pipes; bigtop opens the same file once,
      docs/migrating.md).
    - ``NONE``: supervisord discards the output; bigtop sends it to
      ``/dev/null`` (``close_child_X``).
    - syslog (``X_syslog = true``, or ``X_logfile = syslog``, which supervisord
      rewrites into that): bigtop has no syslog stream; with ``NONE`` the
      output goes to bigtopd's console, a warning says so (``unmentioned``).
    - ``AUTO``: supervisord names a file in ``childlogdir`` at start
      (``get_autochildlog_name``: ``NAME-stdout---IDENT-RANDOM.log``), bigtop
      ``childlogdir/NAME-stdout.log`` (docs/migrating.md).
    - a device (``/dev/stdout``, ``/dev/fd/1``): bigtop never rotates it,
      whatever ``maxbytes`` says; supervisord cannot (its rollover asks the
      stream's position, which a pipe or terminal has not: its documentation
      asks for ``maxbytes = 0`` there).
    """
    if stream == "stderr" and proc["redirect_stderr"]:
        return expected_stream(proc, "stdout", settings, watcher)
    name = proc[stream + "_logfile"]
    if name == "NONE":
        return {"console": True} if proc[stream + "_syslog"] else {"closed": True}
    if name == "AUTO":
        name = os.path.join(settings["childlogdir"], f"{watcher}-{stream}.log")
    size = 0 if device(name) else proc[stream + "_logfile_maxbytes"]
    return {"file": (os.path.normpath(name), size, proc[stream + "_logfile_backups"])}


def bigtop_stream(spec: WatcherSpec, stream: str) -> dict[str, Any]:
    options = getattr(spec, stream + "_stream").options
    if getattr(spec, "close_child_" + stream):
        return {"closed": True}
    if not options:
        return {"console": True}
    if options.get("class") != "FileStream":
        return {"class": options.get("class")}
    return {"file": (os.path.normpath(options["filename"]), int(options.get("max_bytes", 0)),
                     int(options.get("backup_count", 5)))}


def supervisord_stdin(kind: str) -> str:
    """A process's standard input under supervisord: an fcgi-program's gets
    the group's socket (``FastCGISubprocess``); any other a pipe that
    supervisord holds open for ``supervisorctl`` / ``sendProcessStdin``
    (``ServerOptions.make_pipes``), so a read blocks, it never sees end of
    file."""
    return "the socket" if kind == "fcgi" else "a pipe held open (reads block)"


def bigtop_stdin(spec: WatcherSpec) -> str:
    if spec.stdin_socket:
        return "the socket"
    if spec.stdin_pipe:
        return "a pipe held open (reads block)"
    if spec.close_child_stdin:
        return "/dev/null (reads see end of file)"
    return "bigtopd's own standard input"


LEVELS = {50: "critical", 40: "error", 30: "warn", 20: "info", 10: "debug", 5: "debug",
          3: "debug"}


def loglevel(value: int | str | None) -> str | None:
    """supervisord stores the level as a number (``logging_level``), bigtop
    as a name (``warning`` for ``warn``); ``trace`` and ``blather``, which
    bigtop does not have, are ``debug`` (docs/migrating.md)."""
    if isinstance(value, int):
        return LEVELS.get(value, str(value))
    return "warn" if value == "warning" else value


def logoutput(logfile: str) -> str:
    """``[supervisord] logfile`` is bigtop's ``logoutput``: ``syslog`` is
    ``syslog://``, ``/dev/stdout`` and ``/dev/stderr`` are ``stdout`` and
    ``stderr`` (representation only)."""
    return {"syslog": "syslog://", "/dev/stdout": "stdout", "/dev/stderr": "stderr"}.get(
        logfile, os.path.normpath(logfile))


def given(settings_key: str, files: list[str]) -> bool:
    """Whether the file sets a ``[supervisord]`` key: settings are compared
    where the file sets them; supervisord's defaults (a log file and a
    pidfile in its working directory) and bigtop's (stderr, no pidfile)
    differ by design, as for Circus."""
    pattern = re.compile(rf"(?m)^\s*{settings_key}\s*[=:]")
    in_section = re.compile(r"(?ms)^\s*\[supervisord\](.*?)(?=^\s*\[|\Z)")
    return any(pattern.search(m.group(1)) for f in files
               for m in in_section.finditer(Path(f).read_text()))


# -- the comparison -------------------------------------------------------------------

def match_watchers(program: dict[str, Any], config: Config
                   ) -> tuple[dict[str, WatcherSpec], bool] | None:
    """The bigtop watcher of each process of a program section: one watcher
    each (named as supervisord names the process), or one watcher of all of
    them (named after the program, ``numprocesses`` of them) when they are
    identical (docs/migrating.md, "numprocs"). None if neither."""
    names = program["processes"]
    by_name = {w.name: w for w in config.watchers}
    if all(n in by_name and by_name[n].numprocesses == 1 for n in names):
        return {n: by_name[n] for n in names}, False
    program_name = program["section"].split(":", 1)[1]
    spec = by_name.get(program_name)
    if spec is not None and spec.numprocesses == len(names):
        return {n: spec for n in names}, True
    return None


def merged_differences(procs: list[dict[str, Any]], where: str) -> list[str]:
    """Processes bigtop runs as one watcher must be the same but for their
    name. An AUTO log file is one per process in supervisord (named at start
    after each process), one for the watcher in bigtop."""
    out = []
    first = {k: v for k, v in procs[0].items() if k != "name"}
    for proc in procs[1:]:
        for key, value in first.items():
            if proc[key] != value:
                out.append(f"{where}: one watcher for processes whose {key} differ "
                           f"({procs[0]['name']}: {value!r}, {proc['name']}: {proc[key]!r})")
    for stream in ("stdout", "stderr"):
        if first[stream + "_logfile"] == "AUTO" and not (
                stream == "stderr" and first["redirect_stderr"]):
            out.append(f"{where}: supervisord gives each of the {len(procs)} processes its own "
                       f"AUTO {stream} file ({procs[0]['name']}-{stream}---...log, ...); bigtop "
                       "one file for all of them")
    return out


def process_differences(proc: dict[str, Any], program: dict[str, Any], spec: WatcherSpec,
                        merged: bool, sd: dict[str, Any], config: Config) -> list[str]:
    out: list[str] = []
    # The processes of one watcher are compared alike (merged_differences
    # checks they are the same): their differences are said once.
    where = (f"[{program['section']}: {len(program['processes'])} processes -> "
             f"watcher:{spec.name}]" if merged else f"[{proc['name']} -> watcher:{spec.name}]")
    settings = sd["settings"]

    def differ(field: str, theirs: Any, ours: Any) -> None:
        if theirs != ours:
            out.append(f"{where} {field}: supervisord {theirs!r}, bigtop {ours!r}")

    group = program["group"]
    kind = next(g["kind"] for g in sd["groups"] if g["name"] == group)
    differ("command/cmd", proc["command"], spec.cmd)
    circus_var = any(f"[{program['section']}]" in w and "$(circus.X)" in w
                     for w in config.warnings)
    if not circus_var:  # with $(circus.X), bigtop substitutes it and says so
        try:
            theirs = shlex.split(proc["command"])  # Subprocess.get_execv_args
        except ValueError as err:
            theirs = [f"<{err}>"]
        try:
            ours = command_line(spec, 1, {}, spec.env)
        except Exception as err:  # SpawnError
            ours = [f"<{err}>"]
        differ("argv", theirs, ours)
    differ("directory/working_dir", expected_directory(proc, settings), spec.working_dir)
    differ("user/uid", expected_uid(proc, settings), uid_number(spec.uid))
    differ("umask", proc["umask"], spec.umask)
    differ("environment/env", proc["environment"], own_environment(spec, proc))
    differ("spawn variables", spawn_variables(group, proc, merged),
           {k: v for k, v in spec.env.items() if k in ADDED and k not in proc["environment"]})
    differ("copy_env", True, spec.copy_env)  # supervisord's children get its environment
    differ("autostart", proc["autostart"], spec.autostart)
    differ("autorestart/restart", restart_policy(proc["autorestart"]), spec.restart)
    differ("exitcodes/success_exit_codes", exit_codes(proc["exitcodes"]),
           exit_codes(spec.success_exit_codes))
    differ("startsecs/backoff_reset", float(proc["startsecs"]), spec.backoff_reset)
    differ("startretries/max_retry", proc["startretries"], spec.max_retry)
    differ("stopsignal/stop_signal", proc["stopsignal"], int(spec.stop_signal))
    differ("stopwaitsecs/graceful_timeout", float(proc["stopwaitsecs"]), spec.graceful_timeout)
    for stream in ("stdout", "stderr"):
        differ(f"{stream} log", expected_stream(proc, stream, settings, spec.name),
               bigtop_stream(spec, stream))
    differ("stdin", supervisord_stdin(kind), bigtop_stdin(spec))
    return out


def socket_differences(group: dict[str, Any], specs: list[WatcherSpec],
                       config: Config) -> list[str]:
    """An fcgi-program's socket is a bigtop socket given to its processes as
    standard input (docs/migrating.md, "[fcgi-program:x]")."""
    out: list[str] = []
    where = f"[fcgi-program:{group['name']}] socket"
    names = {s.stdin_socket for s in specs}
    if len(names) != 1 or None in names:
        return [f"{where}: the watchers' stdin_socket is {sorted(map(str, names))}"]
    sock = next((s for s in config.sockets if s.name == names.pop()), None)
    if sock is None:
        return [f"{where}: no bigtop socket named by stdin_socket"]
    theirs = group["socket"]

    def differ(field: str, value: Any, ours: Any) -> None:
        if value != ours:
            out.append(f"{where} {field}: supervisord {value!r}, bigtop {ours!r}")

    # supervisord listens with socket_backlog, or SOMAXCONN without one
    # (socket_manager.SocketManager._prepare_socket).
    differ("backlog", theirs["backlog"] or SOMAXCONN, sock.backlog)
    if theirs["url"].startswith("unix://"):
        differ("family", "AF_UNIX", sock.family)
        differ("path", theirs["path"], sock.path)
        # supervisord chmods the file to socket_mode (default 0700); bigtop
        # binds it under a umask that gives the same mode.
        differ("socket_mode", theirs["mode"], 0o777 & ~(sock.umask or 0))
        differ("replace", True, sock.replace)  # supervisord unlinks an old file
        # supervisord chowns the file to socket_owner, or to the program's
        # user; bigtop does not, and must say so.
        if theirs["owner"] and not any(where.split()[0] in w and "socket file" in w
                                       for w in config.warnings):
            out.append(f"{where}: supervisord chowns the file to {theirs['owner']}; bigtop "
                       "does not, and no warning says so")
    else:
        differ("family", "AF_INET", sock.family)
        differ("host", theirs["host"], sock.host)
        differ("port", theirs["port"], sock.port)
    return out


def settings_differences(sd: dict[str, Any], config: Config) -> list[str]:
    out: list[str] = []
    settings, ours = sd["settings"], config.settings

    def differ(field: str, theirs: Any, value: Any) -> None:
        if theirs != value:
            out.append(f"[supervisord] {field}: supervisord {theirs!r}, bigtop {value!r}")

    if given("logfile", sd["files"]):
        differ("logfile/logoutput", logoutput(settings["logfile"]), ours.logoutput)
    if given("pidfile", sd["files"]):
        differ("pidfile", settings["pidfile"], ours.pidfile)
    if given("loglevel", sd["files"]):
        differ("loglevel", loglevel(settings["loglevel"]), loglevel(ours.loglevel))
    # supervisord sets its umask only when it detaches (_daemonize).
    differ("umask", None if settings["nodaemon"] else settings["umask"], ours.umask)
    differ("environment/[env]", settings["environment"], dict(config.env))
    return out


def order_differences(sd: dict[str, Any], placed: dict[str, WatcherSpec]) -> list[str]:
    """The start order: supervisord's (group priority, process priority)
    against bigtop's descending ``priority``, compared as ranks."""
    keys: dict[str, tuple[int, ...]] = {}
    ours: dict[str, tuple[int, ...]] = {}
    for group in sd["groups"]:
        if group["kind"] == "eventlistener":
            continue
        for proc in group["processes"]:
            if proc["name"] in placed:
                keys[proc["name"]] = (group["priority"], proc["priority"])
                ours[proc["name"]] = (-placed[proc["name"]].priority,)
    theirs_rank, ours_rank = start_ranks(keys), start_ranks(ours)
    if theirs_rank == ours_rank:
        return []
    return ["start order: supervisord " + " < ".join(
        "/".join(sorted(n for n, r in theirs_rank.items() if r == rank))
        for rank in sorted(set(theirs_rank.values())))
        + "; bigtop " + " < ".join(
        "/".join(sorted(n for n, r in ours_rank.items() if r == rank))
        for rank in sorted(set(ours_rank.values())))]


def differences(sd: dict[str, Any], config: Config) -> list[str]:
    out = settings_differences(sd, config)
    files = sorted(os.path.realpath(f) for f in config.files)
    if files != sorted(os.path.realpath(f) for f in sd["files"]):
        out.append(f"files read: supervisord {sd['files']}, bigtop {list(config.files)}")
    groups = {g["name"]: g for g in sd["groups"]}
    placed: dict[str, WatcherSpec] = {}
    used: set[str] = set()
    for program in sd["programs"]:
        if program["section"].startswith("eventlistener:"):
            continue
        group = groups[program["group"]]
        procs = [p for p in group["processes"] if p["name"] in program["processes"]]
        found = match_watchers(program, config)
        if found is None:
            out.append(f"[{program['section']}]: supervisord's processes "
                       f"{program['processes']} have no watcher in bigtop "
                       f"(watchers: {[w.name for w in config.watchers]})")
            continue
        specs, merged = found
        if merged:
            out += merged_differences(procs, f"[{program['section']}]")
        for proc in procs:
            spec = specs[proc["name"]]
            placed[proc["name"]] = spec
            used.add(spec.name)
            out += process_differences(proc, program, spec, merged, sd, config)
        if group["kind"] == "fcgi":
            out += socket_differences(group, list(specs.values()), config)
    for spec in config.watchers:
        if spec.name not in used:
            out.append(f"[watcher:{spec.name}] built by bigtop, not by supervisord")
    out += order_differences(sd, placed)
    return list(dict.fromkeys(out))


def unmentioned(sd: dict[str, Any], config: Config) -> list[str]:
    """What supervisord acts on and bigtop does not, that no warning of
    bigtop's names (``[SECTION] KEY``, as each of its messages names it):
    bigtop may leave it out, but not silently."""

    def named(*parts: str) -> bool:
        return any(all(p in w for p in parts) for w in config.warnings)

    out = []
    for group in sd["groups"]:
        if group["kind"] == "eventlistener" and not named(f"[eventlistener:{group['name']}]"):
            out.append(f"[eventlistener:{group['name']}]: run by supervisord, not named in a "
                       "warning of bigtop")
    sections = {s.split(":")[0] + (":" if ":" in s else ""): s for s in sd["sections"]}
    for kind in ("unix_http_server", "inet_http_server", "rpcinterface:"):
        section = sections.get(kind)
        if section and not named(f"[{section}]"):
            out.append(f"[{section}]: served by supervisord, not named in a warning of bigtop")
    if sd["settings"]["strip_ansi"] and not named("[supervisord] strip_ansi"):
        out.append("[supervisord] strip_ansi: applied by supervisord, not named by bigtop")
    for program in sd["programs"]:
        if program["section"].startswith("eventlistener:"):
            continue
        group = next(g for g in sd["groups"] if g["name"] == program["group"])
        proc = next(p for p in group["processes"] if p["name"] in program["processes"])
        title = f"[{program['section']}]"
        for stream in ("stdout", "stderr"):
            if proc[f"{stream}_events_enabled"] and not named(title, f"{stream}_events_enabled"):
                out.append(f"{title} {stream}_events_enabled: applied by supervisord, not named")
            if proc[f"{stream}_capture_maxbytes"] and not named(title,
                                                                 f"{stream}_capture_maxbytes"):
                out.append(f"{title} {stream}_capture_maxbytes: applied by supervisord, not "
                           "named")
            if proc[f"{stream}_syslog"] and not (named(title, f"{stream}_syslog")
                                                 or named(title, f"{stream}_logfile")):
                out.append(f"{title} {stream}_syslog: applied by supervisord, not named")
        if proc["serverurl"] and not named(title, "serverurl"):
            out.append(f"{title} serverurl: applied by supervisord, not named")
    for warning in sd["parse_warnings"]:
        found = re.match(r"For \[(.+?)\], redirect_stderr=true but stderr_logfile", warning)
        if found and not named(f"[{found.group(1)}]", "stderr_logfile"):
            out.append(f"supervisord warns {warning!r}; bigtop says nothing")
    return out


def machine_refusals(sd: dict[str, Any]) -> list[dict[str, str]]:
    """The directory checks supervisord failed on this machine that bigtop
    does not make moot.

    supervisord refuses a file whose ``childlogdir``, ``[supervisord]
    directory``, or the directory of ``logfile``, ``pidfile`` or a program's
    log file does not exist (``datatypes.existing_directory`` and
    ``existing_dirpath``): that depends on the machine, not on the file, so the
    supervisord side records them and parses on. bigtop creates the
    directory of each file it writes output to (``core/writer.py``: a
    program's log file, an AUTO file in ``childlogdir``), so it accepts those
    on purpose. The others (its own log, its pidfile, the working directory)
    it must refuse, or name in a warning."""
    return [m for m in sd["missing_dirs"]
            if m["section"] == "supervisord" and m["key"] != "childlogdir"]


def missing_directory(miss: dict[str, str]) -> str:
    return miss["value"] if miss["key"] == "directory" else os.path.dirname(miss["value"])


def unsaid_refusals(sd: dict[str, Any], said: list[str]) -> list[str]:
    """The machine's refusals (``machine_refusals``) that no message of
    bigtop's names."""
    return [f"[supervisord] {m['key']}: supervisord refuses the file here ({m['message']}); "
            "bigtop neither refuses it nor warns"
            for m in machine_refusals(sd) if not any(missing_directory(m) in w for w in said)]


@pytest.mark.parametrize("case", CASES)
def test_supervisor_config(case: str, scratch: Path, supervisord_side: dict[str, Any],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = main_file(case, scratch)
    sd = supervisord_side[str(path)]
    monkeypatch.chdir(scratch)

    refused = sd.get("error")
    if refused and case not in SUPERVISORD_REFUSES:
        try:
            config = load(str(path), environ=ENV)
        except ConfigError:
            return
        pytest.fail(f"supervisord refuses this file, bigtop accepts it:\n  {refused}"
                    + "\nbigtop's warnings:\n  " + "\n  ".join(config.warnings))

    if case in BIGTOP_REFUSES:
        assert not refused, f"{case} is in BIGTOP_REFUSES but supervisord refuses it too"
        with pytest.raises(ConfigError, match=re.escape(BIGTOP_REFUSES[case])):
            load(str(path), environ=ENV)
        return
    try:
        config = load(str(path), environ=ENV)
    except ConfigError as err:
        if machine_refusals(sd) and not unsaid_refusals(sd, [str(err)]):
            return  # both refuse it here, for the same missing directory
        pytest.fail("supervisord accepts this file, bigtop refuses it:\n" + str(err))

    problems = [f"warning without file:line: {w!r}" for w in config.warnings
                if not WARNING_PLACE.search(w)]
    if case in SUPERVISORD_REFUSES:
        assert refused, f"{case} is in SUPERVISORD_REFUSES but supervisord accepts it"
        assert not problems, "\n".join(problems)
        return
    problems += unsaid_refusals(sd, list(config.warnings))
    problems += differences(sd, config)
    problems += unmentioned(sd, config)
    assert not problems, ("bigtop and supervisord differ:\n  " + "\n  ".join(problems)
                          + "\nbigtop's warnings:\n  " + "\n  ".join(config.warnings))


def test_corpus_is_complete() -> None:
    """Every file of the corpus is listed in SOURCES.md, and every included file exists."""
    sources = (CORPUS / "SOURCES.md").read_text()
    for path in CORPUS.rglob("*"):
        rel = path.relative_to(CORPUS).as_posix()
        if path.is_file() and path.name != "SOURCES.md":
            assert f"`{rel}`" in sources, f"{rel} is not listed in SOURCES.md"
    for included in INCLUDED:
        assert (CORPUS / included).is_file(), included
