"""The leader's duty: keep ``assign/`` matching the desired state.

One node leads at a time (it holds the ``leader`` key on its lease). It
reads the nodes, the cluster watchers and the assignments once, then
follows changes to the first two and writes the difference the placement
function asks for. Every write is a transaction guarded by the leader key
still naming this node: a node that lost the lead without knowing it
writes nothing.

A node whose lease ended keeps its assignments for ``grace`` seconds, so
a node that comes back quickly (a restart, a short freeze) finds its work
where it left it; after that they go to other nodes, and the dead node's
own assignments are deleted, which is how it learns, when it comes back,
that it must stop them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

from ..config import ConfigError
from ..config.cluster import ClusterWatcher
from ..config.model import Placement
from .keys import Keys
from .placement import place
from .store import Change, Store, StoreError

log = logging.getLogger("bigtop.cluster")


class LostLead(Exception):
    """Another node leads now."""


def node_labels(record: bytes) -> dict[str, str] | None:
    try:
        value = json.loads(record)
        labels = value["labels"]
    except (ValueError, KeyError, TypeError):
        return None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else None


class Leader:
    def __init__(self, store: Store, keys: Keys, me: str, grace: float):
        self.store = store
        self.keys = keys
        self.me = me
        self.grace = grace
        self.nodes: dict[str, dict[str, str]] = {}
        self.watchers: dict[str, ClusterWatcher] = {}
        self.assigned: dict[tuple[str, str], bytes] = {}  # (node, watcher) -> value
        self.down_since: dict[str, float] = {}
        self.changes: asyncio.Queue[tuple[str, Change]] = asyncio.Queue()
        self.bad: set[str] = set()  # watchers whose placement could not be read (logged once)

    async def run(self) -> None:
        nodes, nodes_rev = await self.store.range(self.keys.nodes)
        watchers, watchers_rev = await self.store.range(self.keys.watchers)
        assigned, _ = await self.store.range(self.keys.assignments)
        for entry in nodes:
            self._node(Change(entry.key, entry.value, entry.revision))
        for entry in watchers:
            self._watcher(Change(entry.key, entry.value, entry.revision))
        now = time.monotonic()
        for entry in assigned:
            node, watcher = Keys.pair(entry.key, self.keys.assignments)
            self.assigned[(node, watcher)] = entry.value
            if node not in self.nodes:  # down before this leader: its grace starts now
                self.down_since.setdefault(node, now)
        followers = [asyncio.create_task(self._follow(self.keys.nodes, nodes_rev + 1)),
                     asyncio.create_task(self._follow(self.keys.watchers, watchers_rev + 1))]
        try:
            while True:
                await self.reconcile()
                await self._next_change(followers)
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)

    async def _follow(self, prefix: str, revision: int) -> None:
        async for change in self.store.watch(prefix, revision):
            await self.changes.put((prefix, change))

    async def _next_change(self, followers: list[asyncio.Task[None]]) -> None:
        """Wait for a change that may move a watcher (or for the end of a
        grace period), taking every change that came meanwhile."""
        while True:
            expiries = [t + self.grace - time.monotonic() for t in self.down_since.values()]
            timeout = max(0.0, min(expiries)) if expiries else None
            get = asyncio.ensure_future(self.changes.get())
            try:
                done, _ = await asyncio.wait([get, *followers], timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not get.done():
                    get.cancel()
            for task in followers:
                if task in done:
                    task.result()  # its StoreError
                    raise StoreError("a watch ended")
            if get not in done:
                return  # a grace period ended
            items = [get.result()]
            while not self.changes.empty():
                items.append(self.changes.get_nowait())
            changed = [(self._node if prefix == self.keys.nodes else self._watcher)(change)
                       for prefix, change in items]
            if any(changed):  # else only loads moved (each record is rewritten every 30 s)
                return

    def _node(self, change: Change) -> bool:
        """Take a change of a node's record; whether placement may change."""
        name = Keys.last(change.key)
        labels = node_labels(change.value) if change.value is not None else None
        if labels is None:
            if self.nodes.pop(name, None) is None:
                return False
            log.info("cluster: node %s is gone", name)
            self.down_since[name] = time.monotonic()
            return True
        if self.nodes.get(name) == labels:
            return False
        if name not in self.nodes:
            log.info("cluster: node %s is up", name)
        self.nodes[name] = labels
        self.down_since.pop(name, None)
        return True

    def _watcher(self, change: Change) -> bool:
        name = Keys.last(change.key)
        self.bad.discard(name)
        if change.value is None:
            return self.watchers.pop(name, None) is not None
        try:
            self.watchers[name] = ClusterWatcher.load(name, change.value)
        except ValueError:
            log.error("cluster: watchers/%s holds no cluster watcher; ignored", name)
            self.watchers.pop(name, None)
        return True

    def _desired(self) -> dict[str, Placement]:
        desired = {}
        for name, watcher in self.watchers.items():
            try:
                desired[name] = watcher.where()
            except ConfigError as err:
                if name not in self.bad:
                    log.error("cluster: %s: cannot place it: %s", name, err)
                    self.bad.add(name)
        return desired

    async def reconcile(self) -> None:
        now = time.monotonic()
        for node, since in list(self.down_since.items()):
            if now - since >= self.grace:
                del self.down_since[node]
                if any(n == node for n, _ in self.assigned):
                    log.info("cluster: node %s stayed down %.1f s: its watchers move", node,
                             self.grace)
        held = set(self.down_since)
        current: dict[str, set[str]] = {}
        for node, watcher in self.assigned:
            current.setdefault(watcher, set()).add(node)
        # In a thread: 1,000 watchers on 1,000 nodes take the better part of
        # a second, which the daemon's loop must not wait for.
        result = await asyncio.to_thread(place, self._desired(), dict(self.nodes), current, held)
        puts: dict[str, bytes] = {}
        deletes: list[str] = []
        for watcher, nodes in result.items():
            value = self.watchers[watcher].dump()
            for node in nodes:
                if self.assigned.get((node, watcher)) != value:
                    puts[self.keys.assignment(node, watcher)] = value
        for node, watcher in self.assigned:
            if node not in result.get(watcher, ()):
                deletes.append(self.keys.assignment(node, watcher))
        if puts or deletes:
            await self._write(puts, deletes)
            self._log(result, puts, deletes)

    async def _write(self, puts: Mapping[str, bytes], deletes: list[str]) -> None:
        if not await self.store.commit((self.keys.leader, self.me.encode()), puts, deletes):
            raise LostLead()
        for key in deletes:
            self.assigned.pop(Keys.pair(key, self.keys.assignments), None)
        for key, value in puts.items():
            self.assigned[Keys.pair(key, self.keys.assignments)] = value

    def _log(self, result: Mapping[str, set[str]], puts: Mapping[str, bytes],
             deletes: list[str]) -> None:
        changed = {Keys.last(k) for k in [*puts, *deletes]}
        for watcher in sorted(changed):
            where = ", ".join(sorted(result.get(watcher, ()))) or "no node"
            log.info("cluster: %s placed on %s", watcher, where)
