"""The machine's floors for the benchmarks, and the kernel's process events.

A floor is the least a Python daemon could do for a figure: the same work
as the system under test with nothing else around it, measured in the same
run and the same way, so that a figure can be read as a ratio of it.

Run as a program (with the repo venv's python, as its own process, as a
daemon would be), this file is one of the floors:

  start N SLEEP        spawn N ``SLEEP 100000`` children at once with
                       os.posix_spawn, then wait; on SIGTERM kill and reap
                       them and exit. posix_spawn is the faster way for
                       Python: glibc implements it with clone(CLONE_VM |
                       CLONE_VFORK), so no page table of the interpreter is
                       copied, where fork() copies them all (measured here:
                       100 children in ~100 ms against ~120-130 ms with
                       fork + execve, from a small interpreter; the gap
                       grows with the parent's memory).
  start-fork N SLEEP   the same with os.fork + os.execv, the start floor
                       of a daemon that forks (bigtopd's Popen takes
                       vfork where it can, fork where a child needs code
                       run before its exec).
  runtime N SLEEP DIR  the memory floor: the runtime a Python daemon of
                       this design cannot do without, and nothing else.
                       asyncio (without ssl, as bigtopd), pyzmq with a
                       ROUTER and two PUB sockets bound in DIR, N sleeps
                       spawned with both output pipes read on the loop and
                       a pidfd each; held until SIGTERM.
  respawn SLEEP        hold one ``SLEEP 100000`` child, wait on its pidfd
                       (os.pidfd_open + poll) and respawn it the moment it
                       exits; on SIGTERM kill and reap it and exit.
  http BACKEND HOST PORT WORKERS THREADS DIR APP
                       the HTTP floor: bind HOST:PORT (backlog 2048, as
                       bigtopd's sockets), fork WORKERS processes that each
                       serve DIR's APP (``module:attr``) with BACKEND's own
                       server API on the inherited socket, and wait; on
                       SIGTERM stop them. No bigtop code runs.

Imported (bench/lifecycle.py does), it offers ProcConnector, which reads
exec and exit events with their kernel timestamps from the proc connector.

The start and respawn floors import only errno, os, sys, signal and select
before they spawn, so that their start is not that of the imports.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

SLEEP_ARG = "100000"
BACKLOG = 2048  # bigtopd's default socket backlog (bigtop.config.model)


# --------------------------------------------------------------------------
# The floor programs.


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _raise_stop(signum, frame):
    raise _Stop


def _on_stop_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_stop)


def _kill_and_reap(pids, signum: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def start_floor(children: int, sleep: str, fork: bool = False) -> int:
    """Spawn ``children`` sleeps as fast as Python can (posix_spawn, or
    with ``fork`` fork and exec), then hold them."""
    argv, env = ["sleep", SLEEP_ARG], os.environ

    def spawn() -> int:
        if not fork:
            return os.posix_spawn(sleep, argv, env)
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(sleep, argv)
            finally:
                os._exit(127)
        return pid

    pids: list[int] = []
    _on_stop_signals()
    try:
        for _ in range(children):
            pids.append(spawn())
        while True:
            signal.pause()
    except _Stop:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        _kill_and_reap(pids)
    return 0


def runtime_floor(children: int, sleep: str, directory: str) -> int:
    """Hold ``children`` sleeps the way the daemon does, with only the
    runtime it is built on loaded: the least RSS such a daemon can have."""
    sys.modules["ssl"] = None  # type: ignore[assignment]  # as bigtopd: no OpenSSL
    import asyncio

    del sys.modules["ssl"]
    import zmq

    async def hold() -> None:
        loop = asyncio.get_running_loop()
        context = zmq.Context()
        sockets = [context.socket(kind) for kind in (zmq.ROUTER, zmq.PUB, zmq.PUB)]
        for index, sock in enumerate(sockets):
            sock.bind(f"ipc://{directory}/floor-{index}.sock")
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        pids, fds = [], []
        for _ in range(children):
            out, err = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
            pid = os.posix_spawn(sleep, ["sleep", SLEEP_ARG], os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, out[1], 1), (os.POSIX_SPAWN_DUP2, err[1], 2)])
            os.close(out[1])
            os.close(err[1])
            pidfd = os.pidfd_open(pid)
            for fd in (out[0], err[0]):
                loop.add_reader(fd, os.read, fd, 65536)
            loop.add_reader(pidfd, os.waitpid, pid, os.WNOHANG)
            pids.append(pid)
            fds += [out[0], err[0], pidfd]
        await stop.wait()
        for fd in fds:
            loop.remove_reader(fd)
        _kill_and_reap(pids)
        for sock in sockets:
            sock.close(linger=0)
        context.term()

    asyncio.run(hold())
    return 0


def respawn_floor(sleep: str) -> int:
    """Hold one sleep child and replace it as soon as its pidfd says it exited."""
    import select

    argv, env = ["sleep", SLEEP_ARG], os.environ
    poller = select.poll()
    pid = pidfd = None
    _on_stop_signals()
    try:
        while True:
            pid = os.posix_spawn(sleep, argv, env)
            pidfd = os.pidfd_open(pid)
            poller.register(pidfd, select.POLLIN)
            while not poller.poll():
                pass
            # Readable: it has exited. Reap it, then the next iteration
            # spawns the replacement at once.
            poller.unregister(pidfd)
            os.close(pidfd)
            pidfd = None
            os.waitpid(pid, 0)
            pid = None
    except _Stop:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        if pid is not None:
            _kill_and_reap([pid])
    return 0


def _load_app(directory: str, spec: str):
    sys.path.insert(0, directory)
    module, _, attr = spec.partition(":")
    return getattr(__import__(module), attr)


def _serve(backend: str, sock, threads: int, directory: str, app: str) -> None:
    """One HTTP floor worker: BACKEND's own server on ``sock``, settings as
    bigtop-wsgi gives it (no access log, waitress's queue warnings off, TCP
    NODELAY for gevent, uvicorn on uvloop and httptools when installed)."""
    import logging
    import socket

    if backend == "waitress":
        from waitress.server import create_server

        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        create_server(_load_app(directory, app), sockets=[sock], threads=threads,
                      backlog=BACKLOG).run()
    elif backend == "gevent":
        from gevent import monkey

        monkey.patch_all()
        from gevent.pywsgi import WSGIServer

        class Server(WSGIServer):
            def handle(self, client, address):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return super().handle(client, address)

        host, port = sock.getsockname()[:2]
        Server(sock, _load_app(directory, app), log=None,
               environ={"wsgi.multiprocess": True, "SERVER_NAME": host,
                        "SERVER_PORT": str(port)}).serve_forever()
    elif backend == "uvicorn":
        import uvicorn

        config = uvicorn.Config(_load_app(directory, app), log_config=None,
                                log_level="warning", access_log=False, backlog=BACKLOG)
        uvicorn.Server(config).run(sockets=[sock])
    elif backend == "bjoern":
        import bjoern

        bjoern.server_run(sock, _load_app(directory, app))
    else:
        raise SystemExit(f"unknown backend {backend!r}")


def http_floor(backend: str, host: str, port: int, workers: int, threads: int,
               directory: str, app: str) -> int:
    """Pre-fork: bind, fork the workers, wait; stop them on SIGTERM."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    pids = []
    _on_stop_signals()
    try:
        for _ in range(workers):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                        signal.signal(signum, signal.SIG_DFL)
                    _serve(backend, sock, threads, directory, app)
                    code = 0
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    os._exit(code)
            pids.append(pid)
        # A worker that dies ends the floor: the bench sees the daemon exit.
        os.wait()
        return 1
    except _Stop:
        return 0
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        _kill_and_reap(pids, signal.SIGTERM)


