"""The node agent: what makes a bigtopd with a ``[cluster]`` section a node.

It keeps the node's record alive in etcd under a lease, runs for leader
(and leads, see leader.py), and runs the cluster watchers assigned to this
node as ordinary watchers, through the Arbiter's public methods like any
command would.

A store hiccup never stops a healthy process: when etcd cannot be
reached, the agent keeps what runs and tries again. The one exception is
a watcher placed ``partition = at-most-once``: once this node has gone a
whole ``ttl`` without etcd answering, its lease must have ended and the
leader will start the watcher elsewhere after ``grace``, so the node stops
it first. When the node is back, it reads its assignments again: what was
moved away meanwhile is no longer there, and is stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import ConfigError
from ..config.bounds import count_problem
from ..config.cluster import ClusterWatcher, read_cluster_file
from ..config.model import ClusterSettings
from ..tasks import TaskOwner
from .keys import Keys
from .leader import Leader, LostLead, node_labels
from .store import Store, StoreError

if TYPE_CHECKING:
    from ..core import Arbiter

log = logging.getLogger("bigtop.cluster")

RETRY_S = (0.2, 2.0)  # the first and the longest wait before trying etcd again
RECORD_S = 30.0  # the node's record (its load) is written again this often
LEAVE_S = 1.0  # at stop, how long revoking the lease may take


class ClusterAgent:
    def __init__(self, arbiter: Arbiter, settings: ClusterSettings, store: Store):
        self.arbiter = arbiter
        self.settings = settings
        self.store = store
        self.node = settings.node or socket.gethostname()
        self.keys = Keys(settings.name)
        self.lease = 0
        self.last_contact = 0.0  # monotonic time of etcd's last answer on the lease
        self.owned: dict[str, bytes] = {}  # cluster watchers run here -> their assignment
        self.failed: dict[str, str] = {}  # assigned here but could not run -> why
        self.leading = False
        self.connected = False
        self._apply = asyncio.Lock()
        self.server_public: str | None = None  # the CurveZMQ key clients need, Z85
        self.tasks = TaskOwner("cluster")

    # -- life ------------------------------------------------------------

    def start(self) -> None:
        self.tasks.spawn(self._run(), name="cluster")
        self.tasks.spawn(self._fence(), name="cluster-fence")

    async def detach(self) -> None:
        """Stop taking part, the lease kept for the image this daemon
        re-executes into (handover.py), which renews it."""
        await self.tasks.cancel_all()
        await self.store.close()

    async def close(self) -> None:
        """Stop taking part; the lease is revoked, so that the leader moves
        this node's cluster watchers after ``grace`` rather than ``ttl``."""
        await self.tasks.cancel_all()
        if self.lease:
            try:
                async with asyncio.timeout(LEAVE_S):
                    await self.store.revoke(self.lease)
            except (StoreError, TimeoutError):
                pass
        await self.store.close()

    async def _run(self) -> None:
        wait = RETRY_S[0]
        while True:
            began = time.monotonic()
            try:
                await self._session()
            except* StoreError as group:
                if self.connected or wait == RETRY_S[0]:
                    log.warning("cluster: etcd: %s; what runs keeps running, trying again",
                                group.exceptions[0])
            except* Exception:  # a bug: said, and the agent goes on
                log.exception("cluster: unexpected error; trying again")
            self.connected = False
            # A new channel for the next session: a member that restarted
            # has forgotten the channel's authentication token.
            await self.store.close()
            if time.monotonic() - began > self.settings.ttl:
                wait = RETRY_S[0]
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_S[1])

    async def _session(self) -> None:
        key = self.arbiter.config.settings.server_key
        if key and self.server_public is None:
            self.server_public = await asyncio.to_thread(_public_key, key)
        await self._register()
        self.connected = True
        log.info("cluster: node %s of %s, on etcd %s", self.node, self.settings.name,
                 " ".join(self.settings.etcd))
        async with asyncio.TaskGroup() as group:
            group.create_task(self._keepalive())
            group.create_task(self._follow())
            group.create_task(self._campaign())

    # -- the node's record -----------------------------------------------

    def record(self) -> bytes:
        endpoints = self.arbiter.endpoints
        load = os.getloadavg()
        return json.dumps({
            "name": self.node,
            "endpoint": self.settings.advertise or endpoints.get("endpoint"),
            "pubsub_endpoint": endpoints.get("pubsub_endpoint"),
            "stats_endpoint": endpoints.get("stats_endpoint"),
            "server_key": self.server_public,
            "labels": dict(self.settings.labels),
            "version": __version__,
            "pid": os.getpid(),
            "started": self.arbiter.started,
            "load": [round(v, 2) for v in load],
            "cpus": os.cpu_count() or 1,
            "watchers": len(self.arbiter.watchers),
            "processes": sum(len(w.processes) for w in self.arbiter.watchers.values()),
        }, sort_keys=True).encode()

    async def _register(self) -> None:
        if not (self.lease and await self.store.keepalive(self.lease) > 0):
            self.lease = await self.store.grant(self.settings.ttl)
        key = self.keys.node(self.node)
        told = False
        while True:
            found = await self.store.get(key)
            if found is None or found.lease == self.lease:
                break
            if not told:  # a previous run's record, or another node of this name
                log.warning("cluster: node %s is registered by another lease; waiting for it "
                            "to end (a daemon restarted within ttl, or two nodes named %s)",
                            self.node, self.node)
                told = True
            await asyncio.sleep(self.settings.ttl / 3)
        record = self.record()
        await self.store.put(key, record, self.lease)
        await self.store.put(self.keys.known_node(self.node), record)
        self.last_contact = time.monotonic()

    async def _keepalive(self) -> None:
        every = self.settings.ttl / 3
        written = time.monotonic()
        while True:
            await asyncio.sleep(every)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can
            # swallow a cancellation that comes as the call ends, and this
            # loop would then never end.
            try:
                async with asyncio.timeout(every):
                    left = await self.store.keepalive(self.lease)
            except TimeoutError:
                raise StoreError("no answer to the lease's keepalive") from None
            if left <= 0:
                self.lease = 0
                raise StoreError("this node's lease ended")
            self.last_contact = time.monotonic()
            if time.monotonic() - written > RECORD_S:
                await self.store.put(self.keys.node(self.node), self.record(), self.lease)
                written = time.monotonic()

    async def _fence(self) -> None:
        """Stop the at-most-once watchers once etcd has been silent for a
        whole ttl (see the module's docstring)."""
        while True:
            await asyncio.sleep(self.settings.ttl / 4)
            if not self.last_contact or time.monotonic() - self.last_contact < self.settings.ttl:
                continue
            for name, value in list(self.owned.items()):
                if _partition(value) == "at-most-once":
                    log.warning("cluster: %s: no word from etcd for %d s: stopped "
                                "(partition = at-most-once)", name, self.settings.ttl)
                    await self._apply_one(name, None)

    # -- leading -----------------------------------------------------------

    async def _campaign(self) -> None:
        me = self.node.encode()
        while True:
            won = await self.store.create(self.keys.leader, me, self.lease)
            holder = None if won else await self.store.get(self.keys.leader)
            if won or (holder is not None and holder.value == me
                       and holder.lease == self.lease):
                log.info("cluster: %s leads", self.node)
                self.leading = True
                try:
                    await Leader(self.store, self.keys, self.node, self.settings.grace).run()
                except LostLead:
                    log.warning("cluster: %s no longer leads", self.node)
                finally:
                    self.leading = False
                continue
            if holder is None:
                continue  # gone between the two reads
            async for change in self.store.watch(self.keys.leader, holder.revision + 1):
                if change.value is None:
                    break

    # -- this node's assignments -------------------------------------------

    async def _follow(self) -> None:
        prefix = self.keys.assigned(self.node)
        entries, revision = await self.store.range(prefix)
        wanted = {Keys.last(e.key): e.value for e in entries}
        async with self._apply:
            self.failed.clear()  # reported again below
        for name in [n for n in self.owned if n not in wanted]:
            await self._apply_one(name, None)
        for name, value in wanted.items():
            await self._apply_one(name, value, report=True)
        async for change in self.store.watch(prefix, revision + 1):
            await self._apply_one(Keys.last(change.key), change.value)

    async def _apply_one(self, name: str, value: bytes | None, report: bool = False) -> None:
        async with self._apply:
            if self.arbiter.stopping:
                return
            if value is None:
                self.failed.pop(name, None)
                found = self.arbiter.get_watcher(name)
                if self.owned.pop(name, None) is not None and found is not None:
                    log.info("cluster: %s: no longer assigned here, stopping it", name)
                    async with self.arbiter.queued([found]):
                        await self.arbiter.rm_watcher(name)
                try:
                    await self.store.delete(self.keys.state(self.node, name))
                except StoreError:  # it goes with the lease anyway
                    pass
                return
            if self.owned.get(name) == value and self.arbiter.get_watcher(name):
                if report:
                    await self._report(name, None)
                return
            problem = await self._run_watcher(name, value)
            if problem is not None:
                log.error("cluster: %s: cannot run it here: %s", name, problem)
                self.failed[name] = problem
            else:
                self.failed.pop(name, None)
            await self._report(name, problem)

    async def _run_watcher(self, name: str, value: bytes) -> str | None:
        """Start or update the watcher as assigned; why not, if it could not."""
        from ..core import ReloadAborted

        try:
            spec = ClusterWatcher.load(name, value).spec()
        except (ValueError, ConfigError) as err:
            return str(err)
        existing = self.arbiter.get_watcher(name)
        if existing is not None and name not in self.owned:
            return "this node has a watcher of its own by that name"
        counts = {w.name: w.spec.numprocesses for w in self.arbiter.watchers.values()}
        counts[name] = spec.numprocesses
        try:
            self.arbiter.check_references(spec)
        except ValueError as err:
            return str(err)
        if (problem := count_problem(counts, self.arbiter.config.settings.max_processes)):
            return problem
        if existing is not None:
            async with self.arbiter.queued([existing]):
                try:
                    await existing.update(spec, graceful=True)
                except ReloadAborted as err:
                    return f"update aborted, old options kept: {err}"
        else:
            added = await self.arbiter.add_watcher(spec)
            log.info("cluster: %s: assigned here, starting", name)
            async with self.arbiter.queued([added]):
                await self.arbiter.start_watchers([added])
        self.owned[name] = value
        return None

    async def _report(self, name: str, problem: str | None) -> None:
        state = {"state": "failed", "error": problem} if problem else {"state": "running"}
        try:
            await self.store.put(self.keys.state(self.node, name),
                                 json.dumps(state).encode(), self.lease)
        except StoreError as err:  # said again at the next session's first read
            log.debug("cluster: %s: state not written: %s", name, err)

    # -- what the commands ask -------------------------------------------

    async def nodes(self) -> dict[str, Any]:
        """The nodes' records (``up``), and the nodes known from before
        whose lease ended (down, with their last record)."""
        entries, _ = await self.store.range(self.keys.nodes)
        known, _ = await self.store.range(self.keys.known)
        leader = await self.store.get(self.keys.leader)
        nodes = {}
        for up, found in ((False, known), (True, entries)):
            for entry in found:
                name = Keys.last(entry.key)
                nodes[name] = {**_json(entry.value), "name": name, "up": up}
        return {"cluster": self.settings.name, "node": self.node,
                "leader": leader.value.decode(errors="replace") if leader else None,
                "nodes": sorted(nodes.values(), key=lambda n: n["name"])}

    async def forget(self, node: str) -> dict[str, Any]:
        """Drop a node that is down from the list (KeyError: no such node,
        ValueError: it is up)."""
        if await self.store.get(self.keys.node(node)) is not None:
            raise ValueError(f"node {node} is up")
        if await self.store.get(self.keys.known_node(node)) is None:
            raise KeyError(node)
        await self.store.delete(self.keys.known_node(node))
        return {"forgotten": [node]}

    async def apply(self, text: str, file: str) -> dict[str, Any]:
        """Store the cluster watchers a file declares (ConfigError: none)."""
        found = await asyncio.to_thread(read_cluster_file, text, file)
        entries, _ = await self.store.range(self.keys.watchers)
        stored = {Keys.last(e.key): e.value for e in entries}
        changed = [w for w in found if stored.get(w.name) != w.dump()]
        # A file of up to MAX_TXN_OPS watchers is stored whole or not at all.
        await self.store.commit(None, {self.keys.watcher(w.name): w.dump() for w in changed},
                                [])
        return {"applied": sorted(w.name for w in changed),
                "unchanged": sorted(w.name for w in found if w not in changed)}

    async def remove(self, names: list[str]) -> dict[str, Any]:
        entries, _ = await self.store.range(self.keys.watchers)
        stored = {Keys.last(e.key) for e in entries}
        missing = [n for n in names if n not in stored]
        if missing:
            raise KeyError(", ".join(missing))
        await self.store.commit(None, {}, [self.keys.watcher(n) for n in names])
        return {"removed": names}

    async def placement(self) -> dict[str, Any]:
        """Each cluster watcher: its placement, where it is assigned, and what
        each node made of it."""
        watchers, _ = await self.store.range(self.keys.watchers)
        assigned, _ = await self.store.range(self.keys.assignments)
        states, _ = await self.store.range(self.keys.states)
        nodes, _ = await self.store.range(self.keys.nodes)
        up = {Keys.last(e.key) for e in nodes if node_labels(e.value) is not None}
        state = {Keys.pair(e.key, self.keys.states): _json(e.value) for e in states}
        where: dict[str, dict[str, Any]] = {}
        for entry in assigned:
            node, name = Keys.pair(entry.key, self.keys.assignments)
            where.setdefault(name, {})[node] = {
                "up": node in up, **state.get((node, name), {"state": "pending"})}
        out = []
        for entry in watchers:
            name = Keys.last(entry.key)
            try:
                placement = ClusterWatcher.load(name, entry.value).placement
            except ValueError:
                placement = {}
            out.append({"name": name, "placement": placement, "nodes": where.get(name, {})})
        return {"watchers": out}


def _public_key(path: str) -> str | None:
    import zmq.auth

    try:
        public = zmq.auth.load_certificate(path)[0]
    except (OSError, ValueError):
        return None
    return public.decode()


def _partition(value: bytes) -> str:
    try:
        return ClusterWatcher.load("", value).where().partition
    except (ValueError, ConfigError):
        return "at-least-once"


def _json(value: bytes) -> Mapping[str, Any]:
    try:
        found = json.loads(value)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def make_agent(arbiter: Arbiter, settings: ClusterSettings) -> ClusterAgent:
    """The agent on etcd; ImportError if the ``cluster`` extra is missing."""
    import aetcd  # noqa: F401  (said now, not at the first request)

    from .store import Credentials, EtcdStore

    credentials = Credentials(settings.etcd_ca, settings.etcd_cert, settings.etcd_key,
                              settings.etcd_user, settings.etcd_password)
    return ClusterAgent(arbiter, settings, EtcdStore(settings.etcd, credentials))
