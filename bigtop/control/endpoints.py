"""Where the daemon listens by default, and keeping that place private.

The daemon's side of the endpoints: it binds there (clients find the
defaults here too, through bigtop.client.endpoints).

Default endpoints are ``ipc://`` sockets in a runtime directory only its
owner can enter: ``$BIGTOP_RUNTIME_DIR`` if set, else ``/run/bigtop`` for
root, ``$XDG_RUNTIME_DIR/bigtop`` otherwise (``/tmp/bigtop-UID`` when that
is unset).
"""

from __future__ import annotations

import os
import stat


def runtime_dir() -> str:
    if os.environ.get("BIGTOP_RUNTIME_DIR"):
        return os.environ["BIGTOP_RUNTIME_DIR"]
    if os.geteuid() == 0:
        return "/run/bigtop"
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return os.path.join(base, "bigtop")
    return f"/tmp/bigtop-{os.geteuid()}"


def default_endpoint() -> str:
    return f"ipc://{runtime_dir()}/control.sock"


def default_pubsub_endpoint() -> str:
    return f"ipc://{runtime_dir()}/events.sock"


def default_stats_endpoint() -> str:
    return f"ipc://{runtime_dir()}/stats.sock"


def ipc_path(endpoint: str) -> str | None:
    return endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else None


def ensure_private_dir(path: str) -> None:
    """Create path 0700 if missing; refuse one that others could enter."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.stat(path)
    if info.st_uid != os.geteuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not to us")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)


def let_through(directory: str) -> None:
    """Let other users pass through a directory of ours (o+x: not list it),
    so that endpoint_owner reaches its socket files in the private runtime
    directory; the files themselves stay 0600, the owner's."""
    info = os.stat(directory)
    if info.st_uid == os.geteuid() and not info.st_mode & stat.S_IXOTH:
        os.chmod(directory, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def listening(path: str) -> bool:
    """Is something accepting on this Unix socket path?"""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def in_use(endpoint: str) -> str:
    """What to say of an endpoint another daemon serves: that, and how to
    run a second daemon beside it. A default one (in the runtime directory)
    is left by giving the second daemon a runtime directory of its own;
    one set in the configuration, by setting another there."""
    path = ipc_path(endpoint)
    where = runtime_dir()
    if path is not None and os.path.dirname(path) == where:
        other = f"{where.rstrip('/')}-2"
        hint = (f"To run a second one beside it, give it a runtime directory of its own "
                f"(BIGTOP_RUNTIME_DIR={other} bigtopd CONFIG, and the same BIGTOP_RUNTIME_DIR "
                f"for its bigtopctl) or other endpoints ([circus] endpoint, pubsub_endpoint, "
                f"stats_endpoint)")
    else:
        hint = ("To run a second one beside it, give it other endpoints ([circus] endpoint, "
                "pubsub_endpoint, stats_endpoint)")
    return f"{endpoint} is in use: is another bigtopd running? {hint}"


def check_free(*endpoints: str) -> None:
    """Refuse, before anything starts, ipc endpoints another daemon serves
    (the message says how to run a second daemon: ``in_use``)."""
    for endpoint in endpoints:
        path = ipc_path(endpoint)
        if path and os.path.exists(path) and listening(path):
            raise OSError(in_use(endpoint))

