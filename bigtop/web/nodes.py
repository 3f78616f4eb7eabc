"""The daemons the console shows ("nodes"), each followed by one poller and
one event subscriber shared by every browser session.

A node asks its daemon, once a second while someone looks (every few
seconds otherwise): ``status`` with details, ``stats`` (every process, and
the sockets with their accept queues) and ``dstats`` (the daemon itself).
Each answer becomes a *snapshot*, the state the pages show, and a *point*
in a short history, the charts. When the daemon publishes ``stat.*``
topics on a stats endpoint, the processes' numbers come from there
instead of ``stats``/``dstats``.

Events (``watcher.*``, ``arbiter.*``) and live output (``stream.*``, only
for the watchers some browser tails) come from the daemon's events
endpoint. A node that stops answering is marked unreachable and tried
again until it answers; nothing else needs to happen for it to come back.
Everything goes through :mod:`bigtop.client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

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

log = logging.getLogger("bigtop.web")

HISTORY = 600  # points kept per node: 10 minutes at one a second
EVENTS_KEPT = 100  # recent events per node, for a page that opens
POLL_TIMEOUT = 3.0  # seconds a poll waits for the daemon before calling it unreachable
ACTION_TIMEOUT = 600.0  # a waited-for action (a rolling reload) may take this long
BUSY_INTERVAL = 1.0  # seconds between polls while a browser is connected
IDLE_INTERVAL = 5.0  # ... and while none is
RETRY_INTERVAL = 2.0  # seconds between tries to reach a node that did not answer
STATS_FRESH = 3.0  # stat.* messages older than this no longer replace polling

Listener = Callable[[str, dict[str, Any]], None]


class NodeDown(Exception):
    """The daemon did not answer (or cannot be reached at all)."""


def number(value: Any) -> float:
    """A sample's field as a number (psutil says "N/A" when denied)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def process_entry(pid: str, info: Any, wid: int | None = None) -> dict[str, Any]:
    """One process for the pages: its own numbers and its children's added
    to CPU and memory (what the process costs, as an operator counts)."""
    if not isinstance(info, dict):
        return {"pid": int(pid), "wid": wid, "gone": True, "cpu": 0.0, "mem": 0.0, "rss": 0,
                "children": 0, "age": None}
    kids = [k for k in info.get("children") or [] if isinstance(k, dict)]
    return {
        "pid": int(info.get("pid") or pid),
        "wid": info.get("wid", wid),
        "cpu": round(number(info.get("cpu")) + sum(number(k.get("cpu")) for k in kids), 1),
        "mem": round(number(info.get("mem")) + sum(number(k.get("mem")) for k in kids), 2),
        "rss": int(number(info.get("rss")) + sum(number(k.get("rss")) for k in kids)),
        "age": info.get("age"),
        "children": len(kids),
        "child_pids": [k.get("pid") for k in kids],
        "threads": info.get("threads"),
        "fds": info.get("fds"),
        "cmdline": info.get("cmdline"),
        "username": info.get("username"),
        "started": info.get("started"),
    }


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
            "cpu": round(sum(p["cpu"] for p in processes), 1),
            "mem": round(sum(p["mem"] for p in processes), 2),
            "rss": sum(p["rss"] for p in processes),
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


def history_point(snapshot: dict[str, Any]) -> dict[str, Any]:
    """[cpu %, rss bytes] of the daemon, each watcher and each process."""
    daemon = snapshot.get("daemon") or {}
    return {
        "t": round(snapshot["time"], 3),
        "d": [daemon.get("cpu", 0), daemon.get("rss", 0)],
        "w": {w["name"]: [w["cpu"], w["rss"]] for w in snapshot["watchers"]},
        "p": {str(p["pid"]): [p["cpu"], p["rss"]]
              for w in snapshot["watchers"] for p in w["processes"]},
    }


