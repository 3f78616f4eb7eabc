"""What bigtop-top knows about each daemon, whatever told it.

Replies to ``status`` (with details) say which watchers and processes
exist; resource use comes either from the stats endpoint's ``stat.*``
topics or, when none arrive, from polling the ``stats`` command. Both give
a process ``info`` in Circus's shape and land in the same ``ProcessView``;
``NodeState.sample`` then appends one point per watcher and process to the
histories the sparklines draw, at the display's pace rather than the
source's.

With ``--cluster``, ``ClusterState`` holds the last reading of the cluster
(``cluster_nodes`` and ``cluster_placement``, through one node) and
``follow_cluster`` says which nodes that reading adds and drops. With
``--discover``, ``follow_discovery`` does the same for the endpoints the
LAN answered with. Nothing here does I/O or imports textual, so it is
tested alone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...client.directory import ClusterNode, ClusterView

HISTORY = 60  # samples kept for the sparklines: a minute at the default interval

CONNECTING, CONNECTED, UNREACHABLE = "connecting", "connected", "unreachable"
DOWN = "down"  # shown, never a link's state: the cluster says the node's lease ended
LEASE_ENDED = "its lease ended"
MAX_DISCOVERED = 64  # nodes --discover shows at most: anyone on the LAN may answer


def number(value: Any) -> float | None:
    """A numeric field of a reply, or None ("N/A", missing, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def history() -> deque[float | None]:
    return deque(maxlen=HISTORY)


@dataclass
class Usage:
    """A process's resources, its descendants included (a shell wrapper's
    work is done by its children)."""

    cpu: float | None = None
    mem: float | None = None
    rss: float | None = None
    threads: float | None = None
    fds: float | None = None
    children: int = 0
    cmd: str = ""


def usage(info: dict[str, Any]) -> Usage:
    """Usage from a process ``info`` (the ``stats`` command or a
    ``stat.<watcher>.<pid>`` topic). bigtopd's top-level figures already
    count the process's descendants; ``children`` lists them one by one
    (or, in an aggregate, counts them)."""
    kids = info.get("children")
    count = len(kids) if isinstance(kids, list) else int(number(kids) or 0)
    cmd = info.get("cmdline")
    return Usage(cpu=number(info.get("cpu")), mem=number(info.get("mem")),
                 rss=number(info.get("rss")), threads=number(info.get("threads")),
                 fds=number(info.get("fds")), children=count,
                 cmd=str(cmd) if cmd and cmd != "N/A" else "")


@dataclass
class ProcessView:
    pid: int
    wid: int | None = None
    usage: Usage = field(default_factory=Usage)
    started: float | None = None  # Unix time
    cpu_history: deque[float | None] = field(default_factory=history)
    mem_history: deque[float | None] = field(default_factory=history)

    def age(self, now: float) -> float | None:
        return None if self.started is None else max(0.0, now - self.started)


@dataclass
class WatcherView:
    node: str
    name: str  # as configured
    status: str = "unknown"
    running: int = 0
    ready: int = 0
    wanted: int = 0
    numprocesses: int = 0
    uptime: float | None = None
    restarts: int = 0
    last_exit: dict[str, Any] | None = None
    failure: str | None = None
    processes: dict[int, ProcessView] = field(default_factory=dict)  # by pid
    cpu_history: deque[float | None] = field(default_factory=history)
    mem_history: deque[float | None] = field(default_factory=history)

    def total(self, attribute: str) -> float | None:
        values = [getattr(p.usage, attribute) for p in self.processes.values()]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    @property
    def cpu(self) -> float | None:
        return self.total("cpu")

    @property
    def mem(self) -> float | None:
        return self.total("mem")

    @property
    def rss(self) -> float | None:
        return self.total("rss")


class NodeState:
    """One daemon as last seen: its connection and its watchers; for a
    cluster node, also what the cluster says of it."""

    def __init__(self, label: str, endpoint: str, id: int = 0):
        self.label = label
        self.endpoint = endpoint
        self.id = id  # stable while the node is shown (rows and the app key on it)
        self.from_cluster = False  # added because the cluster lists it (not by hand)
        self.discovered = False  # added because it answered --discover's probe: a hint
        self.cluster_name: str | None = None  # its name in the cluster, if it is a node
        self.record: ClusterNode | None = None  # the cluster's last record of it
        self.state = CONNECTING
        self.reason = ""
        self.version: str | None = None
        self.watchers: dict[str, WatcherView] = {}  # by lower-case name
        self.stream_seen = float("-inf")  # time.monotonic() of the last stat.* message
        self.round_seen = float("-inf")  # ... of the last stats round's end (stat.circus)
        self.round_period = 0.0  # seconds between the last two rounds
        self.stats_polled = False
        self.retry_at: float | None = None  # time.monotonic() of the next attempt
        self.daemon = Usage()  # bigtopd itself, from stat.circus.<pid>

    # -- connection ---------------------------------------------------------------

    def connected(self, version: str | None) -> None:
        self.state, self.reason, self.version, self.retry_at = CONNECTED, "", version, None

    def lost(self, reason: str) -> None:
        self.state, self.reason = UNREACHABLE, reason

    @property
    def lease_ended(self) -> bool:
        """The cluster lists this node as down (its lease in etcd ended)."""
        return self.record is not None and not self.record.up

    @property
    def down(self) -> bool:
        """Shown as down: the cluster says so, and it does not answer either
        (a node whose lease ended but that answers is shown as it is)."""
        return self.lease_ended and self.state != CONNECTED

    @property
    def shown_state(self) -> str:
        """connected, connecting, unreachable or down."""
        return DOWN if self.down else self.state

    @property
    def shown_reason(self) -> str:
        return LEASE_ENDED if self.down else self.reason

    # -- status -------------------------------------------------------------------

    def apply_status(self, reply: dict[str, Any]) -> None:
        """``status`` with ``details``. Watchers it does not name are gone;
        so are processes no longer in their ``pids``. A daemon that gives no
        details (circusd) still gives the states."""
        details = reply.get("details")
        statuses = reply.get("statuses")
        if not isinstance(details, dict):
            details = {name: {"status": state} for name, state in
                       (statuses.items() if isinstance(statuses, dict) else [])}
        seen = set()
        for name, info in details.items():
            if not isinstance(info, dict):
                continue
            key = str(name).lower()
            seen.add(key)
            view = self.watchers.get(key)
            if view is None:
                view = self.watchers[key] = WatcherView(self.label, str(name))
            view.name = str(name)
            view.status = str(info.get("status") or "unknown")
            view.running = int(number(info.get("running")) or 0)
            view.ready = int(number(info.get("ready")) or 0)
            view.wanted = int(number(info.get("wanted")) or 0)
            view.numprocesses = int(number(info.get("numprocesses")) or 0)
            view.uptime = number(info.get("uptime"))
            view.restarts = int(number(info.get("restarts")) or 0)
            last = info.get("last_exit")
            view.last_exit = last if isinstance(last, dict) else None
            failure = info.get("failure")
            view.failure = str(failure) if failure else None
            pids = info.get("pids")
            if isinstance(pids, dict):
                self._set_pids(view, pids)
        for key in set(self.watchers) - seen:
            del self.watchers[key]

    @staticmethod
    def _set_pids(view: WatcherView, pids: dict[str, Any]) -> None:
        current: dict[int, int | None] = {}  # pid -> wid
        for slot, pid in pids.items():
            if number(pid) is not None:
                current[int(pid)] = int(slot) if str(slot).isdigit() else None
        for gone in set(view.processes) - set(current):
            del view.processes[gone]
        for key, wid in current.items():
            process = view.processes.get(key)
            if process is None:
                process = view.processes[key] = ProcessView(key)
            process.wid = wid

    # -- resource use -------------------------------------------------------------

    def apply_stats(self, infos: dict[str, Any]) -> None:
        """The ``infos`` of the ``stats`` command: {watcher: {pid: info}}."""
        for name, processes in infos.items():
            view = self.watchers.get(str(name).lower())
            if view is None or not isinstance(processes, dict):
                continue
            for pid, info in processes.items():
                if isinstance(info, dict):
                    self._apply_info(view, pid, info)
        self.stats_polled = True

    def apply_stat(self, topic: str, payload: Any) -> bool:
        """One message of the stats endpoint. ``stat.<watcher>.<pid>`` is a
        process (the aggregates ``stat.<watcher>`` and ``stat.sockets`` are
        left: the totals are added up here, the same way for both sources);
        ``stat.circus.<pid>`` is the daemon. True when it changed something."""
        if not topic.startswith("stat.") or not isinstance(payload, dict):
            return False
        now = self.stream_seen = time.monotonic()
        if topic == "stat.circus":  # the last message of a round
            if self.round_seen > float("-inf"):
                self.round_period = now - self.round_seen
            self.round_seen = now
        rest = topic[len("stat."):]
        name, _, pid = rest.rpartition(".")
        if not pid.isdigit() or not name:
            return False
        if name == "circus":
            self.daemon = usage(payload)
            return True
        view = self.watchers.get(name.lower())
        if view is None or int(pid) not in view.processes:
            return False  # not (or no longer) a process the last status named
        self._apply_info(view, pid, payload)
        return True

    @staticmethod
    def _apply_info(view: WatcherView, pid: Any, info: dict[str, Any]) -> None:
        try:
            key = int(pid)
        except (TypeError, ValueError):
            return
        process = view.processes.get(key)
        if process is None:
            return  # status decides which processes exist
        process.usage = usage(info)
        wid = number(info.get("wid"))
        if wid is not None:
            process.wid = int(wid)
        started = number(info.get("started")) or number(info.get("create_time"))
        if started is not None:
            process.started = started

    def streaming(self, interval: float) -> bool:
        """Has the stats endpoint spoken lately (else poll ``stats``)? Its
        rounds come every ``stats_interval`` of the daemon, which may be
        slower than ours."""
        window = max(3 * interval, 3 * self.round_period, 3.0)
        return time.monotonic() - self.stream_seen < window

    # -- history ------------------------------------------------------------------

    def sample(self) -> None:
        """One point on every sparkline: the latest use of each watcher and
        process (nothing while the node cannot be reached)."""
        if self.state != CONNECTED:
            return
        for view in self.watchers.values():
            view.cpu_history.append(view.cpu)
            view.mem_history.append(view.mem)
            for process in view.processes.values():
                process.cpu_history.append(process.usage.cpu)
                process.mem_history.append(process.usage.mem)


# -- the cluster --------------------------------------------------------------------

@dataclass
class ClusterState:
    """The cluster as last read through one node (``--cluster``): the
    reading kept when a later one fails, with the failure."""

    endpoint: str  # the node read through
    name: str | None = None  # NAME= of --cluster; else the cluster's own name
    view: ClusterView | None = None
    error: str | None = None  # why the last reading failed (None: it worked)
    read_at: float | None = None  # time.monotonic() of the last good reading
    tried: bool = False  # a reading has finished, good or not

    def apply(self, view: ClusterView | None, error: str | None,
              now: float | None = None) -> None:
        self.tried = True
        if view is None:
            self.error = error or "no answer"
            return
        self.view, self.error = view, None
        self.read_at = time.monotonic() if now is None else now

    @property
    def title(self) -> str:
        return self.name or (self.view.name if self.view and self.view.name else "cluster")

    @property
    def leader(self) -> str | None:
        return self.view.leader if self.view else None

    def cluster_watcher(self, name: str) -> str | None:
        """The cluster watcher of this name (as the cluster spells it), if any."""
        if self.view is None:
            return None
        return next((w for w in self.view.placement if w.lower() == name.lower()), None)

    def runs_on(self, name: str) -> list[str]:
        """The nodes a cluster watcher is assigned to, by name."""
        found = self.cluster_watcher(name)
        return self.view.runs_on(found) if self.view is not None and found else []

    def assignment(self, name: str, node: str) -> dict[str, Any]:
        """What the cluster says of a cluster watcher on a node: ``up``,
        ``state`` (running, failed with ``error``, pending); {} if none."""
        found = self.cluster_watcher(name)
        if self.view is None or found is None:
            return {}
        info = ((self.view.placement.get(found) or {}).get("nodes") or {}).get(node)
        return info if isinstance(info, dict) else {}


@dataclass
class Changes:
    """What a reading of the cluster changes in the node list."""

    add: list[ClusterNode] = field(default_factory=list)
    drop: list[NodeState] = field(default_factory=list)


def follow_cluster(nodes: Iterable[NodeState], view: ClusterView) -> Changes:
    """Bring the node list in line with a reading of the cluster. Each node
    the cluster lists gets its record (up or down); a listed node not shown
    yet is to be added, one shown that the cluster no longer lists (it was
    forgotten) is to be dropped, and one whose endpoint or key changed is
    to be dropped and added again. A node given by hand whose name, or
    else endpoint, is a cluster node's stands for that node: its own
    endpoint and keys win, and it is never dropped. A node found on the LAN
    is never a cluster node: one at the endpoint of a cluster node shown
    (or to be added) gives way to it, dropped."""
    changes = Changes()
    listed = dict(view.nodes)
    shown = list(nodes)
    hand = [n for n in shown if not n.from_cluster and not n.discovered]
    for node in hand:
        node.cluster_name, node.record = None, None
    for node in hand:  # by name first: an explicit NAME= is the strongest claim
        if node.label in listed:
            node.cluster_name = node.label
            node.record = listed.pop(node.label)
    for node in hand:
        if node.cluster_name is None:
            found = next((c for c in listed.values() if c.endpoint
                          and c.endpoint == node.endpoint), None)
            if found is not None:
                node.cluster_name, node.record = found.name, listed.pop(found.name)
    for node in shown:
        if not node.from_cluster:
            continue
        record = listed.pop(node.label, None)
        if record is None:
            changes.drop.append(node)
        elif node.record is not None and (record.endpoint, record.server_key) != (
                node.record.endpoint, node.record.server_key):
            changes.drop.append(node)
            changes.add.append(record)
        else:
            node.record = record
    changes.add.extend(listed[name] for name in sorted(listed))
    # The cluster's nodes, as they will be shown (not one a hand-given node
    # stands for: that one keeps its own endpoint, so nothing else is at it).
    taken = {r.endpoint for r in changes.add if r.endpoint}
    taken |= {n.endpoint for n in shown if n.from_cluster and n not in changes.drop}
    changes.drop.extend(n for n in shown if n.discovered and n.endpoint in taken)
    return changes


@dataclass
class Heard:
    """What one probe of ``--discover`` changes in the node list, and what
    became of the endpoints heard (for the status line)."""

    add: list[str] = field(default_factory=list)  # endpoints to show, in order
    drop: list[NodeState] = field(default_factory=list)
    heard: int = 0  # tcp:// endpoints that answered (or were not yet forgotten)
    shown_already: int = 0  # of those, at a node given by hand or the cluster's
    not_tcp: int = 0  # endpoints that are not tcp://: ignored
    over: int = 0  # not shown: MAX_DISCOVERED reached


def follow_discovery(nodes: Iterable[NodeState], endpoints: Iterable[str],
                     limit: int = MAX_DISCOVERED) -> Heard:
    """Bring the discovered nodes in line with what the LAN answers (the
    endpoints ``DiscoveryFollower`` still remembers). A discovered node no
    longer heard is to be dropped; an endpoint heard that no node shows yet
    is to be added, unless ``limit`` discovered nodes are shown already. A
    node at that endpoint, given by hand or listed by the cluster, wins:
    the endpoint is not added twice. Only tcp:// endpoints are followed
    (the only ones bigtopd and circusd announce: an ipc:// path from the
    network names nothing here)."""
    result = Heard()
    heard: list[str] = []
    for endpoint in dict.fromkeys(endpoints):
        if endpoint.startswith("tcp://"):
            heard.append(endpoint)
        else:
            result.not_tcp += 1
    result.heard = len(heard)
    shown = list(nodes)
    others = {n.endpoint for n in shown if not n.discovered}
    answering = set(heard)
    result.drop = [n for n in shown if n.discovered
                   and (n.endpoint not in answering or n.endpoint in others)]
    kept = [n for n in shown if n.discovered and n not in result.drop]
    present = {n.endpoint for n in kept}
    room = limit - len(kept)
    for endpoint in heard:
        if endpoint in others:
            result.shown_already += 1
        elif endpoint in present:
            continue
        elif room > 0:
            result.add.append(endpoint)
            room -= 1
        else:
            result.over += 1
    return result
