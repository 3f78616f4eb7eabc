"""Converters: one raw option value in, one typed value out.

Both file formats hand raw values (strings from INI, typed values from TOML)
to these, so each accepts either and raises ``ValueError`` with a message
fit for an operator. They import nothing of the model, so the model can
name them in its option declarations.
"""

from __future__ import annotations

import math
import re
import resource
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from .values import HookSpec, ReadySpec

Converter = Callable[[Any], Any]
Number = TypeVar("Number", int, float)

TRUE = ("1", "yes", "true", "on")
FALSE = ("0", "no", "false", "off")

# The NAMEs of rlimit_NAME: what Python's resource module knows here.
RLIMITS = tuple(sorted(
    name[len("RLIMIT_") :].lower() for name in dir(resource) if name.startswith("RLIMIT_")
))

RESTART_POLICIES = ("always", "on-failure", "never")
CRASH_POLICIES = ("stop", "adopt")  # on_daemon_crash
SOCKET_FAMILIES = ("AF_INET", "AF_INET6", "AF_UNIX")
SOCKET_TYPES = ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_RAW", "SOCK_RDM")
LOG_LEVELS = ("debug", "info", "warning", "warn", "error", "critical")

_NAME = r"[A-Za-z_]\w*"
# module.function, or module:attribute (either side dotted)
_DOTTED = re.compile(rf"{_NAME}(\.{_NAME})+|{_NAME}(\.{_NAME})*:{_NAME}(\.{_NAME})*")


def to_bool(value: Any) -> bool:
    """The one boolean parser: ``1 yes true on`` / ``0 no false off`` in any
    case, or a bool itself."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def to_str(value: Any) -> str:
    if isinstance(value, (list, dict)):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


SOCKET_PATH_MAX = 107  # bytes of a Unix socket's path: sun_path holds 108 with the NUL


def to_socket_path(value: Any) -> str:
    path = to_str(value)
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > SOCKET_PATH_MAX:
        raise ValueError(f"a Unix socket's path is at most {SOCKET_PATH_MAX} bytes "
                         f"(the kernel's limit), this one is {size}")
    return path


def to_text(value: Any) -> str:
    """A free-form value (stream and plugin options) as INI would give it,
    so both formats build equal models."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_env_value(value: Any) -> str:
    """An environment variable's value: any scalar, in its INI spelling."""
    if isinstance(value, (dict, list)):
        raise ValueError("an environment value must be a string")
    return to_text(value)


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


def non_negative(conv: Callable[[Any], Number]) -> Callable[[Any], Number]:
    def check(value: Any) -> Number:
        result = conv(value)
        if result < 0:
            raise ValueError(f"{value!r} must not be negative")
        return result

    return check


def positive(conv: Callable[[Any], Number]) -> Callable[[Any], Number]:
    def check(value: Any) -> Number:
        result = conv(value)
        if result <= 0:
            raise ValueError(f"{value!r} must be more than 0")
        return result

    return check


def at_most(top: Number, conv: Callable[[Any], Number]) -> Callable[[Any], Number]:
    def check(value: Any) -> Number:
        result = conv(value)
        if result > top:
            raise ValueError(f"{value!r} is more than the most allowed, {top:,}")
        return result

    return check


def at_least_one_int(value: Any) -> int:
    result = to_int(value)
    if result < 1:
        raise ValueError(f"{value!r} must be at least 1")
    return result


