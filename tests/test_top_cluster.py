"""bigtop-top following a cluster (``--cluster``): real bigtopd nodes on a
real 3-member etcd (tests/clusters.py), the textual app driven headless by
its pilot as in test_top.py. Keys send real commands to every node a
cluster watcher runs on; the nodes' processes and the screen are checked."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from bigtop.cli.top import make_app
from bigtop.cli.top.app import Confirm, TopApp
from bigtop.cli.top.model import ClusterState, NodeState, follow_cluster
from bigtop.cli.top.view import build_rows, overview_rows
from bigtop.client import generate
from bigtop.client.directory import ClusterNode, ClusterView

from .clusters import TTL, WATCHERS, apply, kill_node, node_config, start_nodes, wait_running
from .conftest import Daemon, free_port
from .etcd import EtcdCluster
from .test_top import drive, select, until

Factory = Callable[..., Daemon]
EVERYWHERE = WATCHERS.replace("nodes = 1", "nodes = all")  # web on each role=web node
MARKS = "●○◌✕"


def cluster_app(through: Daemon, *argv: str) -> TopApp:
    app = make_app(["--cluster", through.endpoint, "--interval", "0.3", "--timeout", "4",
                    *argv])
    app.cluster_every = 1.0  # read the cluster more often than 5 s: the test waits on it
    return app


def row(app: TopApp, name: str, node: str) -> str | None:
    """The screen line of a watcher's row on a node (NODE first)."""
    found = re.search(rf"^ {re.escape(node)} [{MARKS}][^▸▾]*?[▸▾ ] {re.escape(name)} .*$",
                      app.screen_text(), re.M)
    return found.group(0) if found else None


def shows(app: TopApp, name: str, node: str, *parts: str) -> bool:
    line = row(app, name, node)
    return line is not None and all(re.search(part, line) for part in parts)


def status(app: TopApp, label: str) -> str | None:
    """A node's status line (connected, unreachable, connecting, down)."""
    found = re.search(rf"^ [{MARKS}] {re.escape(label)} (connected|unreachable|connecting|down)"
                      r".*$", app.screen_text(), re.M)
    return found.group(0) if found else None


def state_of(app: TopApp, label: str) -> str | None:
    line = status(app, label)
    return line.split()[2].rstrip(":") if line else None


def line_with(app: TopApp, pattern: str) -> str:
    found = re.search(rf"^.*{pattern}.*$", app.screen_text(), re.M)
    return found.group(0) if found else ""


def leader_of(d: Daemon) -> str:
    leader = d.call("cluster_nodes")["leader"]
    assert leader
    return str(leader)


# -- on real nodes ----------------------------------------------------------------------

def test_nodes_come_from_the_cluster_with_an_overview(daemon: Factory,
                                                      etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web", "n3": "role=db"})
    apply(nodes["n1"], EVERYWHERE)
    wait_running(nodes, "web", 2)
    wait_running(nodes, "db", 1)
    solo = daemon("[watcher:alone]\ncmd = sleep 1000\n", where="solo")  # no cluster: by hand
    app = cluster_app(nodes["n2"], "--endpoint", f"solo={solo.endpoint}")

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: shows(app, "web", "n1", "active", r"\b1/1\b")
                    and shows(app, "web", "n2", "active") and shows(app, "db", "n3", "active")
                    and re.search(r"^ solo +[▸▾ ] alone .*active", app.screen_text(), re.M),
                    "every node's watchers, the hand-given one's too")
        leader = leader_of(nodes["n1"])
        text = app.screen_text()
        assert re.search(r"cluster test · 3 nodes, 3 up · 2 cluster watchers · leader "
                         rf"{leader} ★", text), text
        assert all(state_of(app, n) == "connected" for n in ("n1", "n2", "n3", "solo"))
        assert f"{leader} connected" in (status(app, leader) or "") and "★ leader" in (
            status(app, leader) or "")
        header = next(line for line in text.splitlines() if "WATCHER" in line)
        assert header.split()[0] == "NODE"

        # c: the overview, one row per cluster watcher and node it is assigned to.
        await pilot.press("c")
        placed = (("web", "n1"), ("web", "n2"), ("db", "n3"))

        def overview() -> bool:  # each node says running once it has reported
            text = app.screen_text()
            return "CLUSTER WATCHER" in text and all(
                re.search(rf"^ {name} +{node} ●.* running +active +1/1 .*constraints=", text,
                          re.M) for name, node in placed)

        await until(pilot, overview, "the overview, every watcher running")
        text = app.screen_text()
        assert not re.search(r"^ (web|db) +solo", text, re.M), "solo is no cluster node"
        assert not re.search(r"^ web +n3|^ db +n[12]", text, re.M)
        assert re.search(rf"^ \w+ +{leader} ● ★", text, re.M) or leader == "n3" and \
            re.search(rf"^ db +{leader} ● ★", text, re.M), "the leader marked"
        await pilot.press("c")
        await until(pilot, lambda: "CLUSTER WATCHER" not in app.screen_text()
                    and shows(app, "web", "n1", "active"), "back to the watchers")

    drive(app, script)


