"""bigtop-web following a cluster (``--cluster``): real bigtopd nodes on the
real etcd of tests/etcd.py, the real aiohttp app. The node list comes from
the cluster (nodes added as they join, shown down when their lease ends,
dropped when forgotten), the overview of ``GET /api/cluster``, actions on
every node that runs a cluster watcher (a dead or frozen node: its error,
within its timeout), a failed reading that keeps the nodes, a hand-given
name that wins over the cluster's, and CurveZMQ keys taken from each
node's record."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("pytest_aiohttp")

from bigtop.client import Client, generate  # noqa: E402
from bigtop.web import cli  # noqa: E402
from bigtop.web.app import make_app  # noqa: E402
from bigtop.web.auth import Auth  # noqa: E402
from bigtop.web.nodes import LEASE_ENDED, Cluster, Following, Node  # noqa: E402

from .clusters import (  # noqa: E402
    TTL,
    WATCHERS,
    apply,
    kill_node,
    node_config,
    start_nodes,
    wait_running,
)
from .conftest import Daemon, free_port, wait_for  # noqa: E402
from .etcd import EtcdCluster  # noqa: E402
from .test_web import TOKEN, Console, until  # noqa: E402

EVERY = 0.3  # seconds between two readings of the cluster, in these tests
EVERYWHERE = WATCHERS.replace("nodes = 1", "nodes = all")  # web on every role=web node


async def open_console(aiohttp_client: Any, cluster: Cluster) -> Console:
    console = Console(await aiohttp_client(make_app(cluster, Auth(TOKEN))))
    assert (await console.login()).status == 303
    return console


async def node_list(console: Console) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in (await console.get_json("/api/nodes"))["nodes"]}


async def receive_until(ws: Any, wanted: Callable[[dict[str, Any]], bool],
                        message: str) -> dict[str, Any]:
    """The first WebSocket message for which wanted() holds."""
    async def check() -> dict[str, Any] | None:
        data: dict[str, Any] = await ws.receive_json(timeout=20)
        return data if wanted(data) else None

    found: dict[str, Any] = await until(check, timeout=30, message=message)
    return found


@pytest.mark.asyncio
async def test_the_console_follows_the_cluster(aiohttp_client: Any,
                                               daemon: Callable[..., Daemon],
                                               etcd: EtcdCluster) -> None:
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web"})
    apply(nodes["n1"], EVERYWHERE)
    wait_running(nodes, "web", 2)
    cluster = Cluster([], Following(nodes["n1"].endpoint, every=EVERY))
    console = await open_console(aiohttp_client, cluster)
    assert (await console.get_json("/api/session"))["cluster"] is True

    async def both_reachable() -> Any:
        found = await node_list(console)
        return sorted(found) == ["n1", "n2"] and all(n["reachable"] for n in found.values()) \
            and found

    found = await until(both_reachable, timeout=20, message="both nodes, reachable")
    for name, d in nodes.items():
        assert found[name]["endpoint"] == d.endpoint  # from the node's record
        assert found[name]["source"] == "cluster" and found[name]["down"] is None
        assert found[name]["record"]["labels"] == {"role": "web"}
        assert {w["name"] for w in found[name]["snapshot"]["watchers"]} == {"web"}

    ws = await console.client.ws_connect("/ws", headers={"Origin": console.origin})
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello"
    assert {n["name"] for n in hello["nodes"]} == {"n1", "n2"}
    assert hello["cluster"]["cluster"] == "test"

    # A node that joins is added, on the page too; db is placed on it.
    nodes["n3"] = await asyncio.to_thread(daemon, node_config(etcd, "n3", "role=db"),
                                          where="n3")
    added = await receive_until(ws, lambda m: m["type"] == "added", "n3 added")
    assert added["node"]["name"] == "n3" and added["node"]["source"] == "cluster"
    await asyncio.to_thread(wait_running, nodes, "db", 1)

    async def placed() -> Any:
        overview = await console.get_json("/api/cluster")
        where = {w["name"]: w["nodes"] for w in overview["watchers"]}
        done = (set(where.get("web", {})) == {"n1", "n2"} and set(where.get("db", {})) == {"n3"}
                and all(cell.get("status") == "active" for cells in where.values()
                        for cell in cells.values()))
        return done and overview

    overview = await until(placed, timeout=20, message="the overview of both watchers")
    assert overview["following"] is True and overview["error"] is None
    assert overview["leader"] in nodes and overview["endpoint"] == nodes["n1"].endpoint
    listed = {n["name"]: n for n in overview["nodes"]}
    assert sorted(listed) == ["n1", "n2", "n3"]
    assert all(n["up"] and n["shown"] == "cluster" for n in listed.values())
    assert listed[overview["leader"]]["leader"] is True
    assert listed["n3"]["labels"] == {"role": "db"}
    cells = {w["name"]: w for w in overview["watchers"]}["web"]["nodes"]
    assert {c["state"] for c in cells.values()} == {"running"}
    assert all(c["running"] == c["wanted"] == 1 for c in cells.values())

    # The same action on every node running web: one request per node.
    for name in ("n1", "n2"):
        response = await console.post(f"/api/nodes/{name}/watchers/web/incr",
                                      {"nb": 1, "timeout": 10})
        assert response.status == 200, await response.text()
        assert (await response.json())["reply"]["numprocesses"] == 2
    for name in ("n1", "n2"):
        await asyncio.to_thread(nodes[name].wait_pids, "web", 2)
    for bad in (0, -1, "soon", True, 601):
        response = await console.post("/api/nodes/n1/watchers/web/incr", {"timeout": bad})
        assert response.status == 400 and "timeout" in (await response.json())["error"]

    # A frozen node: its request ends after its own timeout, with its error;
    # the other node's is done meanwhile.
    frozen = nodes["n2"]
    frozen.signal(signal.SIGSTOP)
    try:
        replies = await asyncio.gather(*(
            console.post(f"/api/nodes/{name}/watchers/web/decr", {"nb": 1, "timeout": 1.5})
            for name in ("n1", "n2")))
        assert replies[0].status == 200, await replies[0].text()
        assert replies[1].status == 502
        assert "timed out after 1.5s" in (await replies[1].json())["error"]
    finally:
        orphans = kill_node(frozen)  # SIGKILL ends it stopped as it is
    for child in orphans:
        child.kill()
    response = await console.post("/api/nodes/n2/watchers/web/restart", {"timeout": 5})
    assert response.status == 502  # nothing listens there now: at once
    assert "n2 is unreachable" in (await response.json())["error"]

    # Once its lease ended: down, with its last record, and not polled.
    async def down() -> Any:
        found = await node_list(console)
        return found["n2"]["down"] == LEASE_ENDED and found

    found = await until(down, timeout=TTL + 20, message="n2 shown down")
    assert found["n2"]["reachable"] is False and found["n2"]["error"] == LEASE_ENDED
    assert found["n2"]["record"]["name"] == "n2"
    assert found["n1"]["reachable"] is True
    assert not cluster.nodes["n2"].polling and cluster.nodes["n1"].polling
    response = await console.post("/api/nodes/n2/watchers/web/start", {"timeout": 5})
    assert response.status == 502 and LEASE_ENDED in (await response.json())["error"]
    overview = await console.get_json("/api/cluster")
    assert {n["name"]: n["up"] for n in overview["nodes"]} == {"n1": True, "n2": False,
                                                               "n3": True}

    # Started again: up in the cluster, polled again.
    await asyncio.to_thread(nodes["n2"].start)

    async def back() -> Any:
        found = await node_list(console)
        return found["n2"]["down"] is None and found["n2"]["reachable"] and found

    found = await until(back, timeout=20, message="n2 back")
    assert cluster.nodes["n2"].polling
    assert found["n2"]["record"]["pid"] == nodes["n2"].pid

    # Forgotten once down: no longer shown, on the page either.
    for child in kill_node(nodes["n3"]):
        child.kill()

    async def n3_down() -> bool:
        return (await node_list(console))["n3"]["down"] == LEASE_ENDED

    await until(n3_down, timeout=TTL + 20, message="n3 shown down")
    await asyncio.to_thread(nodes["n1"].call, "cluster_forget", name="n3")
    removed = await receive_until(ws, lambda m: m["type"] == "removed", "n3 removed")
    assert removed["node"] == "n3"
    assert sorted(await node_list(console)) == ["n1", "n2"]
    assert (await console.get_json("/api/nodes/n3", 404))["error"] == "no such node"
    await ws.close()


@pytest.mark.asyncio
async def test_a_failed_reading_keeps_the_nodes_and_a_hand_given_name_wins(
        aiohttp_client: Any, daemon: Callable[..., Daemon], etcd: EtcdCluster,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bigtop.web")
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=db"})
    plain = daemon("[watcher:db]\ncmd = sleep 1000\n", where="plain")  # not the cluster's db
    apply(nodes["n1"], WATCHERS)
    await asyncio.to_thread(wait_running, nodes, "db", 1)
    following = Following(nodes["n1"].endpoint, name="shop", every=EVERY)
    cluster = Cluster([Node("n2", plain.endpoint)], following)
    console = await open_console(aiohttp_client, cluster)

    async def listed() -> Any:
        found = await node_list(console)
        return sorted(found) == ["n1", "n2"] and all(n["reachable"] for n in found.values()) \
            and found

    found = await until(listed, timeout=20, message="n1 from the cluster, n2 by hand")
    assert found["n2"]["endpoint"] == plain.endpoint and found["n2"]["source"] == "hand"
    assert found["n1"]["endpoint"] == nodes["n1"].endpoint
    for _ in range(2):  # two more readings: the clash is not logged again
        before = following.read_at

        async def read_again(before: float | None = before) -> bool:
            return following.read_at != before

        await until(read_again, message="another reading of the cluster")
    clashes = [r for r in caplog.records if "the cluster lists a node of that name" in r.message]
    assert len(clashes) == 1 and "n2" in clashes[0].message  # said once, not at every reading
    async def placed() -> Any:
        overview = await console.get_json("/api/cluster")
        where = {w["name"]: w["nodes"] for w in overview["watchers"]}
        return where.get("db", {}).get("n2", {}).get("state") == "running" and overview

    overview = await until(placed, timeout=20, message="db running on the cluster's n2")
    assert overview["name"] == "shop" and overview["cluster"] == "test"
    assert {n["name"]: n["shown"] for n in overview["nodes"]} == {"n1": "cluster", "n2": "hand"}
    db = {w["name"]: w for w in overview["watchers"]}["db"]["nodes"]["n2"]
    assert "status" not in db  # the n2 shown is another daemon: its db is not this one

    # etcd gone: the reading fails, the error is shown, the nodes stay.
    etcd.stop()

    async def failing() -> Any:
        overview = await console.get_json("/api/cluster")
        return overview["error"] and overview

    overview = await until(failing, timeout=20, message="the reading's error")
    assert "etcd" in overview["error"]
    assert [n["name"] for n in overview["nodes"]] == ["n1", "n2"]  # the last good reading
    found = await node_list(console)
    assert sorted(found) == ["n1", "n2"] and found["n1"]["reachable"] is True
    response = await console.post("/api/nodes/n2/watchers/db/incr", {"timeout": 10})
    assert response.status == 200
    await asyncio.to_thread(plain.wait_pids, "db", 2)


def curve_node(daemon: Callable[..., Daemon], etcd: EtcdCluster, tmp_path: Path, name: str,
               authorized: Path) -> tuple[Daemon, str, str]:
    """A node on tcp:// endpoints with a server key of its own, admitting
    the client keys in ``authorized``: the daemon, its endpoint, its public key."""
    public, secret = generate(str(tmp_path / "keys"), name)
    endpoint, pubsub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    text = node_config(etcd, name, "role=web").replace(
        "[circus]\n", f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = {pubsub}\n"
                      f"server_key = {secret}\nauthorized_keys = {authorized}\n", 1)
    return daemon(text + "\n[watcher:solo]\ncmd = sleep 1000\n", where=name), endpoint, public


@pytest.mark.asyncio
async def test_each_node_is_reached_with_the_key_of_its_record(
        aiohttp_client: Any, daemon: Callable[..., Daemon], etcd: EtcdCluster,
        tmp_path: Path) -> None:
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    ops_public, ops_secret = generate(str(tmp_path / "keys"), "ops")
    (authorized / "ops.key").write_bytes(Path(ops_public).read_bytes())
    n1, n1_endpoint, n1_public = curve_node(daemon, etcd, tmp_path, "n1", authorized)
    n2, n2_endpoint, _ = curve_node(daemon, etcd, tmp_path, "n2", authorized)

    def registered() -> bool:
        with Client(n1_endpoint, timeout=5, key=ops_secret, server_key=n1_public) as client:
            return len(client.call("cluster_nodes")["nodes"]) == 2

    wait_for(registered, message="both nodes registered")
    # Only n1's public key is given: n2's comes from its record.
    cluster = Cluster([], Following(n1_endpoint, key=ops_secret, server_key=n1_public,
                                    every=EVERY))
    console = await open_console(aiohttp_client, cluster)

    async def reachable() -> Any:
        found = await node_list(console)
        return sorted(found) == ["n1", "n2"] and all(n["reachable"] for n in found.values()) \
            and found

    found = await until(reachable, timeout=20, message="both nodes reached over CurveZMQ")
    assert found["n2"]["endpoint"] == n2_endpoint
    assert {w["name"] for w in found["n2"]["snapshot"]["watchers"]} == {"solo"}
    # Its events too (the subscriber has the record's key): a spawn on n2.
    ws = await console.client.ws_connect("/ws", headers={"Origin": console.origin})
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    response = await console.post("/api/nodes/n2/watchers/solo/incr", {"timeout": 10})
    assert response.status == 200, await response.text()
    await asyncio.to_thread(n2.wait_pids, "solo", 2)

    def spawned(message: dict[str, Any]) -> bool:
        return message["type"] == "events" and any(
            e["node"] == "n2" and e["topic"] == "watcher.solo.spawn" for e in message["items"])

    await receive_until(ws, spawned, "n2's spawn event")
    await ws.close()
    assert len(n1.pids("solo")) == 1


def test_cluster_option_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIGTOPCTL_ENDPOINT", raising=False)
    ns = cli.parser().parse_args(["--cluster", "shop=tcp://10.0.0.1:5555", "--key", "ops.key"])
    cli.merged(ns, None)
    assert cli.node_specs(ns, None) == []  # no default daemon beside a cluster
    assert cli.following_spec(ns) == {"endpoint": "tcp://10.0.0.1:5555", "name": "shop",
                                      "key": "ops.key", "server_key": None}
    ns = cli.parser().parse_args(["--cluster", "ipc:///run/n1/control.sock",
                                  "--endpoint", "solo=ipc:///run/solo/control.sock"])
    cli.merged(ns, None)
    assert [s["name"] for s in cli.node_specs(ns, None)] == ["solo"]
    follow = cli.following_spec(ns)
    assert follow is not None and follow["name"] is None
    assert follow["endpoint"] == "ipc:///run/n1/control.sock"
    conf = tmp_path / "web.ini"
    conf.write_text("[web]\ncluster = ipc:///run/n1/control.sock\nserver_key = n1.key\n")
    ns = cli.parser().parse_args(["--config", str(conf)])
    file = cli.read_config(ns.config)
    cli.merged(ns, file)
    assert cli.node_specs(ns, file) == []
    follow = cli.following_spec(ns)
    assert follow is not None and follow["server_key"] == "n1.key"
    ns = cli.parser().parse_args(["--cluster", "shop="])
    with pytest.raises(cli.UsageError, match="--cluster needs"):
        cli.following_spec(ns)
