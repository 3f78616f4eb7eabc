"""The daemons the console shows ("nodes"), each followed by one poller and
one event subscriber shared by every browser session.

A node asks its daemon for ``status`` with details once a second while
someone looks (every few seconds otherwise): the *snapshot*, the state the
pages show. Resource use is *sampled* for the charts' history
(history.py) whether anyone looks or not: while a page is open, from the
daemon's stats endpoint (``stat.*`` topics, a round every
``stats_interval``), or ``stats`` (every process, and the sockets with
their accept queues) and ``dstats`` (the daemon itself) once a second if
it has none; while no page is open, ``stats`` and ``dstats`` every
``idle`` seconds (10), at the middle of each 10-second step, and nothing
is subscribed: the daemon samples only then (its sampler runs while
someone subscribes).

Events (``watcher.*``, ``arbiter.*``) and live output (``stream.*``, only
for the watchers some browser tails) come from the daemon's events
endpoint. A node that stops answering is marked unreachable and tried
again until it answers; nothing else needs to happen for it to come back.

With ``--cluster`` the node list also comes from a cluster
(:class:`Following`): read through one node every few seconds, each
reading adds the nodes it lists, marks as down (and stops polling) those
whose lease ended, and drops those the cluster forgot. With ``--discover``
it also comes from the LAN (:class:`Discovering`): Circus's multicast
probe, sent again every few seconds; each endpoint heard is shown until it
has been silent a few probes in a row. An answer is a hint, never
membership: a node found so is shown as found, and reached with the
console's own keys like any other.
Everything goes through :mod:`bigtop.client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, cast

import zmq

from ..client import (
    AsyncClient,
    AsyncSubscriber,
    CallError,
    CommandFailed,
    Session,
    Unreachable,
    check_ipc,
    guess_pubsub,
    reachable_host,
)
from ..client.directory import REFRESH_S, ClusterFollower, ClusterNode, ClusterView
from ..client.discovery import DEFAULT_ENDPOINT, TTL, DiscoveryFollower
from .cli import node_name as endpoint_name
from .history import DEFAULT as DEFAULT_HISTORY
from .history import History, Layout, Proc, Sample

log = logging.getLogger("bigtop.web")

EVENTS_KEPT = 100  # recent events per node, for a page that opens
POLL_TIMEOUT = 3.0  # seconds a poll waits for the daemon before calling it unreachable
ACTION_TIMEOUT = 600.0  # a waited-for action (a rolling reload) may take this long
BUSY_INTERVAL = 1.0  # seconds between polls while a browser is connected
IDLE_INTERVAL = 5.0  # ... and while none is (status only: samples come every layout.idle)
RETRY_INTERVAL = 2.0  # seconds between tries to reach a node that did not answer
STATS_FRESH = 3.0  # stat.* messages older than this no longer replace polling
# A cluster reading waits this long: longer than a node's own 2 s for etcd,
# so that an etcd outage comes as the node's error, not as no answer.
CLUSTER_TIMEOUT = 4.0
LEASE_ENDED = "the cluster lists it as down (its lease ended)"
NO_ENDPOINT = "the cluster lists no endpoint for it"
DISCOVER_EVERY = 10.0  # seconds between two probes of the LAN
DISCOVER_TIMEOUT = 1.0  # seconds a probe waits for answers
FORGET_AFTER = 3  # probes in a row an endpoint may be silent before it is dropped
MAX_DISCOVERED = 100  # nodes found on the LAN shown at most (answers are anyone's to send)
GONE = {"cluster": "the cluster forgot it", "discovered": "no longer heard on the LAN"}

Listener = Callable[[str, dict[str, Any]], None]
ClusterListener = Callable[[str, "Node | None"], None]  # "added", "removed" (a node), "view"


class NodeDown(Exception):
    """The daemon did not answer (or cannot be reached at all)."""


def number(value: Any) -> float:
    """A sample's field as a number (psutil says "N/A" when denied)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def tree_figures(info: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """CPU, memory % and RSS of a process with its descendants: bigtopd's
    figures count them already (its infos carry ``wid``), Circus's are the
    process's alone, its children's are added."""
    def known(value: Any) -> float | None:
        return None if isinstance(value, bool) or not isinstance(value, int | float) \
            else float(value)

    cpu, mem, rss = known(info.get("cpu")), known(info.get("mem")), known(info.get("rss"))
    if "wid" in info:
        return cpu, mem, rss
    kids = [k for k in info.get("children") or [] if isinstance(k, dict)]
    return tuple(  # type: ignore[return-value]
        None if value is None else value + sum(number(k.get(key)) for k in kids)
        for value, key in ((cpu, "cpu"), (mem, "mem"), (rss, "rss")))


def process_entry(pid: str, info: Any, wid: int | None = None) -> dict[str, Any]:
    """One process for the pages: what it costs with its descendants (as an
    operator counts). A process without a sample (not sampled yet, or gone
    since) has none of these figures: null, never 0."""
    if not isinstance(info, dict):
        return {"pid": int(pid), "wid": wid, "gone": True, "cpu": None, "mem": None,
                "rss": None, "children": 0, "age": None}
    kids = [k for k in info.get("children") or [] if isinstance(k, dict)]
    cpu, mem, rss = tree_figures(info)
    return {
        "pid": int(info.get("pid") or pid),
        "wid": info.get("wid", wid),
        "cpu": None if cpu is None else round(cpu, 1),
        "mem": None if mem is None else round(mem, 2),
        "rss": None if rss is None else int(rss),
        "age": info.get("age"),
        "children": len(kids),
        "child_pids": [k.get("pid") for k in kids],
        "threads": info.get("threads"),
        "fds": info.get("fds"),
        "cmdline": info.get("cmdline"),
        "username": info.get("username"),
        "started": info.get("started"),
    }


def _total(processes: list[dict[str, Any]], key: str, digits: int) -> float | None:
    """A watcher's sum of a figure over its processes that have it (None
    when none has: not known, rather than 0)."""
    known = [p[key] for p in processes if p[key] is not None]
    if processes and not known:
        return None
    return round(sum(known), digits)


def build_snapshot(status: dict[str, Any], infos: dict[str, Any], sockets: list[Any],
                   daemon: dict[str, Any] | None) -> dict[str, Any]:
    """The state pages show, from the daemon's replies."""
    watchers = []
    details = status.get("details") or {}
    statuses = status.get("statuses") or {}
    for name in sorted(set(details) | set(statuses), key=str.lower):
        d = details.get(name) or {"status": statuses.get(name)}
        by_pid = {str(pid): int(wid) for wid, pid in (d.get("pids") or {}).items()}
        own = infos.get(name) or {}
        processes = [process_entry(pid, own.get(pid), by_pid.get(pid))
                     for pid in by_pid]
        processes.sort(key=lambda p: (p["wid"] is None, p["wid"] or 0, p["pid"]))
        rss = _total(processes, "rss", 0)
        watchers.append({
            "name": name,
            "status": d.get("status"),
            "running": d.get("running", len(processes)),
            "ready": d.get("ready"),
            "wanted": d.get("wanted"),
            "numprocesses": d.get("numprocesses"),
            "uptime": d.get("uptime"),
            "restarts": d.get("restarts"),
            "last_exit": d.get("last_exit"),
            "failure": d.get("failure"),
            "dropped_lines": d.get("dropped_lines"),
            "dropped_bytes": d.get("dropped_bytes"),
            "cpu": _total(processes, "cpu", 1),
            "mem": _total(processes, "mem", 2),
            "rss": None if rss is None else int(rss),
            "processes": processes,
        })
    own = None
    if isinstance(daemon, dict):
        own = {"pid": daemon.get("pid"), "cpu": round(number(daemon.get("cpu")), 1),
               "mem": round(number(daemon.get("mem")), 2), "rss": int(number(daemon.get("rss"))),
               "age": daemon.get("age"), "threads": daemon.get("threads"),
               "fds": daemon.get("fds"), "username": daemon.get("username")}
    return {"time": time.time(), "watchers": watchers,
            "sockets": [s for s in sockets if isinstance(s, dict)], "daemon": own}


