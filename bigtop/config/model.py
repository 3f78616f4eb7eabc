"""The typed configuration model every file format produces, and the one
declaration of every option.

Frozen dataclasses: the daemon compares old and new specs to decide what a
reload must restart, so equality of two specs means "nothing changed".
Field names are the option names operators write; each field declares its
option (converter, what it accepts, default, doc, see :mod:`.declare`), so
the readers, the docs and the other layers all read this one table
(through :mod:`.options`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .bounds import MAX_CONNECTIONS
from .convert import (
    RLIMITS,
    at_least_one_int,
    at_most,
    non_negative,
    positive,
    to_bool,
    to_constraints,
    to_crash_policy,
    to_env_value,
    to_etcd_endpoints,
    to_exit_codes,
    to_family,
    to_float,
    to_hook,
    to_int,
    to_labels,
    to_list,
    to_loglevel,
    to_lower,
    to_lower_list,
    to_node_count,
    to_octal,
    to_partition,
    to_port,
    to_ready,
    to_restart,
    to_rlimit,
    to_signal,
    to_socket_path,
    to_socktype,
    to_str,
    to_text,
    to_words,
)
from .declare import entries, option, section
from .values import HOOK_NAMES, HookSpec, Origin, ReadySpec, StreamSpec

DEFAULT_BACKLOG = 2048

BOOLEAN = "boolean"
SECONDS = "seconds, ≥ 0"
OCTAL = "octal mode: `022`, `0o022`"
ENDPOINT = "ZeroMQ endpoint"
UNUSED = "**Accepted for compatibility, unused**"


@section("flapping", runtime=True)
class FlappingSpec:
    """The flapping plugin's policy: its ``[plugin:...]`` options, which a
    watcher overrides with ``flapping.OPTION``."""

    attempts: int = option(positive(to_int), default=2, accepts="integer ≥ 1",
                           doc="Exits that make flapping.")
    window: float = option(non_negative(to_float), default=1.0, accepts=SECONDS,
                           doc="Within this many seconds.")
    retry_in: float = option(non_negative(to_float), default=7.0, accepts=SECONDS,
                             doc="Seconds before the watcher is started again.")
    max_retry: int = option(to_int, default=5, accepts="integer",
                            doc="Tries before the watcher is left stopped; `-1`: no limit.")
    active: bool = option(to_bool, default=True, accepts=BOOLEAN,
                          doc="`false`: the plugin watches nothing.")


@section("watcher", runtime=True, plain=("name", "origin"))
class WatcherSpec:
    name: str
    cmd: str = option(
        to_str, accepts="string (required)", restarts=True, text=True,
        doc="The command, split into words as a POSIX shell would unless `shell = true`.")
    args: str | None = option(
        to_str, default=None, accepts="string", restarts=True, text=True,
        doc="More arguments, split the same way and added after the words of `cmd`.")
    shell: bool = option(
        to_bool, default=False, accepts=BOOLEAN, restarts=True,
        doc='Run `/bin/sh -c "CMD ARGS"`: the command line goes to the shell as written, '
            "so pipes, `;`, `&&` and redirections work.")
    shell_args: str | None = option(
        to_str, default=None, accepts="string", restarts=True, text=True,
        doc="With `shell = true`: words passed to the shell after the command, as in Circus.")
    executable: str | None = option(
        to_str, default=None, accepts="path", restarts=True, text=True,
        doc="The program to run instead of the first word of `cmd`; that word is still "
            "passed as `argv[0]` (what `ps` shows).")
    working_dir: str | None = option(
        to_str, default=None, accepts="path", shown="the daemon's working directory",
        restarts=True, text=True,
        doc="The process's working directory; one that does not exist is a spawn failure.")
    uid: str | None = option(
        to_str, default=None, accepts="user name or number",
        shown="none (the daemon's user)", restarts=True, text=True,
        doc="Run as this user; changing user needs the daemon to run as root.")
    gid: str | None = option(
        to_str, default=None, accepts="group name or number", restarts=True, text=True,
        doc="Run with this group (default: the user's primary group if `uid` is given, "
            "else the daemon's group).")
    umask: int | None = option(
        to_octal, default=None, accepts=OCTAL, shown="none (inherited from the daemon)",
        restarts=True, text=True, doc="The process's umask.")
    copy_env: bool = option(
        to_bool, default=False, accepts=BOOLEAN, restarts=True,
        doc="Start the process's environment from a copy of the daemon's.")
    copy_path: bool = option(
        to_bool, default=False, accepts=BOOLEAN, restarts=True,
        doc="Set `PYTHONPATH` to the daemon's `sys.path` (replacing any `PYTHONPATH` from "
            "the environment).")
    env: dict[str, str] = entries(
        to_env_value, factory=dict, key="env", shown="empty", restarts=True,
        accepts="INI: `NAME=VALUE, NAME=VALUE` or one per continuation line; TOML: a table",
        doc="The watcher's own variables, applied after `[env]` and `[env:...]`; `$VAR` is "
            "expanded.")
    rlimits: dict[str, int] = entries(
        to_rlimit, factory=dict, key="rlimit_NAME", prefix="rlimit_", keys=RLIMITS,
        restarts=True,
        accepts="integer ≥ 0, or `unlimited` / `infinity` / `-1` / empty",
        doc="Set resource limit `NAME` (soft and hard) before the program starts.")
    numprocesses: int = option(
        non_negative(to_int), default=1, accepts="integer ≥ 0",
        doc="How many processes to keep running; 0 is allowed.")
    warmup_delay: float = option(
        non_negative(to_float), default=0.0, accepts=SECONDS,
        doc="Pause between starting two processes of this watcher, when it starts and when "
            "it scales up; respawns are not delayed by it.")
    graceful_timeout: float = option(
        non_negative(to_float), default=30.0, accepts=SECONDS,
        doc="How long to wait after `stop_signal` before sending SIGKILL to what is left "
            "of the tree.")
    rolling_reload: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="(bigtop) `reload` replaces the processes one at a time, each old one stopped "
            "once its replacement is ready.")
    max_line: int = option(
        at_least_one_int, default=65536, accepts="bytes, ≥ 1",
        doc="(bigtop) The longest output line kept whole: a longer one is cut into pieces of "
            "this size, each ending in ` [...cut]`, nothing dropped.")
    partial_line_delay: float = option(
        non_negative(to_float), default=0.05, accepts=SECONDS,
        doc="(bigtop) How long a line the process has not finished (a prompt, a progress "
            "bar) waits for its newline before what there is of it goes to the streams, "
            "the rest following when it comes; 0: at once. See "
            "[Unfinished lines](#unfinished-lines).")
    stop_signal: int = option(
        to_signal, default=int(signal.SIGTERM), shown="`SIGTERM`", text=True,
        accepts="a name (`TERM`, `SIGTERM`, `sigterm`), a number, or `SIGRTMIN+N`",
        doc="The signal that asks the process tree to stop.")
    stop_children: bool = option(
        to_bool, default=False, inert=True, accepts=BOOLEAN,
        doc="**Accepted for compatibility; always in effect**: bigtop stops the whole "
            "process tree whatever this says.")
    max_retry: int = option(
        to_int, default=5, accepts="integer ≥ -1",
        doc="How many times in a row a slot may be refilled after quick failures before the "
            "watcher goes `failed`; `-1`: no limit.")
    priority: int = option(
        to_int, default=0, accepts="integer",
        doc="Start order: higher first. See [Start and stop order](#start-and-stop-order).")
    singleton: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="Only checked: with `singleton = true`, `numprocesses` may not be more than 1.")
    use_sockets: bool = option(
        to_bool, default=False, accepts=BOOLEAN, restarts=True,
        doc="When no socket is named (in `cmd`/`args`, `sockets` or `stdin_socket`), pass "
            "every socket the daemon owns.")
    sockets: tuple[str, ...] = option(
        to_lower_list, default=(), restarts=True,
        accepts="socket names, comma or space separated (TOML: a list)",
        doc="(bigtop) Sockets the processes inherit besides those named in `cmd`/`args`. "
            "See [Sockets a process inherits](#sockets-a-process-inherits).")
    autostart: bool = option(
        to_bool, default=True, accepts=BOOLEAN,
        doc="Start the watcher when the daemon starts (or when a reload adds it).")
    respawn: bool = option(
        to_bool, default=True, accepts=BOOLEAN,
        doc="`false` means `restart = never`; `respawn = false` with another `restart` value "
            "is an error.")
    restart: str = option(
        to_restart, default="always", text=True,
        accepts="`always`, `on-failure` (or `on_failure`), `never`",
        doc="(bigtop) Which exits refill the slot: every exit, only failures, or none. With "
            "`ready = exited`, only `on-failure` retries a failure, and a success is never "
            "restarted. See [Restart policy](#restart-policy-and-backoff).")
    success_exit_codes: tuple[int, ...] = option(
        to_exit_codes, default=(0,),
        accepts="exit codes 0 to 255, comma or space separated (TOML: a list)",
        doc="(bigtop) Exit statuses that count as success for `restart = on-failure`.")
    backoff_initial: float = option(
        non_negative(to_float), default=0.1, accepts=SECONDS,
        doc="(bigtop) Delay before the second restart in a row.")
    backoff_factor: float = option(
        non_negative(to_float), default=2.0, accepts="number ≥ 1",
        doc="(bigtop) Each further restart in a row waits this many times longer.")
    backoff_max: float = option(
        non_negative(to_float), default=15.0, accepts=SECONDS,
        doc="(bigtop) Longest delay between restarts.")
    backoff_reset: float = option(
        non_negative(to_float), default=10.0, accepts=SECONDS,
        doc="(bigtop) A process that ran at least this long before it exited starts a new "
            "count of failures.")
    max_age: int = option(
        non_negative(to_int), default=0, accepts="whole seconds, ≥ 0", shown="`0` (off)",
        doc="Replace each process after it has run this long plus a random "
            "`0..max_age_variance` seconds.")
    max_age_variance: int = option(
        non_negative(to_int), default=30, accepts="whole seconds, ≥ 0",
        doc="The most random time added to `max_age`, so that processes are not all "
            "replaced at once.")
    on_demand: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="Do not start the watcher until a first connection arrives on one of its "
            "sockets; this takes precedence over `autostart`.")
    close_child_stdin: bool = option(
        to_bool, default=True, accepts=BOOLEAN, restarts=True,
        doc="Standard input is `/dev/null`; with `false` the process shares the daemon's "
            "standard input.")
    stdin_pipe: bool = option(
        to_bool, default=False, accepts=BOOLEAN, restarts=True,
        doc="(bigtop) Standard input is a pipe the daemon holds open and never writes to, so a "
            "read waits instead of meeting the end of the file (as under supervisord); over "
            "`close_child_stdin`.")
    private: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="(bigtop) Its output is only for those who may control the daemon: the web "
            "console's read-only users and read-only CurveZMQ keys see its state, not its "
            "output (neither `logs` nor live lines on the events endpoint).")
    on_daemon_crash: str = option(
        to_crash_policy, default="stop", text=True, accepts="`stop`, `adopt`",
        doc="(bigtop) What the next bigtopd on this file does with the processes a bigtopd "
            "killed by SIGKILL, the OOM killer or a bug left running: stop them before "
            "starting fresh ones, or adopt them, their output pipes and sockets included. "
            "See [Crash recovery](faults.md#when-bigtopd-itself-dies).")
    close_child_stdout: bool = option(
        to_bool, default=False, accepts=BOOLEAN, restarts=True,
        doc="Send standard output to `/dev/null` instead of capturing it.")
    close_child_stderr: bool = option(
        to_bool, default=False, accepts=BOOLEAN, restarts=True,
        doc="Send standard error to `/dev/null` instead of capturing it.")
    virtualenv: str | None = option(
        to_str, default=None, accepts="directory (must exist)", restarts=True, text=True,
        doc="Run in this Python virtual environment: sets `VIRTUAL_ENV`, puts its `bin` "
            "first in `PATH` and removes `PYTHONHOME`.")
    virtualenv_py_ver: str | None = option(
        to_str, default=None, inert=True, accepts="string", restarts=True, text=True,
        doc=f"{UNUSED}: bigtop does not add `site-packages` to `PYTHONPATH`; the "
            "environment's own interpreter finds it.")
    send_hup: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="A graceful `reload` command sends SIGHUP to the processes instead of replacing "
            "them (for servers that reload themselves, as gunicorn does).")
    check_flapping: bool = option(
        to_bool, default=True, accepts=BOOLEAN,
        doc="With `false` the [flapping plugin](plugins.md#flapping) leaves this watcher "
            "alone.")
    use_papa: bool = option(
        to_bool, default=False, inert=True, accepts=BOOLEAN,
        doc="**Accepted, unused**: the papa process kernel is not supported.")
    stdin_socket: str | None = option(
        to_lower, default=None, accepts="socket name", restarts=True, text=True,
        doc="Give the processes this socket as standard input (file descriptor 0).")
    hooks: dict[str, HookSpec] = entries(
        to_hook, factory=dict, key="hooks.NAME", prefix="hooks.", keys=HOOK_NAMES,
        accepts="`module.function` (or `module:function`), optionally followed by `, true` "
                'to ignore the hook\'s failure (TOML: also `["module.function", true]`)',
        doc="A function called at a point of the watcher's life, as in Circus: "
            "`hook(watcher, arbiter, hook_name, **kwargs)` returning true to go on.")
    hook_timeout: float = option(
        positive(to_float), default=10.0, accepts="seconds, > 0",
        doc="(bigtop) How long one call of a hook may take; a hook that takes longer has "
            "failed (the daemon never waits on it beyond this).")
    flapping: dict[str, Any] = entries(
        of=FlappingSpec, factory=dict, key="flapping.OPTION", prefix="flapping.",
        accepts="an option of the [flapping plugin](#flapping-options)", shown="the plugin's",
        doc="This watcher's settings for the [flapping plugin](plugins.md#flapping), over "
            "the plugin's own (as in Circus).")
    stdout_stream: StreamSpec = entries(
        to_text, factory=StreamSpec, key="stdout_stream.OPTION", prefix="stdout_stream.",
        accepts="`class` and the options of that class", shown="none (the daemon's console)",
        doc="Where standard output goes: see [Output](#output).")
    stderr_stream: StreamSpec = entries(
        to_text, factory=StreamSpec, key="stderr_stream.OPTION", prefix="stderr_stream.",
        accepts="as `stdout_stream.OPTION`", shown="none (the daemon's console)",
        doc="Where standard error goes.")
    depends_on: tuple[str, ...] = option(
        to_list, default=(), accepts="watcher names, comma or space separated (TOML: a list)",
        doc="(bigtop) Start only once these watchers are ready; stop before them.")
    ready: ReadySpec = option(
        to_ready, default=ReadySpec(), restarts=True, text=True,
        accepts="`spawned`, `notify`, `tcp:HOST:PORT`, `delay:SECONDS`, `exited`",
        doc="(bigtop) How the daemon learns that a process is ready; `exited`: a one-shot "
            "task, done when it exits with a success status. See [Readiness](#readiness).")
    ready_timeout: float = option(
        non_negative(to_float), default=60.0, accepts=SECONDS,
        doc="(bigtop) A process not ready this long after it was spawned (with "
            "`ready = exited`: still running) is stopped, and this counts as a failure; `0`: "
            "no limit.")
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


@section("socket", plain=("name", "origin"))
class SocketSpec:
    name: str
    host: str = option(
        to_str, default="localhost", accepts="host name or address",
        doc="Address to bind, resolved for the socket's family (the first address found is "
            "used).")
    port: int = option(
        to_port, default=8080, accepts="0 to 65535",
        doc="Port to bind; 0 lets the kernel choose a free port.")
    path: str | None = option(
        to_socket_path, default=None, accepts="path of at most 107 bytes",
        doc="Bind a Unix socket at this path; implies `family = AF_UNIX` (any other family "
            "is an error).")
    family: str = option(
        to_family, default="AF_INET",
        accepts="`AF_INET`, `AF_INET6`, `AF_UNIX` (the `AF_` prefix and case are optional)",
        doc="Address family. An `AF_INET6` socket also accepts IPv4 connections; `AF_UNIX` "
            "needs `path`.")
    type: str = option(
        to_socktype, default="SOCK_STREAM",
        accepts="`SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`, `SOCK_RAW`, `SOCK_RDM` "
                "(prefix and case optional)",
        doc="Socket type. Stream and seqpacket sockets are put in listening state; the "
            "others are only bound.")
    proto: str | None = option(
        to_str, default=None, accepts="protocol name, as in `/etc/protocols` (`tcp`, `udp`)",
        shown="none (the type's default)", doc="Protocol.")
    backlog: int = option(
        non_negative(to_int), default=DEFAULT_BACKLOG, accepts="integer ≥ 0",
        doc="Length of the queue of connections waiting to be accepted.")
    umask: int | None = option(
        to_octal, default=None, accepts=OCTAL, shown="none (the daemon's umask)",
        doc="The umask in effect while a Unix socket file is created, which sets the "
            "file's permissions.")
    replace: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="If `path` already exists: with `false`, binding fails; with `true`, an existing "
            "socket file is removed first (a file that is not a socket is never removed).")
    blocking: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="With `false` the socket is in non-blocking mode, which the processes sharing "
            "it see too.")
    so_reuseport: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="Set `SO_REUSEPORT`, and give **each process a listening socket of its own** on "
            "the address.")
    interface: str | None = option(
        to_str, default=None, accepts="network interface name",
        doc="Bind to this interface only (`SO_BINDTODEVICE`, which needs root or "
            "`CAP_NET_RAW`).")
    use_papa: bool = option(
        to_bool, default=False, inert=True, accepts=BOOLEAN,
        doc="**Accepted, unused**: the papa process kernel is not supported.")
    origin: Origin | None = field(default=None, compare=False)


@section("plugin", plain=("name", "origin"))
class PluginSpec:
    name: str
    use: str = option(
        to_str, accepts="a plugin's name or class (required)", doc="The plugin to run.")
    priority: int = option(
        to_int, default=0, accepts="integer", doc="Order among plugins: higher first.")
    options: dict[str, str] = entries(
        to_text, factory=dict, key="OPTION", prefix="", accepts="string; any other key",
        shown="—",
        doc="Passed to the plugin as an option; `$(circus.env.X)` is substituted.")
    origin: Origin | None = field(default=None, compare=False)


@section("circus")
class Includes:
    """The ``[circus]`` keys that name more files. The loader reads them
    while it gathers files; they are declared here, with the settings, so
    they are converted and documented like every option, but no model
    stores them: what a configuration says does not depend on how it was
    split into files."""

    include: tuple[str, ...] = option(
        to_words, default=(),
        accepts="file names or glob patterns, separated by white space (TOML: also a list)",
        doc="Read these files after this one. See [Includes](#includes).")
    include_dir: tuple[str, ...] = option(
        to_words, default=(),
        accepts="directory names, separated by white space (TOML: also a list)",
        doc="Read every `*.ini` and `*.toml` file in these directories, in name order.")


@section("circus")
class Settings:
    """The daemon-wide ``[circus]`` section. Changes take effect at the next
    start of the daemon, so ``set`` changes none of them."""

    endpoint: str | None = option(
        to_str, default=None, accepts=ENDPOINT, shown="`ipc://RUNDIR/control.sock`",
        doc="The command socket (see [protocol.md](protocol.md)).")
    endpoint_owner: str | None = option(
        to_str, default=None, accepts="user name or uid",
        doc="Owner of the `ipc://` socket files (0600), so that this user can drive the "
            "daemon; their directory then lets other users through (o+x) without listing it.")
    insecure: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="(bigtop) Allow `tcp://` endpoints without keys: anyone who can reach them "
            "controls the daemon. A warning is logged at each start.")
    log_dir: str | None = option(
        to_str, default=None, accepts="directory",
        shown="`/var/log/bigtop` (root), else `$XDG_STATE_HOME/bigtop/log`",
        doc="(bigtop) With `bigtopd --daemon`, where the output of watchers with no "
            "`stdout_stream`/`stderr_stream` goes.")
    server_key: str | None = option(
        to_str, default=None, accepts="path",
        doc="(bigtop) The daemon's CurveZMQ secret key file (`NAME.key_secret` from "
            "`bigtopctl keygen`), for `tcp://` endpoints.")
    authorized_keys: str | None = option(
        to_str, default=None, accepts="directory",
        doc="(bigtop) The public keys (`*.key`) of the clients allowed on `tcp://` "
            "endpoints; any other client gets no answer. Keys in its `read-only` "
            "subdirectory may only read: `status`, `stats`, `logs` and the like, never a "
            "command that changes something.")
    pubsub_endpoint: str | None = option(
        to_str, default=None, accepts=ENDPOINT, shown="`ipc://RUNDIR/events.sock`",
        doc="The socket events are published on.")
    stats_endpoint: str | None = option(
        to_str, default=None, accepts=ENDPOINT, shown="`ipc://RUNDIR/stats.sock`",
        doc="The socket statistics are published on, as `stat.*` topics with Circus's "
            "payloads.")
    stats_interval: float = option(
        positive(to_float), default=1.0, accepts="seconds, > 0",
        doc="(bigtop) Time between two rounds of statistics on `stats_endpoint`, while "
            "someone subscribes.")
    max_processes: int | None = option(
        positive(to_int), default=None, accepts="integer ≥ 1",
        shown="10000, or less under a lower `RLIMIT_NPROC` or pids cgroup limit",
        doc="(bigtop) The most processes all watchers together may run; files, `add`, `set` "
            "and `incr` asking for more are refused "
            "(see [faults.md](faults.md#careless-and-hostile-input)).")
    max_connections: int = option(
        at_most(MAX_CONNECTIONS, positive(to_int)), default=10_000,
        accepts=f"integer from 1 to {MAX_CONNECTIONS:,}",
        doc="(bigtop) The most clients connected at once to each of `endpoint`, "
            "`pubsub_endpoint` and `stats_endpoint`; past it (a `tcp://` one: also when the "
            "daemon's file descriptors run low) the endpoint drops its clients and listens "
            "again a second later; ZeroMQ clients connect again by themselves "
            "(see [faults.md](faults.md#running-out-of-descriptors-memory-or-processes)).")
    multicast_endpoint: str | None = option(
        to_str, default=None, accepts="`udp://GROUP:PORT`, or empty: off",
        shown="`udp://237.219.251.97:12027`",
        doc="Where a daemon with a `tcp://` endpoint answers Circus's LAN discovery probe "
            "with that endpoint (see [discovery.md](discovery.md)); a bad value is a "
            "warning at start, discovery off.")
    papa_endpoint: str | None = option(
        to_str, default=None, inert=True, accepts="endpoint",
        doc="**Not used**: Circus's papa process kernel is not supported.")
    check_delay: float = option(
        non_negative(to_float), default=5.0, inert=True, accepts=SECONDS,
        doc=f"{UNUSED}: Circus polled for exits every `check_delay`; bigtop learns of an "
            "exit when it happens.")
    statsd: bool = option(
        to_bool, default=False, inert=True, accepts=BOOLEAN,
        doc=f"{UNUSED}: bigtopd always serves `stats_endpoint`.")
    statsd_close_outputs: bool = option(
        to_bool, default=False, inert=True, accepts=BOOLEAN,
        doc=f"{UNUSED} (there is no circusd-stats process).")
    stats_close_outputs: bool = option(
        to_bool, default=False, inert=True, accepts=BOOLEAN,
        doc=f"{UNUSED} (there is no circusd-stats process).")
    stream_backend: str = option(
        to_str, default="thread", inert=True, accepts="string",
        doc=f"{UNUSED}: output is read on the daemon's event loop.")
    umask: int | None = option(
        to_octal, default=None, accepts=OCTAL, shown="none (inherited)",
        doc="The daemon's umask, set before sockets are bound and processes started.")
    warmup_delay: float = option(
        non_negative(to_float), default=0.0, accepts=SECONDS,
        doc="A pause between starting two watchers (at daemon start and when a reload "
            "starts several).")
    httpd: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="Run the web console (`bigtop-web`) as a managed watcher named `circushttpd`, "
            "as Circus did; see [docs/web.md](web.md).")
    httpd_host: str = option(
        to_str, default="localhost", accepts="host name or address",
        doc="Where the web console listens with `httpd = true`.")
    httpd_port: int = option(
        to_port, default=8080, accepts="port, 0 to 65535",
        doc="The web console's port with `httpd = true`.")
    httpd_close_outputs: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="With `httpd = true`: discard the web console's output instead of capturing it.")
    debug: bool = option(
        to_bool, default=False, accepts=BOOLEAN,
        doc="When `loglevel` is not set, log at `debug` level.")
    debug_gc: bool = option(to_bool, default=False, inert=True, accepts=BOOLEAN,
                            doc="**Not used.**")
    pidfile: str | None = option(
        to_str, default=None, accepts="path",
        doc="Write the daemon's pid to this file at start and remove it at exit.")
    loglevel: str | None = option(
        to_loglevel, default=None, shown="`info`",
        accepts="`debug`, `info`, `warning` (or `warn`), `error`, `critical`",
        doc="Level of the daemon's own log. `bigtopd --log-level` overrides it.")
    logoutput: str | None = option(
        to_str, default=None, shown="stderr",
        accepts="`-` or `stderr`, `stdout`, a file path, `syslog://`, `syslog://HOST[:PORT]`, "
                "`syslog:///PATH`",
        doc="Where the daemon's own log goes. `bigtopd --log-output` overrides it.")
    loggerconfig: str | None = option(
        to_str, default=None, inert=True, accepts="path",
        doc="**Not used yet**: a logging configuration file in Circus.")
    fqdn_prefix: str | None = option(
        to_str, default=None, inert=True, accepts="string", doc="**Not used yet.**")


LABELS = "`NAME=VALUE` pairs, by white space or commas (TOML: also a table)"


@section("cluster")
class ClusterSettings:
    """The ``[cluster]`` section: this daemon is a node of a cluster whose
    shared state lives in etcd (see [cluster.md](cluster.md)). Read at start."""

    name: str = option(
        to_str, default="bigtop", accepts="name",
        doc="The cluster: its keys live under `/bigtop/NAME/` in etcd, so several clusters "
            "can share one etcd.")
    node: str | None = option(
        to_str, default=None, accepts="name", shown="the host name",
        doc="This node's name, unique in the cluster.")
    etcd: tuple[str, ...] = option(
        to_etcd_endpoints, default=("127.0.0.1:2379",),
        accepts="`HOST:PORT` of each etcd member, by white space or commas",
        doc="The etcd members to talk to; the client moves to another one when one fails.")
    labels: tuple[tuple[str, str], ...] = option(
        to_labels, default=(), accepts=LABELS,
        doc="What this node is, for placement: `role=web zone=a`.")
    advertise: str | None = option(
        to_str, default=None, accepts=ENDPOINT, shown="the daemon's `endpoint`",
        doc="The control endpoint other nodes and consoles reach this node on (set it when "
            "`endpoint` binds `tcp://0.0.0.0`).")
    ttl: int = option(
        at_most(60, positive(to_int)), default=5, accepts="seconds, 1 to 60",
        doc="The node's lease: etcd forgets a node this long after its last keepalive "
            "(sent every third of it).")
    grace: float = option(
        non_negative(to_float), default=2.0, accepts=SECONDS,
        doc="How long after a node's lease ended its cluster watchers wait before being "
            "placed on other nodes (a node back in time keeps them).")
    etcd_ca: str | None = option(
        to_str, default=None, accepts="path",
        doc="The CA certificate that signed etcd's: talk to etcd over TLS.")
    etcd_cert: str | None = option(
        to_str, default=None, accepts="path",
        doc="This node's client certificate for etcd (with `etcd_key`).")
    etcd_key: str | None = option(
        to_str, default=None, accepts="path", doc="The key of `etcd_cert`.")
    etcd_user: str | None = option(
        to_str, default=None, accepts="etcd user name",
        doc="Authenticate to etcd as this user (with `etcd_password`).")
    etcd_password: str | None = option(
        to_str, default=None, accepts="string; `$(circus.env.X)` is substituted",
        doc="The password of `etcd_user`; better from the environment than in the file.")


@section("placement")
class Placement:
    """Where a cluster watcher runs: the keys a `[watcher:NAME]` section of
    a file given to ``bigtopctl cluster apply`` has beside the watcher's
    own options."""

    nodes: int = option(
        to_node_count, default=1, accepts="integer from 1 to 1,000, or `all`", shown="`1`",
        doc="How many nodes run the watcher (each its `numprocesses`); `all`: every "
            "eligible node.")
    constraints: tuple[tuple[str, str, str], ...] = option(
        to_constraints, default=(), accepts="`LABEL=VALUE` or `LABEL!=VALUE`, by white space",
        doc="Labels a node must have (or not have) to run the watcher.")
    spread: str | None = option(
        to_str, default=None, accepts="a label name",
        doc="Prefer nodes with different values of this label (`zone`): one per zone "
            "before two in one.")
    conflicts: tuple[str, ...] = option(
        to_list, default=(), accepts="watcher names",
        doc="Never on a node that runs one of these cluster watchers.")
    partition: str = option(
        to_partition, default="at-least-once", accepts="`at-least-once`, `at-most-once`",
        doc="A node cut off from etcd keeps running the watcher (at least once: it may run "
            "twice while the partition lasts), or stops it once its lease must have ended "
            "(at most once: it may run nowhere for a while).")


@dataclass(frozen=True)
class Config:
    settings: Settings
    watchers: tuple[WatcherSpec, ...]
    sockets: tuple[SocketSpec, ...] = ()
    plugins: tuple[PluginSpec, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cluster: ClusterSettings | None = None  # a [cluster] section: this daemon is a node
    files: tuple[str, ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    strict: bool = field(default=False, compare=False)  # read with --strict: reloads too

    def watcher(self, name: str) -> WatcherSpec | None:
        for spec in self.watchers:
            if spec.name == name:
                return spec
        return None
