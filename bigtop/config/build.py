"""Turn raw sections into the typed model, collecting every problem."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import replace
from fnmatch import fnmatch
from typing import Any

from .bounds import count_problem
from .convert import Converter, non_negative, to_bool, to_compress, to_int
from .declare import Option, declared
from .errors import ConfigError, Problem
from .model import (
    ClusterSettings,
    Config,
    Includes,
    Origin,
    PluginSpec,
    Settings,
    SocketSpec,
    WatcherSpec,
)
from .names import name_problem
from .options import locate, sub_tables, suggestions, table
from .raw import RawSection, RawValue
from .substitute import circus_vars, env_variables, expand_env, substitute
from .values import StreamSpec

CIRCUS, WATCHER, SOCKET, PLUGIN, CLUSTER = (
    table(s) for s in ("circus", "watcher", "socket", "plugin", "cluster"))
ENV_VALUE = WATCHER["env"].converter()
STREAMS = ("stdout_stream", "stderr_stream")
# What the stream classes read (core/streams.py).
STREAM_KEYS = ("class", "filename", "max_bytes", "backup_count", "time_format", "rotate_when",
               "rotate_interval", "utc", "compress", "color")
# What the loader reads and no model stores: include, include_dir.
INCLUDE_KEYS = tuple(o.key for o in declared(Includes))
# Watcher options written key = value, which `set` merges one by one.
WATCHER_VALUES = tuple(name for name, o in WATCHER.items() if o.form == "value")
WATCHER_TABLES = sub_tables(WATCHER)

ENDPOINTS = ("endpoint", "pubsub_endpoint", "stats_endpoint")

Read = tuple[dict[str, Any], dict[str, Any]]


def is_loopback(endpoint: str) -> bool:
    """Whether a ``tcp://HOST:PORT`` endpoint binds a loopback address only."""
    host = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # *, an interface name, a host name
        return False


NUL = "a NUL character: no command, path or environment can hold one"