def build_sample(infos: dict[str, Any], daemon: dict[str, Any] | None,
                 wids: dict[str, dict[str, int]] | None = None) -> Sample:
    """A history sample from one reading of the processes (a ``stats``
    reply, or one round of the stats endpoint): every watcher it names,
    each process in its slot (``wid``; for a daemon whose infos have none,
    the slot ``status`` gives it, from ``wids``: watcher -> pid -> wid). A
    process gone since the daemon's snapshot has no figures: it is left
    out, as it is out of its slot."""
    sample = Sample()
    for name, processes in infos.items():
        if not isinstance(processes, dict):
            continue
        slots: dict[str, Proc] = {}
        for pid, info in processes.items():
            if not isinstance(info, dict) or not str(pid).isdigit():
                continue
            cpu, _, rss = tree_figures(info)
            wid = info.get("wid")
            if not isinstance(wid, int) or isinstance(wid, bool):
                wid = (wids or {}).get(str(name), {}).get(str(pid))
            slot = str(wid) if wid is not None else f"pid {pid}"
            slots[slot] = Proc(int(pid), cpu, rss)
        sample.watchers[str(name)] = slots
    if isinstance(daemon, dict) and str(daemon.get("pid", "")).isdigit():
        cpu, _, rss = tree_figures({**daemon, "wid": 0})
        sample.daemon = Proc(int(daemon["pid"]), cpu, rss)
    return sample


def status_wids(status: dict[str, Any]) -> dict[str, dict[str, int]]:
    """watcher -> pid -> wid, from ``status`` with details."""
    out: dict[str, dict[str, int]] = {}
    for name, d in (status.get("details") or {}).items():
        if isinstance(d, dict):
            out[name] = {str(pid): int(wid) for wid, pid in (d.get("pids") or {}).items()
                         if str(wid).isdigit()}
    return out


