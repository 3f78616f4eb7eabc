"""Starting one process of a watcher: its sockets, its environment, the
spawn itself. What happens around it (readers, reaper, readiness) is the
watcher's; this module only turns a spec and a slot into a running child.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Mapping

from ..config import WatcherSpec
from ..config.substitute import circus_vars
from . import limits
from .process import Process, SpawnError
from .sockets import Socket, SocketError


def socket_names(spec: WatcherSpec, available: Collection[str]) -> list[str]:
    """The daemon sockets a watcher's processes inherit, in the order they
    get them (fds 3, 4, ...): the ``sockets`` list first. ``available``:
    the names of the daemon's sockets."""
    # A variable naming no socket is left as written (the configuration
    # warned), and gives nothing.
    names = {v[len("sockets."):] for v in circus_vars(f"{spec.cmd} {spec.args or ''}")
             if v.startswith("sockets.") and v[len("sockets."):] in available}
    names |= set(spec.sockets)
    if spec.stdin_socket:
        names.add(spec.stdin_socket)
    if spec.use_sockets and not names:
        names = set(available)
    listed = [n for n in spec.sockets if n in names]
    return listed + sorted(names - set(listed))


def _own_sockets(names: list[str], sockets: Mapping[str, Socket]
                 ) -> dict[str, socket.socket | None]:
    """Each process's own listening socket, for the so_reuseport ones."""
    own: dict[str, socket.socket | None] = {}
    try:
        for name in names:
            own[name] = sockets[name].for_process()
    except SocketError as err:
        for sock in own.values():
            if sock is not None:
                sock.close()
        raise SpawnError(str(err)) from None
    return own


def spawn(spec: WatcherSpec, wid: int, sockets: Mapping[str, Socket],
          extra_env: Mapping[str, str]) -> Process:
    """A started process for slot ``wid``; raises SpawnError."""
    names = socket_names(spec, sockets)
    missing = [n for n in names if n not in sockets]
    if missing:
        raise SpawnError(f"socket {missing[0]!r} is not bound")
    why = limits.fds.shortage(limits.spawn_fds(spec) + len(names))
    if why is not None:
        raise SpawnError(why, shortage=True)
    process = Process(spec, wid)
    own = _own_sockets(names, sockets)
    try:
        process.spawn(
            {name: sock.fileno() if (sock := own[name]) else sockets[name].fd
             for name in names},
            extra_env,
            capture_stdout=not spec.close_child_stdout,
            capture_stderr=not spec.close_child_stderr,
        )
    finally:
        for sock in own.values():
            if sock is not None:
                sock.close()  # the child's now
    return process
