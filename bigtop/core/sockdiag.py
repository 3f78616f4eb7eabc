"""Accept queues of listening sockets, from the kernel (what ``ss -l``
shows as Recv-Q / Send-Q), through the sock_diag netlink interface.

One request returns every listening TCP socket of a family, or one Unix
socket by inode, so the cost does not grow with established connections
(as reading /proc/net/tcp would). Linux only; elsewhere, or if netlink is
refused, the queues are simply unknown (None).
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10
UDIAG_SHOW_RQLEN = 0x10
UNIX_DIAG_RQLEN = 4
NO_COOKIE = 0xFFFFFFFF

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then a zero sockid
_INET_REQ = struct.Struct("=BBBxI48x")
# inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode
_INET_MSG = struct.Struct("=BBBB48xIIIII")
# unix_diag_req: family, protocol, pad, states, ino, show, cookie[2]
_UNIX_REQ = struct.Struct("=BBxxIIIII")
_UNIX_MSG = struct.Struct("=BBBxIII")  # family, type, state, ino, cookie[2]
_ATTR = struct.Struct("=HH")


Queues = dict[int, tuple[int, int]]  # inode -> (waiting connections, backlog)


def _ask(payload: bytes, flags: int) -> list[bytes]:
    """One sock_diag request; the payloads of its answers."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(_HEADER.pack(_HEADER.size + len(payload), SOCK_DIAG_BY_FAMILY,
                             NLM_F_REQUEST | flags, 1, 0) + payload)
        answers: list[bytes] = []
        while True:
            data = nl.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    return answers
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return answers
                answers.append(data[offset + _HEADER.size: offset + length])
                offset += (length + 3) & ~3
            if not flags & NLM_F_DUMP:
                return answers


def tcp_listen_queues(family: int) -> Queues:
    """Every listening TCP socket of AF_INET or AF_INET6, by inode."""
    out: Queues = {}
    for answer in _ask(_INET_REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << TCP_LISTEN),
                       NLM_F_DUMP):
        if len(answer) >= _INET_MSG.size:
            *_, rqueue, wqueue, _, inode = _INET_MSG.unpack_from(answer)
            out[inode] = (rqueue, wqueue)
    return out


def unix_queue(inode: int) -> tuple[int, int] | None:
    """One Unix socket's (waiting connections, backlog), if it listens."""
    request = _UNIX_REQ.pack(socket.AF_UNIX, 0, 1 << TCP_LISTEN, inode, UDIAG_SHOW_RQLEN,
                             NO_COOKIE, NO_COOKIE)
    for answer in _ask(request, 0):
        offset = _UNIX_MSG.size
        while offset + _ATTR.size <= len(answer):
            length, kind = _ATTR.unpack_from(answer, offset)
            if length < _ATTR.size:
                break
            if kind == UNIX_DIAG_RQLEN and length >= _ATTR.size + 8:
                rqueue, wqueue = struct.unpack_from("=II", answer, offset + _ATTR.size)
                return rqueue, wqueue
            offset += (length + 3) & ~3
    return None


def accept_queues(socks: list[socket.socket]) -> dict[int, tuple[int, int] | None]:
    """(waiting connections, backlog) for each listening socket, by fd;
    None where the kernel does not say (not listening, not TCP or Unix)."""
    out: dict[int, tuple[int, int] | None] = {}
    tcp: dict[int, Queues] = {}
    for sock in socks:
        fd = sock.fileno()
        out[fd] = None
        try:
            inode = os.fstat(fd).st_ino
            if sock.family == socket.AF_UNIX:
                out[fd] = unix_queue(inode)
            elif sock.family in (socket.AF_INET, socket.AF_INET6) and \
                    sock.type == socket.SOCK_STREAM:
                if sock.family not in tcp:
                    tcp[sock.family] = tcp_listen_queues(sock.family)
                out[fd] = tcp[sock.family].get(inode)
        except OSError:
            pass
    return out
