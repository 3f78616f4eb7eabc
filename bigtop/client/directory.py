"""A cluster as a console follows it: the node list and where each cluster
watcher runs, read from one node (any node answers for the whole
cluster), again every few seconds.

bigtop-top and bigtop-web add the nodes it lists to those given by hand,
show the ones whose lease ended as down, and drop the ones forgotten
(``bigtopctl cluster forget``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .calls import AsyncClient
from .errors import CallError, CommandFailed

REFRESH_S = 5.0  # how often a console reads the cluster again


@dataclass(frozen=True)
class ClusterNode:
    name: str
    endpoint: str | None
    up: bool
    server_key: str | None = None  # Z85 public key for tcp:// endpoints
    labels: dict[str, str] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # as cluster_nodes gave it

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ClusterNode:
        labels = record.get("labels")
        endpoint = record.get("endpoint")
        key = record.get("server_key")
        return cls(str(record.get("name")), endpoint if isinstance(endpoint, str) else None,
                   bool(record.get("up", True)), key if isinstance(key, str) else None,
                   {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict)
                   else {}, record)


@dataclass(frozen=True)
class ClusterView:
    """One reading: the nodes, the leader, and per cluster watcher the
    nodes it is assigned to with their state (``cluster_placement``)."""

    name: str
    leader: str | None
    nodes: dict[str, ClusterNode]
    placement: dict[str, dict[str, Any]]  # watcher -> {"placement": ..., "nodes": {...}}

    def runs_on(self, watcher: str) -> list[str]:
        """The nodes a cluster watcher is assigned to (none: not a cluster watcher)."""
        return sorted((self.placement.get(watcher) or {}).get("nodes") or {})


async def read_cluster(client: AsyncClient) -> ClusterView:
    """The cluster as the node behind ``client`` sees it; CallError if it
    does not answer, CommandFailed if it is no node or etcd is down."""
    listing = await client.call("cluster_nodes")
    placement = await client.call("cluster_placement")
    nodes = {}
    for record in listing.get("nodes") or []:
        if isinstance(record, dict) and record.get("name"):
            node = ClusterNode.from_record(record)
            nodes[node.name] = node
    where = {str(w.get("name")): w for w in placement.get("watchers") or []
             if isinstance(w, dict)}
    return ClusterView(str(listing.get("cluster") or ""), listing.get("leader"), nodes, where)


class ClusterFollower:
    """Reads the cluster every ``every`` seconds and hands each reading (or
    the error) to ``on_view``; the console owns the task. It reads through
    the node it was given, and when that one does not answer, through the
    other nodes of the last reading that were up, in name order."""

    def __init__(self, endpoint: str, on_view: Any, key: str | None = None,
                 server_key: str | bytes | None = None, timeout: float = 4.0,
                 every: float = REFRESH_S):
        self.endpoint = endpoint
        self.on_view = on_view  # called with (ClusterView | None, error text | None)
        self.key = key
        self.server_key = server_key
        # Longer than a node's own limit on etcd (2 s): an etcd outage is
        # the node's "etcd: ..." error, not a timeout here.
        self.timeout = timeout
        self.every = every
        self.last: ClusterView | None = None

    async def run(self) -> None:
        while True:
            await self.read_once()
            await asyncio.sleep(self.every)

    def _through(self) -> list[tuple[str, str | bytes | None]]:
        """The endpoints to read through, with their server keys."""
        found: list[tuple[str, str | bytes | None]] = [(self.endpoint, self.server_key)]
        for node in sorted((self.last.nodes.values() if self.last else ()),
                           key=lambda n: n.name):
            if node.up and node.endpoint and node.endpoint != self.endpoint:
                key = node.server_key.encode() if node.server_key else self.server_key
                found.append((node.endpoint, key))
        return found

    async def read_once(self) -> ClusterView | None:
        import zmq

        error = ""
        for endpoint, server_key in self._through():
            try:
                async with AsyncClient(endpoint, timeout=self.timeout, key=self.key,
                                       server_key=server_key) as client:
                    view = await read_cluster(client)
            except CommandFailed as err:  # it answered: etcd is down, or it is no node
                self.on_view(None, str(err.reply.get("reason") or err))
                return None
            except (CallError, OSError, zmq.ZMQError) as err:
                error = error or str(err)
                continue
            self.last = view
            self.on_view(view, None)
            return view
        self.on_view(None, error)
        return None