def main(argv: list[str]) -> int:
    # Python put this file's directory first on sys.path: it holds
    # bench/http.py, which would shadow the standard library's http package
    # that the servers import.
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    usage = (f"usage: {argv[0]} start N SLEEP | start-fork N SLEEP | runtime N SLEEP DIR | "
             "respawn SLEEP | http BACKEND HOST PORT WORKERS THREADS DIR APP")
    if len(argv) == 4 and argv[1] == "start":
        return start_floor(int(argv[2]), argv[3])
    if len(argv) == 4 and argv[1] == "start-fork":
        return start_floor(int(argv[2]), argv[3], fork=True)
    if len(argv) == 5 and argv[1] == "runtime":
        return runtime_floor(int(argv[2]), argv[3], argv[4])
    if len(argv) == 3 and argv[1] == "respawn":
        return respawn_floor(argv[2])
    if len(argv) == 9 and argv[1] == "http":
        backend, host, port, workers, threads, directory, app = argv[2:]
        return http_floor(backend, host, int(port), int(workers), int(threads),
                          directory, app)
    print(usage, file=sys.stderr)
    return 2


# --------------------------------------------------------------------------
# The proc connector: the kernel's own record of exec and exit.
#
# Layout relied on (native byte order; sizes in bytes):
#
#   struct nlmsghdr (linux/netlink.h), 16:
#     __u32 nlmsg_len; __u16 nlmsg_type; __u16 nlmsg_flags;
#     __u32 nlmsg_seq; __u32 nlmsg_pid;
#   struct cn_msg (linux/connector.h), 20, right after it:
#     struct cb_id { __u32 idx; __u32 val; } id;   CN_IDX_PROC = CN_VAL_PROC = 1
#     __u32 seq; __u32 ack; __u16 len; __u16 flags; __u8 data[];
#   struct proc_event (linux/cn_proc.h), in cn_msg.data (offset 36):
#     enum what what (__u32); __u32 cpu;
#     __u64 timestamp_ns (aligned 8: offset 8 in the struct);  ktime_get_ns(),
#                                              the clock of time.monotonic_ns()
#     union event_data (offset 16):
#       exec_proc_event { __kernel_pid_t process_pid; __kernel_pid_t process_tgid; }
#       exit_proc_event { process_pid; process_tgid; __u32 exit_code;
#                         __u32 exit_signal; parent_pid; parent_tgid; }
#                       (parent_pid/parent_tgid since Linux 4.x; not used here)
#   what: PROC_EVENT_EXEC = 0x2, PROC_EVENT_NONZERO_EXIT = 0x20000000 (a
#   filter flag, Linux 6.6+), PROC_EVENT_EXIT = 0x80000000.
#
# To subscribe, cn_msg.data is either a __u32 enum proc_cn_mcast_op
# (PROC_CN_MCAST_LISTEN = 1), or from Linux 6.6 a struct proc_input
# { __u32 mcast_op; __u32 event_type; } whose event_type is a mask of the
# events to receive: with EXEC | NONZERO_EXIT the kernel drops every fork,
# every exit with status 0, and the rest, which matters on a busy machine.
# Subscribing needs CAP_NET_ADMIN in the initial user namespace.

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_NONZERO_EXIT = 0x20000000
PROC_EVENT_EXIT = 0x80000000
NLMSGHDR = "=IHHII"
CN_MSG = "=IIIIHH"
PROC_EVENT_HEAD = "=IIQ"    # what, cpu, timestamp_ns
PROC_EVENT_PIDS = "=ii"     # exec and exit: process_pid, process_tgid
EVENT_OFFSET = 16 + 20      # nlmsghdr + cn_msg
RCVBUF = 8 << 20