def test_an_action_reaches_every_node_and_a_killed_node_shows_down(
        daemon: Factory, etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web", "n3": "role=db"})
    apply(nodes["n1"], EVERYWHERE)
    first = wait_running(nodes, "web", 2)
    wait_running(nodes, "db", 1)
    app = cluster_app(nodes["n2"])  # read through n2, which dies: then through n1 or n3
    orphans: list[Any] = []

    def web_pids() -> dict[str, set[int]]:
        return {name: nodes[name].pids("web") for name in ("n1", "n2")}

    def across() -> str:
        return line_with(app, r"on 2 nodes:")

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: shows(app, "web", "n1", "active")
                    and shows(app, "web", "n2", "active") and shows(app, "db", "n3", "active"),
                    "the nodes' watchers")
        await select(pilot, "web", node="n1")

        # a, then r: a restart on both nodes web is assigned to (asked first).
        await pilot.press("a")
        await until(pilot, lambda: "acts on web on n1, n2" in app.screen_text(), "armed")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        assert "Restart web on all 2 nodes (n1, n2)?" in app.screen_text()
        await pilot.press("y")
        await until(pilot, lambda: all(pids and not pids & first[name]
                                       for name, pids in web_pids().items()),
                    "web restarted on n1 and on n2")
        await until(pilot, lambda: "restart web on 2 nodes: n1 ok · n2 ok" in across(),
                    "each node's result")
        restarted = web_pids()

        # r alone asks for this node, and offers every node: a answers that.
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        assert "Reload (rolling, one process at a time) web on n1 (1 process)?" in \
            app.screen_text() and "a on all 2 nodes (n1, n2)" in app.screen_text()
        await pilot.press("a")
        await until(pilot, lambda: all(pids and not pids & restarted[name]
                                       for name, pids in web_pids().items()),
                    "web reloaded on both nodes")

        # a, then + (no question): one process more on each node.
        await pilot.press("a", "plus")
        await until(pilot, lambda: all(len(p) == 2 for p in web_pids().values()),
                    "two web processes on each node")
        await until(pilot, lambda: shows(app, "web", "n1", r"\b2/2\b")
                    and shows(app, "web", "n2", r"\b2/2\b"), "2/2 on screen for both")

        # n2 dies. The command armed for both still goes to both: n1
        # answers at once, n2 when its timeout is up, and the view stays live.
        await pilot.press("a")
        await until(pilot, lambda: "acts on web on n1, n2" in app.screen_text(), "armed")
        orphans.extend(kill_node(nodes["n2"]))
        await pilot.press("minus")
        await until(pilot, lambda: "n1 ok" in across(), "n1's answer")
        assert "n2 …" in across(), "n1's answer shown while n2's is still out"
        await until(pilot, lambda: len(nodes["n1"].pids("web")) == 1, "n1 back to one")
        await until(pilot, lambda: shows(app, "web", "n1", r"\b1/1\b"), "n1 at 1/1")
        await pilot.press("c")  # keys still work meanwhile
        await until(pilot, lambda: "CLUSTER WATCHER" in app.screen_text(), "the overview")
        await until(pilot, lambda: "n1 ok · n2 no reply from the daemon within 4s" in across(),
                    "n2's error, once its timeout is up")
        await until(pilot, lambda: state_of(app, "n2") in ("unreachable", "down"),
                    "n2 unreachable")

        # Once its lease ended, the cluster lists it as down, and so does the
        # view (read through another node now).
        await until(pilot, lambda: state_of(app, "n2") == "down", "n2 down",
                    timeout=TTL + 20)
        assert "n2 down: its lease ended" in app.screen_text()
        assert "3 nodes, 2 up, 1 down" in app.screen_text()
        await pilot.press("c")
        await until(pilot, lambda: shows(app, "web", "n2", "down") and
                    re.search(r"^ n2 ✕ down", app.screen_text(), re.M), "its rows say down")
        assert shows(app, "web", "n1", "active") and shows(app, "db", "n3", "active")

        # Forgotten by the cluster: gone from the view.
        nodes["n1"].call("cluster_forget", name="n2")
        await until(pilot, lambda: status(app, "n2") is None and row(app, "web", "n2") is None
                    and "2 nodes, 2 up" in app.screen_text(), "n2 gone")
        assert shows(app, "web", "n1", "active")

    try:
        drive(app, script)
    finally:
        for child in orphans:
            if child.is_running():
                child.kill()
        psutil.wait_procs(orphans, timeout=10)  # gone before the fixture looks


