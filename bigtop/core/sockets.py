"""Listening sockets owned by the daemon and inherited by its children.

Bound once, before privileges are dropped, and held for the daemon's life
so that children can be restarted without refusing connections.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from ..config import SocketSpec


class SocketError(Exception):
    pass


class Socket:
    def __init__(self, spec: SocketSpec):
        self.spec = spec
        self.sock: socket.socket | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fd(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()

    @property
    def address(self) -> str:
        if self.sock is None:
            return "unbound"
        if self.spec.path:
            return f"unix:{self.spec.path}"
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def bound_address(self) -> tuple[str, int]:
        assert self.sock is not None
        host, port = self.sock.getsockname()[:2]
        return host, port

    def adopt(self, fd: int) -> None:
        """The socket bound by this daemon's previous image, at fd (handover.py)."""
        self.sock = socket.socket(fileno=fd)
        self.sock.set_inheritable(False)

    def bind(self) -> None:
        """Bind (and listen). With ``so_reuseport`` the daemon's socket only
        holds the address: each process gets a listening socket of its own
        (``for_process``), among which the kernel spreads connections."""
        self.sock = self._bound(listen=not self.spec.so_reuseport)

    def for_process(self) -> socket.socket | None:
        """A new listening socket on the same address, for one process of
        an ``so_reuseport`` socket; None for an ordinary one (shared)."""
        if not self.spec.so_reuseport:
            return None
        return self._bound(listen=True)

    def _bound(self, listen: bool) -> socket.socket:
        spec = self.spec
        family = getattr(socket, spec.family)
        kind = getattr(socket, spec.type)
        proto = socket.getprotobyname(spec.proto) if spec.proto else 0
        sock = socket.socket(family, kind, proto)
        try:
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spec.so_reuseport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if spec.interface:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                                spec.interface.encode() + b"\0")
            if spec.path:
                self._bind_unix(sock, spec)
            else:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                info = socket.getaddrinfo(spec.host, spec.port, family, kind)
                sock.bind(info[0][4])
            if listen and kind in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
                sock.listen(spec.backlog)
            sock.setblocking(spec.blocking)
        except OSError as err:
            sock.close()
            where = spec.path or f"{spec.host}:{spec.port}"
            raise SocketError(
                f"socket {spec.name!r} cannot bind {where}: {err.strerror or err}") from None
        return sock

    @staticmethod
    def _bind_unix(sock: socket.socket, spec: SocketSpec) -> None:
        assert spec.path
        if os.path.exists(spec.path):
            if not spec.replace:
                raise OSError(f"{spec.path} exists (set replace = true to take it over)")
            if not stat.S_ISSOCK(os.stat(spec.path).st_mode):
                raise OSError(f"{spec.path} exists and is not a socket")
            os.unlink(spec.path)
        old = os.umask(spec.umask) if spec.umask is not None else None
        try:
            sock.bind(spec.path)
        finally:
            if old is not None:
                os.umask(old)

    def close(self) -> None:
        if self.sock is None:
            return
        self.sock.close()
        self.sock = None
        if self.spec.path:
            with contextlib.suppress(OSError):
                os.unlink(self.spec.path)
