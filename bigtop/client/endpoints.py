"""Which endpoints a client talks to: the options and variables first, the
daemon's defaults (bigtop.control.endpoints) last; where a daemon's events
are when only its control endpoint is known; and, for ipc://, whether
anybody is there at all, so that a client says so at once."""

from __future__ import annotations

import os

from ..control.endpoints import default_endpoint, default_pubsub_endpoint, default_stats_endpoint
from .errors import Unreachable

__all__ = ["check_ipc", "default_endpoint", "default_pubsub_endpoint", "default_stats_endpoint",
           "guess_pubsub", "reachable_host", "resolve_endpoint", "resolve_pubsub"]


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The control endpoint: given, $BIGTOPCTL_ENDPOINT, $CIRCUSCTL_ENDPOINT, the default."""
    return (endpoint or os.environ.get("BIGTOPCTL_ENDPOINT")
            or os.environ.get("CIRCUSCTL_ENDPOINT") or default_endpoint())


def resolve_pubsub(endpoint: str | None = None) -> str:
    """The events endpoint: given, $BIGTOPCTL_PUBSUB_ENDPOINT, the default."""
    return endpoint or os.environ.get("BIGTOPCTL_PUBSUB_ENDPOINT") or default_pubsub_endpoint()


def reachable_host(endpoint: str, control: str) -> str:
    """A PUB bound on every address (tcp://0.0.0.0:N, tcp://*:N) is reached
    at the host we reach the control endpoint on."""
    for wildcard in ("tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"):
        if endpoint.startswith(wildcard) and control.startswith("tcp://"):
            host = control[len("tcp://"):].rsplit(":", 1)[0]
            return f"tcp://{host}:{endpoint[len(wildcard):]}"
    return endpoint


def guess_pubsub(control: str) -> str:
    """ipc://DIR/control.sock -> ipc://DIR/events.sock; tcp://H:P -> tcp://H:P+1
    (Circus's 5555/5556); else the default events endpoint."""
    if control.startswith("ipc://"):
        return f"ipc://{os.path.join(os.path.dirname(control[len('ipc://'):]), 'events.sock')}"
    if control.startswith("tcp://"):
        host, _, port = control.rpartition(":")
        if port.isdigit():
            return f"{host}:{int(port) + 1}"
    return default_pubsub_endpoint()


def check_ipc(endpoint: str) -> None:
    """Fail at once, rather than after the timeout, when an ipc:// endpoint
    has no socket file or nobody accepting on it."""
    if not endpoint.startswith("ipc://"):
        return
    path = endpoint[len("ipc://"):]
    if path.startswith("@"):
        return  # abstract namespace: nothing to look at
    import socket

    problem = None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except FileNotFoundError:
            problem = "no such socket"
        except ConnectionRefusedError:
            problem = "nothing is listening on it"
        except PermissionError:
            problem = "permission denied"
        except OSError as err:
            problem = err.strerror or str(err)
    if problem:
        raise Unreachable(
            f"bigtopctl: cannot reach the daemon at {endpoint}: {problem}.\n"
            "Is bigtopd running? Pick another daemon with --endpoint (or BIGTOPCTL_ENDPOINT).")
