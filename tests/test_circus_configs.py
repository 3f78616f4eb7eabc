"""Real Circus configuration files, read by Circus's own parser and by bigtop.

bigtop promises to read Circus files unchanged. The corpus in
``tests/data/circus/`` holds real files, unchanged (``SOURCES.md`` says where
each comes from): Circus's examples and test configurations, Taiga's official
setup and files published by other projects.

For each file, Circus 0.19.0 (``.venv-circus``, installed by ``make test``)
parses it in a subprocess, with a fixed environment and the file's directory
as its working directory, through ``circus.config.get_config`` and then what
``circus.arbiter.Arbiter.load_from_config`` does with the result
(``Watcher.load_from_config``, ``CircusSocket.load_from_config``,
``circus.stream.get_stream``), leaving out what depends on this machine:
hooks are not imported and streams write to a scratch file. bigtop loads the
same file with the same environment. Then:

- if Circus refuses the file (``get_config`` raises) or a watcher or socket
  of it (Circus's arbiter drops those with a warning), bigtop must refuse the
  file too, unless ``CIRCUS_REFUSES`` says why bigtop accepts it;
- otherwise every field is compared, after the normalisations below, each a
  documented difference (docs/config.md, "Differences from Circus") or a
  difference of representation only; any other difference fails the case
  with the list of them;
- whatever Circus reads and ignores (unknown sections, keys its watcher or
  socket does not take) must be known to bigtop or named in a warning;
- every warning of bigtop's names the place it is about (``file:line: ``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bigtop.config import Config, ConfigError, load
from bigtop.config.options import locate, table

from .conftest import ROOT

CORPUS = ROOT / "tests" / "data" / "circus"
CIRCUS_PYTHON = ROOT / ".venv-circus" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not CIRCUS_PYTHON.exists(),
    reason="the real Circus is missing: `make test` (or `make .venv-circus/.installed-0.19.0`) "
           f"installs circus==0.19.0 into {ROOT / '.venv-circus'}")

# Files that only make sense inside the file that includes them: they are
# read through it, never on their own.
FRAGMENTS = {
    # [included] sections, named by issue1119.ini (whose include lines sit
    # in a watcher section, so Circus never reads them either).
    "circus-tent/circus/circus/tests/config/issue1119_included.ini",
    "circus-tent/circus/circus/tests/config/issue1119_included/foo.ini",
    "circus-tent/circus/circus/tests/config/issue1119_included/bar/baz.ini",
    # included by circus/tests/include.ini and include_dir.ini
    "circus-tent/circus/circus/tests/included-bar.ini",
    "circus-tent/circus/circus/tests/included-foo.ini",
    "circus-tent/circus/circus/tests/included/barbaz.ini",
    "circus-tent/circus/circus/tests/included/foobar.ini",
}

CASES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.ini")
               if p.relative_to(CORPUS).as_posix() not in FRAGMENTS)

# Circus refuses these (or a watcher or socket of them) and bigtop accepts
# them, on purpose: file -> why.
CIRCUS_REFUSES: dict[str, str] = {}

# Circus accepts these and bigtop refuses them, on purpose (each a line of
# docs/config.md, "Differences from Circus"): file -> a text bigtop's error
# must contain.
NO_CMD = "missing 'cmd'"  # Circus accepts it, and its first spawn raises IndexError
BIGTOP_REFUSES: dict[str, str] = {
    # Keyless tcp:// outside loopback: Circus served it to anyone.
    "mozilla/geoip_server/conf/circus.ini":
        "a tcp:// endpoint outside the loopback address needs CurveZMQ keys",
    # Circus's own test of a bad file: its parser refuses the section written twice.
    "circus-tent/circus/circus/tests/bad.ini": "section [watcher:one] again (first at line 4)",
    "circus-tent/circus/circus/tests/hooks.ini": NO_CMD,
    "circus-tent/circus/circus/tests/config/find_hook.ini": NO_CMD,
    "circus-tent/circus/circus/tests/config/find_hook_in_pythonpath.ini": NO_CMD,
    "circus-tent/circus/tests/config/find_hook_in_pythonpath.ini": NO_CMD,
    "circus-tent/circus/tests/config/hooks.ini": NO_CMD,
}

WARNING_PLACE = re.compile(r"\S+:\d+: ")


@functools.cache
def circus_python_version() -> str:
    run = subprocess.run([str(CIRCUS_PYTHON), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return run.stdout.strip()


def make_home(home: Path) -> Path:
    """A home with the virtualenv that Fermentrack's file names
    (``$(circus.env.HOME)/venv``), so that both parsers get past it: Circus
    looks for its ``lib/pythonX.Y/site-packages`` (``util.load_virtualenv``),
    bigtop for the directory."""
    (home / "venv" / "bin").mkdir(parents=True)
    (home / "venv" / "lib" / f"python{circus_python_version()}" / "site-packages").mkdir(
        parents=True)
    return home


def environ_for(path: Path, home: Path) -> dict[str, str]:
    """The environment both parsers get: fixed, plus what some files name."""
    return {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",  # no locale coercion: Python adds nothing to this
        "PWD": str(path.parent),
        "GRAVITY": "down",  # circus/tests/config/issue567.ini
        "circus_statsd": "True",  # tests/config/issue442.ini
        "circus_stats_endpoint": "tcp://127.0.0.1:9876",  # tests/config/issue442.ini
        "SALISHSEA_SITE": "/srv/salishsea-site",  # SalishSeaCast/salishsea-site
    }


# -- Circus's side ------------------------------------------------------------

CIRCUS_SCRIPT = r'''
import copy, inspect, json, logging, os, shutil, socket, sys, tempfile, warnings

import circus.stream
from circus import logger
from circus.config import get_config, read_config
from circus.sockets import CircusSocket
from circus.stream import FileStream, get_stream
from circus.util import parse_env_dict, resolve_name
from circus.watcher import Watcher

path = sys.argv[1]
logged = []


class Keep(logging.Handler):
    def emit(self, record):
        logged.append(record.getMessage())


logger.addHandler(Keep(logging.WARNING))
logger.propagate = False
warnings.simplefilter("ignore")


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return int(value)  # signal numbers are enums
    return repr(value)


try:
    parser, files = read_config(path)
    cfg = get_config(path)
except Exception as err:
    print(json.dumps({"error": "%s: %s" % (type(err).__name__, err), "logged": logged}))
    sys.exit(0)

SIGNATURE = inspect.signature(Watcher.__init__).parameters
WATCHER_PARAMS = {k: p.default for k, p in SIGNATURE.items()
                  if k not in ("self", "options", "name", "cmd", "loop", "prereload_fn")}
CIRCUS_KEYS = ("check_delay", "endpoint", "endpoint_owner", "pubsub_endpoint",
               "multicast_endpoint", "stats_endpoint", "statsd", "umask", "warmup_delay",
               "httpd", "httpd_host", "httpd_port", "debug", "debug_gc", "pidfile", "loglevel",
               "logoutput", "loggerconfig", "fqdn_prefix")


def options(section):
    return {k for k in parser.options(section) if k != "__name__"}


given = options("circus") if parser.has_section("circus") else set()
out = {
    "files": [os.path.abspath(f) for f in files],
    "environ": dict(os.environ),
    "circus": {k: cfg[k] for k in CIRCUS_KEYS if k in given},
    "circus_ignored": sorted(given - set(CIRCUS_KEYS) - {"include", "include_dir"}),
    "sections_ignored": sorted(
        s for s in parser.sections()
        if s != "circus" and s != "env"
        and not s.startswith(("watcher:", "socket:", "plugin:", "env:"))),
    "sections_skipped": sorted(
        s for s in parser.sections()
        if s.startswith(("watcher:", "socket:", "plugin:")) and not options(s)),
    "watchers": {}, "sockets": {}, "plugins": {}, "logged": logged,
}

SCRATCH = tempfile.tempdir = tempfile.mkdtemp()  # FileStream without filename: mkstemp


def check_stream(stream, conf):
    """Build the stream as the watcher would (circus.stream.get_stream), on a
    scratch file; return the options its class does not take (it ignores them)."""
    if not conf:
        return []
    name = conf.get("class")
    if name is None:
        cls = FileStream
    elif "." not in name:
        cls = vars(circus.stream)[name]
    else:
        cls = resolve_name(name)
    taken = {k for k, p in inspect.signature(cls.__init__).parameters.items()
             if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    trial = dict(conf)
    if "filename" in trial:
        trial["filename"] = os.path.join(SCRATCH, stream)
    built = get_stream(trial)
    if hasattr(built, "close"):
        built.close()
    return sorted(k for k in conf if k != "class" and k not in taken)


for w in cfg["watchers"]:
    w = dict(w)
    w.pop("__name__", None)
    w["given"] = sorted(options("watcher:" + w["name"]))
    w["env"] = parse_env_dict(w["env"])  # what Watcher.load_from_config does first
    w["passthrough"] = sorted(k for k in w if k not in WATCHER_PARAMS
                              and k not in ("name", "cmd", "env", "given"))
    # What Watcher.__init__ refuses, leaving out what depends on this
    # machine: hooks import modules, streams open their files (they are
    # built apart, writing to a scratch file).
    trial = copy.deepcopy({k: v for k, v in w.items() if k not in ("given", "passthrough")})
    trial.update(stdout_stream={}, stderr_stream={}, hooks={}, loop=object())
    try:
        for stream in ("stdout_stream", "stderr_stream"):
            w[stream + "_ignored"] = check_stream(stream, w[stream])
        built = Watcher.load_from_config(trial)
    except Exception as err:
        w["refused"] = "%s: %s" % (type(err).__name__, err)
    else:
        for key in ("numprocesses", "graceful_timeout", "max_retry", "max_age",
                    "max_age_variance"):
            w[key] = getattr(built, key)
    for key, default in WATCHER_PARAMS.items():
        w.setdefault(key, default)
    out["watchers"][w["name"]] = jsonable(w)

KNOWN_SOCKET = {"name", "host", "port", "path", "interface", "family", "type", "backlog",
                "so_reuseport", "umask", "replace", "blocking", "proto"}
for s in cfg["sockets"]:
    s = dict(s)
    s.pop("__name__", None)
    entry = {"raw": dict(s), "ignored": sorted(set(s) - KNOWN_SOCKET)}
    try:
        sock = CircusSocket.load_from_config(dict(s))  # a socket object, bound to nothing
    except Exception as err:
        entry["refused"] = "%s: %s" % (type(err).__name__, err)
    else:
        entry.update(host=s.get("host", "localhost"), port=int(s.get("port", 8080)),
                     path=sock.path, family=socket.AddressFamily(sock.family).name,
                     type=socket.SocketKind(sock.socktype).name, backlog=sock.backlog,
                     umask=sock.umask, replace=bool(sock.replace),
                     so_reuseport=sock.so_reuseport, blocking=sock.blocking,
                     interface=sock.interface, proto=sock.proto)
        sock.close()
    out["sockets"][s["name"]] = jsonable(entry)

for p in cfg["plugins"]:
    p = dict(p)
    p.pop("__name__", None)
    out["plugins"][p["name"]] = jsonable(p)

shutil.rmtree(SCRATCH)
print(json.dumps(out))
'''


def circus_reads(path: Path, environ: dict[str, str]) -> dict[str, Any]:
    run = subprocess.run([str(CIRCUS_PYTHON), "-c", CIRCUS_SCRIPT, str(path)], cwd=path.parent,
                         env=environ, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"the Circus side crashed:\n{run.stderr}"
    return json.loads(run.stdout)


def circus_refusals(circus: dict[str, Any]) -> list[str]:
    """What Circus refuses: the file, or watchers and sockets its arbiter drops."""
    if "error" in circus:
        return [f"get_config: {circus['error']}"]
    return ([f"[watcher:{n}] {w['refused']}" for n, w in circus["watchers"].items()
             if "refused" in w]
            + [f"[socket:{n}] {s['refused']}" for n, s in circus["sockets"].items()
               if "refused" in s])


# -- bigtop's side, in the same terms -----------------------------------------

def bigtop_watcher(spec: Any) -> dict[str, Any]:
    return {
        "cmd": spec.cmd, "args": spec.args, "numprocesses": spec.numprocesses,
        "warmup_delay": spec.warmup_delay, "executable": spec.executable,
        "working_dir": spec.working_dir, "on_demand": spec.on_demand, "shell": spec.shell,
        "shell_args": spec.shell_args, "uid": spec.uid, "gid": spec.gid,
        "send_hup": spec.send_hup, "stop_signal": spec.stop_signal,
        "stop_children": spec.stop_children, "max_retry": spec.max_retry,
        "graceful_timeout": spec.graceful_timeout, "rlimits": dict(spec.rlimits),
        "stdout_stream": dict(spec.stdout_stream.options),
        "stderr_stream": dict(spec.stderr_stream.options),
        "priority": spec.priority, "use_sockets": spec.use_sockets,
        "singleton": spec.singleton, "copy_env": spec.copy_env, "copy_path": spec.copy_path,
        "hooks": {k: [h.target, h.ignore_failure] for k, h in spec.hooks.items()},
        "respawn": spec.respawn, "autostart": spec.autostart, "env": dict(spec.env),
        "virtualenv": spec.virtualenv, "max_age": spec.max_age,
        "max_age_variance": spec.max_age_variance,
        "close_child_stdin": spec.close_child_stdin,
        "close_child_stdout": spec.close_child_stdout,
        "close_child_stderr": spec.close_child_stderr,
        "stdin_socket": spec.stdin_socket, "check_flapping": spec.check_flapping,
        "flapping": dict(spec.flapping),
    }


WATCHER_FIELDS = (
    "cmd", "args", "numprocesses", "warmup_delay", "executable", "working_dir", "on_demand",
    "shell", "shell_args", "uid", "gid", "send_hup", "stop_signal", "stop_children",
    "max_retry", "graceful_timeout", "rlimits", "stdout_stream", "stderr_stream", "priority",
    "use_sockets", "singleton", "copy_env", "copy_path", "hooks", "respawn", "autostart",
    "env", "virtualenv", "max_age", "max_age_variance", "close_child_stdin",
    "close_child_stdout", "close_child_stderr", "stdin_socket", "check_flapping", "flapping")

SOCKET_FIELDS = ("host", "port", "path", "family", "type", "backlog", "umask", "replace",
                 "so_reuseport", "blocking", "interface", "proto")


def bigtop_socket(spec: Any) -> dict[str, Any]:
    return {
        "host": spec.host, "port": spec.port, "path": spec.path, "family": spec.family,
        "type": spec.type, "backlog": spec.backlog, "umask": spec.umask,
        "replace": spec.replace, "so_reuseport": spec.so_reuseport,
        "blocking": spec.blocking, "interface": spec.interface,
        # Circus stores the number getprotobyname gives; 0 is the type's default.
        "proto": socket.getprotobyname(spec.proto) if spec.proto else 0,
    }


# -- normalisations: each a documented difference, or representation only -----

def plugin_name(circus_name: str) -> str:
    """Circus names a plugin by its whole section title, ``plugin:NAME``;
    bigtop by NAME, and runs it as the watcher ``plugin:NAME`` as Circus
    does (docs/config.md, "Plugin options")."""
    return circus_name.split(":", 1)[1]


def no_args(circus_args: str) -> str | None:
    """Circus's default ``args`` is ``''`` (config.watcher_defaults), bigtop's
    None: both mean no arguments (representation only)."""
    return circus_args or None


def env_with_copy(bigtop_env: dict[str, str], copy_env: bool,
                  environ: dict[str, str]) -> dict[str, str]:
    """With ``copy_env``, Circus's ``get_config`` starts the watcher's env
    from the daemon's environment at load time (``watcher['env'] =
    dict(global_env)``); bigtop keeps only the file's variables in the spec
    and puts them over the daemon's environment at each spawn (docs/config.md,
    "The environment a process gets", step 1). Same result for a daemon whose
    environment does not change."""
    return {**environ, **bigtop_env} if copy_env else bigtop_env


def without_section_title(circus_env: dict[str, str]) -> dict[str, str]:
    """Circus's parser keeps each section's title under the key ``__name__``
    (``StrictConfigParser._read``) and ``get_config`` copies the items of
    ``[env]`` and ``[env:...]`` into the environment with it, so Circus's
    processes get a variable ``__name__`` (``env`` or ``env:PATTERNS``).
    That is an artefact of Circus's parser, which bigtop does not reproduce
    (not yet listed in docs/config.md, "Differences from Circus")."""
    return {k: v for k, v in circus_env.items() if k != "__name__"}


def flapping_as_circus_reads_it(circus_watcher: dict[str, Any]) -> dict[str, Any]:
    """Circus passes ``flapping.X`` through as strings; its flapping plugin
    converts them (``Flapping.update_conf``: attempts and max_retry int,
    window and retry_in float; ``active`` through ``to_bool``). bigtop stores
    them converted (representation only)."""
    out: dict[str, Any] = {}
    for key in circus_watcher["passthrough"]:
        if not key.startswith("flapping."):
            continue
        name, value = key[len("flapping."):], circus_watcher[key]
        if name in ("attempts", "max_retry"):
            value = int(value)
        elif name in ("window", "retry_in"):
            value = float(value)
        elif name == "active":
            value = value.strip().lower() in ("yes", "true", "on", "1")
        out[name] = value
    return out


def socket_umask(circus_socket: dict[str, Any]) -> int | None:
    """Circus reads a socket's ``umask`` as a decimal number
    (``CircusSocket.load_from_config``: ``int(config.get('umask', 8))``);
    bigtop reads it as octal, as every other umask (docs/config.md,
    "Differences from Circus": "Socket umask is octal"). A socket without
    umask is left out by the caller: Circus's placeholder 8 is used by Unix
    sockets only, see ``unix_socket_fields``."""
    return int(str(circus_socket["raw"]["umask"]).strip(), 8)


def circus_default_umask(name: str, config: Config) -> bool:
    """A Unix socket without ``umask``: Circus binds it with umask 8 (its
    decimal default, 0o010: the file is writable by every user, who can all
    connect), bigtop with the daemon's umask. Accepted as a difference only
    where bigtop says so in a warning about that socket (not yet in
    docs/config.md, "Differences from Circus")."""
    return any(f"[socket:{name}]" in w and "umask" in w for w in config.warnings)


def unix_socket_fields(circus_socket: dict[str, Any]) -> tuple[str, ...]:
    """A Unix socket has no host or port (Circus sets both to None); an
    internet socket has no umask (Circus's ``bind_and_listen`` applies it to
    Unix sockets only), so its placeholder 8 means nothing there."""
    if circus_socket["family"] == "AF_UNIX":
        return tuple(f for f in SOCKET_FIELDS if f not in ("host", "port"))
    return tuple(f for f in SOCKET_FIELDS if f != "umask" or "umask" in circus_socket["raw"])


def stream_as_circus_uses_it(circus_watcher: dict[str, Any], stream: str) -> dict[str, str]:
    """Circus hands every ``stdout_stream.X`` to the stream class, which
    drops the keywords it does not name (``FileStream.__init__(...,
    **kwargs)``: ``refresh_time``, Circus 0.5's option, does nothing). bigtop
    drops such an option too, with a warning (checked by ``unmentioned``);
    what is compared is what the class uses."""
    ignored = set(circus_watcher.get(stream + "_ignored", ()))
    return {k: v for k, v in circus_watcher[stream].items() if k not in ignored}


# [circus] settings bigtop reads and does not act on (docs/config.md, "Read
# but not acted on yet").
UNUSED_SETTINGS = ("multicast_endpoint", "papa_endpoint", "check_delay", "statsd",
                   "statsd_close_outputs", "stats_close_outputs", "stream_backend",
                   "httpd_close_outputs", "debug_gc", "loggerconfig", "fqdn_prefix")


def ignored_unused_setting(key: str, config: Config) -> bool:
    """A setting bigtop does not act on, whose value it could not take
    (``check_delay = -1`` in Circus's reload tests) and says so in a warning
    at the key's line: bigtop keeps its default, which changes nothing since
    nothing reads it. Any other value of these settings is compared."""
    return key in UNUSED_SETTINGS and any(
        f"[circus] {key}:" in w and "ignored" in w for w in config.warnings)


def loglevel(value: str | None) -> str | None:
    """Circus lower-cases the level when it applies it
    (``util.configure_logger``: ``LOG_LEVELS.get(level.lower())``); bigtop
    stores it lower-cased (representation only)."""
    return value.lower() if isinstance(value, str) else value


def given_circus_settings(circus: dict[str, Any]) -> dict[str, Any]:
    """[circus] settings are compared where the file sets them: Circus fills
    in its defaults (tcp:// endpoints on 5555-5557), bigtop's differ by design
    (ipc:// endpoints in a private directory, docs/config.md, the [circus]
    table)."""
    return dict(circus["circus"])


# -- the comparison -------------------------------------------------------------

def differences(circus: dict[str, Any], config: Config, environ: dict[str, str]) -> list[str]:
    out: list[str] = []

    def differ(where: str, field: str, theirs: Any, ours: Any) -> None:
        if theirs != ours:
            out.append(f"{where} {field}: Circus {theirs!r}, bigtop {ours!r}")

    settings = config.settings
    for key, value in given_circus_settings(circus).items():
        ours = getattr(settings, key, "<no such setting>")
        if key == "loglevel":
            value, ours = loglevel(value), loglevel(ours)
        if value != ours and ignored_unused_setting(key, config):
            continue
        differ("[circus]", key, value, ours)

    ours_files = sorted(os.path.realpath(f) for f in config.files)
    theirs_files = sorted(os.path.realpath(f) for f in circus["files"])
    differ("files", "read", theirs_files, ours_files)

    watchers = {w.name: w for w in config.watchers}
    for name, theirs in circus["watchers"].items():
        spec = watchers.pop(name, None)
        if spec is None:
            out.append(f"[watcher:{name}] built by Circus, missing in bigtop")
            continue
        ours = bigtop_watcher(spec)
        for field in WATCHER_FIELDS:
            if field == "args":
                differ(f"[watcher:{name}]", field, no_args(theirs["args"]), ours["args"])
            elif field == "env":
                differ(f"[watcher:{name}]", field, without_section_title(theirs["env"]),
                       env_with_copy(ours["env"], spec.copy_env, environ))
            elif field == "flapping":
                differ(f"[watcher:{name}]", field, flapping_as_circus_reads_it(theirs),
                       ours["flapping"])
            elif field in ("stdout_stream", "stderr_stream"):
                differ(f"[watcher:{name}]", field, stream_as_circus_uses_it(theirs, field),
                       ours[field])
            elif field == "check_flapping":
                # A no-op passed through by Circus 0.19; compared when given.
                if "check_flapping" in theirs["given"]:
                    differ(f"[watcher:{name}]", field, theirs["check_flapping"],
                           ours["check_flapping"])
            else:
                differ(f"[watcher:{name}]", field, theirs[field], ours[field])
    for name in watchers:
        out.append(f"[watcher:{name}] built by bigtop, not by Circus")

    sockets = {s.name: s for s in config.sockets}
    for name, theirs in circus["sockets"].items():
        sock = sockets.pop(name, None)
        if sock is None:
            out.append(f"[socket:{name}] built by Circus, missing in bigtop")
            continue
        ours = bigtop_socket(sock)
        for field in unix_socket_fields(theirs):
            value = theirs[field]
            if field == "umask" and "umask" in theirs["raw"]:
                value = socket_umask(theirs)
            elif field == "umask" and circus_default_umask(name, config):
                continue
            differ(f"[socket:{name}]", field, value, ours[field])
    for name in sockets:
        out.append(f"[socket:{name}] built by bigtop, not by Circus")

    plugins = {p.name: p for p in config.plugins}
    for circus_name, theirs in circus["plugins"].items():
        name = plugin_name(circus_name)
        plugin = plugins.pop(name, None)
        if plugin is None:
            out.append(f"[{circus_name}] built by Circus, missing in bigtop")
            continue
        differ(f"[{circus_name}]", "use", theirs["use"], plugin.use)
        differ(f"[{circus_name}]", "priority", theirs.get("priority", 0), plugin.priority)
        options = {k: v for k, v in theirs.items() if k not in ("name", "use", "priority")}
        differ(f"[{circus_name}]", "options", options, dict(plugin.options))
    for name in plugins:
        out.append(f"[plugin:{name}] built by bigtop, not by Circus")
    return out


def unmentioned(circus: dict[str, Any], config: Config) -> list[str]:
    """What Circus reads and ignores, that bigtop neither knows nor names in a
    warning (``[SECTION] KEY``, as every message of bigtop's names it): bigtop
    may ignore it too, but not silently."""

    def named(where: str) -> bool:
        return any(where in w for w in config.warnings)

    out = []
    for key in circus["circus_ignored"]:
        if key not in table("circus") and not named(f"[circus] {key}"):
            out.append(f"[circus] {key}: ignored by Circus, not known or named by bigtop")
    for section in circus["sections_ignored"] + circus["sections_skipped"]:
        if not named(f"[{section}]"):
            out.append(f"[{section}]: ignored by Circus, not named in a warning of bigtop")
    for name, watcher in circus["watchers"].items():
        for key in watcher["passthrough"]:
            if locate(table("watcher"), key) is None and not named(f"[watcher:{name}] {key}"):
                out.append(f"[watcher:{name}] {key}: passed through and unused by Circus, "
                           "not known or named by bigtop")
        spec = config.watcher(name)
        for stream in ("stdout_stream", "stderr_stream"):
            for key in watcher.get(stream + "_ignored", ()):
                kept = spec is not None and key in getattr(spec, stream).options
                if not kept and not named(f"[watcher:{name}] {stream}.{key}"):
                    out.append(f"[watcher:{name}] {stream}.{key}: ignored by Circus's stream "
                               "class, dropped by bigtop without a warning")
    for name, sock in circus["sockets"].items():
        for key in sock["ignored"]:
            if locate(table("socket"), key) is None and not named(f"[socket:{name}] {key}"):
                out.append(f"[socket:{name}] {key}: ignored by Circus, not known or named "
                           "by bigtop")
    return out


@pytest.mark.parametrize("case", CASES)
def test_circus_config(case: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = CORPUS / case
    environ = environ_for(path, make_home(tmp_path / "home"))
    circus = circus_reads(path, environ)
    if "environ" in circus:
        assert circus["environ"] == environ, "the Circus side saw another environment"
    monkeypatch.chdir(path.parent)

    refused = circus_refusals(circus)
    if refused and case not in CIRCUS_REFUSES:
        try:
            config = load(str(path), environ=environ)
        except ConfigError:
            return
        pytest.fail("Circus refuses this file, bigtop accepts it:\n  " + "\n  ".join(refused)
                    + "\nbigtop's warnings:\n  " + "\n  ".join(config.warnings))

    if case in BIGTOP_REFUSES:
        assert not refused, f"{case} is in BIGTOP_REFUSES but Circus refuses it too"
        with pytest.raises(ConfigError, match=re.escape(BIGTOP_REFUSES[case])):
            load(str(path), environ=environ)
        return
    try:
        config = load(str(path), environ=environ)
    except ConfigError as err:
        pytest.fail("Circus accepts this file, bigtop refuses it:\n" + str(err))

    problems = [f"warning without file:line: {w!r}" for w in config.warnings
                if not WARNING_PLACE.search(w)]
    if case in CIRCUS_REFUSES:
        assert refused, f"{case} is in CIRCUS_REFUSES but Circus accepts it"
        assert not problems, "\n".join(problems)
        return
    problems += differences(circus, config, environ)
    problems += unmentioned(circus, config)
    assert not problems, ("bigtop and Circus differ:\n  " + "\n  ".join(problems)
                          + "\nbigtop's warnings:\n  " + "\n  ".join(config.warnings))


def test_corpus_is_complete() -> None:
    """Every file of the corpus is listed in SOURCES.md, and every fragment exists."""
    sources = (CORPUS / "SOURCES.md").read_text()
    for path in CORPUS.rglob("*.ini"):
        rel = path.relative_to(CORPUS).as_posix()
        assert f"`{rel}`" in sources, f"{rel} is not listed in SOURCES.md"
    for fragment in FRAGMENTS:
        assert (CORPUS / fragment).is_file(), fragment