class Node:
    """One daemon: its connection, its latest snapshot and history, its
    events and its live output."""

    def __init__(self, name: str, endpoint: str | None = None, key: str | None = None,
                 server_key: str | None = None, pubsub_endpoint: str | None = None):
        # The endpoint and keys resolve as bigtopctl's do (options, then
        # BIGTOPCTL_* variables, then the default endpoint).
        session = Session(endpoint, key=key, server_key=server_key,
                          pubsub_endpoint=pubsub_endpoint)
        self.name = name
        self.endpoint = session.endpoint
        self.key = session.key
        self.server_key = session.server_key
        self.pubsub_option = pubsub_endpoint
        self.reachable: bool | None = None  # None: not asked yet
        self.error: str | None = None
        self.since = time.time()  # of the current reachability
        self.version: str | None = None
        self.snapshot: dict[str, Any] | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
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

    # -- what others see ---------------------------------------------------------

    def info(self, with_history: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "endpoint": self.endpoint,
                               "reachable": self.reachable, "error": self.error,
                               "since": self.since, "version": self.version,
                               "snapshot": self.snapshot}
        if with_history:
            out["history"] = list(self.history)
            out["events"] = list(self.events)
        return out

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
        (a rolling reload must not hold up the polls)."""
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
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        # The flag too: Python 3.11's wait_for can swallow a cancellation.
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close_feeds()
        self._drop_client()

    async def _run(self) -> None:
        while not self._closing:
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            # Several events at once (a restart) make one poll, not one each.
            await asyncio.sleep(0.05)

    async def poll(self, full: bool = False) -> None:
        """Ask the daemon for the state; the resource use too while someone
        looks (a page open, or ``full``: an API request)."""
        try:
            if self.reachable is not True:
                await self._connect()
            use_stats = (self._stats is not None
                         and time.monotonic() - self._stat_seen < STATS_FRESH)
            if use_stats:
                status, sockets = await asyncio.gather(
                    self.call("status", details=True), self.call("listsockets"))
                self._prune_stats(status)
                infos, socket_list, daemon = (self._stat_infos, sockets.get("sockets") or [],
                                              self._stat_daemon)
            elif not (self.viewers or full):
                # Nobody looks: the state only, no process is sampled.
                status = await self.call("status", details=True)
                infos, socket_list, daemon = {}, [], None
            else:
                status, stats, dstats = await asyncio.gather(
                    self.call("status", details=True), self.call("stats"),
                    self.call("dstats"))
                infos, socket_list, daemon = (stats.get("infos") or {},
                                              stats.get("sockets") or [], dstats.get("info"))
        except NodeDown as err:
            self._set_reachable(False, str(err))
            return
        except CommandFailed as err:
            self._set_reachable(False, f"the daemon refused: {err}")
            return
        self.snapshot = build_snapshot(status, infos, socket_list, daemon)
        point = history_point(self.snapshot)
        self.history.append(point)
        self._set_reachable(True, None)
        state = {k: v for k, v in self.info().items() if k != "snapshot"}
        self.emit("snapshot", {"node": self.name, "snapshot": self.snapshot, "point": point,
                               "info": state})

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
        pubsub = self.pubsub_option or told.get("pubsub_endpoint")
        pubsub = reachable_host(pubsub, self.endpoint) if pubsub else guess_pubsub(self.endpoint)
        try:
            topics = ["watcher.", "arbiter."] + [f"stream.{w}." for w in self._tails]
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
        feed = AsyncSubscriber(endpoint, key=self.key, server_key=self.server_key,
                               timeout=POLL_TIMEOUT)
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

    def _set_reachable(self, reachable: bool, error: str | None) -> None:
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
        """stat.<watcher>.<pid>: one process; stat.circus.<pid>: the daemon
        (stat.<watcher> aggregates and stat.sockets.* are not needed: the
        pages add up the processes, and listsockets has the queues)."""
        rest, _, pid = topic[len("stat."):].rpartition(".")
        if not rest or not pid.isdigit():
            return
        self._stat_seen = time.monotonic()
        if rest == "circus":
            self._stat_daemon = {**payload, "pid": int(pid)}
            return
        if rest == "sockets" and "address" in payload:
            return  # stat.sockets.<fd>
        watcher = str(payload.get("watcher") or payload.get("name") or rest)
        for known in (self.snapshot or {}).get("watchers", []):
            if known["name"].lower() == watcher.lower():
                watcher = known["name"]
        self._stat_infos.setdefault(watcher, {})[pid] = {**payload, "pid": int(pid)}

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


class Cluster:
    """Every node the console shows, by name, in the order given."""

    def __init__(self, nodes: list[Node]):
        self.nodes = {node.name: node for node in nodes}

    def get(self, name: str) -> Node | None:
        return self.nodes.get(name)

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.close()