class Node:
    """One daemon: its connection, its latest snapshot and history, its
    events and its live output."""

    def __init__(self, name: str, endpoint: str | None = None, key: str | None = None,
                 server_key: str | bytes | None = None, pubsub_endpoint: str | None = None,
                 source: str = "hand", history: Layout | None = None):
        # The endpoint and keys resolve as bigtopctl's do (options, then
        # BIGTOPCTL_* variables, then the default endpoint). server_key is
        # the daemon's public key file, or (bytes) the Z85 key itself, as a
        # cluster node publishes it in its record.
        session = Session(endpoint, key=key, pubsub_endpoint=pubsub_endpoint,
                          server_key=server_key if isinstance(server_key, str) else None)
        self.name = name
        self.endpoint = session.endpoint
        self.key = session.key
        self.server_key: str | bytes | None = (server_key if isinstance(server_key, bytes)
                                               else session.server_key)
        self.pubsub_option = pubsub_endpoint
        # "hand": given to bigtop-web; "cluster": listed by the cluster;
        # "discovered": it answered the LAN probe (a hint, not a member of anything)
        self.source = source
        self.record: dict[str, Any] | None = None  # the cluster's record of it, as last read
        self.down: str | None = None  # why it is not polled: the cluster says it is down
        self._wire: tuple[str, str | bytes | None] | None = None  # from the record: endpoint, key
        self.reachable: bool | None = None  # None: not asked yet
        self.error: str | None = None
        self.since = time.time()  # of the current reachability
        self.version: str | None = None
        self.snapshot: dict[str, Any] | None = None
        self.history = History(history or DEFAULT_HISTORY)
        self._next_sample = 0.0  # time.monotonic() of the next idle sample
        self._sampled: tuple[dict[str, Any], list[Any], dict[str, Any] | None] = ({}, [], None)
        self.stats_interval = 1.0  # the daemon's, from globaloptions: its rounds' pace
        # The stats endpoint's round being received: watcher -> pid -> info, the
        # watchers whose aggregate came, the daemon's info.
        self._round: dict[str, dict[str, Any]] = {}
        self._round_watchers: set[str] = set()
        self._round_daemon: dict[str, Any] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self.listeners: list[Listener] = []
        self.viewers = 0  # browsers connected: polls are faster while there are some
        self._client: AsyncClient | None = None
        self._events: AsyncSubscriber | None = None
        self._stats: AsyncSubscriber | None = None
        self._readers: list[asyncio.Task[None]] = []  # one per subscriber
        self._stat_infos: dict[str, dict[str, Any]] = {}  # watcher -> pid -> info
        self._stat_daemon: dict[str, Any] | None = None
        self._stat_seen = 0.0
        self._tails: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._closing = False
        self._halting = False  # the poller is being stopped (a node gone down)

    @classmethod
    def from_cluster(cls, entry: ClusterNode, key: str | None,
                     server_key: str | None, history: Layout | None = None) -> Node:
        """A node the cluster lists: its endpoint and public key from its
        record (``server_key``, the console's own option, when the record
        has none), down if the record says so."""
        wire = (entry.endpoint or "", record_key(entry, server_key))
        node = cls(entry.name, wire[0], key, wire[1], source="cluster", history=history)
        node.endpoint = wire[0]  # none: never the default daemon
        node._wire = wire
        node.record = entry.record
        node.down = down_reason(entry)
        if node.down is not None:
            node.reachable, node.error = False, node.down
        return node

    # -- what others see ---------------------------------------------------------

    def info(self, with_history: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "endpoint": self.endpoint,
                               "reachable": self.reachable, "error": self.error,
                               "since": self.since, "version": self.version,
                               "snapshot": self.snapshot, "source": self.source,
                               "down": self.down, "record": self.record}
        if with_history:
            out["history"] = self.history.recent()
            out["events"] = list(self.events)
        return out

    @property
    def polling(self) -> bool:
        """Its poller runs (not once closed, nor while the cluster says it is down)."""
        return self._task is not None and not self._task.done()

    def emit(self, kind: str, message: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(kind, message)

    def refresh_soon(self) -> None:
        """Poll now rather than at the next tick (after an event or an action)."""
        self._wake.set()

    # -- the connection -----------------------------------------------------------

    def client(self) -> AsyncClient:
        if self._client is None:
            check_ipc(self.endpoint)  # fails at once when no daemon is there
            self._client = AsyncClient(self.endpoint, timeout=POLL_TIMEOUT, key=self.key,
                                       server_key=self.server_key)
        return self._client

    async def call(self, command: str, timeout: float | None = None,
                   **props: Any) -> dict[str, Any]:
        """The daemon's reply; CommandFailed on an error reply, NodeDown when
        there is none. A call with its own timeout gets its own connection
        (a rolling reload must not hold up the polls). A node the cluster
        lists as down is not asked: NodeDown at once."""
        if self.down is not None:
            raise NodeDown(self.down)
        if self._closing:
            raise NodeDown(f"no longer shown ({GONE.get(self.source, 'bigtop-web stops')})")
        try:
            if timeout is None:
                return await self.client().call(command, **props)
            check_ipc(self.endpoint)
            client = AsyncClient(self.endpoint, timeout=timeout, key=self.key,
                                 server_key=self.server_key)
            try:
                return await client.call(command, **props)
            finally:
                client.close()
        except Unreachable as err:
            raise NodeDown(str(err).removeprefix("bigtopctl: ").split("\n")[0]) from None
        except (CallError, zmq.ZMQError, OSError) as err:
            if timeout is None:
                self._drop_client()
            raise NodeDown(str(err)) from None

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the poller -----------------------------------------------------------

    def start(self) -> None:
        """Start polling (not a node the cluster lists as down, nor twice)."""
        if (self._task is None or self._task.done()) and not self._closing \
                and self.down is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        await self._halt()

    async def _halt(self) -> None:
        """Stop the poller and the feeds (closing, or the node went down).
        Cancelled meanwhile, the poller stays ours (and the flag set) until
        it has ended: the next halt or close waits for it."""
        task = self._task
        if task is not None:
            # The flags too: Python 3.11's wait_for can swallow a cancellation.
            self._halting = True
            self._wake.set()
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled():
                task.exception()  # retrieved: _run logs its own failures
            self._task = None
            self._halting = False
        self._close_feeds()
        self._drop_client()

    async def follow_record(self, entry: ClusterNode, key: str | None,
                            server_key: str | None) -> None:
        """The cluster's record of this node, read again: down (not polled)
        or up again, or another endpoint or key (connect again)."""
        self.record = entry.record
        down = down_reason(entry)
        wire = (entry.endpoint or "", record_key(entry, server_key))
        if wire != self._wire:
            log.info("%s: now at %s", self.name, wire[0] or "no endpoint")
            await self._halt()
            self._wire = wire
            self.endpoint, self.server_key = wire
            self.reachable = None
        if down == self.down:
            self.start()  # again after a new endpoint
            return
        self.down = down
        if down is not None:
            log.warning("%s: %s", self.name, down)
            await self._halt()
            self._set_reachable(False, down)
        else:
            log.info("%s: up again in the cluster", self.name)
            self.error = "up again in the cluster: connecting"
            self.emit("node", self.info())
            self.start()

    async def _run(self) -> None:
        while not (self._closing or self._halting):
            self._wake.clear()
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep polling whatever one reply held
                log.exception("%s: poll failed", self.name)
            interval = BUSY_INTERVAL if self.viewers else IDLE_INTERVAL
            if not self.reachable:
                interval = RETRY_INTERVAL
            elif not self.viewers and self.history.layout.idle > 0:
                interval = min(interval, max(0.0, self._next_sample - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            # Several events at once (a restart) make one poll, not one each.
            await asyncio.sleep(0.05)

    async def poll(self, full: bool = False) -> None:
        """Ask the daemon for the state, and sample the resource use when one
        is due (``full``: an API request, sampled now): each sample is a
        point of the history."""
        if self.down is not None:
            return
        try:
            if self.reachable is not True:
                await self._connect()
            busy = bool(self.viewers)
            streaming = (busy and self._stats is not None
                         and time.monotonic() - self._stat_seen < STATS_FRESH)
            sampling = full or (busy and not streaming) or (not busy and self._sample_due())
            if sampling:
                status, stats, dstats = await asyncio.gather(
                    self.call("status", details=True), self.call("stats"),
                    self.call("dstats"))
            elif streaming:
                status, sockets = await asyncio.gather(
                    self.call("status", details=True), self.call("listsockets"))
            else:
                status = await self.call("status", details=True)
        except NodeDown as err:
            self._set_reachable(False, str(err))
            return
        except CommandFailed as err:
            self._set_reachable(False, f"the daemon refused: {err}")
            return
        sample = None
        if sampling:
            infos = stats.get("infos") or {}
            self._sampled = (infos, stats.get("sockets") or [], dstats.get("info"))
            sample = build_sample(infos, dstats.get("info"), status_wids(status))
            if not busy:
                self._schedule_sample()
        if streaming:
            self._prune_stats(status)
            infos, socket_list, daemon = (self._stat_infos, sockets.get("sockets") or [],
                                          self._stat_daemon)
        else:
            # The last sample's figures, for the processes still there (the
            # others: none until sampled).
            infos, socket_list, daemon = self._sampled
        self.snapshot = build_snapshot(status, infos, socket_list, daemon)
        self._set_reachable(True, None)
        state = {k: v for k, v in self.info().items() if k != "snapshot"}
        self.emit("snapshot", {"node": self.name, "snapshot": self.snapshot, "info": state})
        if sample is not None:
            self.add_sample(sample, BUSY_INTERVAL if busy
                            else self.history.layout.idle or IDLE_INTERVAL)

    def _sample_due(self) -> bool:
        return self.history.layout.idle > 0 and time.monotonic() >= self._next_sample

    def _schedule_sample(self) -> None:
        """The next idle sample: at the middle of the next ``idle`` step of
        the clock, so that each step of the coarse tier gets one whatever
        the polls' jitter."""
        every = self.history.layout.idle
        if every <= 0:
            return
        now = time.time()
        at = (math.floor((now - every / 2) / every) + 1) * every + every / 2
        self._next_sample = time.monotonic() + max(0.0, at - now)

    def add_sample(self, sample: Sample, expected: float) -> None:
        """A sample into the history, and its points to the open pages."""
        points = self.history.add(time.time(), sample, expected)
        self.emit("points", {"node": self.name, "points": points})

    async def _connect(self) -> None:
        """First contact (or contact again): the version, and the events
        (and stats) endpoints to subscribe to."""
        self._close_feeds()
        self._drop_client()
        version = await self.call("version")
        self.version = version.get("version")
        told: dict[str, Any] = {}
        with contextlib.suppress(CommandFailed):
            told = (await self.call("globaloptions")).get("options") or {}
        interval = told.get("stats_interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            self.stats_interval = float(interval)
        pubsub = self.pubsub_option or told.get("pubsub_endpoint")
        pubsub = reachable_host(pubsub, self.endpoint) if pubsub else guess_pubsub(self.endpoint)
        try:
            topics = ["watcher.", "arbiter.", "activity"] + [f"stream.{w}." for w in self._tails]
            self._events = self._feed(pubsub, topics, self._on_event)
            stats = told.get("stats_endpoint")
            if isinstance(stats, str) and stats:
                self._stats = self._feed(reachable_host(stats, self.endpoint),
                                         ["stat."] if self.viewers else [], self._on_stat)
        except Unreachable as err:
            log.warning("%s: %s", self.name, err)
        await self.handshake()

    def _feed(self, endpoint: str, topics: list[str], on_message: Listener) -> AsyncSubscriber:
        """A subscriber to endpoint, read by a task that hands each event to
        on_message."""
        feed = AsyncSubscriber(endpoint, key=self.key, timeout=POLL_TIMEOUT,
                               server_key=self.server_key)
        feed.subscribe(*topics)
        self._readers.append(asyncio.get_running_loop().create_task(
            self._read(feed, on_message)))
        return feed

    @staticmethod
    async def _read(feed: AsyncSubscriber, on_message: Listener) -> None:
        async for topic, payload in feed:
            try:
                on_message(topic, payload)
            except Exception:  # a bad message must not end the feed
                log.exception("event %s", topic)

    async def handshake(self) -> None:
        """Return once the subscriptions made so far are in force. A
        publisher that does not answer in time is logged; its topics are
        in force once it answers."""
        for feed in (self._events, self._stats):
            if feed is not None:
                try:
                    await feed.handshake()
                except Unreachable as err:
                    log.warning("%s: %s", self.name, err)

    def _close_feeds(self) -> None:
        for reader in self._readers:
            reader.cancel()
        for feed in (self._events, self._stats):
            if feed is not None:
                feed.close()
        self._readers = []
        self._events = self._stats = None
        self._stat_infos, self._stat_daemon, self._stat_seen = {}, None, 0.0
        self._round, self._round_watchers, self._round_daemon = {}, set(), None

    def _set_reachable(self, reachable: bool, error: str | None) -> None:
        if self.down is not None:  # a poll that ended after the node went down
            reachable, error = False, self.down
        changed = reachable != self.reachable
        self.error = error
        if changed:
            self.reachable = reachable
            self.since = time.time()
            if reachable:
                log.info("%s: reachable at %s", self.name, self.endpoint)
            else:
                log.warning("%s: unreachable: %s", self.name, error)
                self._close_feeds()
                self._drop_client()
        if not reachable:
            self.history.missing()
        if changed or not reachable:
            self.emit("node", self.info())

    # -- events, output and stats ------------------------------------------------------------

    def _on_event(self, topic: str, payload: dict[str, Any]) -> None:
        if topic.startswith("stream."):
            self.emit("output", {"node": self.name, "entry": payload})
            return
        event = {"node": self.name, "topic": topic, "payload": payload,
                 "time": payload.get("time", time.time())}
        self.events.append(event)
        self.emit("event", event)
        if not topic.endswith(".reload_progress"):
            self.refresh_soon()

    def _on_stat(self, topic: str, payload: dict[str, Any]) -> None:
        """stat.<watcher>.<pid>: one process; stat.circus.<pid>: the daemon;
        stat.<watcher>: the end of that watcher's processes in the round;
        stat.circus: the end of the round (bigtopd sends it last), which is
        then a sample of the history while a page is open. (The sockets'
        topics are not needed: listsockets has the queues.)"""
        self._stat_seen = time.monotonic()
        if topic == "stat.circus":
            self._end_round()
            return
        if topic.startswith("stat.sockets"):
            return
        if isinstance(payload.get("pid"), list):  # stat.<watcher>: an aggregate
            self._round_watchers.add(str(payload.get("watcher") or topic[len("stat."):]))
            return
        rest, _, pid = topic[len("stat."):].rpartition(".")
        if not rest or not pid.isdigit():
            return
        if rest == "circus":
            self._stat_daemon = self._round_daemon = {**payload, "pid": int(pid)}
            return
        watcher = str(payload.get("watcher") or payload.get("name") or rest)
        for known in (self.snapshot or {}).get("watchers", []):
            if known["name"].lower() == watcher.lower():
                watcher = known["name"]
        info = {**payload, "pid": int(pid)}
        self._stat_infos.setdefault(watcher, {})[pid] = info
        self._round.setdefault(watcher, {})[pid] = info

    def _end_round(self) -> None:
        """A round of the stats endpoint is complete: its processes, at one
        instant, are a sample (while a page is open: else the idle samples
        are the history's)."""
        round_, watchers, daemon = self._round, self._round_watchers, self._round_daemon
        self._round, self._round_watchers, self._round_daemon = {}, set(), None
        if not self.viewers or self.reachable is not True:
            return
        infos: dict[str, Any] = {name: {} for name in watchers}
        for name, processes in round_.items():
            infos.setdefault(name, {}).update(processes)
        wids = status_wids({"details": {w["name"]: {"pids": {
            str(p["wid"]): p["pid"] for p in w["processes"] if p["wid"] is not None}}
            for w in (self.snapshot or {}).get("watchers", [])}})
        self.add_sample(build_sample(infos, daemon, wids), self.stats_interval)

    def _prune_stats(self, status: dict[str, Any]) -> None:
        """Forget the stat.* samples of processes that are gone."""
        alive = {name: {str(pid) for pid in (d.get("pids") or {}).values()}
                 for name, d in (status.get("details") or {}).items()}
        for name in list(self._stat_infos):
            if name not in alive:
                del self._stat_infos[name]
                continue
            for pid in list(self._stat_infos[name]):
                if pid not in alive[name]:
                    del self._stat_infos[name][pid]

    def watched(self, delta: int) -> None:
        """A browser came (+1) or went (-1). The daemon samples its stat.*
        topics only while someone subscribes: the subscription is held
        while a browser is connected; meanwhile ``stats`` is polled, slower."""
        before, self.viewers = self.viewers, max(0, self.viewers + delta)
        if self._stats is not None and bool(before) != bool(self.viewers):
            if self.viewers:
                self._stats.subscribe("stat.")
            else:
                self._stats.unsubscribe("stat.")
        if self.viewers:
            self.refresh_soon()
        elif before:
            self._schedule_sample()  # idle from now on: the next step's sample

    def tail(self, watcher: str) -> None:
        """Start receiving a watcher's output (``output`` to the listeners)."""
        watcher = watcher.lower()
        self._tails[watcher] += 1
        if self._tails[watcher] == 1 and self._events is not None:
            self._events.subscribe(f"stream.{watcher}.")

    def untail(self, watcher: str) -> None:
        watcher = watcher.lower()
        if self._tails[watcher] <= 0:
            return
        self._tails[watcher] -= 1
        if self._tails[watcher] == 0:
            del self._tails[watcher]
            if self._events is not None:
                self._events.unsubscribe(f"stream.{watcher}.")


def down_reason(entry: ClusterNode) -> str | None:
    """Why a node the cluster lists is not polled (None: it is up)."""
    if not entry.up:
        return LEASE_ENDED
    if not entry.endpoint:
        return NO_ENDPOINT
    return None


def record_key(entry: ClusterNode, server_key: str | None) -> str | bytes | None:
    """The public key to reach a cluster node with: on tcp://, the Z85 key
    of its record (as bytes, the form connect_socket takes a key in), else
    the console's own ``--server-key``."""
    if entry.server_key and (entry.endpoint or "").startswith("tcp://"):
        return entry.server_key.encode()
    return server_key


class Rounds:
    """A task that does a round every ``every`` seconds (a cluster
    reading, a LAN probe) for the console's cluster, until closed; a round
    that fails is logged once per error and tried again next time."""

    what = "a round"  # as its errors say it
    every: float
    error: str | None

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()

    def start(self, cluster: Cluster) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(cluster))

    async def close(self) -> None:
        self._closing = True  # as Node's: wait_for may swallow a cancellation
        self._wake.set()
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled():
                task.exception()
            self._task = None

    async def round(self, cluster: Cluster) -> None:
        raise NotImplementedError

    def failed(self, error: str) -> None:
        """A round raised (a bad endpoint, a surprising reply): ``error``
        says so, the same message logged only once."""
        if error != self.error:
            log.warning("%s", error)
        self.error = error

    async def _run(self, cluster: Cluster) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                await self.round(cluster)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.failed(f"{self.what} failed: {err or type(err).__name__}")
            self.after_round(cluster)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every)

    def after_round(self, cluster: Cluster) -> None:
        """Called after each round, whatever came of it."""


class Following(Rounds):
    """The cluster bigtop-web follows (``--cluster``): read through one
    node every ``every`` seconds (a ClusterFollower's reading); each good
    reading updates the cluster's nodes (:meth:`Cluster.follow_view`), a
    failed one keeps them and shows its error."""

    def __init__(self, endpoint: str, name: str | None = None, key: str | None = None,
                 server_key: str | None = None, every: float = REFRESH_S,
                 timeout: float = CLUSTER_TIMEOUT):
        session = Session(endpoint, key=key, server_key=server_key)  # BIGTOPCTL_* too
        self.endpoint = session.endpoint
        self.name = name  # what the page calls the cluster (default: its own name)
        self.key = session.key
        self.server_key = session.server_key
        self.every = every
        self.reader = ClusterFollower(self.endpoint, self._on_view, key=self.key,
                                      server_key=self.server_key, timeout=timeout,
                                      every=every)
        self.view: ClusterView | None = None  # the last good reading
        self.error: str | None = None  # why the last reading failed
        self.read_at: float | None = None  # time of the last good reading
        self.tried_at: float | None = None  # ... and of the last try
        self.told: set[str] = set()  # names whose clash with a hand-given node was logged
        super().__init__()

    what = "reading the cluster"

    def _on_view(self, view: ClusterView | None, error: str | None) -> None:
        self.tried_at = time.time()
        if view is not None:
            if self.error is not None:
                log.info("the cluster at %s answers again", self.endpoint)
            self.view, self.error, self.read_at = view, None, self.tried_at
        else:
            if error != self.error:
                log.warning("cannot read the cluster at %s: %s", self.endpoint, error)
            self.error = error or "no answer"

    async def round(self, cluster: Cluster) -> None:
        view = await self.reader.read_once()
        if view is not None:
            await cluster.follow_view(view)

    def failed(self, error: str) -> None:
        self.tried_at = time.time()
        super().failed(f"{error} at {self.endpoint}")

    def after_round(self, cluster: Cluster) -> None:
        cluster.emit("view", None)


class Discovering(Rounds):
    """The nodes bigtop-web finds on the LAN (``--discover``): a
    DiscoveryFollower probes ``group`` every ``every`` seconds; after each
    probe :meth:`Cluster.follow_discovery` shows the endpoints heard (each
    reached with the console's ``key``/``server_key``, or BIGTOPCTL_*'s)
    and drops those silent ``forget_after`` probes in a row."""

    def __init__(self, group: str = DEFAULT_ENDPOINT, key: str | None = None,
                 server_key: str | None = None, every: float = DISCOVER_EVERY,
                 timeout: float = DISCOVER_TIMEOUT, forget_after: int = FORGET_AFTER,
                 ttl: int = TTL, limit: int = MAX_DISCOVERED):
        # A bad group raises EndpointError (a ValueError) here, not at the first probe.
        self.follower = DiscoveryFollower(self._on_nodes, group, every=every, timeout=timeout,
                                          forget_after=forget_after, ttl=ttl)
        self.group = group
        self.key = key
        self.server_key = server_key
        self.every = every
        self.forget_after = forget_after
        self.limit = limit
        self.heard: list[str] = []  # the endpoints the follower holds, as of the last probe
        self.probes = 0  # probes done
        self.probed_at: float | None = None  # time of the last one
        self.error: str | None = None  # why the last round failed
        self.told: set[str] = set()  # endpoints whose being left out was logged
        super().__init__()

    what = "probing the LAN"

    def _on_nodes(self, endpoints: list[str]) -> None:
        self.heard = list(endpoints)
        self.probes += 1
        self.probed_at = time.time()

    def info(self) -> dict[str, Any]:
        """What the page and /api/session say of it."""
        return {"group": self.group, "every": self.every, "forget_after": self.forget_after,
                "heard": self.heard, "probed": self.probed_at, "error": self.error}

    def tell_once(self, endpoint: str, level: int, message: str, *args: Any) -> None:
        """Log why a heard endpoint is not shown, once for each."""
        if endpoint not in self.told:
            self.told.add(endpoint)
            log.log(level, message, *args)

    async def round(self, cluster: Cluster) -> None:
        await cluster.follow_discovery(await self.follower.probe_once())
        self.error = (f"probing the LAN failed: {self.follower.error}"
                      if self.follower.error else None)

    def failed(self, error: str) -> None:
        super().failed(f"{error} on {self.group}")


class Cluster:
    """Every node the console shows, by name: those given by hand in the
    order given, then those a followed cluster lists and those heard on the
    LAN, as they come."""

    def __init__(self, nodes: list[Node], following: Following | None = None,
                 discovering: Discovering | None = None, history: Layout | None = None):
        self.nodes = {node.name: node for node in nodes}
        self.history = history or DEFAULT_HISTORY  # the tiers of the nodes it adds
        self.following = following
        self.discovering = discovering
        self.listeners: list[ClusterListener] = []  # told of nodes added and removed
        self._retired: list[Node] = []  # removed, still closing

    def get(self, name: str) -> Node | None:
        return self.nodes.get(name)

    def emit(self, kind: str, node: Node | None) -> None:
        for listener in list(self.listeners):
            listener(kind, node)

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        if self.following is not None:
            self.following.start(self)
        if self.discovering is not None:
            self.discovering.start(self)

    async def close(self) -> None:
        if self.following is not None:
            await self.following.close()
        if self.discovering is not None:
            await self.discovering.close()
        for node in [*self.nodes.values(), *self._retired]:
            await node.close()

    # -- following a cluster ------------------------------------------------------------------

    def add(self, node: Node) -> None:
        self.nodes[node.name] = node
        node.start()
        self.emit("added", node)

    async def remove(self, name: str) -> None:
        node = self.nodes.pop(name)
        self._retired.append(node)
        self.emit("removed", node)
        await node.close()
        self._retired.remove(node)

    async def follow_view(self, view: ClusterView) -> None:
        """A reading of the cluster: its new nodes added, the others' records
        read again, the forgotten ones removed. A node given by hand keeps
        its name (the cluster's node of that name is not shown); one heard
        on the LAN gives way to the cluster's (by name or endpoint)."""
        following = self.following
        assert following is not None
        for name in sorted(view.nodes):
            entry = view.nodes[name]
            node = self.nodes.get(name)
            while node is not None and node.source == "discovered":
                log.info("%s: listed by the cluster; shown as its node, no longer as "
                         "heard on the LAN", name)
                await self.remove(name)
                node = self.nodes.get(name)  # none, unless a probe took the name meanwhile
            if node is None:
                log.info("%s: listed by the cluster, at %s", name, entry.endpoint)
                self.add(Node.from_cluster(entry, following.key, following.server_key,
                                           self.history))
            elif node.source == "hand":
                if name not in following.told:
                    following.told.add(name)
                    log.warning("%s: the cluster lists a node of that name (at %s); the one "
                                "given by hand (at %s) is shown", name, entry.endpoint,
                                node.endpoint)
            else:
                await node.follow_record(entry, following.key, following.server_key)
        for name in [n for n, node in self.nodes.items()
                     if node.source == "cluster" and n not in view.nodes]:
            gone = self.nodes.get(name)
            if gone is not None and gone.source == "cluster":  # still that one after an await
                log.info("%s: no longer listed by the cluster (forgotten)", name)
                await self.remove(name)
        await self.drop_shadowed()

    # -- nodes heard on the LAN ----------------------------------------------------------------

    def _shown_at(self) -> dict[str, str]:
        """The endpoints of the nodes given by hand or listed by the cluster,
        each with the name it is shown by."""
        return {node.endpoint: name for name, node in self.nodes.items()
                if node.source != "discovered"}

    async def drop_shadowed(self) -> None:
        """A node heard on the LAN at the endpoint of one given by hand or
        listed by the cluster gives way to it."""
        shown = self._shown_at()
        for name, node in list(self.nodes.items()):
            if node.source == "discovered" and node.endpoint in shown \
                    and self.nodes.get(name) is node:
                log.info("%s: also shown as %s: no longer shown as heard on the LAN", name,
                         shown[node.endpoint])
                await self.remove(name)

    async def follow_discovery(self, heard: list[str]) -> None:
        """The endpoints the LAN probes hold now: each new one shown (named
        host:port, as an endpoint given without a name), those no longer
        held dropped. An endpoint shown already, given by hand or listed by
        the cluster, is not shown twice: that node stays as it is. Only
        tcp:// endpoints are followed (a path announced over the network
        names a file of this host, not of the announcer), MAX_DISCOVERED
        at most."""
        discovering = self.discovering
        assert discovering is not None
        held = set(heard)
        for name, node in list(self.nodes.items()):
            if node.source == "discovered" and node.endpoint not in held \
                    and self.nodes.get(name) is node:
                log.info("%s: no longer heard on the LAN (silent %d probes in a row)", name,
                         discovering.forget_after)
                await self.remove(name)
        await self.drop_shadowed()
        # From here on nothing awaits: what is added is checked against the nodes as they are.
        shown = self._shown_at()
        found = {node.endpoint for node in self.nodes.values() if node.source == "discovered"}
        for endpoint in heard:
            if endpoint in found:
                continue
            if endpoint in shown:
                discovering.tell_once(endpoint, logging.INFO,
                                      "%s: heard on the LAN, and shown already as %s",
                                      endpoint, shown[endpoint])
                continue
            if not endpoint.startswith("tcp://"):
                discovering.tell_once(endpoint, logging.INFO, "%s: heard on the LAN, not "
                                      "followed (only tcp:// endpoints are)", endpoint)
                continue
            if len(found) >= discovering.limit:
                discovering.tell_once("", logging.WARNING, "more than %d nodes heard on the "
                                      "LAN: the others are not shown", discovering.limit)
                break
            name = base = endpoint_name(endpoint, 2)
            n = 2
            while name in self.nodes:
                name, n = f"{base}-{n}", n + 1
            log.info("%s: heard on the LAN, at %s", name, endpoint)
            found.add(endpoint)
            self.add(Node(name, endpoint, discovering.key, discovering.server_key,
                          source="discovered", history=self.history))

    def overview(self) -> dict[str, Any] | None:
        """The followed cluster: its nodes (up or down, and as the console
        reaches them), its leader, and each cluster watcher with, per node it
        is assigned to, its state there and the watcher's status on that
        node as last polled. None when no cluster is followed."""
        following = self.following
        if following is None:
            return None
        view = following.view
        out: dict[str, Any] = {
            "name": following.name or (view.name if view else None) or following.endpoint,
            "cluster": view.name if view else None, "endpoint": following.endpoint,
            "error": following.error, "read": following.read_at, "tried": following.tried_at,
            "every": following.every, "leader": view.leader if view else None,
            "nodes": [], "watchers": []}
        if view is None:
            return out
        for name in sorted(view.nodes):
            entry = view.nodes[name]
            record = entry.record
            shown = self.nodes.get(name)
            out["nodes"].append({
                "name": name, "up": entry.up, "endpoint": entry.endpoint,
                "labels": entry.labels, "version": record.get("version"),
                "load": record.get("load"), "watchers": record.get("watchers"),
                "processes": record.get("processes"), "leader": name == view.leader,
                "shown": shown.source if shown is not None else None,
                "reachable": shown.reachable if shown is not None else None,
                "error": shown.error if shown is not None else None})
        for name in sorted(view.placement):
            placed = view.placement[name]
            where: dict[str, Any] = {}
            for node_name, state in sorted((placed.get("nodes") or {}).items()):
                cell = dict(state) if isinstance(state, dict) else {"state": str(state)}
                local = self._local_watcher(node_name, name)
                if local is not None:
                    cell.update({"status": local.get("status"), "running": local.get("running"),
                                 "wanted": local.get("wanted")})
                where[node_name] = cell
            out["watchers"].append({"name": name, "placement": placed.get("placement") or {},
                                    "nodes": where})
        return out

    def _local_watcher(self, node_name: str, watcher: str) -> dict[str, Any] | None:
        """The watcher as the console last polled it on that node."""
        node = self.nodes.get(node_name)
        if node is None or node.source != "cluster" or node.snapshot is None \
                or not node.reachable:
            return None  # another daemon of that name, or out of reach: nothing
        for entry in node.snapshot.get("watchers", []):
            if str(entry.get("name", "")).lower() == watcher.lower():
                return cast("dict[str, Any]", entry)
        return None
