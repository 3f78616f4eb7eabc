"""Several real bigtopd nodes on the real etcd cluster of tests/etcd.py:
the helpers the cluster tests (and the consoles' cluster tests) share.

Short leases (``ttl = 2``, ``grace = 0.5``) keep the scenarios quick; the
defaults are measured in bench/cluster.py.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import psutil

from .conftest import Daemon, wait_for
from .etcd import EtcdCluster

TTL = 2
WIDE = {**os.environ, "COLUMNS": "300"}  # bigtopctl's tables, unwrapped
WATCHERS = """\
[watcher:web]
cmd = sleep 1000
nodes = 1
constraints = role=web

[watcher:db]
cmd = sleep 1000
constraints = role=db
partition = at-most-once
"""


def node_config(etcd: EtcdCluster, name: str, labels: str, extra: str = "") -> str:
    return f"""\
[circus]
[cluster]
name = test
node = {name}
etcd = {etcd.endpoints}
labels = {labels}
ttl = {TTL}
grace = 0.5
{extra}"""


def start_nodes(daemon: Callable[..., Daemon], etcd: EtcdCluster,
                labels: dict[str, str]) -> dict[str, Daemon]:
    nodes = {name: daemon(node_config(etcd, name, lab), where=name)
             for name, lab in labels.items()}
    first = next(iter(nodes.values()))
    wait_for(lambda: len(first.call("cluster_nodes")["nodes"]) == len(nodes),
             message="every node registered")
    return nodes


def apply(d: Daemon, text: str) -> dict[str, Any]:
    return d.call("cluster_apply", text=text, file="cluster.ini")


def running(nodes: dict[str, Daemon], watcher: str) -> dict[str, set[int]]:
    """The nodes where ``watcher`` has processes, with their pids."""
    out = {}
    for name, d in nodes.items():
        if d.proc is None or d.proc.poll() is not None:
            continue
        pids = d.pids(watcher)
        if pids:
            out[name] = pids
    return out


def wait_running(nodes: dict[str, Daemon], watcher: str, count: int,
                 timeout: float = 20.0) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}

    def enough() -> bool:
        nonlocal found
        found = running(nodes, watcher)
        return len(found) == count

    wait_for(enough, timeout=timeout, message=f"{watcher} on {count} node(s)")
    return found


def kill_node(d: Daemon) -> list[psutil.Process]:
    """SIGKILL a node's bigtopd; its children are left, as after a crash
    (returned, for the test to end them)."""
    assert d.proc is not None
    children = psutil.Process(d.proc.pid).children(recursive=True)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    return children


