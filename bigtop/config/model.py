"""The typed configuration model every file format produces.

Frozen dataclasses: the daemon compares old and new specs to decide what a
reload must restart, so equality of two specs means "nothing changed".
Field names are the option names operators write.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

DEFAULT_BACKLOG = 2048


@dataclass(frozen=True)
class Origin:
    """Where a section was defined, for error messages raised later."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ReadySpec:
    """How the daemon learns a process is ready to serve.

    kind is one of ``spawned`` (as soon as it runs), ``notify`` (systemd
    ``READY=1`` on ``$NOTIFY_SOCKET``), ``tcp`` (a connect to host:port
    succeeds) or ``delay`` (still running after ``delay`` seconds).
    """

    kind: str = "spawned"
    host: str | None = None
    port: int | None = None
    delay: float = 0.0

    def __str__(self) -> str:
        if self.kind == "tcp":
            host = f"[{self.host}]" if self.host and ":" in self.host else self.host
            return f"tcp:{host}:{self.port}"
        if self.kind == "delay":
            return f"delay:{self.delay!r}"
        return self.kind


@dataclass(frozen=True)
class StreamSpec:
    """Where one of a watcher's output streams goes (``stdout_stream.*``)."""

    options: dict[str, str] = field(default_factory=dict)

    @property
    def cls(self) -> str | None:
        return self.options.get("class")


@dataclass(frozen=True)
class HookSpec:
    target: str
    ignore_failure: bool = False


@dataclass(frozen=True)
class WatcherSpec:
    name: str
    cmd: str
    args: str | None = None
    shell: bool = False
    shell_args: str | None = None
    executable: str | None = None
    working_dir: str | None = None
    uid: str | None = None
    gid: str | None = None
    umask: int | None = None
    copy_env: bool = False
    copy_path: bool = False
    env: dict[str, str] = field(default_factory=dict)
    rlimits: dict[str, int] = field(default_factory=dict)
    numprocesses: int = 1
    warmup_delay: float = 0.0
    graceful_timeout: float = 30.0
    rolling_reload: bool = False
    max_line: int = 65536
    stop_signal: int = int(signal.SIGTERM)
    stop_children: bool = False
    max_retry: int = 5
    priority: int = 0
    singleton: bool = False
    use_sockets: bool = False
    sockets: tuple[str, ...] = ()
    autostart: bool = True
    respawn: bool = True
    restart: str = "always"
    success_exit_codes: tuple[int, ...] = (0,)
    backoff_initial: float = 0.1
    backoff_factor: float = 2.0
    backoff_max: float = 15.0
    backoff_reset: float = 10.0
    max_age: int = 0
    max_age_variance: int = 30
    on_demand: bool = False
    close_child_stdin: bool = True
    close_child_stdout: bool = False
    close_child_stderr: bool = False
    virtualenv: str | None = None
    virtualenv_py_ver: str | None = None
    send_hup: bool = False
    check_flapping: bool = True
    use_papa: bool = False
    stdin_socket: str | None = None
    hooks: dict[str, HookSpec] = field(default_factory=dict)
    hook_timeout: float = 10.0
    # flapping.* options: this watcher's settings for the flapping plugin
    flapping: dict[str, Any] = field(default_factory=dict)
    stdout_stream: StreamSpec = field(default_factory=StreamSpec)
    stderr_stream: StreamSpec = field(default_factory=StreamSpec)
    depends_on: tuple[str, ...] = ()
    ready: ReadySpec = field(default_factory=ReadySpec)
    ready_timeout: float = 60.0
    origin: Origin | None = field(default=None, compare=False)

    def changed_from(self, old: WatcherSpec) -> set[str]:
        """The options whose values differ from old's."""
        before = old.option_values()
        return {k for k, v in self.option_values().items() if before.get(k) != v}

    @cached_property
    def scalar_options(self) -> dict[str, Any]:
        """The single-valued options, for ``$(circus.OPTION)`` in commands
        (computed once per spec: specs are immutable)."""
        return {k: v for k, v in self.option_values().items()
                if isinstance(v, (str, int, float, bool))}

    def option_values(self) -> dict[str, Any]:
        """Every option as an operator would read it back (``options``/``get``)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name == "origin":
                continue
            value = getattr(self, name)
            if isinstance(value, StreamSpec):
                value = dict(value.options)
            elif isinstance(value, ReadySpec):
                value = str(value)
            elif name == "hooks":
                value = {k: [h.target, h.ignore_failure] for k, h in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class SocketSpec:
    name: str
    host: str = "localhost"
    port: int = 8080
    path: str | None = None
    family: str = "AF_INET"
    type: str = "SOCK_STREAM"
    proto: str | None = None
    backlog: int = DEFAULT_BACKLOG
    umask: int | None = None
    replace: bool = False
    blocking: bool = False
    so_reuseport: bool = False
    interface: str | None = None
    use_papa: bool = False
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PluginSpec:
    name: str
    use: str
    priority: int = 0
    options: dict[str, str] = field(default_factory=dict)
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Settings:
    """The daemon-wide ``[circus]`` section."""

    endpoint: str | None = None
    endpoint_owner: str | None = None
    insecure: bool = False
    log_dir: str | None = None
    server_key: str | None = None
    authorized_keys: str | None = None
    pubsub_endpoint: str | None = None
    stats_endpoint: str | None = None
    stats_interval: float = 1.0  # bigtop: seconds between stat.* rounds
    multicast_endpoint: str | None = None
    papa_endpoint: str | None = None
    check_delay: float = 5.0
    statsd: bool = False
    statsd_close_outputs: bool = False
    stats_close_outputs: bool = False
    stream_backend: str = "thread"
    umask: int | None = None
    warmup_delay: float = 0.0
    httpd: bool = False
    httpd_host: str = "localhost"
    httpd_port: int = 8080
    httpd_close_outputs: bool = False
    debug: bool = False
    debug_gc: bool = False
    pidfile: str | None = None
    loglevel: str | None = None
    logoutput: str | None = None
    loggerconfig: str | None = None
    fqdn_prefix: str | None = None


@dataclass(frozen=True)
class Config:
    settings: Settings
    watchers: tuple[WatcherSpec, ...]
    sockets: tuple[SocketSpec, ...] = ()
    plugins: tuple[PluginSpec, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def watcher(self, name: str) -> WatcherSpec | None:
        for spec in self.watchers:
            if spec.name == name:
                return spec
        return None