def _has_nul(value: Any) -> bool:
    """Whether a value (a string, or a TOML array or table of them) holds NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class Builder:
    def __init__(self, environ: Mapping[str, str], strict: bool = False):
        self.environ = dict(environ)
        self.strict = strict  # an unknown key is an error in every format
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    # -- helpers ---------------------------------------------------------

    def problem(self, message: str, section: RawSection, key: str | None = None,
                raw: RawValue | None = None) -> None:
        file, line = (raw.file, raw.line) if raw else (section.file, section.line)
        self.problems.append(Problem(message, file, line, section.title, key))

    def warn(self, message: str, section: RawSection, key: str | None = None,
             raw: RawValue | None = None) -> None:
        """A warning written as a problem is: file:line: [section] key: message."""
        file, line = (raw.file, raw.line) if raw else (section.file, section.line)
        self.warnings.append(str(Problem(message, file, line, section.title, key)))

    def convert(self, section: RawSection, key: str, raw: RawValue, conv: Converter,
                variables: Mapping[str, str], inert: bool = False) -> Any:
        value = raw.value
        if isinstance(value, str):
            value = substitute(value, variables)
        if _has_nul(value):
            self.problem(NUL, section, key, raw)
            return None
        try:
            return conv(value)
        except ValueError as err:
            if inert:  # the value changes nothing: say so, and go on
                self.warn(f"{err}; ignored (bigtop does not use {key})", section, key, raw)
            else:
                self.problem(str(err), section, key, raw)
            return None

    def unknown(self, section: RawSection, key: str, raw: RawValue, known: list[str]) -> None:
        """An unknown key: an error in TOML or with --strict; in INI a
        warning, as Circus and supervisord ignore keys they do not know."""
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if self.strict or section.strict:
            self.problem(f"unknown option{hint}", section, key, raw)
        else:
            self.warn(f"unknown option{hint}, ignored (an error with --strict)", section, key, raw)

    def read(self, section: RawSection, options: Mapping[str, Option],
             variables: Mapping[str, str], skip: tuple[str, ...] = ()) -> Read:
        """Convert the keys of a section: the ``key = value`` options by name,
        and the entries of each entries option (rlimit_*, hooks.*, ...) by the
        option's name, then the entry's."""
        values: dict[str, Any] = {}
        found: dict[str, Any] = {
            name: {} for name, o in options.items() if o.form == "entries"}
        for key, raw in section.values.items():
            if key in skip:
                continue
            located = locate(options, key)
            if located is None:
                self.unknown(section, key, raw, suggestions(options))
                continue
            option, entry = located
            conv = option.entry(entry)
            if conv is None:
                self.unknown(section, key, raw, [option.prefix + k for k in option.keys or ()])
                continue
            value = self.convert(section, key, raw, conv, variables, option.inert)
            if value is None:
                continue
            if option.form == "value":
                values[key] = value
            else:
                found[option.name][entry] = value
        return values, found

    def env_table(self, section: RawSection, key: str, raw: RawValue) -> dict[str, str]:
        """An ``env`` value: a TOML table, or ``A=1, B=2`` / one per line in INI."""
        if _has_nul(raw.value):
            self.problem(NUL, section, key, raw)
            return {}
        if isinstance(raw.value, dict):
            pairs = [(str(name), value) for name, value in raw.value.items()]
        else:
            pairs = []
            for item in re.split(r"[,\n]", str(raw.value)):
                if not item.strip():
                    continue
                name, sep, value = item.partition("=")
                if not sep or not name.strip():
                    self.problem(f"{item.strip()!r} is not NAME=VALUE", section, key, raw)
                    continue
                pairs.append((name.strip(), value.strip()))
        out: dict[str, str] = {}
        for name, value in pairs:
            try:
                out[name] = ENV_VALUE(value)
            except ValueError as err:
                self.problem(f"{name}: {err}", section, key, raw)
        return out

    def expand(self, values: Mapping[str, str], base: dict[str, str]) -> dict[str, str]:
        """Expand ``$VAR`` and ``$(circus.env.X)`` in order, each seeing the earlier ones."""
        out: dict[str, str] = {}
        for key, value in values.items():
            scope = {**self.environ, **base, **out}
            out[key] = expand_env(substitute(value, env_variables(scope)), scope)
        return out

    # -- sections --------------------------------------------------------

    def settings(self, section: RawSection | None, variables: Mapping[str, str]) -> Settings:
        if section is None:
            return Settings()
        values, _ = self.read(section, CIRCUS, variables, skip=INCLUDE_KEYS)
        tcp = [k for k in ENDPOINTS if str(values.get(k, "")).startswith("tcp://")]
        keys = values.get("server_key") and values.get("authorized_keys")
        if tcp and not keys and not values.get("insecure"):
            # As Redis's protected mode: without keys, loopback only.
            reachable = [k for k in tcp if not is_loopback(values[k])]
            for key in reachable:
                self.problem("a tcp:// endpoint outside the loopback address needs CurveZMQ "
                             "keys (server_key and authorized_keys, see `bigtopctl keygen`) "
                             "or insecure = true", section, key, section.values[key])
            if not reachable:
                self.warn("served on loopback without CurveZMQ keys: any local user can "
                          "drive the daemon; use ipc:// endpoints, or server_key and "
                          "authorized_keys (`bigtopctl keygen`)",
                          section, ", ".join(tcp), section.values[tcp[0]])
        for key in ("server_key", "authorized_keys"):
            path = values.get(key)
            if path and not os.path.exists(path):
                self.problem(f"{path!r} does not exist", section, key, section.values[key])
        return Settings(**values)

    def cluster(self, section: RawSection, variables: Mapping[str, str]) -> ClusterSettings:
        values, _ = self.read(section, CLUSTER, variables)
        for key, what in (("name", "cluster"), ("node", "node")):
            if key in values and (problem := name_problem(values[key], what)) is not None:
                self.problem(problem, section, key, section.values[key])
        if bool(values.get("etcd_cert")) != bool(values.get("etcd_key")):
            self.problem("etcd_cert and etcd_key go together", section)
        if bool(values.get("etcd_user")) != bool(values.get("etcd_password")):
            self.problem("etcd_user and etcd_password go together", section)
        return ClusterSettings(**values)

    def socket(self, section: RawSection, variables: Mapping[str, str]) -> SocketSpec | None:
        if (problem := name_problem(section.name, "socket")) is not None:
            self.problem(problem, section)
        values, _ = self.read(section, SOCKET, variables)
        path = values.get("path")
        if path:
            if values.get("family", "AF_UNIX") != "AF_UNIX":
                self.problem("a socket with a path must have family = AF_UNIX", section, "family",
                             section.values["family"])
            values["family"] = "AF_UNIX"
        elif values.get("family") == "AF_UNIX":
            self.problem("family = AF_UNIX needs a path", section)
        if path and "umask" not in values and not section.strict:
            self.warn("no umask: the socket file gets the daemon's umask, so another user's "
                      "server (nginx) may not connect; Circus used umask 8, which let every "
                      "user connect: set umask = 000, or 007 with a shared group", section)
        # Socket names are case-insensitive, as in Circus.
        return SocketSpec(name=section.name.lower(),
                          origin=Origin(section.file, section.line), **values)

    def plugin(self, section: RawSection, variables: Mapping[str, str]) -> PluginSpec | None:
        known, entries = self.read(section, PLUGIN, variables)
        if not known.get("use"):
            self.problem("missing 'use' (the plugin class, as module.Class)", section)
            return None
        return PluginSpec(name=section.name, origin=Origin(section.file, section.line),
                          **known, **entries)

    def watcher(self, section: RawSection, local_env: dict[str, str],
                env_sections: list[RawSection]) -> WatcherSpec | None:
        name = section.name
        if (problem := name_problem(name)) is not None:
            self.problem(problem, section)
        # The environment comes first: substitutions in other options see it.
        env = dict(local_env)
        for env_section in env_sections:
            if any(fnmatch(name, p.strip()) for p in env_section.name.split(",")):
                env.update(self.expand(self.section_env(env_section), env))
        if "env" in section.values:
            own = self.env_table(section, "env", section.values["env"])
            env.update(self.expand(own, env))
        # As in Circus, $(circus.env.X) sees the daemon's environment too,
        # whatever copy_env says (that decides what the process gets).
        variables = env_variables({**self.environ, **env})

        values, entries = self.read(section, WATCHER, variables, skip=("env",))
        if not values.get("cmd", "").strip():
            if "cmd" not in section.values:
                self.problem("missing 'cmd' (the command to run)", section)
            elif "cmd" in values:
                self.problem("'cmd' is empty", section, "cmd", section.values["cmd"])
            return None
        self.watcher_rules(section, values)
        origin = f"{section.file}:{section.line}: [{section.title}]"
        for stream in STREAMS:
            self.stream_rules(section, stream, entries[stream], origin)
        streams: dict[str, Any] = {stream: StreamSpec(entries.pop(stream)) for stream in STREAMS}
        return WatcherSpec(name=name, env=env, origin=Origin(section.file, section.line),
                           **values, **entries, **streams)

    def stream_rules(self, section: RawSection, stream: str, options: dict[str, str],
                     origin: str) -> None:
        """Checks of one stream's options; drops (and reports) unknown ones."""
        for key in [k for k in options if k not in STREAM_KEYS]:
            full = f"{stream}.{key}"
            self.unknown(section, full, section.values.get(full) or RawValue("", "", 0),
                         [f"{stream}.{k}" for k in STREAM_KEYS])
            del options[key]
        if not options:
            return
        cls = (options.get("class") or "").rsplit(".", 1)[-1]
        raw = section.values.get(f"{stream}.class") or section.values.get(
            f"{stream}.{next(iter(options))}")
        rotates = cls == "TimedRotatingFileStream"
        if cls in ("FileStream", "WatchedFileStream", "TimedRotatingFileStream", "JsonStream"):
            if not options.get("filename"):
                self.warn(f"{cls} without a filename: output goes to the daemon's console "
                          "(Circus wrote it to a new temporary file)", section,
                          f"{stream}.class", raw)
            when = options.get("rotate_when", "H").upper()
            if not re.fullmatch(r"[SMHD]|MIDNIGHT|W[0-6]", when):
                self.problem(f"{when!r} is not S, M, H, D, midnight or W0-W6", section,
                             f"{stream}.rotate_when", section.values.get(f"{stream}.rotate_when"))
            sizes = {"max_bytes": 0, "backup_count": 5}
            for key in ("max_bytes", "backup_count", "rotate_interval"):
                if key in options:
                    try:
                        sizes[key] = non_negative(to_int)(options[key])
                    except ValueError as err:
                        self.problem(str(err), section, f"{stream}.{key}",
                                     section.values.get(f"{stream}.{key}"))
            if cls in ("FileStream", "JsonStream"):
                rotates = sizes["max_bytes"] > 0 and sizes["backup_count"] > 0
        elif cls == "FancyStdoutStream" and "color" in options:
            colors = ("red", "green", "yellow", "blue", "magenta", "cyan", "white")
            if options["color"].strip().lower() not in colors:
                self.problem(f"{options['color']!r} is not a color: {', '.join(colors)}",
                             section, f"{stream}.color", section.values.get(f"{stream}.color"))
        elif cls not in ("StdoutStream", "FancyStdoutStream", ""):
            self.warnings.append(f"{origin} {stream}.class = {cls} is not applied by this "
                                 "version: output goes to the daemon's console")
        if "utc" in options:
            try:
                to_bool(options["utc"])
            except ValueError as err:
                self.problem(str(err), section, f"{stream}.utc",
                             section.values.get(f"{stream}.utc"))
        if "compress" in options:
            value = options["compress"]
            try:
                compress = to_compress(value)
            except ValueError as err:
                self.problem(str(err), section,
                             f"{stream}.compress", section.values.get(f"{stream}.compress"))
            else:
                if compress and not rotates:
                    self.warnings.append(
                        f"{origin} {stream}.compress has no effect: only rotated files are "
                        "compressed (FileStream and JsonStream with max_bytes and "
                        "backup_count, TimedRotatingFileStream)")

    def watcher_rules(self, section: RawSection, values: dict[str, Any]) -> None:
        """Checks between options of one watcher; fixes values it can derive."""
        raw = section.values  # keys may be missing when checking a `set`
        if not values.get("shell"):
            for key in ("cmd", "args", "shell_args"):
                try:
                    shlex.split(values.get(key) or "")
                except ValueError as err:
                    cut = key in raw and raw[key].cut
                    hint = " (in INI, ' ;' starts a comment)" if cut else ""
                    self.problem(f"cannot be split into words: {err}{hint}", section, key,
                                 raw.get(key))
        if values.get("stdin_pipe") and values.get("stdin_socket"):
            self.problem("stdin_pipe and stdin_socket both give standard input", section,
                         "stdin_pipe", raw.get("stdin_pipe"))
        if values.get("stdin_pipe") and values.get("on_daemon_crash") == "adopt":
            self.problem("a stdin_pipe watcher cannot be adopted: its pipe's writer dies with "
                         "the daemon", section, "on_daemon_crash", raw.get("on_daemon_crash"))
        if values.get("singleton") and values.get("numprocesses", 1) > 1:
            self.problem("a singleton watcher runs at most 1 process", section, "numprocesses",
                         raw.get("numprocesses"))
        if values.get("respawn") is False:
            if values.get("restart", "never") != "never":
                self.problem(f"respawn = false contradicts restart = {values['restart']}",
                             section, "restart", raw.get("restart"))
            values["restart"] = "never"
        ready, timeout = values.get("ready"), values.get("ready_timeout", 60.0)
        if ready is not None and ready.kind == "delay" and 0 < timeout <= ready.delay:
            self.problem(f"delay:{ready.delay:g} can never pass within ready_timeout = "
                         f"{timeout:g}", section, "ready", raw.get("ready"))
        if "backoff_factor" in values and values["backoff_factor"] < 1:
            self.problem("must be at least 1", section, "backoff_factor", raw.get("backoff_factor"))
        if ready is not None and ready.one_shot:
            if "restart" in raw and values.get("restart") == "always":
                self.problem("a one-shot task (ready = exited) is never restarted after it "
                             "succeeded: use restart = on-failure to retry a failure, or never",
                             section, "restart", raw.get("restart"))
            if values.get("on_demand"):
                self.problem("a one-shot task (ready = exited) cannot start on demand", section,
                             "on_demand", raw.get("on_demand"))
        if values.get("max_retry", 0) < -1:
            self.problem("must be -1 (retry forever) or more", section, "max_retry",
                         raw.get("max_retry"))
        venv = values.get("virtualenv")
        if venv and not os.path.isdir(venv):
            self.problem(f"{venv!r} is not a directory", section, "virtualenv",
                         raw.get("virtualenv"))
        if venv and not values.get("copy_env"):
            self.warnings.append(
                f"{section.file}:{section.line}: [{section.title}] virtualenv without copy_env: "
                "the process gets the virtualenv's PATH but not the daemon's environment"
            )

    def section_env(self, section: RawSection) -> dict[str, str]:
        out = {}
        for key, raw in section.values.items():
            try:
                out[key] = ENV_VALUE(raw.value)
            except ValueError as err:
                self.problem(f"{err} (per-watcher variables go in the watcher's env table)",
                             section, key, raw)
        return out


