"""The statistics sampler: work on a thread of its own, only while someone
looks.

Why a thread (and not the loop, nor a separate process like circusd-stats):

- Sampling is Python work: about 45 us a process (its /proc files, see
  sample.py, and one JSON encoding), so 45-65 ms of CPU for a round of
  1,000 processes (bench/stats.py: median 63 ms thread CPU, 99 ms wall on
  a loaded 2-core machine). On the loop, every exit, command and output
  line would wait that long, once a second.
- On a thread the loop hardly notices: the sampler's work is mostly file
  reads, which release the GIL, so the loop gets it back within
  microseconds when an event arrives. Measured with a command every 20 ms
  during 1,000-process rounds: round trip median 0.67 ms and p99 8.2 ms,
  against 0.50 and 5.0 ms with no rounds (same run, noisy machine). The
  loop itself only takes a snapshot before a round (pid, wid, start time
  of each process: a few microseconds each) and sends the encoded messages
  after it, CHUNK messages a callback.
- A separate process would free the GIL entirely but costs a Python of its
  own (circusd-stats adds about 30 MB of RSS), has to learn of every spawn
  and exit through the events socket, and must be handed the sockets;
  the thread reads the arbiter's state directly. Its CPU counts in the
  daemon's own figures (``stat.circus``), so nothing is hidden: at 100
  processes bigtopd with a subscriber used 0.42 s of CPU a minute, Circus
  (circusd + circusd-stats) 1.74 s (0.24x); with nobody subscribed, 0.00 s
  against 1.68 s.

When: the thread starts with the first job and stops LINGER seconds after
the last one while nothing subscribes; it blocks on its queue in between
(no wake-ups). Rounds run every ``stats_interval`` seconds only while the
stats endpoint has a subscription that can match a ``stat.`` topic, and
only for the watchers (sockets, daemon) whose topics some subscription can
match; when a round is not finished by the next tick, the tick is skipped.
``stats`` and ``dstats`` are jobs on the same thread and the same
per-process state.

The ``extended_stats`` hook has its call point in ``Sampler.query``: the
``stats`` command with ``extended`` passes ``extended_stats_hook``, which
is called on the loop, after the sampling, for each process.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core import Arbiter
    from ..core.watcher import Watcher
    from .sample import Probe

log = logging.getLogger("bigtop.stats")

LINGER = 5.0  # seconds the idle thread waits for another job before it stops
THREAD_NAME = "bigtop-stats"  # also its name in /proc (top -H, ps -L)
DAEMON_NAME = "bigtopd"  # ``name`` in stat.circus.<pid> (Circus: circusd)

Message = tuple[bytes, bytes]
# The extended_stats hook: (watcher, pid, stats) -> None, or an awaitable of it;
# it may add keys to stats.
ExtendedStats = Callable[[str, int, dict[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class ProcessRef:
    pid: int
    wid: int
    started: float
    restarts: int  # failures of its slot in a row


@dataclass(frozen=True, slots=True)
class WatcherRef:
    name: str  # as configured
    topic: str  # lower case, as in event topics
    status: str
    wanted: int
    numprocesses: int
    restarts: int
    processes: tuple[ProcessRef, ...]
    dropped_lines: int = 0  # of its output, as in status
    dropped_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SocketRef:
    entry: dict[str, Any]  # what listsockets shows, but the accept queue
    address: str  # as Circus writes it: host:port, or the path
    family: int
    kind: int
    inode: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    time: float
    watchers: tuple[WatcherRef, ...]
    sockets: tuple[SocketRef, ...] | None  # None: not asked for
    daemon: int | None  # the daemon's pid, if asked for
    live: frozenset[tuple[int, float]]  # every managed process, for the cache


def topic_matches(prefixes: set[str], topic: str) -> bool:
    """Can a subscription receive ``topic`` or one of its subtopics?"""
    dotted = topic + "."
    return any(dotted.startswith(p) or p.startswith(dotted) or p == topic for p in prefixes)


def extended_stats_hook(watcher: Watcher) -> ExtendedStats | None:
    """The ``extended_stats`` hook of a watcher: the watcher's
    ``extended_stats(pid, stats)`` (a coroutine that runs the configured
    hook, which may add keys to ``stats``)."""
    method = getattr(watcher, "extended_stats", None)
    if method is None:
        return None
    return lambda _name, pid, stats: method(pid, stats)


class Sampler:
    """The loop's side. One per arbiter (``Sampler.of``)."""

    _instances: weakref.WeakKeyDictionary[Any, Sampler] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, arbiter: Arbiter) -> Sampler:
        sampler = cls._instances.get(arbiter)
        if sampler is None:
            sampler = cls._instances[arbiter] = cls(arbiter)
        return sampler

    def __init__(self, arbiter: Arbiter):
        self.arbiter = arbiter
        self.loop = arbiter.loop
        self.interval = float(getattr(arbiter.config.settings, "stats_interval", 1.0))
        self.prefixes: set[str] = set()
        # Where rounds go (the publisher); None: nobody to publish to.
        self.publish: Callable[[list[Message]], None] | None = None
        self._worker: _Worker | None = None
        self._probe: list[Probe] = []  # the per-process state, made on the thread
        self._pending = 0
        self._round_busy = False
        self._timer: asyncio.Handle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._next = 0.0
        # Counters, shown by dstats and in stat.circus.
        self.rounds = 0
        self.skipped = 0
        self.queries = 0
        self.threads_started = 0
        self.last_round: dict[str, Any] = {}

    # -- subscriptions and rounds ----------------------------------------

    @property
    def publishing(self) -> bool:
        return self._timer is not None or self._round_busy

    def subscriptions(self, prefixes: set[str]) -> None:
        """The stats endpoint's subscriptions changed."""
        self.prefixes = {p for p in prefixes if "stat.".startswith(p) or p.startswith("stat.")}
        if self.prefixes and self.publish is not None:
            if self._timer is None:
                self._next = self.loop.time()
                self._timer = self.loop.call_soon(self._tick)
        else:
            self.stop_publishing()

    def stop_publishing(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._idle()

    def _tick(self) -> None:
        now = self.loop.time()
        self._next = max(self._next + self.interval, now)
        self._timer = self.loop.call_at(self._next, self._tick)
        if self._round_busy:
            self.skipped += 1
            return
        snapshot = self.snapshot(published=True)
        if not (snapshot.watchers or snapshot.sockets or snapshot.daemon):
            return  # no subscription matches anything we publish
        self._round_busy = True
        status = self.status()  # here: the thread must not read the loop's state
        self._submit(lambda probe: build_round(probe, snapshot, status), self._round_done)

    def _round_done(self, result: tuple[list[Message], dict[str, Any]] | None,
                    error: BaseException | None) -> None:
        self._round_busy = False
        if error is not None:
            log.error("stats round failed: %s", error, exc_info=error)
            return
        assert result is not None
        messages, figures = result
        self.rounds += 1
        self.last_round = figures
        if self.publish is not None and self.prefixes:
            self.publish(messages)

    # -- commands ---------------------------------------------------------

    async def query(self, watchers: list[Watcher], pid: int | None = None,
                    sockets: bool = False,
                    extended: Callable[[Watcher], ExtendedStats | None] | None = None
                    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]] | None]:
        """The ``stats`` command: {watcher: {pid: info}} (and the sockets),
        sampled on the thread. ``extended`` gives a watcher's extended_stats
        hook, called here on the loop for each process, one after the other."""
        snapshot = self.snapshot(watchers=watchers, pid=pid, sockets=sockets)
        self.queries += 1
        infos, socks = await self._job(lambda probe: run_query(probe, snapshot))
        if extended is not None:
            for watcher in watchers:
                hook = extended(watcher)
                if hook is None:
                    continue
                for key, info in infos.get(watcher.name, {}).items():
                    if isinstance(info, dict):
                        try:
                            result = hook(watcher.name, int(key), info)
                            if inspect.isawaitable(result):
                                await result
                        except Exception:  # Circus ignores this hook's failures
                            log.exception("%s: extended_stats hook failed", watcher.name)
        return infos, socks

    async def daemon(self) -> dict[str, Any]:
        """The ``dstats`` command: the daemon's own figures."""
        pid, self.queries = os.getpid(), self.queries + 1
        info: dict[str, Any] = await self._job(lambda probe: probe.daemon(pid, time.time()))
        return info

    def status(self) -> dict[str, Any]:
        """What the sampler does, for dstats and stat.circus (bigtop)."""
        return {
            "interval": self.interval,
            "publishing": self.publishing,
            "subscriptions": sorted(self.prefixes),
            "rounds": self.rounds,
            "skipped": self.skipped,
            "queries": self.queries,
            "thread": self._worker is not None,
            "threads_started": self.threads_started,
            "last_round": self.last_round,
        }

    # -- the snapshot, on the loop ---------------------------------------

    def snapshot(self, published: bool = False, watchers: list[Watcher] | None = None,
                 pid: int | None = None, sockets: bool = False) -> Snapshot:
        """What to sample: for a round, what the subscriptions can receive."""
        arbiter = self.arbiter
        if published:
            chosen = [w for w in arbiter.watchers.values()
                      if topic_matches(self.prefixes, f"stat.{w.name.lower()}")]
            sockets = topic_matches(self.prefixes, "stat.sockets")
            daemon = os.getpid() if topic_matches(self.prefixes, "stat.circus") else None
        else:
            chosen, daemon = watchers or [], None
        refs = []
        for w in chosen:
            procs = tuple(ProcessRef(p.pid, wid, p.started, w.policy.failures.get(wid, 0))
                          for wid, p in sorted(w.processes.items())
                          if pid is None or p.pid == pid)
            refs.append(WatcherRef(
                w.name, w.name.lower(), w.status,
                w.wanted_processes,
                w.spec.numprocesses, w.restarts, procs, w.output_drops.lines,
                w.output_drops.bytes))
        live = frozenset((p.pid, p.started) for p in arbiter.registry.processes())
        return Snapshot(time.time(), tuple(refs), self._sockets() if sockets else None,
                        daemon, live)

    def _sockets(self) -> tuple[SocketRef, ...]:
        out = []
        for sock in self.arbiter.sockets.values():
            if sock.sock is None:
                continue
            try:
                fd = sock.fd
                inode = os.fstat(fd).st_ino
                entry: dict[str, Any] = {"fd": fd, "name": sock.name,
                                         "backlog": sock.spec.backlog}
                if sock.spec.path:
                    entry["path"] = address = sock.spec.path
                else:
                    entry["host"], entry["port"] = sock.bound_address()
                    address = f"{entry['host']}:{entry['port']}"
            except OSError:
                continue
            out.append(SocketRef(entry, address, sock.sock.family, sock.sock.type, inode))
        return tuple(sorted(out, key=lambda s: s.entry["fd"]))

    # -- the thread -------------------------------------------------------

    def _job(self, work: Callable[[Probe], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        self._submit(work, settle)
        return future

    def _submit(self, work: Callable[[Probe], Any],
                done: Callable[[Any, BaseException | None], None]) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._worker is None:
            self._worker = _Worker(self.loop, self._probe)
            self._worker.start()
            self.threads_started += 1
        self._pending += 1

        def finished(result: Any, error: BaseException | None) -> None:
            self._pending -= 1
            try:
                done(result, error)
            finally:
                self._idle()

        self._worker.jobs.put((work, finished))

    def _idle(self) -> None:
        """Stop the thread LINGER seconds after its last job, unless rounds run."""
        if self._worker is None or self._pending or self.publishing:
            return
        if self._linger is not None:
            self._linger.cancel()
        self._linger = self.loop.call_later(LINGER, self._retire)

    def _retire(self) -> None:
        self._linger = None
        if self._worker is None or self._pending or self.publishing:
            return
        self._worker.jobs.put(None)
        self._worker = None

    def close(self) -> None:
        """At daemon stop: no more rounds, the thread ends."""
        self.publish = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._worker is not None:
            self._worker.jobs.put(None)
            self._worker = None


class _Worker(threading.Thread):
    """Runs jobs in order; hands each result to the loop. It blocks on its
    queue between jobs: no wake-ups while idle."""

    _lock = threading.Lock()  # one thread at a time on the per-process state

    def __init__(self, loop: asyncio.AbstractEventLoop, probe: list[Probe]):
        super().__init__(name=THREAD_NAME, daemon=True)
        self.loop = loop
        self.probe = probe
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self) -> None:
        try:  # Linux: the name top -H and ps -L show
            with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm:
                comm.write(THREAD_NAME)
        except OSError:
            pass
        while True:
            job = self.jobs.get()
            if job is None:
                return
            work, done = job
            result, error = None, None
            try:
                with self._lock:
                    if not self.probe:
                        from .sample import Probe

                        self.probe.append(Probe())
                    result = work(self.probe[0])
            except BaseException as err:  # handed to the loop, which reports it
                error = err
            try:
                self.loop.call_soon_threadsafe(done, result, error)
            except RuntimeError:  # the loop is closed: the daemon is gone
                return


# -- the work, on the thread ------------------------------------------------

_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def _encode(payload: dict[str, Any]) -> bytes:
    return _ENCODER.encode(payload).encode()


def sample_processes(probe: Probe, watcher: WatcherRef, now: float
                     ) -> list[tuple[ProcessRef, dict[str, Any]]]:
    from .sample import Gone

    out = []
    for ref in watcher.processes:
        try:
            info = probe.tree(ref.pid, ref.started, now)
        except Gone:
            continue  # exited since the snapshot
        if ref.started:
            info["age"] = now - ref.started
        info["started"] = ref.started
        info["wid"] = ref.wid
        info["restarts"] = ref.restarts
        info["watcher"] = watcher.name
        out.append((ref, info))
    return out


def aggregate(watcher: WatcherRef, infos: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """stat.<watcher>: Circus's (pids, average cpu, summed mem, oldest age)
    and bigtop's sums, maxima and counts."""
    out: dict[str, Any] = {"pid": [info["pid"] for info in infos]}
    cpu = [info["cpu"] for info in infos]
    numeric = all(isinstance(c, (int, float)) for c in cpu)
    out["cpu"] = (round(sum(cpu) / len(cpu), 2) if cpu else 0.0) if numeric else "N/A"
    mem = [info["mem"] for info in infos]
    out["mem"] = round(sum(mem), 3) if all(isinstance(m, (int, float)) for m in mem) else "N/A"
    ages = [info["age"] for info in infos]
    out["age"] = max(ages) if ages else "N/A"
    out["cpu_sum"] = round(sum(cpu), 1) if numeric else None
    out["cpu_max"] = max(cpu) if numeric and cpu else None
    for key in ("rss", "vms", "threads", "fds", "read_bytes", "write_bytes"):
        values = [info[key] for info in infos if isinstance(info[key], int)]
        out[key] = sum(values)
        if key == "rss":
            out["rss_max"] = max(values) if values else None
    out["mem_max"] = max(mem) if mem and all(isinstance(m, (int, float)) for m in mem) else None
    out.update(watcher=watcher.name, status=watcher.status, processes=len(infos),
               wanted=watcher.wanted, numprocesses=watcher.numprocesses,
               restarts=watcher.restarts, children=sum(len(i["children"]) for i in infos),
               dropped_lines=watcher.dropped_lines, dropped_bytes=watcher.dropped_bytes,
               time=now)
    return out


def socket_queues(sockets: tuple[SocketRef, ...]) -> list[int | None]:
    """The accept queue of each socket (None where the kernel does not say)."""
    from ..core.sockdiag import tcp_listen_queues, unix_queue

    tcp: dict[int, dict[int, tuple[int, int]]] = {}
    out: list[int | None] = []
    for sock in sockets:
        queue_: tuple[int, int] | None = None
        try:
            if sock.family == socket.AF_UNIX:
                queue_ = unix_queue(sock.inode)
            elif sock.family in (socket.AF_INET, socket.AF_INET6) and \
                    sock.kind == socket.SOCK_STREAM:
                if sock.family not in tcp:
                    tcp[sock.family] = tcp_listen_queues(sock.family)
                queue_ = tcp[sock.family].get(sock.inode)
        except OSError:
            pass
        out.append(queue_[0] if queue_ else None)
    return out


def build_round(probe: Probe, snapshot: Snapshot,
                status: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
    """Every message of one round, encoded, in publishing order: each
    watcher's processes then the watcher, the sockets, the daemon last."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    now = snapshot.time
    messages: list[Message] = []
    processes = 0
    for watcher in snapshot.watchers:
        sampled = sample_processes(probe, watcher, now)
        processes += len(sampled)
        for ref, info in sampled:
            info["subtopic"], info["name"], info["time"] = ref.pid, None, now
            messages.append((f"stat.{watcher.topic}.{ref.pid}".encode(), _encode(info)))
        infos = [info for _, info in sampled]
        messages.append((f"stat.{watcher.topic}".encode(),
                         _encode(aggregate(watcher, infos, now))))
    if snapshot.sockets:
        queues = socket_queues(snapshot.sockets)
        addresses, total = [], 0
        for sock, waiting in zip(snapshot.sockets, queues, strict=True):
            fd = sock.entry["fd"]
            payload = {"fd": fd, "subtopic": fd, "reads": waiting or 0, "address": sock.address,
                       "name": sock.entry["name"], "accept_queue": waiting,
                       "backlog": sock.entry["backlog"], "time": now}
            messages.append((f"stat.sockets.{fd}".encode(), _encode(payload)))
            addresses.append(sock.address)
            total += waiting or 0
        messages.append((b"stat.sockets", _encode(
            {"addresses": addresses, "reads": total, "accept_queue": total, "time": now})))
    probe.forget(snapshot.live)
    if snapshot.daemon:
        info = probe.daemon(snapshot.daemon, now)
        info.update(subtopic=snapshot.daemon, name=DAEMON_NAME, time=now)
        messages.append((f"stat.circus.{snapshot.daemon}".encode(), _encode(info)))
    figures = {"processes": processes, "messages": len(messages) + (1 if snapshot.daemon else 0),
               "ms": round((time.perf_counter() - started) * 1000, 2),
               "cpu_ms": round((time.thread_time() - cpu_started) * 1000, 2), "time": now}
    if snapshot.daemon:
        total_info = {"pid": [snapshot.daemon], "cpu": info["cpu"], "mem": info["mem"],
                      "age": info["age"], "time": now,
                      "sampler": {**status, "last_round": figures}}
        messages.append((b"stat.circus", _encode(total_info)))
    return messages, figures


def run_query(probe: Probe, snapshot: Snapshot
              ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]] | None]:
    now = snapshot.time
    infos: dict[str, dict[str, Any]] = {}
    for watcher in snapshot.watchers:
        found = {ref.pid: info for ref, info in sample_processes(probe, watcher, now)}
        infos[watcher.name] = {str(ref.pid): found.get(ref.pid, "No such process (stopped?)")
                               for ref in watcher.processes}
    probe.forget(snapshot.live)
    socks = None
    if snapshot.sockets is not None:
        socks = [{**sock.entry, "accept_queue": waiting} for sock, waiting in
                 zip(snapshot.sockets, socket_queues(snapshot.sockets), strict=True)]
    return infos, socks