def test_a_failed_cluster_read_keeps_the_nodes(daemon: Factory, etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=db"})
    apply(nodes["n1"], WATCHERS)
    wait_running(nodes, "web", 1)
    app = cluster_app(nodes["n2"], "--cluster", f"prod={nodes['n2'].endpoint}")

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: shows(app, "web", "n1", "active")
                    and shows(app, "db", "n2", "active"), "both nodes")
        assert "cluster prod · 2 nodes, 2 up" in app.screen_text(), "NAME= names it"
        etcd.stop()
        await until(pilot, lambda: "cluster prod cannot be read: etcd" in app.screen_text(),
                    "the failed read said")
        assert re.search(r"showing its nodes as read \S+ ago", app.screen_text())
        assert state_of(app, "n1") == state_of(app, "n2") == "connected"
        await select(pilot, "web", node="n1")  # the nodes still work: at least once
        await pilot.press("plus")
        await until(pilot, lambda: len(nodes["n1"].pids("web")) == 2, "web scaled on n1")
        await until(pilot, lambda: shows(app, "web", "n1", r"\b2/2\b"), "2/2 on screen")

    drive(app, script)


def test_tcp_nodes_are_reached_with_their_own_public_keys(
        daemon: Factory, etcd: EtcdCluster, tmp_path: Path) -> None:
    """Each node has a server key of its own: only the one read through is
    given (--server-key); the other is reached with the key in its record."""
    ops_public, ops_secret = generate(str(tmp_path / "ops"), "ops")
    endpoints, publics, nodes = {}, {}, {}
    for name in ("n1", "n2"):
        keys = tmp_path / f"{name}-keys"
        (keys / "authorized").mkdir(parents=True)
        os.link(ops_public, keys / "authorized" / "ops.key")
        publics[name], secret = generate(str(keys), "server")
        endpoints[name] = f"tcp://127.0.0.1:{free_port()}"
        tcp = (f"[circus]\nendpoint = {endpoints[name]}\n"
               f"pubsub_endpoint = tcp://127.0.0.1:{free_port()}\n"
               f"server_key = {secret}\nauthorized_keys = {keys / 'authorized'}\n")
        config = node_config(etcd, name, "role=web", "[watcher:local]\ncmd = sleep 1000\n")
        nodes[name] = daemon(config.replace("[circus]\n", tcp, 1), where=name)
    app = make_app(["--cluster", endpoints["n1"], "--key", ops_secret,
                    "--server-key", publics["n1"], "--interval", "0.3", "--timeout", "4"])
    app.cluster_every = 1.0

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: shows(app, "local", "n1", "active")
                    and shows(app, "local", "n2", "active"), "both tcp nodes")
        assert state_of(app, "n1") == state_of(app, "n2") == "connected"
        await until(pilot, lambda: "stats live" in (status(app, "n2") or ""),
                    "its publishers over CurveZMQ too")
        await select(pilot, "local", node="n2")
        await pilot.press("plus")
        await until(pilot, lambda: len(nodes["n2"].pids("local")) == 2, "local scaled on n2")
        await until(pilot, lambda: shows(app, "local", "n2", r"\b2/2\b"), "2/2 on screen")
        assert len(nodes["n1"].pids("local")) == 1

    drive(app, script)


# -- without nodes ------------------------------------------------------------------------

def reading(*nodes: ClusterNode, placement: dict[str, Any] | None = None,
            leader: str | None = "n1") -> ClusterView:
    return ClusterView("test", leader, {n.name: n for n in nodes}, placement or {})


