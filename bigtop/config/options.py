"""Option tables: every key each section accepts, its type and its default.

Both file formats hand raw values (strings from INI, typed values from TOML)
to the converters here, so they accept either and raise ``ValueError`` with a
message fit for an operator.
"""

from __future__ import annotations

import math
import re
import resource
import signal
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from .model import ReadySpec, Settings, SocketSpec, WatcherSpec

TRUE = ("1", "yes", "true", "on")
FALSE = ("0", "no", "false", "off")

RLIMITS = sorted(
    name[len("RLIMIT_") :].lower() for name in dir(resource) if name.startswith("RLIMIT_")
)

HOOK_NAMES = (
    "before_start",
    "after_start",
    "before_spawn",
    "after_spawn",
    "before_stop",
    "after_stop",
    "before_signal",
    "after_signal",
    "before_reap",
    "after_reap",
    "extended_stats",
)

RESTART_POLICIES = ("always", "on-failure", "never")
SOCKET_FAMILIES = ("AF_INET", "AF_INET6", "AF_UNIX")
SOCKET_TYPES = ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_RAW", "SOCK_RDM")


def to_str(value: Any) -> str:
    if isinstance(value, (list, dict)):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an integer") from None


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        result = float(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is not a finite number")
    return result


def non_negative(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        result = conv(value)
        if result < 0:
            raise ValueError(f"{value!r} must not be negative")
        return result

    return check


def to_compress(value: Any) -> bool:
    """A stream's ``compress``: a boolean, or ``gzip`` (the only format)."""
    if str(value).strip().lower() == "gzip":
        return True
    try:
        return to_bool(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a boolean (use true, false or gzip)") from None


def at_least_one_int(value: Any) -> int:
    result = to_int(value)
    if result < 1:
        raise ValueError(f"{value!r} must be at least 1")
    return result


def positive(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        result = conv(value)
        if result <= 0:
            raise ValueError(f"{value!r} must be more than 0")
        return result

    return check


def to_octal(value: Any) -> int:
    """A umask, always octal: ``022`` or ``0o022`` (Circus read socket umasks
    as decimal)."""
    if isinstance(value, int) and not isinstance(value, bool):
        # TOML: 0o022 and 22 both arrive as numbers; only the first is right.
        raise ValueError(f"write a mode as a string of octal digits, such as \"022\" "
                         f"(got the number {value})")
    else:
        text = str(value).strip()
        if text.startswith(("0o", "0O")):
            text = text[2:]
        try:
            result = int(text, 8)
        except ValueError:
            raise ValueError(f"{value!r} is not an octal mode such as 022") from None
    if not 0 <= result <= 0o777:
        raise ValueError(f"{value!r} is not a mode between 000 and 777")
    return result


def to_signal(value: Any) -> int:
    """``15``, ``TERM``, ``SIGTERM``, ``sigterm`` or ``SIGRTMIN+2``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
        else:
            match = re.fullmatch(r"(?i)(?:sig)?(\w+?)(?:\+(\d+))?", text)
            if not match:
                raise ValueError(f"{value!r} is not a signal")
            name = "SIG" + match.group(1).upper()
            if name in ("SIGRTMIN", "SIGRTMAX"):
                base = getattr(signal, name)
            elif name in signal.Signals.__members__:
                base = signal.Signals[name].value
            else:
                raise ValueError(f"{value!r} is not a signal")
            number = base + int(match.group(2) or 0)
    valid = {int(s) for s in signal.valid_signals()}
    if number not in valid:
        raise ValueError(f"{value!r} is not a valid signal number")
    return number


def signal_name(number: int) -> str:
    """The name to write back: SIGTERM, SIGRTMIN+2, or the number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        pass
    if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    return str(number)


def to_list(value: Any) -> tuple[str, ...]:
    """``a, b`` or ``a b`` in INI, a list in TOML."""
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v for v in re.split(r"[,\s]+", str(value).strip()) if v)


def to_lower_list(value: Any) -> tuple[str, ...]:
    return tuple(v.lower() for v in to_list(value))


def to_lower(value: Any) -> str:
    return to_str(value).lower()


def to_exit_codes(value: Any) -> tuple[int, ...]:
    codes = tuple(to_int(v) for v in to_list(value))
    for code in codes:
        if not 0 <= code <= 255:
            raise ValueError(f"exit code {code} is not between 0 and 255")
    return codes


def to_restart(value: Any) -> str:
    text = str(value).strip().lower().replace("_", "-")
    if text not in RESTART_POLICIES:
        raise ValueError(f"{value!r} is not one of {', '.join(RESTART_POLICIES)}")
    return text


def to_ready(value: Any) -> ReadySpec:
    text = str(value).strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind in ("spawned", "notify") and not rest:
        return ReadySpec(kind)
    if kind == "delay" and rest:
        return ReadySpec("delay", delay=non_negative(to_float)(rest))
    if kind == "tcp" and rest:
        host, sep, port = rest.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if sep and port.isdigit() and 0 < int(port) < 65536:
            return ReadySpec("tcp", host=host, port=int(port))
    raise ValueError(
        f"{value!r} is not a readiness check (spawned, notify, tcp:HOST:PORT or delay:SECONDS)"
    )


def to_rlimit(value: Any) -> int:
    """A resource limit; empty, ``unlimited`` or ``infinity`` mean no limit."""
    text = str(value).strip().lower()
    if text in ("", "unlimited", "infinity", "-1"):
        return resource.RLIM_INFINITY
    return non_negative(to_int)(value)


def _constant(prefix: str, allowed: tuple[str, ...]) -> Callable[[Any], str]:
    """``AF_INET`` or ``inet``: a socket constant, with or without its prefix."""

    def convert(value: Any) -> str:
        text = str(value).strip().upper()
        if not text.startswith(prefix):
            text = prefix + text
        if text not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return text

    return convert


to_family = _constant("AF_", SOCKET_FAMILIES)
to_socktype = _constant("SOCK_", SOCKET_TYPES)


def to_port(value: Any) -> int:
    port = to_int(value)
    if not 0 <= port < 65536:
        raise ValueError(f"{value!r} is not a port between 0 and 65535")
    return port


def to_loglevel(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("debug", "info", "warning", "warn", "error", "critical"):
        raise ValueError(f"{value!r} is not a log level (debug, info, warning, error, critical)")
    return "warning" if text == "warn" else text


Converter = Callable[[Any], Any]

WATCHER_OPTIONS: dict[str, Converter] = {
    "cmd": to_str,
    "args": to_str,
    "shell": to_bool,
    "shell_args": to_str,
    "executable": to_str,
    "working_dir": to_str,
    "uid": to_str,
    "gid": to_str,
    "umask": to_octal,
    "copy_env": to_bool,
    "copy_path": to_bool,
    "numprocesses": non_negative(to_int),
    "warmup_delay": non_negative(to_float),
    "graceful_timeout": non_negative(to_float),
    "rolling_reload": to_bool,
    "max_line": at_least_one_int,
    "stop_signal": to_signal,
    "stop_children": to_bool,
    "max_retry": to_int,
    "priority": to_int,
    "singleton": to_bool,
    "use_sockets": to_bool,
    "sockets": to_lower_list,
    "autostart": to_bool,
    "respawn": to_bool,
    "restart": to_restart,
    "success_exit_codes": to_exit_codes,
    "backoff_initial": non_negative(to_float),
    "backoff_factor": non_negative(to_float),
    "backoff_max": non_negative(to_float),
    "backoff_reset": non_negative(to_float),
    "max_age": non_negative(to_int),
    "max_age_variance": non_negative(to_int),
    "on_demand": to_bool,
    "close_child_stdin": to_bool,
    "close_child_stdout": to_bool,
    "close_child_stderr": to_bool,
    "virtualenv": to_str,
    "virtualenv_py_ver": to_str,
    "send_hup": to_bool,
    "check_flapping": to_bool,
    "use_papa": to_bool,
    "stdin_socket": to_lower,
    "depends_on": to_list,
    "ready": to_ready,
    "ready_timeout": non_negative(to_float),
    "hook_timeout": positive(to_float),
}
# Keys with a prefix: rlimit_<name>, hooks.<name>, stdout_stream.<opt>,
# stderr_stream.<opt>, flapping.<opt>; and env (a table, or "A=1, B=2" in INI).
WATCHER_PREFIXES = ("rlimit_", "hooks.", "stdout_stream.", "stderr_stream.", "flapping.")

# A watcher's own settings for the flapping plugin (Circus: flapping.<opt>).
FLAPPING_OPTIONS: dict[str, Converter] = {
    "attempts": positive(to_int),
    "window": non_negative(to_float),
    "retry_in": non_negative(to_float),
    "max_retry": to_int,
    "active": to_bool,
}

SOCKET_OPTIONS: dict[str, Converter] = {
    "host": to_str,
    "port": to_port,
    "path": to_str,
    "family": to_family,
    "type": to_socktype,
    "proto": to_str,
    "backlog": non_negative(to_int),
    "umask": to_octal,
    "replace": to_bool,
    "blocking": to_bool,
    "so_reuseport": to_bool,
    "interface": to_str,
    "use_papa": to_bool,
}

SETTINGS_OPTIONS: dict[str, Converter] = {
    "endpoint": to_str,
    "endpoint_owner": to_str,
    "insecure": to_bool,
    "log_dir": to_str,
    "server_key": to_str,
    "authorized_keys": to_str,
    "pubsub_endpoint": to_str,
    "stats_endpoint": to_str,
    "stats_interval": positive(to_float),
    "multicast_endpoint": to_str,
    "papa_endpoint": to_str,
    "check_delay": non_negative(to_float),
    "statsd": to_bool,
    "statsd_close_outputs": to_bool,
    "stats_close_outputs": to_bool,
    "stream_backend": to_str,
    "umask": to_octal,
    "warmup_delay": non_negative(to_float),
    "httpd": to_bool,
    "httpd_host": to_str,
    "httpd_port": to_port,
    "httpd_close_outputs": to_bool,
    "debug": to_bool,
    "debug_gc": to_bool,
    "pidfile": to_str,
    "loglevel": to_loglevel,
    "logoutput": to_str,
    "loggerconfig": to_str,
    "fqdn_prefix": to_str,
}
# Read by the file readers, not stored in Settings.
INCLUDE_KEYS = ("include", "include_dir")

PLUGIN_OPTIONS: dict[str, Converter] = {"use": to_str, "priority": to_int}


def _check_tables() -> None:
    """The tables and the dataclasses must name the same options."""
    names = {f.name for f in fields(WatcherSpec)} - {
        "name", "env", "rlimits", "hooks", "flapping", "stdout_stream", "stderr_stream",
        "origin"
    }
    assert names == set(WATCHER_OPTIONS), names ^ set(WATCHER_OPTIONS)
    assert {f.name for f in fields(SocketSpec)} - {"name", "origin"} == set(SOCKET_OPTIONS)
    assert {f.name for f in fields(Settings)} == set(SETTINGS_OPTIONS)


_check_tables()
