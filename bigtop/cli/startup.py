"""``bigtopctl startup``: start bigtopd on a configuration at boot, as a
systemd service (PM2's ``pm2 startup``, for systemd only).

The command prints a unit for one configuration file, or with
``--install`` writes it to /etc/systemd/system/bigtop-NAME.service and
enables it (``--uninstall`` undoes that). Every path in the unit is
absolute: the file, this installation's bigtopd, the directory the daemon
starts in. The unit runs bigtopd in the foreground as a ``Type=notify``
service: bigtopd says ``READY=1`` once its watchers are started (see
bigtop/sdnotify.py and bigtopd's ``serve``). docs/boot.md explains each
line of the unit.

Everything is checked before anything is written (the file is read as
bigtopd would read it), the unit is written to a temporary file renamed
into place, and a failing ``systemctl`` puts the previous file back.
Client-side only: nothing here talks to a daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config

OK, FAILED, USAGE = 0, 1, 2  # 2: a bad argument or configuration; 1: the system refused

INIT_SYSTEMS = ("systemd",)
UNIT_DIR = "/etc/systemd/system"
MARKER = "# Written by bigtopctl startup"  # a unit this command may replace or remove
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# systemd's PATH for services, which has no virtualenv in it.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The soft limit children get back (1024: select() stays safe for them) and
# the hard one, up to which the daemon raises its own and a process may
# raise its own (core/limits.py).
LIMIT_NOFILE = "1024:524288"
STOP_HOOKS = ("before_stop", "before_signal", "after_stop")  # waited for, in a stop
PLUGIN_GRACEFUL_S = 10.0  # a plugin's watcher (core/plugin_watchers.py)
STOP_MARGIN_S = 10.0  # the daemon's own end: SIGKILLs, output written out, the exit
SYSTEMCTL_S = 60.0  # how long one systemctl call may take


class StartupError(Exception):
    def __init__(self, message: str, status: int = USAGE):
        super().__init__(message)
        self.status = status


# -- the command's arguments --------------------------------------------------------

def seconds(minimum: float) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not value >= minimum or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a number of seconds >= {minimum:g}, "
                                             f"not {text!r}")
        return value

    return convert


def arguments(p: argparse.ArgumentParser) -> None:
    """bigtopctl's arguments of ``startup`` (its command table, ctlcommands.py)."""
    p.usage = ("bigtopctl startup [systemd] CONFIG [--install | --uninstall] [--name NAME]\n"
               "       [--user USER] [--group GROUP] [--watchdog SECONDS] [...]")
    p.add_argument("words", nargs="*", metavar="CONFIG",
                   help="the configuration file bigtopd runs; 'systemd' before it names "
                        "the init system, the one supported")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--install", action="store_true",
                        help=f"write the unit to {UNIT_DIR}/bigtop-NAME.service, then "
                             "systemctl daemon-reload and enable it (default: print it)")
    action.add_argument("--uninstall", action="store_true",
                        help="systemctl disable the unit, remove it, daemon-reload")
    p.add_argument("--name", metavar="NAME",
                   help="the unit is bigtop-NAME.service (default: the configuration "
                        "file's name without its extension)")
    p.add_argument("--user", metavar="USER", help="run bigtopd as this user (User=)")
    p.add_argument("--group", metavar="GROUP", help="and this group (Group=)")
    p.add_argument("--watchdog", type=seconds(1.0), metavar="SECONDS",
                   help="WatchdogSec=: systemd restarts bigtopd if its event loop stops "
                        "answering for that long")
    p.add_argument("--timeout-stop", type=seconds(1.0), metavar="SECONDS",
                   help="TimeoutStopSec= (default: the longest chain of graceful_timeout "
                        "in the stop order, plus 10 s)")
    p.add_argument("--kill-mode", choices=("mixed", "process"), default="mixed",
                   help="KillMode= (default: mixed; process keeps the processes of a bigtopd "
                        "that died for its successor, for on_daemon_crash = adopt)")
    p.add_argument("--working-dir", metavar="DIR",
                   help="where bigtopd starts, which relative paths of the configuration "
                        "are relative to (default: the current directory)")
    p.add_argument("--bigtopd", metavar="PATH",
                   help="the bigtopd to run (default: this installation's)")
    p.add_argument("--unit-dir", metavar="DIR",
                   help=f"with --install or --uninstall: the unit's directory instead of "
                        f"{UNIT_DIR}")
    p.add_argument("--no-reload", action="store_true",
                   help="with --install or --uninstall: do not run systemctl")