def to_compress(value: Any) -> bool:
    """A stream's ``compress``: a boolean, or ``gzip`` (the only format)."""
    if str(value).strip().lower() == "gzip":
        return True
    try:
        return to_bool(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a boolean (use true, false or gzip)") from None


def to_octal(value: Any) -> int:
    """A umask, always octal: ``022`` or ``0o022`` (Circus read socket umasks
    as decimal)."""
    if isinstance(value, int) and not isinstance(value, bool):
        # TOML: 0o022 and 22 both arrive as numbers; only the first is right.
        raise ValueError(f"write a mode as a string of octal digits, such as \"022\" "
                         f"(got the number {value})")
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


def to_words(value: Any) -> tuple[str, ...]:
    """Names separated by white space in INI (commas may be in file names),
    a list in TOML."""
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return tuple(str(value).split())


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


def to_crash_policy(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in CRASH_POLICIES:
        raise ValueError(f"{value!r} is not one of {', '.join(CRASH_POLICIES)}")
    return text


def to_ready(value: Any) -> ReadySpec:
    text = str(value).strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind in ("spawned", "notify", "exited") and not rest:
        return ReadySpec(kind)
    if kind == "delay" and rest:
        return ReadySpec("delay", delay=non_negative(to_float)(rest))
    if kind == "tcp" and rest:
        host, sep, port = rest.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if sep and port.isdigit() and 0 < int(port) < 65536:
            return ReadySpec("tcp", host=host, port=int(port))
    raise ValueError(
        f"{value!r} is not a readiness check (spawned, notify, tcp:HOST:PORT, delay:SECONDS "
        "or exited)"
    )


def to_hook(value: Any) -> HookSpec:
    """``module.function`` (or ``module:function``), optionally followed by ``, true`` to ignore the
    hook's failure; in TOML also ``["module.function", true]``."""
    parts = value if isinstance(value, list) else str(value).split(",", 1)
    target = str(parts[0]).strip() if parts else ""
    if not _DOTTED.fullmatch(target):
        raise ValueError(f"{target!r} is not a dotted path such as mymodule.my_hook "
                         "(or mymodule:my_hook)")
    ignore = to_bool(str(parts[1]).strip()) if len(parts) > 1 else False
    return HookSpec(target, ignore)


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
    if text not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not a log level (debug, info, warning, error, critical)")
    return "warning" if text == "warn" else text


# -- the cluster ---------------------------------------------------------

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}")  # a label's name or value
MAX_LABELS = 64
PARTITION_MODES = ("at-least-once", "at-most-once")


def _label(text: str, what: str) -> str:
    if not LABEL.fullmatch(text):
        raise ValueError(f"{text[:70]!r} is not a label {what}: letters, digits and _ . -, "
                         "at most 63, starting with a letter or digit")
    return text


def to_labels(value: Any) -> tuple[tuple[str, str], ...]:
    """``role=web zone=a`` (or with commas); in TOML also a table. Pairs
    in name order (a frozen model holds no dict)."""
    pairs = (list(value.items()) if isinstance(value, dict)
             else [item.partition("=")[::2] for item in to_list(value)])
    if len(pairs) > MAX_LABELS:
        raise ValueError(f"{len(pairs)} labels, {MAX_LABELS} at most")
    labels: dict[str, str] = {}
    for name, label in pairs:
        if not str(label):
            raise ValueError(f"{name!r} is not NAME=VALUE")
        labels[_label(str(name), "name")] = _label(str(label), "value")
    return tuple(sorted(labels.items()))


def to_constraints(value: Any) -> tuple[tuple[str, str, str], ...]:
    """``role=web zone!=b``: labels a node must have (or not have)."""
    found = []
    for item in to_list(value):
        name, op, label = re.split(r"(!=|=)", item, maxsplit=1) if "=" in item else (item, "", "")
        if not op or not label:
            raise ValueError(f"{item!r} is not LABEL=VALUE or LABEL!=VALUE")
        found.append((_label(name, "name"), op, _label(label, "value")))
    if len(found) > MAX_LABELS:
        raise ValueError(f"{len(found)} constraints, {MAX_LABELS} at most")
    return tuple(found)


def to_node_count(value: Any) -> int:
    """How many nodes run a cluster watcher: a number, or ``all`` (0)."""
    if str(value).strip().lower() == "all":
        return 0
    return at_most(MAX_NODES, positive(to_int))(value)


MAX_NODES = 1000  # nodes in one cluster, and so nodes one watcher runs on


def to_partition(value: Any) -> str:
    text = str(value).strip().lower().replace("_", "-")
    if text not in PARTITION_MODES:
        raise ValueError(f"{value!r} is not one of {', '.join(PARTITION_MODES)}")
    return text


def to_etcd_endpoints(value: Any) -> tuple[str, ...]:
    """``HOST:PORT`` of each etcd member (an ``http://`` prefix is dropped)."""
    endpoints = []
    for item in to_list(value):
        bare = re.sub(r"^https?://", "", item).rstrip("/")
        host, sep, port = bare.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not HOST:PORT")
        endpoints.append(bare)
    if not endpoints:
        raise ValueError("no etcd endpoint")
    if len(endpoints) > 16:
        raise ValueError(f"{len(endpoints)} etcd endpoints, 16 at most")
    return tuple(endpoints)