def build(sections: list[RawSection], environ: Mapping[str, str] | None = None,
          files: tuple[str, ...] = (), warnings: list[str] | None = None,
          strict: bool = False) -> Config:
    """Build the model or raise :class:`ConfigError` listing every problem."""
    b = Builder(os.environ if environ is None else environ, strict)
    b.warnings.extend(warnings or [])
    by_kind: dict[str, list[RawSection]] = {}
    for section in sections:
        by_kind.setdefault(section.kind, []).append(section)

    for kind in ("watcher", "socket", "plugin"):
        for section in [s for s in by_kind.get(kind, []) if not s.values]:
            b.warn("empty section, skipped (as Circus does)", section)
            by_kind[kind].remove(section)
    local_env: dict[str, str] = {}
    for section in by_kind.get("env", []):
        if not section.name:
            local_env.update(b.expand(b.section_env(section), local_env))
    env_sections = [s for s in by_kind.get("env", []) if s.name]
    # As in Circus, [circus] values see [env] too ($(circus.env.PORT)).
    variables = env_variables({**b.environ, **local_env})
    settings = b.settings(by_kind.get("circus", [None])[0], variables)

    cluster = b.cluster(by_kind["cluster"][0], variables) if "cluster" in by_kind else None
    sockets = [b.socket(s, variables) for s in by_kind.get("socket", [])]
    plugins = [b.plugin(s, variables) for s in by_kind.get("plugin", [])]
    watchers = [b.watcher(s, local_env, env_sections) for s in by_kind.get("watcher", [])]
    socket_specs = sorted((s for s in sockets if s), key=lambda s: s.name)
    watcher_specs = sorted((w for w in watchers if w), key=lambda w: w.name)

    if (problem := count_problem({w.name: w.numprocesses for w in watcher_specs},
                                 settings.max_processes)) is not None:
        biggest = max(watcher_specs, key=lambda w: w.numprocesses).origin
        b.problems.append(Problem(problem, biggest.file, biggest.line) if biggest
                          else Problem(problem))
    check_shared_files(b, watcher_specs)
    check_sockets(b, socket_specs, watcher_specs, by_kind.get("watcher", []))
    check_dependencies(b, watcher_specs, by_kind.get("watcher", []))
    for section in env_sections:
        patterns = [p.strip() for p in section.name.split(",")]
        for pattern in patterns:
            if not any(fnmatch(w.name, pattern) for w in watcher_specs):
                b.warnings.append(f"{section.file}:{section.line}: [env:{section.name}] "
                                  f"{pattern!r} matches no watcher")
    if b.problems:
        raise ConfigError(b.problems)
    return Config(
        settings=settings,
        watchers=tuple(watcher_specs),
        sockets=tuple(socket_specs),
        plugins=tuple(sorted((p for p in plugins if p), key=lambda p: p.name)),
        env=local_env,
        cluster=cluster,
        files=files,
        warnings=tuple(b.warnings),
        strict=strict,
    )


