"""Where a cluster keeps what in etcd: everything under ``/bigtop/NAME/``.

    nodes/NODE             the node's record (JSON), on the node's lease
    known/NODE             the same record, kept when the lease ends: a node
                           known but without a live record is down (until
                           ``bigtopctl cluster forget NODE``)
    leader                 the leading node's name, on its lease
    watchers/WATCHER       a cluster watcher: options and placement (JSON)
    assign/NODE/WATCHER    the leader's word: NODE runs WATCHER (its JSON)
    state/NODE/WATCHER     what NODE made of it, on NODE's lease

Each node watches only ``assign/NODE/``; the leader also watches
``nodes/`` and ``watchers/``.
"""

from __future__ import annotations


class Keys:
    def __init__(self, cluster: str):
        self.root = f"/bigtop/{cluster}/"
        self.nodes = self.root + "nodes/"
        self.known = self.root + "known/"
        self.leader = self.root + "leader"
        self.watchers = self.root + "watchers/"
        self.assignments = self.root + "assign/"
        self.states = self.root + "state/"

    def node(self, node: str) -> str:
        return self.nodes + node

    def known_node(self, node: str) -> str:
        return self.known + node

    def watcher(self, name: str) -> str:
        return self.watchers + name

    def assigned(self, node: str) -> str:
        """The prefix of one node's assignments."""
        return f"{self.assignments}{node}/"

    def assignment(self, node: str, watcher: str) -> str:
        return f"{self.assignments}{node}/{watcher}"

    def state(self, node: str, watcher: str) -> str:
        return f"{self.states}{node}/{watcher}"

    @staticmethod
    def last(key: str) -> str:
        return key.rsplit("/", 1)[-1]

    @staticmethod
    def pair(key: str, prefix: str) -> tuple[str, str]:
        """(NODE, WATCHER) of an ``assign/`` or ``state/`` key."""
        node, _, watcher = key[len(prefix):].partition("/")
        return node, watcher
