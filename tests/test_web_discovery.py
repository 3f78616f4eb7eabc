"""bigtop-web finding nodes on the LAN (``--discover``): real bigtopd on
tcp:// endpoints answering Circus's probe on a private multicast group
(TTL 0: nothing leaves this host; tests/test_discovery.py's helpers), the
real aiohttp app. A daemon heard is shown with its source, a second one
too, a stopped one is dropped once silent ``forget_after`` probes in a
row, and an endpoint shown already (given by hand, or a cluster's node)
is not shown twice."""

from __future__ import annotations

import asyncio
import configparser
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("pytest_aiohttp")

from bigtop.client.discovery import DEFAULT_ENDPOINT  # noqa: E402
from bigtop.web import cli  # noqa: E402
from bigtop.web.nodes import Cluster, Discovering, Following, Node  # noqa: E402

from .clusters import node_config  # noqa: E402
from .conftest import Daemon, free_port  # noqa: E402
from .etcd import EtcdCluster  # noqa: E402
from .test_discovery import fresh_group, loops, tcp_daemon  # noqa: E402, F401 (loops: a fixture)
from .test_web import until  # noqa: E402
from .test_web_cluster import node_list, open_console, receive_until  # noqa: E402

EVERY = 0.2  # seconds between two probes, in these tests
PROBE_TIMEOUT = 0.5  # seconds a probe waits for its answers (on loopback they take ms)
FORGET_AFTER = 3  # silent probes in a row before a node is dropped
WAIT = 30.0  # seconds a condition may take on a loaded machine


def discovering(group: str, **kw: Any) -> Discovering:
    """The LAN of these tests: a private group, probes that stay on this host."""
    return Discovering(group, every=EVERY, timeout=PROBE_TIMEOUT, forget_after=FORGET_AFTER,
                       ttl=0, **kw)


async def probes_after(lan: Discovering, count: int) -> None:
    """Until ``count`` more probes have been made and followed."""
    target = lan.probes + count + 1  # the one under way may have started before

    async def done() -> bool:
        return lan.probes >= target

    await until(done, timeout=WAIT, message=f"{count} more probes")


@pytest.mark.asyncio
@pytest.mark.usefixtures("loops")  # multicast loops back here, else skipped
async def test_daemons_heard_are_shown_and_the_silent_dropped(
        aiohttp_client: Any, daemon: Callable[..., Daemon]) -> None:
    group = fresh_group()
    first, port1 = tcp_daemon(daemon, group)
    lan = discovering(group)
    cluster = Cluster([], None, lan)
    console = await open_console(aiohttp_client, cluster)
    session = await console.get_json("/api/session")
    assert session["cluster"] is False
    assert session["discovery"]["group"] == group
    assert session["discovery"]["forget_after"] == FORGET_AFTER
    name1, endpoint1 = f"127.0.0.1:{port1}", f"tcp://127.0.0.1:{port1}"

    async def first_shown() -> Any:
        found = await node_list(console)
        return name1 in found and found[name1]["reachable"] and found

    found = await until(first_shown, timeout=WAIT, message="the daemon heard, reachable")
    assert sorted(found) == [name1]
    shown = found[name1]
    assert shown["source"] == "discovered" and shown["endpoint"] == endpoint1
    assert shown["down"] is None and shown["record"] is None
    assert {w["name"] for w in shown["snapshot"]["watchers"]} == {"one"}
    assert (await console.get_json("/api/session"))["discovery"]["heard"] == [endpoint1]

    ws = await console.client.ws_connect("/ws", headers={"Origin": console.origin})
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello" and hello["discovery"]["group"] == group
    assert [(n["name"], n["source"]) for n in hello["nodes"]] == [(name1, "discovered")]

    # A second daemon on the group: added, on the page too.
    second, port2 = await asyncio.to_thread(
        tcp_daemon, lambda text: daemon(text, where="second"), group)
    name2 = f"127.0.0.1:{port2}"
    added = await receive_until(ws, lambda m: m["type"] == "added", "the second one added")
    assert added["node"]["name"] == name2 and added["node"]["source"] == "discovered"
    assert added["node"]["endpoint"] == f"tcp://127.0.0.1:{port2}"

    async def both_reachable() -> Any:
        found = await node_list(console)
        return sorted(found) == sorted([name1, name2]) \
            and all(n["reachable"] for n in found.values()) and found

    await until(both_reachable, timeout=WAIT, message="both daemons reachable")
    response = await console.post(f"/api/nodes/{name2}/watchers/one/incr", {"timeout": 10})
    assert response.status == 200, await response.text()  # reached: driven as any node
    await asyncio.to_thread(second.wait_pids, "one", 2)

    # Stopped: silent from then on, dropped after FORGET_AFTER probes, on the page too.
    await asyncio.to_thread(first.stop)
    stopped_at = lan.probes
    removed = await receive_until(ws, lambda m: m["type"] == "removed", "the stopped one removed")
    assert removed["node"] == name1
    assert lan.probes >= stopped_at + FORGET_AFTER
    assert name1 not in cluster.nodes
    assert (await console.get_json(f"/api/nodes/{name1}", 404))["error"] == "no such node"

    async def second_only() -> Any:
        found = await node_list(console)
        return sorted(found) == [name2] and found[name2]["reachable"] and found

    await until(second_only, timeout=WAIT, message="the second one alone")
    await ws.close()