def test_follow_cluster_adds_drops_and_the_hand_given_wins() -> None:
    n1 = ClusterNode("n1", "ipc:///c/n1.sock", True)
    n2 = ClusterNode("n2", "tcp://10.0.0.2:5555", False, server_key="k" * 40)
    n3 = ClusterNode("n3", "ipc:///c/n3.sock", True)
    named = NodeState("n1", "ipc:///tunnel/n1.sock", id=0)  # --endpoint n1=...: named so
    same = NodeState("/c", "ipc:///c/n3.sock", id=1)  # --endpoint of n3's own endpoint
    changes = follow_cluster([named, same], reading(n1, n2, n3))
    assert [c.name for c in changes.add] == ["n2"] and changes.drop == []
    assert (named.cluster_name, named.endpoint) == ("n1", "ipc:///tunnel/n1.sock")
    assert same.cluster_name == "n3" and same.record == n3

    added = NodeState("n2", n2.endpoint or "", id=2)
    added.from_cluster, added.cluster_name, added.record = True, "n2", n2
    shown = [named, same, added]
    assert added.down and added.shown_state == "down", "lease ended, never reached"
    added.connected("0.1.0")
    assert not added.down and added.lease_ended, "answering: shown as it is"
    up = ClusterNode("n2", n2.endpoint, True, server_key=n2.server_key)
    changes = follow_cluster(shown, reading(n1, up, n3))
    assert changes.add == [] and changes.drop == [] and added.record == up
    moved = ClusterNode("n2", n2.endpoint, True, server_key="j" * 40)  # a new key
    changes = follow_cluster(shown, reading(n1, moved, n3))
    assert changes.drop == [added] and changes.add == [moved]
    changes = follow_cluster(shown, reading(n3))  # n1 and n2 forgotten
    assert changes.drop == [added] and changes.add == []
    assert named.cluster_name is None and named.record is None, "hand-given: never dropped"


def test_rows_of_a_cluster() -> None:
    up = NodeState("n1", "ipc:///c/n1.sock", id=4)
    up.from_cluster, up.cluster_name = True, "n1"
    up.record = ClusterNode("n1", up.endpoint, True)
    up.connected("0.1.0")
    up.apply_status({"details": {"web": {"status": "active", "running": 1, "wanted": 1,
                                         "pids": {"1": 11}}}})
    gone = NodeState("n2", "ipc:///c/n2.sock", id=5)
    gone.from_cluster, gone.cluster_name = True, "n2"
    gone.record = ClusterNode("n2", gone.endpoint, False)
    gone.lost("nothing is listening on it")
    rows = build_rows([up, gone], leader="n1", empty_nodes=True)
    assert [(r.node, r.watcher) for r in rows] == [(4, "web"), (5, "")]
    assert rows[0].cells["node"].plain == "n1 ● ★"
    assert rows[1].cells["node"].plain == "n2 ✕ down"
    assert rows[1].cells["state"].plain == "down"
    assert rows[1].cells["last_exit"].plain == "its lease ended", "a row, not silence"
    assert [r.watcher for r in build_rows([up, gone])] == ["web"], "one daemon: as before"

    cluster = ClusterState("ipc:///c/n1.sock")
    cluster.apply(reading(up.record, gone.record, placement={
        "web": {"placement": {"nodes": 2}, "nodes": {
            "n1": {"up": True, "state": "running"},
            "n2": {"up": False, "state": "failed", "error": "no such user"}}},
        "cron": {"placement": {"constraints": "role=batch"}, "nodes": {}},
    }), None)
    assert cluster.runs_on("WEB") == ["n1", "n2"] and cluster.runs_on("cron") == []
    assert cluster.assignment("web", "n2")["error"] == "no such user"
    assert cluster.assignment("web", "n3") == {} == cluster.assignment("nosuch", "n1")
    cells = [{k: c.plain for k, c in r.cells.items()} for r in overview_rows(cluster, [up, gone])]
    assert [(c["name"], c["node"], c["assigned"]) for c in cells] == [
        ("cron", "-", "unplaced"), ("web", "n1 ● ★", "running"), ("web", "n2 ✕ down", "failed")]
    assert (cells[1]["state"], cells[1]["procs"]) == ("active", "1/1")
    assert cells[2]["state"] == "down" and cells[2]["detail"] == "node down; no such user"
    assert [r.node for r in overview_rows(cluster, [up, gone])] == [-1, 4, 5]
    assert [c["node"] for c in (
        {k: v.plain for k, v in r.cells.items()} for r in overview_rows(cluster, [up], "n2"))
            ] == ["n2"], "filtered; a node not shown is still named"
    cluster.apply(None, "etcd: unavailable")
    assert cluster.error and cluster.view is not None, "the last reading kept"


def test_cluster_options() -> None:
    app = make_app(["--cluster", "prod=ipc:///x/control.sock"])
    assert app.cluster is not None and app.cluster.title == "prod"
    assert app.cluster.endpoint == "ipc:///x/control.sock"
    assert app.nodes == [], "no default endpoint beside the cluster"
    app = make_app(["--cluster", "ipc:///x/control.sock", "--endpoint", "a=ipc:///y/c.sock"])
    assert [n.label for n in app.nodes] == ["a"] and app.multi()
    with pytest.raises(SystemExit):
        make_app(["--cluster", "ipc:///x/c.sock", "--pubsub-endpoint", "ipc:///x/e.sock"])
    assert make_app([]).cluster is None