HTTPD = "circushttpd"  # the web console's watcher and socket, named as in Circus


def with_httpd(config: Config) -> Config:
    """The configuration the daemon runs: with ``httpd = true``, plus the
    web console as a watcher serving on a socket the daemon owns
    (``bigtop-web --fd``), as Circus ran circushttpd. It inherits the
    daemon's environment (its runtime directory, BIGTOP_WEB_TOKEN,
    BIGTOPCTL_KEY, ...). A ``[watcher:circushttpd]`` or
    ``[socket:circushttpd]`` of the file is kept instead."""
    import sys

    settings = config.settings
    if not settings.httpd:
        return config
    sockets, watchers = list(config.sockets), list(config.watchers)
    if not any(s.name == HTTPD for s in sockets):
        sockets.append(SocketSpec(HTTPD, host=settings.httpd_host, port=settings.httpd_port))
    if config.watcher(HTTPD) is None:
        args = f"-m bigtop.web --fd $(circus.sockets.{HTTPD})"
        if settings.endpoint:
            args += f" --endpoint {shlex.quote(settings.endpoint)}"
        close = settings.httpd_close_outputs
        watchers.append(WatcherSpec(HTTPD, shlex.quote(sys.executable), args=args,
                                    copy_env=True, env=dict(config.env), singleton=True,
                                    close_child_stdout=close, close_child_stderr=close))
    return replace(config, sockets=tuple(sorted(sockets, key=lambda s: s.name)),
                   watchers=tuple(sorted(watchers, key=lambda w: w.name)))