@pytest.mark.asyncio
@pytest.mark.usefixtures("loops")  # multicast loops back here, else skipped
async def test_an_endpoint_given_by_hand_is_not_shown_twice(
        aiohttp_client: Any, daemon: Callable[..., Daemon],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bigtop.web")
    group = fresh_group()
    first, port1 = tcp_daemon(daemon, group)
    second, port2 = tcp_daemon(lambda text: daemon(text, where="second"), group)
    endpoint1, name2 = f"tcp://127.0.0.1:{port1}", f"127.0.0.1:{port2}"
    lan = discovering(group)
    # "mine" is the first daemon, given by hand; the second daemon's name,
    # host:port, is taken by hand too, by an endpoint where nothing listens.
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    cluster = Cluster([Node("mine", endpoint1), Node(name2, nowhere)], None, lan)
    added: list[Node] = []

    def on_cluster(kind: str, node: Node | None) -> None:
        if kind == "added" and node is not None:
            added.append(node)

    cluster.listeners.append(on_cluster)
    console = await open_console(aiohttp_client, cluster)

    async def second_heard() -> Any:
        found = await node_list(console)
        return f"{name2}-2" in found and found[f"{name2}-2"]["reachable"] and found

    found = await until(second_heard, timeout=WAIT, message="the second daemon heard")
    await probes_after(lan, 3)  # the first daemon answers each of them
    found = await node_list(console)
    assert sorted(found) == sorted(["mine", name2, f"{name2}-2"])
    assert found["mine"]["source"] == "hand" and found["mine"]["reachable"] is True
    assert found[name2]["source"] == "hand" and found[name2]["endpoint"] == nowhere
    assert found[f"{name2}-2"]["source"] == "discovered"
    assert found[f"{name2}-2"]["endpoint"] == f"tcp://127.0.0.1:{port2}"
    assert [n.endpoint for n in added] == [f"tcp://127.0.0.1:{port2}"]  # never the first
    assert sorted(lan.heard) == sorted([endpoint1, f"tcp://127.0.0.1:{port2}"])
    told = [r.getMessage() for r in caplog.records if "shown already" in r.getMessage()]
    assert told == [f"{endpoint1}: heard on the LAN, and shown already as mine"]  # said once
    overview = await console.get_json("/api/cluster")
    assert overview == {"following": False}


@pytest.mark.asyncio
@pytest.mark.usefixtures("loops")  # multicast loops back here, else skipped
async def test_a_node_heard_gives_way_to_the_clusters_node_at_its_endpoint(
        aiohttp_client: Any, daemon: Callable[..., Daemon], etcd: EtcdCluster) -> None:
    """Heard before the cluster is read: shown as heard, then as the
    cluster's node once a reading lists it (and no longer as heard)."""
    group = fresh_group()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    text = node_config(etcd, "n1", "role=web").replace(
        "[circus]\n", f"[circus]\nendpoint = {endpoint}\ninsecure = true\n"
                      f"multicast_endpoint = {group}\n", 1)
    daemon(text + "\n[watcher:solo]\ncmd = sleep 1000\n", where="n1")
    heard_as = endpoint[len("tcp://"):]
    lan = discovering(group)
    cluster = Cluster([], None, lan)
    console = await open_console(aiohttp_client, cluster)

    async def heard() -> Any:
        found = await node_list(console)
        return sorted(found) == [heard_as] and found[heard_as]["reachable"] and found

    found = await until(heard, timeout=WAIT, message="n1 heard on the LAN")
    assert found[heard_as]["source"] == "discovered" and found[heard_as]["record"] is None
    ws = await console.client.ws_connect("/ws", headers={"Origin": console.origin})
    assert (await ws.receive_json(timeout=10))["type"] == "hello"

    # Now the cluster is followed too (as when its first reading comes late).
    cluster.following = Following(endpoint, every=EVERY)
    cluster.following.start(cluster)
    changes = [await receive_until(ws, lambda m: m["type"] in ("added", "removed"), "a change")
               for _ in range(2)]
    assert [(m["type"], m["node"] if m["type"] == "removed" else m["node"]["name"])
            for m in changes] == [("added", "n1"), ("removed", heard_as)]

    async def the_clusters() -> Any:
        found = await node_list(console)
        return sorted(found) == ["n1"] and found["n1"]["reachable"] and found

    found = await until(the_clusters, timeout=WAIT, message="n1, the cluster's")
    assert found["n1"]["source"] == "cluster" and found["n1"]["endpoint"] == endpoint
    await probes_after(lan, 3)
    assert lan.heard == [endpoint]  # heard all along, and not shown a second time
    found = await node_list(console)
    assert sorted(found) == ["n1"] and found["n1"]["source"] == "cluster"
    await ws.close()


def test_discover_option_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIGTOPCTL_ENDPOINT", raising=False)
    ns = cli.parser().parse_args(["--discover", "--key", "ops.key"])
    cli.merged(ns, None)
    assert cli.node_specs(ns, None) == []  # no default daemon beside the LAN's
    spec = cli.discovery_spec(ns)
    assert spec == {"group": DEFAULT_ENDPOINT, "key": "ops.key", "server_key": None}
    lan = Discovering(**spec)  # what serve() makes of it (not started: nothing is sent)
    assert (lan.group, lan.key, lan.every, lan.forget_after) == (DEFAULT_ENDPOINT, "ops.key",
                                                                 10.0, 3)
    assert lan.follower.ttl == 1  # the local network only
    ns = cli.parser().parse_args(["--discover", "udp://239.255.7.7:4000",
                                  "--endpoint", "solo=ipc:///run/solo/control.sock"])
    cli.merged(ns, None)
    assert [s["name"] for s in cli.node_specs(ns, None)] == ["solo"]
    spec = cli.discovery_spec(ns)
    assert spec is not None and spec["group"] == "udp://239.255.7.7:4000"
    ns = cli.parser().parse_args([])
    cli.merged(ns, None)
    assert cli.discovery_spec(ns) is None

    def from_file(value: str, *argv: str) -> dict[str, Any] | None:
        conf = tmp_path / "web.ini"
        conf.write_text(f"[web]\ndiscover = {value}\nserver_key = lan.key\n")
        ns = cli.parser().parse_args(["--config", str(conf), *argv])
        file: configparser.ConfigParser | None = cli.read_config(ns.config)
        cli.merged(ns, file)
        return cli.discovery_spec(ns)

    assert from_file("udp://239.255.8.8:5000") == {"group": "udp://239.255.8.8:5000",
                                                   "key": None, "server_key": "lan.key"}
    for yes in ("yes", "true", "On", "1"):
        spec = from_file(yes)
        assert spec is not None and spec["group"] == DEFAULT_ENDPOINT
    for no in ("no", "off", "false", "0", ""):
        assert from_file(no) is None
    spec = from_file("off", "--discover", "udp://239.255.9.9:6000")  # the command line wins
    assert spec is not None and spec["group"] == "udp://239.255.9.9:6000"
    for bad in ("udp://10.0.0.1:12027", "tcp://239.255.1.1:1", "239.255.1.1"):
        with pytest.raises(cli.UsageError, match="^--discover: multicast endpoint"):
            from_file(bad)