# -- the unit -------------------------------------------------------------------------

@dataclass
class Plan:
    name: str  # NAME of bigtop-NAME.service
    config: str | None  # absolute
    text: str = ""  # the unit
    endpoint: str = ""  # where the daemon will answer
    notes: tuple[str, ...] = ()

    @property
    def unit(self) -> str:
        return f"bigtop-{self.name}.service"


def run(ns: argparse.Namespace, as_json: bool = False) -> int:
    try:
        if ns.uninstall:
            plan = target(ns)
            result = uninstall(plan, unit_dir(ns), not ns.no_reload)
        else:
            plan = unit_plan(ns)
            for note in plan.notes:
                sys.stderr.write(f"bigtopctl startup: note: {note}\n")
            if not ns.install:
                if as_json:
                    print(json.dumps({"unit": plan.unit, "text": plan.text}))
                else:
                    sys.stdout.write(plan.text)
                return OK
            result = install(plan, unit_dir(ns), not ns.no_reload)
    except StartupError as err:
        sys.stderr.write(f"bigtopctl startup: error: {err}\n")
        return err.status
    said = result.pop("said")
    print(json.dumps(result) if as_json else said)
    return OK


def words(ns: argparse.Namespace) -> str | None:
    """The configuration file named on the line, if any."""
    given: list[str] = list(ns.words)
    if len(given) > 2:
        raise StartupError(f"too many arguments: {' '.join(given[2:])}")
    if len(given) == 2:
        if given[0] not in INIT_SYSTEMS:
            raise StartupError(f"no init system {given[0]!r}: only systemd is supported")
        return given[1]
    if given and given[0] in INIT_SYSTEMS:
        return None  # a file named so is ./systemd
    return given[0] if given else None


def target(ns: argparse.Namespace) -> Plan:
    """The unit ``--uninstall`` removes: named after CONFIG (which need not
    exist any more) or --name."""
    shaping = [flag for flag, value in (("--user", ns.user), ("--group", ns.group),
                                        ("--watchdog", ns.watchdog),
                                        ("--timeout-stop", ns.timeout_stop),
                                        ("--working-dir", ns.working_dir),
                                        ("--bigtopd", ns.bigtopd)) if value is not None]
    if ns.kill_mode != "mixed":
        shaping.append("--kill-mode")
    if shaping:
        raise StartupError(f"--uninstall removes a unit: {', '.join(shaping)} "
                           "make no sense with it")
    config = words(ns)
    if config is None and ns.name is None:
        raise StartupError("--uninstall needs CONFIG or --name NAME")
    path = os.path.abspath(config) if config is not None else None
    return Plan(unit_name(ns.name, path), path)


def unit_name(name: str | None, config: str | None) -> str:
    if name is None:
        assert config is not None
        base = os.path.basename(config)
        name = os.path.splitext(base)[0] if not base.startswith(".") else base
        if not NAME.fullmatch(name):
            raise StartupError(f"cannot name a unit after {base!r}: give --name NAME "
                               "(letters, digits, '_', '.', '-')")
        return name
    if not NAME.fullmatch(name):
        raise StartupError(f"--name {name!r}: letters, digits, '_', '.' and '-' only, "
                           "200 at most, not starting with '.' or '-'")
    return name


