"""Nodes on a real 3-member etcd cluster: several real bigtopd, each in a
directory of its own, placing and moving cluster watchers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from .clusters import (
    TTL,
    WATCHERS,
    WIDE,
    apply,
    kill_node,
    node_config,
    running,
    start_nodes,
    wait_running,
)
from .conftest import Daemon, free_port, wait_for
from .etcd import EtcdCluster


def test_placement_honours_labels_and_a_killed_node_moves_its_watchers(
        daemon: Callable[..., Daemon], etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web zone=a", "n2": "role=web zone=b",
                                       "n3": "role=db"})
    reply = apply(nodes["n1"], WATCHERS)
    assert reply["applied"] == ["db", "web"]
    web = wait_running(nodes, "web", 1)
    assert set(web) <= {"n1", "n2"}
    assert set(wait_running(nodes, "db", 1)) == {"n3"}
    listed = nodes["n2"].call("cluster_nodes")
    assert sorted(n["name"] for n in listed["nodes"]) == ["n1", "n2", "n3"]
    assert listed["leader"] in nodes
    by_name = {n["name"]: n for n in listed["nodes"]}
    assert by_name["n1"]["labels"] == {"role": "web", "zone": "a"}
    assert by_name["n1"]["endpoint"] == nodes["n1"].endpoint
    # The same file again changes nothing.
    again = apply(nodes["n3"], WATCHERS)
    assert (again["applied"], again["unchanged"]) == ([], ["db", "web"])

    (where,) = web
    other = ({"n1", "n2"} - {where}).pop()
    orphans = kill_node(nodes[where])
    try:
        moved = wait_running(nodes, "web", 1, timeout=TTL + 10)
        assert set(moved) == {other}
    finally:
        for child in orphans:
            child.kill()
    placement = nodes[other].call("cluster_placement")["watchers"]
    assert {w["name"]: sorted(w["nodes"]) for w in placement} == {"db": ["n3"], "web": [other]}

    # The killed node comes back: its work stays where it went.
    nodes[where].start()
    wait_for(lambda: len(nodes[other].call("cluster_nodes")["nodes"]) == 3,
             message="the node back")
    time.sleep(1)  # it read its (empty) assignments by now; nothing may start there
    assert set(running(nodes, "web")) == {other}


def test_a_frozen_node_stops_its_duplicates_when_it_thaws(
        daemon: Callable[..., Daemon], etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web", "n3": "role=db"})
    apply(nodes["n1"], WATCHERS)
    (where,) = wait_running(nodes, "web", 1)
    db_pids = wait_running(nodes, "db", 1)["n3"]
    frozen = nodes[where]
    assert frozen.proc is not None
    # Shorter than the lease: nothing moves.
    frozen.signal(signal.SIGSTOP)
    time.sleep(TTL / 3)
    frozen.signal(signal.SIGCONT)
    time.sleep(TTL)
    assert set(running(nodes, "web")) == {where}
    # Longer: the watcher starts elsewhere; the frozen node, thawed, finds
    # it moved and stops its own.
    frozen.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: len(running(nodes, "web")) == 2, timeout=TTL + 10,
                 message="web started elsewhere")
    finally:
        frozen.signal(signal.SIGCONT)
    wait_for(lambda: where not in running(nodes, "web"), timeout=TTL + 10,
             message="the duplicate stopped")
    assert len(running(nodes, "web")) == 1
    assert running(nodes, "db")["n3"] == db_pids  # untouched throughout


def test_at_most_once_stops_when_etcd_is_gone_and_no_leader_loss_restarts_anything(
        daemon: Callable[..., Daemon], etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=db"})
    apply(nodes["n1"], WATCHERS)
    web = wait_running(nodes, "web", 1)
    db = wait_running(nodes, "db", 1)
    before = nodes["n1"].call("cluster_placement")
    # One etcd member restarts: nothing moves or restarts.
    follower = next(m for m in etcd.members if m is not etcd.leader())
    etcd.kill(follower)
    etcd.start_member(follower, state="existing")
    etcd.wait_healthy()
    time.sleep(TTL)
    assert running(nodes, "web") == web and running(nodes, "db") == db
    # The etcd leader dies: a new one is elected; no process restarts,
    # no watcher moves.
    etcd.kill(etcd.leader())
    time.sleep(TTL * 2)
    assert running(nodes, "web") == web and running(nodes, "db") == db
    assert nodes["n1"].call("cluster_placement")["watchers"] == before["watchers"]
    # All of etcd gone: the at-least-once watcher keeps running; the
    # at-most-once one stops within about a ttl.
    etcd.stop()
    wait_for(lambda: not running(nodes, "db"), timeout=TTL * 4, message="db stopped")
    assert running(nodes, "web") == web
    log = nodes["n2"].log_text()
    assert "no word from etcd" in log and "partition = at-most-once" in log


def test_bigtopctl_cluster(daemon: Callable[..., Daemon], etcd: EtcdCluster,
                           tmp_path: Any) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web"})
    n1 = nodes["n1"]

    def ctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopctl",
                               "--endpoint", n1.endpoint, *args],
                              capture_output=True, text=True, input=stdin, timeout=30, env=WIDE)

    bad = tmp_path / "bad.ini"
    bad.write_text("[watcher:web]\ncmd = sleep 1000\nnodes = zero\nnmae = x\n")
    result = ctl("cluster", "apply", str(bad))
    assert result.returncode != 0
    assert "nothing applied" in result.stderr and "bad.ini:3" in result.stderr
    assert "nmae" in result.stderr
    assert n1.call("cluster_placement")["watchers"] == []
    result = ctl("cluster", "apply", "-", stdin="[watcher:web]\ncmd = sleep 1000\n")
    assert result.returncode == 0 and "applied: web" in result.stdout
    wait_running(nodes, "web", 1)
    result = ctl("cluster", "nodes")
    assert result.returncode == 0 and "leader: n1" in result.stdout
    result = ctl("cluster", "placement")
    assert "web" in result.stdout and "n1" in result.stdout
    result = ctl("--json", "cluster", "rm", "web")
    assert json.loads(result.stdout)["removed"] == ["web"]
    wait_for(lambda: not running(nodes, "web"), message="web stopped")
    result = ctl("cluster", "rm", "web")
    assert result.returncode != 0 and "no cluster watcher web" in result.stderr


def test_a_daemon_without_cluster_says_so(daemon: Callable[..., Daemon]) -> None:
    d = daemon("[watcher:a]\ncmd = sleep 1000\n")
    from bigtop.client import CommandFailed

    with pytest.raises(CommandFailed, match="not a cluster node"):
        d.call("cluster_nodes")


def test_bigtopctl_on_every_node_with_one_dead(daemon: Callable[..., Daemon],
                                               etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web", "n3": "role=db"})
    apply(nodes["n1"], WATCHERS.replace("nodes = 1", "nodes = all"))
    wait_running(nodes, "web", 2)
    orphans = kill_node(nodes["n2"])
    try:
        for child in orphans:
            child.kill()

        def ctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopctl",
                                   "--endpoint", nodes["n1"].endpoint, *args],
                                  capture_output=True, text=True, timeout=30, env=WIDE)

        began = time.monotonic()
        result = ctl("--json", "--nodes", "all", "--node-timeout", "1", "status")
        took = time.monotonic() - began
        rows = {r["node"]: r for r in json.loads(result.stdout)["nodes"]}
        assert result.returncode != 0  # one node failed
        assert rows["n1"]["reply"]["statuses"]["web"] == "active"
        assert rows["n3"]["reply"]["statuses"]["db"] == "active"
        assert "error" in rows["n2"]  # no reply, or down once its lease ended
        assert took < 10  # the dead node costs its timeout, not the default 5 s each
        # By label, and a name that matches nothing is a row too.
        result = ctl("--json", "--nodes", "role=db,nosuch", "numprocesses")
        rows = {r["node"]: r for r in json.loads(result.stdout)["nodes"]}
        assert rows["n3"]["reply"]["numprocesses"] == 1
        assert rows["nosuch"]["error"] == "no such node"
        # Where a cluster watcher runs: the live nodes it is assigned to.
        result = ctl("--json", "--nodes", "@db", "numprocesses")
        rows = {r["node"]: r for r in json.loads(result.stdout)["nodes"]}
        assert list(rows) == ["n3"] and result.returncode == 0
        # People read a section per node, and logs merged.
        result = ctl("--nodes", "n1,n3", "status")
        assert "n1" in result.stdout and "n3" in result.stdout and "web" in result.stdout
        result = ctl("--nodes", "all", "logs")
        assert "n2" in result.stderr
        # After the lease: n2 is listed as down.
        wait_for(lambda: any(not n["up"] for n in nodes["n1"].call("cluster_nodes")["nodes"]),
                 timeout=TTL + 10, message="n2 down")
        result = ctl("cluster", "nodes")
        assert "down" in result.stdout
        result = ctl("cluster", "forget", "n1")
        assert result.returncode != 0 and "only a node that is down" in result.stderr
        result = ctl("cluster", "forget", "n2")
        assert result.returncode == 0 and "forgotten: n2" in result.stdout
        assert "n2" not in ctl("cluster", "nodes").stdout
    finally:
        for child in orphans:
            if child.is_running():
                child.kill()


def test_cluster_watchers_beside_the_nodes_own(daemon: Callable[..., Daemon],
                                               etcd: EtcdCluster) -> None:
    """A reload of the node's file leaves cluster watchers alone; a cluster
    watcher named like a local one is refused there, and says so."""
    own = "\n[watcher:local]\ncmd = sleep 1000\n"
    n1 = daemon(node_config(etcd, "n1", "role=web", own), where="n1")
    apply(n1, WATCHERS + "\n[watcher:local]\ncmd = sleep 2000\nnodes = all\n")
    web = wait_running({"n1": n1}, "web", 1)["n1"]
    local = n1.pids("local")

    def local_state() -> dict[str, Any]:
        (entry,) = [w for w in n1.call("cluster_placement")["watchers"] if w["name"] == "local"]
        return entry["nodes"].get("n1", {})

    wait_for(lambda: local_state().get("state") == "failed", message="the refusal reported")
    assert "a watcher of its own" in local_state()["error"]
    assert n1.pids("local") == local  # the node's own, untouched
    n1.reload(node_config(etcd, "n1", "role=web", own + "numprocesses = 2\n"))
    n1.wait_pids("local", 2)
    assert n1.pids("web") == web


def test_nodes_on_tcp_with_curve_keys(daemon: Callable[..., Daemon], etcd: EtcdCluster,
                                      tmp_path: Any) -> None:
    """bigtopctl --nodes reaches each node with the client's key and the
    node's own public key, from its record."""
    from bigtop.client import generate

    keys, authorized = tmp_path / "keys", tmp_path / "authorized"
    authorized.mkdir()
    client_public, client_secret = generate(str(keys), "ops")
    os.link(client_public, authorized / "ops.key")
    nodes, endpoints = {}, {}
    for name in ("n1", "n2"):
        _, secret = generate(str(keys), name)
        port, pub, stats = free_port(), free_port(), free_port()
        endpoints[name] = f"tcp://127.0.0.1:{port}"
        nodes[name] = daemon(node_config(etcd, name, "role=web").replace("[circus]\n", f"""\
[circus]
endpoint = tcp://127.0.0.1:{port}
pubsub_endpoint = tcp://127.0.0.1:{pub}
stats_endpoint = tcp://127.0.0.1:{stats}
server_key = {secret}
authorized_keys = {authorized}
"""), where=name)
    endpoint = endpoints["n1"]

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bigtop.cli.bigtopctl", "--endpoint", endpoint, "--key",
             client_secret, "--server-key", str(keys / "n1.key"), *args],
            capture_output=True, text=True, timeout=30, env=WIDE)

    wait_for(lambda: '"n2"' in ctl("--json", "cluster", "nodes").stdout, message="n2 listed")
    listed = json.loads(ctl("--json", "cluster", "nodes").stdout)["nodes"]
    assert all(n["server_key"] and len(n["server_key"]) == 40 for n in listed)
    result = ctl("--json", "--nodes", "all", "numwatchers")
    rows = {r["node"]: r for r in json.loads(result.stdout)["nodes"]}
    assert result.returncode == 0, result.stdout
    assert rows["n2"]["reply"]["numwatchers"] == 0
    assert rows["n2"]["endpoint"].startswith("tcp://")