def _section(sections: list[RawSection], name: str) -> RawSection:
    return next(s for s in sections if s.name == name)


def check_sockets(b: Builder, sockets: list[SocketSpec], watchers: list[WatcherSpec],
                  sections: list[RawSection]) -> None:
    names = {s.name for s in sockets}
    seen: dict[Any, str] = {}
    for sock in sockets:
        address = sock.path if sock.path else (sock.host, sock.port)
        if address in seen and sock.port != 0 and not sock.so_reuseport:
            b.problems.append(Problem(f"same address as socket {seen[address]!r}",
                                      sock.origin.file if sock.origin else None,
                                      sock.origin.line if sock.origin else None,
                                      f"socket:{sock.name}"))
        seen.setdefault(address, sock.name)
    for spec in watchers:
        section = _section(sections, spec.name)
        for key in ("cmd", "args"):
            for var in circus_vars(getattr(spec, key) or ""):
                name = var[len("sockets."):]
                if var.startswith("sockets.") and name not in names:
                    close = difflib.get_close_matches(name, list(names), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    b.warn(f"$(circus.sockets.{name}) names no [socket:{name}]{hint}: left "
                           "as written, as Circus does", section, key, section.values.get(key))
        stdin = (spec.stdin_socket,) if spec.stdin_socket else ()
        for key, listed in (("sockets", spec.sockets), ("stdin_socket", stdin)):
            for wanted in listed:
                if wanted not in names:
                    close = difflib.get_close_matches(wanted, list(names), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    b.problem(f"no socket named {wanted!r}{hint}", section, key,
                              section.values.get(key))


ROTATION_KEYS = ("class", "max_bytes", "backup_count", "rotate_when", "rotate_interval", "utc",
                 "compress")


def check_shared_files(b: Builder, watchers: list[WatcherSpec]) -> None:
    """Streams naming one file share it (core/writer.py), so they must agree
    on how it rotates; the first stream read would silently win."""
    first: dict[str, tuple[str, dict[str, str]]] = {}
    for spec in watchers:
        for stream in STREAMS:
            options = getattr(spec, stream).options
            if not options.get("filename"):
                continue
            rotation = {k: options[k] for k in ROTATION_KEYS if k in options}
            path = os.path.abspath(options["filename"])
            where, seen = first.setdefault(path, (f"{spec.name} {stream}", rotation))
            if seen != rotation:
                origin = spec.origin or Origin("", 0)
                b.warnings.append(f"{origin}: [watcher:{spec.name}] {stream}: writes "
                                  f"{options['filename']} as {where} does, with other rotation "
                                  f"options; the file follows {where}'s")


def check_dependencies(b: Builder, watchers: list[WatcherSpec],
                       sections: list[RawSection]) -> None:
    built = {w.name for w in watchers}
    names = {s.name for s in sections}  # a watcher with errors still exists
    graph: dict[str, tuple[str, ...]] = {}
    for spec in watchers:
        section = _section(sections, spec.name)
        raw = section.values.get("depends_on")
        for dep in spec.depends_on:
            if dep == spec.name:
                b.problem("a watcher cannot depend on itself", section, "depends_on", raw)
            elif dep not in names:
                close = difflib.get_close_matches(dep, list(names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                b.problem(f"no watcher named {dep!r}{hint}", section, "depends_on", raw)
        graph[spec.name] = tuple(d for d in spec.depends_on if d in built and d != spec.name)
    cycle = find_cycle(graph)
    if cycle:
        section = _section(sections, cycle[0])
        b.problem("dependency cycle: " + " -> ".join(cycle), section, "depends_on",
                  section.values.get("depends_on"))


def find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle in the dependency graph, as a path that returns to its start."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def update_watcher(spec: WatcherSpec, changes: Mapping[str, Any],
                   environ: Mapping[str, str] | None = None) -> WatcherSpec:
    """The spec with options changed at run time (``set``), checked as in a
    file; raises :class:`ConfigError` and changes nothing on a bad value.
    ``env`` replaces the environment; rlimit_*, hooks.*, flapping.* and
    stream options are merged (hooks, flapping and streams may also be
    given as one object)."""
    b = Builder(os.environ if environ is None else environ, strict=True)
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        if key in WATCHER_TABLES and isinstance(value, dict):
            flat.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            flat[key] = value
    section = RawSection("watcher", spec.name, "", 0,
                         {k: RawValue(v, "", 0) for k, v in flat.items()})
    env = dict(spec.env)
    if "env" in section.values:
        env = b.expand(b.env_table(section, "env", section.values["env"]), {})
    values, entries = b.read(section, WATCHER, env_variables({**b.environ, **env}),
                             skip=("env",))
    merged = {k: getattr(spec, k) for k in WATCHER_VALUES} | values
    if "respawn" in values and "restart" not in values:
        # respawn = true brings back the default policy; false means never.
        merged["restart"] = "always" if spec.restart == "never" else spec.restart
        if not values["respawn"]:
            merged.pop("restart")
    b.watcher_rules(section, merged)
    if not merged.get("cmd", "").strip():
        b.problem("'cmd' is empty", section, "cmd", section.values.get("cmd"))
    streams = {name: entries.pop(name) for name in STREAMS}
    merged_streams = {name: {**getattr(spec, name).options, **new}
                      for name, new in streams.items()}
    for name, options in merged_streams.items():
        if streams[name]:
            b.stream_rules(section, name, options, spec.name)
    if b.problems:
        raise ConfigError(b.problems)
    merged.setdefault("restart", "never")
    merged |= {name: {**getattr(spec, name), **new} for name, new in entries.items()}
    merged |= {name: StreamSpec(options) for name, options in merged_streams.items()}
    return replace(spec, env=env, **merged)