def unit_plan(ns: argparse.Namespace) -> Plan:
    """Every check, and the unit's text: nothing is written."""
    if not ns.install and (ns.unit_dir is not None or ns.no_reload):
        raise StartupError("--unit-dir and --no-reload go with --install or --uninstall")
    given = words(ns)
    if given is None:
        raise StartupError("which configuration? bigtopctl startup [systemd] CONFIG")
    config = checked_path(os.path.abspath(given), "CONFIG")
    if not os.path.isfile(config):
        raise StartupError(f"{given}: {'not a file' if os.path.exists(config) else 'no such file'}")
    name = unit_name(ns.name, config)
    loaded = load_config(config, given)
    bigtopd = find_bigtopd(ns.bigtopd)
    try:
        here = os.getcwd()
    except OSError as err:
        raise StartupError(f"the current directory: {err.strerror} (--working-dir DIR)") from None
    workdir = checked_path(os.path.abspath(ns.working_dir or here), "--working-dir")
    if not os.path.isdir(workdir):
        raise StartupError(f"--working-dir {ns.working_dir}: not a directory")
    user = account(ns.user, "user") if ns.user is not None else None
    group = account(ns.group, "group") if ns.group is not None else None
    stop = ns.timeout_stop if ns.timeout_stop is not None else stop_seconds(loaded)
    run_dir = f"/run/bigtop-{name}"
    service = [
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={command_line([bigtopd, config])}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        f"KillMode={ns.kill_mode}",
        f"TimeoutStopSec={seconds_text(stop)}",
    ]
    if ns.watchdog is not None:
        service.append(f"WatchdogSec={seconds_text(ns.watchdog)}")
    if user is not None:
        service.append(f"User={user}")
    if group is not None:
        service.append(f"Group={group}")
    service += [
        f"WorkingDirectory={specifiers(workdir)}",
        f"RuntimeDirectory=bigtop-{name}",
        "RuntimeDirectoryMode=0700",
        f"Environment={quoted(f'BIGTOP_RUNTIME_DIR={run_dir}')}",
    ]
    bin_dir = os.path.dirname(bigtopd)
    if bin_dir not in SERVICE_PATH.split(":"):
        service.append(f"Environment={quoted(f'PATH={bin_dir}:{SERVICE_PATH}')}")
    service.append(f"LimitNOFILE={LIMIT_NOFILE}")
    unit = f"bigtop-{name}.service"
    lines = [
        f"# {unit}: bigtopd on {config}, started at boot.",
        f"{MARKER}; docs/boot.md explains each line.",
        f"# Remove it with: bigtopctl startup --uninstall --name {name}",
        "[Unit]",
        f"Description={specifiers(f'bigtop: the processes of {config}')}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        *service,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    settings = loaded.settings
    notes = []
    if ns.kill_mode == "mixed" and any(w.on_daemon_crash == "adopt" for w in loaded.watchers):
        notes.append("with KillMode=mixed, systemd kills the processes of a bigtopd that "
                     "died, so on_daemon_crash = adopt has none to take back: --kill-mode "
                     "process keeps them (docs/boot.md)")
    if loaded.cluster is not None and ns.timeout_stop is None:
        notes.append(f"TimeoutStopSec={seconds_text(stop)} counts this file's watchers, not "
                     "those the cluster gives this node: --timeout-stop SECONDS for those")
    return Plan(name, config, "\n".join(lines) + "\n",
                settings.endpoint or f"ipc://{run_dir}/control.sock", tuple(notes))


def checked_path(path: str, what: str) -> str:
    """A path a unit can hold as it is (ExecStart= quotes and escapes it;
    other settings take it verbatim, only ``%`` doubled)."""
    if CONTROL.search(path) or "\\" in path or path != path.strip():
        raise StartupError(f"{what} {path!r}: a path with a control character, a "
                           "backslash or blanks at an end cannot go in a unit")
    return path


def load_config(path: str, given: str) -> Config:
    """The file as bigtopd would read it; its errors as bigtopd gives them."""
    import textwrap

    from ..config import ConfigError, load

    try:
        return load(path)
    except ConfigError as err:
        raise StartupError(f"{given}: invalid configuration, no unit made\n"
                           f"{textwrap.indent(str(err), '  ')}") from None


def find_bigtopd(given: str | None) -> str:
    """This installation's bigtopd: the script beside the Python running
    this command (a virtualenv's bin, symlinks not followed, or the
    scripts directory of its installation)."""
    if given is not None:
        path = checked_path(os.path.abspath(given), "--bigtopd")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise StartupError(f"--bigtopd {given}: not an executable file")
        return path
    import sysconfig

    beside = os.path.dirname(os.path.abspath(sys.executable))
    for directory in dict.fromkeys((beside, sysconfig.get_path("scripts"))):
        path = os.path.join(directory, "bigtopd")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return checked_path(path, "bigtopd")
    raise StartupError(f"no bigtopd beside {sys.executable}: is bigtop installed there? "
                       "(--bigtopd PATH names one)", FAILED)


def account(name: str, kind: str) -> str:
    """A user or group that exists (or a number), for User=/Group=."""
    import grp
    import pwd

    if not ACCOUNT.fullmatch(name):
        raise StartupError(f"--{kind} {name!r} is not a {kind} name")
    if name.isdigit():
        return name
    try:
        (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
    except KeyError:
        raise StartupError(f"--{kind} {name}: no such {kind} here") from None
    return name


def stop_seconds(config: Config) -> float:
    """How long bigtopd may take to stop: watchers stop in order
    (core/ordering.py: lower priority first, dependents before what they
    depend on), each in its graceful_timeout and its stop hooks' time, so
    the longest chain of them, plus a margin for the daemon's own end."""
    cost: dict[str, float] = {}
    after: dict[str, list[str]] = {}  # watcher -> those stopped before it
    entries = [(w.name, w.priority, w.depends_on) for w in config.watchers]
    entries += [(f"plugin:{p.name}", p.priority, ()) for p in config.plugins]
    for w in config.watchers:
        hooks = sum(1 for hook in STOP_HOOKS if hook in w.hooks)
        cost[w.name] = w.graceful_timeout + hooks * w.hook_timeout
    for p in config.plugins:
        cost[f"plugin:{p.name}"] = PLUGIN_GRACEFUL_S
    for name, priority, _ in entries:
        after[name] = [other for other, other_priority, depends in entries
                       if other != name and (other_priority < priority or name in depends)]
    done: dict[str, float] = {}

    def finish(name: str, path: frozenset[str]) -> float:
        if name not in done:
            before = [finish(o, path | {name}) for o in after[name] if o not in path]
            done[name] = cost[name] + max(before, default=0.0)
        return done[name]

    longest = max((finish(name, frozenset()) for name, _, _ in entries), default=0.0)
    return longest + STOP_MARGIN_S


def seconds_text(value: float) -> str:
    """A whole number of seconds, rounded up (systemd takes 1.5 too, but
    not every version takes every spelling)."""
    whole = int(value)
    return str(whole if whole == value else whole + 1)


# -- unit file syntax (systemd.syntax(7), systemd.service(5)) ---------------------------

def specifiers(text: str) -> str:
    """``%`` starts a specifier in most settings: a literal one is ``%%``."""
    return text.replace("%", "%%")


def quoted(text: str) -> str:
    """A double-quoted word, with C-style escapes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{specifiers(escaped)}"'


def command_line(argv: Iterable[str]) -> str:
    """An ExecStart= line: each word quoted when it needs to be, ``$`` as ``$$``
    (no variable is expanded) and ``%`` as ``%%``."""
    out = []
    for word in argv:
        word = word.replace("$", "$$")
        if re.fullmatch(r"[A-Za-z0-9_@+=:,./-]+", word):
            out.append(specifiers(word))
        else:
            out.append(quoted(word))
    return " ".join(out)


# -- installing, uninstalling -------------------------------------------------------------

def unit_dir(ns: argparse.Namespace) -> str:
    directory = os.path.abspath(ns.unit_dir or UNIT_DIR)
    if not os.path.isdir(directory):
        raise StartupError(f"{directory}: no such directory", FAILED)
    if not os.access(directory, os.W_OK | os.X_OK):
        hint = " (run it as root: sudo bigtopctl startup ...)" if os.geteuid() != 0 else ""
        raise StartupError(f"cannot write to {directory}: permission denied{hint}", FAILED)
    return directory


def ours(path: str) -> str | None:
    """The text of a unit this command wrote; None if there is none;
    refused if another file has the name."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(1024 * 1024)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise StartupError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}",
                           FAILED) from None
    if MARKER not in text.split("[Unit]", 1)[0]:
        raise StartupError(f"{path} was not written by bigtopctl startup: left as it is "
                           "(remove it, or choose another --name)", FAILED)
    return text


class Systemctl:
    """systemctl, checked first to be there and to reach the manager."""

    def __init__(self, enabled: bool):
        self.path: str | None = None
        if not enabled:
            return
        import shutil

        self.path = shutil.which("systemctl")
        if self.path is None:
            raise StartupError("no systemctl on PATH: is systemd this system's init? "
                               "(--no-reload writes the unit without running it)", FAILED)
        self("show", "--property=Version")

    def __call__(self, *args: str, check: bool = True) -> bool:
        if self.path is None:
            return True
        import subprocess

        try:
            done = subprocess.run([self.path, *args], capture_output=True, text=True,
                                  timeout=SYSTEMCTL_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            if not check:
                return False
            raise StartupError(f"systemctl {' '.join(args)}: {err}", FAILED) from None
        if done.returncode != 0 and check:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise StartupError(f"systemctl {' '.join(args)} failed (exit {done.returncode})"
                               f"{': ' + said[-1] if said else ''}", FAILED)
        return done.returncode == 0


def write_atomically(path: str, text: str) -> None:
    """The whole file or none: a temporary file beside it, renamed over it."""
    import tempfile

    directory, base = os.path.split(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise StartupError(f"cannot write to {directory}: {err.strerror}", FAILED) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as err:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise StartupError(f"cannot write {path}: {err.strerror}", FAILED) from None
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the rename is done; only its durability is in question


def install(plan: Plan, directory: str, reload: bool) -> dict[str, Any]:
    path = os.path.join(directory, plan.unit)
    before = ours(path)
    systemctl = Systemctl(reload)
    write_atomically(path, plan.text)
    try:
        systemctl("daemon-reload")
        systemctl("enable", plan.unit)
    except StartupError:  # put back what was there
        try:
            if before is None:
                os.unlink(path)
            else:
                write_atomically(path, before)
        except (OSError, StartupError) as err:
            raise StartupError(f"{path} is left as written, and could not be put back: "
                               f"{err}", FAILED) from None
        systemctl("daemon-reload", check=False)
        raise
    if not reload:
        done = f"wrote {path} (systemctl not run: systemctl daemon-reload && systemctl " \
               f"enable {plan.unit})"
    else:
        done = f"wrote {path} and enabled it: bigtopd starts on {plan.config} at boot"
    said = "\n".join((
        done if before != plan.text else done.replace("wrote", "kept", 1),
        f"start it now:  systemctl start {plan.unit}",
        f"control it:    bigtopctl --endpoint {plan.endpoint} status",
        f"remove it:     bigtopctl startup --uninstall --name {plan.name}",
    ))
    return {"unit": plan.unit, "path": path, "changed": before != plan.text,
            "enabled": reload, "endpoint": plan.endpoint, "said": said}


def uninstall(plan: Plan, directory: str, reload: bool) -> dict[str, Any]:
    path = os.path.join(directory, plan.unit)
    if ours(path) is None:
        raise StartupError(f"no {path}: nothing to remove", FAILED)
    systemctl = Systemctl(reload)
    systemctl("disable", plan.unit)
    running = reload and systemctl("is-active", "--quiet", plan.unit, check=False)
    try:
        os.unlink(path)
    except OSError as err:
        systemctl("enable", plan.unit, check=False)
        raise StartupError(f"cannot remove {path}: {err.strerror}", FAILED) from None
    systemctl("daemon-reload")
    said = f"removed {path}" + ("" if reload else " (systemctl not run)")
    if running:
        said += (f"\n{plan.unit} still runs until it stops: systemctl stop {plan.unit} "
                 "stops it and its processes now")
    return {"unit": plan.unit, "path": path, "removed": True, "running": bool(running),
            "said": said}