class ConnectorError(OSError):
    """The proc connector cannot be used here (not root, no netlink, ...)."""


class ProcConnector:
    """A subscription to the kernel's exec and exit events.

    drain() reads what has arrived into ``exec_ns`` (tgid -> timestamp of
    its last exec) and ``exit_ns`` (tgid -> timestamp of its exit); clear()
    forgets them. Events lost to a full socket buffer raise ``lost``.
    """

    def __init__(self):
        import socket
        import struct

        self._struct = struct
        self.exec_ns: dict[int, int] = {}
        self.exit_ns: dict[int, int] = {}
        self.lost = False
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                      NETLINK_CONNECTOR)
        except (OSError, AttributeError) as exc:
            raise ConnectorError(f"no netlink connector socket: {exc}") from None
        try:
            for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
                if option is None:
                    continue
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, option, RCVBUF)
                    break
                except OSError:
                    continue
            self.sock.bind((0, CN_IDX_PROC))
            self.filtered = _kernel_at_least(6, 6)
            if self.filtered:
                data = struct.pack("=II", PROC_CN_MCAST_LISTEN,
                                   PROC_EVENT_EXEC | PROC_EVENT_NONZERO_EXIT)
            else:
                data = struct.pack("=I", PROC_CN_MCAST_LISTEN)
            body = struct.pack(CN_MSG, CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(data), 0) + data
            head = struct.pack(NLMSGHDR, struct.calcsize(NLMSGHDR) + len(body),
                               NLMSG_DONE, 0, 0, os.getpid())
            self.sock.send(head + body)
            self.sock.setblocking(False)
            self._self_test()
        except OSError as exc:
            self.sock.close()
            raise ConnectorError(f"proc connector: {exc}") from None

    def _self_test(self) -> None:
        """Exec a short child and wait for its event: the subscription is
        silent when refused (no CAP_NET_ADMIN) or malformed."""
        import time

        pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ)
        try:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                self.drain()
                if pid in self.exec_ns:
                    self.clear()
                    return
                time.sleep(0.01)
        finally:
            os.waitpid(pid, 0)
        raise ConnectorError(
            "proc connector: subscribed, but no event arrived (needs root)")

    def close(self) -> None:
        self.sock.close()

    def clear(self) -> None:
        self.drain()
        self.exec_ns.clear()
        self.exit_ns.clear()
        self.lost = False

    def drain(self) -> None:
        unpack_from = self._struct.unpack_from
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: the kernel dropped events
                if exc.errno == errno.ENOBUFS:
                    self.lost = True
                    continue
                raise
            offset = 0
            while offset + EVENT_OFFSET + 24 <= len(data):
                length = unpack_from(NLMSGHDR, data, offset)[0]
                what, _cpu, stamp = unpack_from(PROC_EVENT_HEAD, data,
                                                offset + EVENT_OFFSET)
                pid, tgid = unpack_from(PROC_EVENT_PIDS, data, offset + EVENT_OFFSET + 16)
                if what == PROC_EVENT_EXEC:
                    self.exec_ns[tgid] = stamp
                elif what == PROC_EVENT_EXIT and pid == tgid:  # not a thread's exit
                    self.exit_ns[tgid] = stamp
                if length < 16:
                    break
                offset += (length + 3) & ~3  # NLMSG_ALIGN


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        found = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return found >= (major, minor)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