def test_a_console_reads_the_cluster_through_another_node_when_its_own_dies(
        daemon: Callable[..., Daemon], etcd: EtcdCluster) -> None:
    import asyncio

    from bigtop.client.directory import ClusterFollower

    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web"})
    seen: list[tuple[object, object]] = []
    follower = ClusterFollower(nodes["n1"].endpoint, lambda view, error: seen.append(
        (view, error)), timeout=1)
    view = asyncio.run(follower.read_once())
    assert view is not None and set(view.nodes) == {"n1", "n2"}
    for child in kill_node(nodes["n1"]):
        child.kill()
    view = asyncio.run(follower.read_once())  # through n2
    assert view is not None and view.leader in ("n1", "n2")
    nodes["n2"].stop()
    assert asyncio.run(follower.read_once()) is None
    assert seen[-1][0] is None and seen[-1][1]


def test_a_node_stopped_cleanly_hands_its_work_over(daemon: Callable[..., Daemon],
                                                   etcd: EtcdCluster) -> None:
    """SIGTERM: the node stops its processes and revokes its lease, so its
    watchers move after grace, not after the whole ttl."""
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web"})
    apply(nodes["n1"], WATCHERS)
    (where,) = wait_running(nodes, "web", 1)
    other = ({"n1", "n2"} - {where}).pop()
    assert nodes[where].stop() == 0
    moved = wait_running(nodes, "web", 1, timeout=TTL + 10)
    assert set(moved) == {other}
    listed = {n["name"]: n for n in nodes[other].call("cluster_nodes")["nodes"]}
    assert listed[where]["up"] is False  # its lease revoked, not waited out
