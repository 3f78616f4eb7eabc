"""Finding the listening socket to serve on.

In order: ``--fd N`` (what ``$(circus.sockets.NAME)`` expands to), systemd
socket activation (``LISTEN_FDS``/``LISTEN_PID``, fd 3 or the one
``--fd-name`` names in ``LISTEN_FDNAMES``), then a socket bound here for
standalone use (``--host``/``--port``, or ``--host unix:PATH``).

An inherited socket is shared with the daemon and with sibling workers: it
is never shut down or unlinked here, only this process's copy is closed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from dataclasses import dataclass

LISTEN_FDS_START = 3  # systemd's SD_LISTEN_FDS_START
DEFAULT_BACKLOG = 2048
# struct tcp_info: eight one-byte fields, then u32 rto, ato, snd_mss,
# rcv_mss, unacked, sacked; on a listening socket Linux reports the
# backlog it was given (sk_max_ack_backlog) in tcpi_sacked.
_TCP_INFO_SACKED = struct.Struct("=28xI")


class ListenError(Exception):
    """No usable socket: the message says what was wrong, for the user."""


@dataclass
class Listener:
    sock: socket.socket
    where: str  # for messages: "fd 3 (127.0.0.1:8000)"
    backlog: int  # what a server that calls listen() again should pass
    owned_path: str | None = None  # a Unix socket path bound here, removed on exit

    def close(self) -> None:
        """Close this process's copy; remove the path only if we made it."""
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.owned_path:
            with contextlib.suppress(OSError):
                os.unlink(self.owned_path)


def describe(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "?"
    if sock.family == socket.AF_UNIX:
        if isinstance(name, bytes):
            name = "@" + name[1:].decode(errors="replace") if name[:1] == b"\0" else name.decode()
        return f"unix:{name}" if name else "unix:(unnamed)"
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


def current_backlog(sock: socket.socket) -> int:
    """The backlog the socket was put in listening state with, so that a
    server which calls ``listen()`` again (asyncio, waitress) keeps the
    daemon's choice. Known for TCP on Linux; a default otherwise."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SACKED.size)
            (backlog,) = _TCP_INFO_SACKED.unpack(info[: _TCP_INFO_SACKED.size])
        except (OSError, struct.error):
            return DEFAULT_BACKLOG
        if backlog > 0:
            return backlog
    return DEFAULT_BACKLOG


def from_fd(fd: int, origin: str) -> Listener:
    """Adopt an inherited fd; it must be a listening stream socket."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        raise ListenError(f"{origin}: fd {fd} is not open in this process") from None
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"{origin}: fd {fd} is not a socket") from None
    sock = socket.socket(fileno=fd)  # family and type read from the fd
    try:
        accepting = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        accepting = 0
    if sock.type != socket.SOCK_STREAM or not accepting:
        sock.detach()
        raise ListenError(f"{origin}: fd {fd} is not a listening stream socket")
    os.set_inheritable(fd, False)  # the application's own children don't get it
    return Listener(sock, f"fd {fd} ({describe(sock)})", current_backlog(sock))


def systemd_fd(name: str | None, environ: dict[str, str] | os._Environ[str]) -> int | None:
    """The fd systemd (or bigtopd) passed, or None if nothing was passed to
    this process. The LISTEN_* variables are removed from ``environ`` once
    read, as sd_listen_fds() does, so the application's children don't
    take the sockets for theirs."""
    pid, count = environ.get("LISTEN_PID"), environ.get("LISTEN_FDS")
    if not pid or not count:
        return None
    if pid.strip() != str(os.getpid()):
        return None  # meant for another process (the variables were inherited)
    try:
        total = int(count)
    except ValueError:
        raise ListenError(f"LISTEN_FDS={count!r} is not a number") from None
    names = environ.get("LISTEN_FDNAMES", "").split(":") if environ.get("LISTEN_FDNAMES") else []
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(key, None)
    if total < 1:
        raise ListenError("LISTEN_FDS is 0: no socket was passed")
    if name is None:
        return LISTEN_FDS_START
    if name not in names:
        known = ", ".join(names) if names else "none"
        raise ListenError(f"--fd-name {name}: no such name in LISTEN_FDNAMES (names: {known})")
    index = names.index(name)
    if index >= total:
        raise ListenError(f"--fd-name {name}: LISTEN_FDNAMES names more sockets than LISTEN_FDS")
    return LISTEN_FDS_START + index


def bind(host: str, port: int, backlog: int = DEFAULT_BACKLOG) -> Listener:
    """A socket of our own, for standalone use: ``unix:PATH`` or a TCP
    host and port (``0`` picks a free port)."""
    if host.startswith("unix:"):
        path = host[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]  # unix:///run/app.sock
        if not path:
            raise ListenError(f"--host {host}: no path")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.unlink(path)  # left over by a previous run
            sock.bind(path)
            sock.listen(backlog)
        except OSError as err:
            sock.close()
            raise ListenError(f"cannot listen on unix:{path}: {err.strerror}") from None
        return Listener(sock, f"unix:{path}", backlog, owned_path=path)
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ListenError(f"--host {host}: {err.strerror}") from None
    family, kind, proto, _canon, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    return Listener(sock, describe(sock), backlog)
