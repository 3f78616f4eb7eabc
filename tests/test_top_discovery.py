"""bigtop-top finding nodes on the LAN (``--discover``): real bigtopd
daemons answering Circus's multicast probe, the textual app driven
headless by its pilot as in test_top.py.

Multicast stays on this host: the app's probes go out with a TTL of 0 and
each test probes a group and port of its own (test_discovery.py's
helpers), and the tests that need the probes to loop back are skipped
where they do not (its ``loops`` fixture). The follower probes every 0.2 s
here, not every 10 s; the tests wait on what the screen shows and on the
count of probes done, never on a time.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bigtop.cli.top import make_app
from bigtop.cli.top.app import TopApp
from bigtop.cli.top.model import NodeState, follow_cluster, follow_discovery
from bigtop.cli.top.view import build_rows
from bigtop.client import generate
from bigtop.client.directory import ClusterNode, ClusterView
from bigtop.client.discovery import DEFAULT_ENDPOINT

from .conftest import Daemon, free_port
from .test_discovery import fresh_group, loops, tcp_daemon  # noqa: F401  (loops: a fixture)
from .test_top import drive, node_state, select, until

Factory = Callable[..., Daemon]
FORGET_AFTER = 3  # silent probes in a row before a node goes (the default too)
WAIT = 30.0  # seconds a condition may take on a loaded machine


def discover_app(group: str, *argv: str) -> TopApp:
    app = make_app(["--discover", group, "--interval", "0.3", "--timeout", "3", *argv])
    follower = app.discovery
    assert follower is not None
    follower.every = 0.2  # probe often: the tests wait on it
    follower.ttl = 0  # this host only
    follower.forget_after = FORGET_AFTER
    return app


def row(app: TopApp, name: str, node: str, lan: bool = True) -> str | None:
    """The screen line of a watcher's row on a node (NODE first); ``lan``:
    the node is marked as found on the LAN (else it must not be)."""
    mark = " lan" if lan else ""
    found = re.search(rf"^ {re.escape(node)}{mark} +[▸▾ ] {re.escape(name)} .*$",
                      app.screen_text(), re.M)
    return found.group(0) if found else None


def status(app: TopApp, label: str) -> str:
    found = re.search(rf"^ [●○◌] {re.escape(label)} .*$", app.screen_text(), re.M)
    return found.group(0) if found else ""


def shown_at(app: TopApp, endpoint: str) -> list[NodeState]:
    return [n for n in app.nodes if n.endpoint == endpoint]


def second_daemon(daemon: Factory, group: str, where: str) -> tuple[Daemon, int]:
    """Another daemon answering in the group, in a directory of its own."""
    return tcp_daemon(functools.partial(daemon, where=where), group)


# -- on real daemons ---------------------------------------------------------------------

@pytest.mark.usefixtures("loops")
def test_daemons_heard_come_and_stopped_ones_go(daemon: Factory) -> None:
    group = fresh_group()
    first, port1 = tcp_daemon(daemon, group)
    app = discover_app(group)
    label1 = f"127.0.0.1:{port1}"

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: row(app, "one", label1) and "active" in (
            row(app, "one", label1) or ""), "the daemon heard, its watcher shown", WAIT)
        assert node_state(app, re.escape(label1)) == "connected"
        assert "found on the LAN" in status(app, label1)
        text = app.screen_text()
        assert f"LAN {group} · 1 node found · probing every 0.2s" in text, text
        header = next(line for line in text.splitlines() if "WATCHER" in line)
        assert header.split()[0] == "NODE"
        assert [(n.label, n.discovered, n.cluster_name) for n in app.nodes] == [
            (label1, True, None)], "found on the LAN: never a cluster node"

        # A second daemon starts: it is heard too, and driven like any node.
        second, port2 = await asyncio.to_thread(second_daemon, daemon, group, "second")
        label2 = f"127.0.0.1:{port2}"
        await until(pilot, lambda: row(app, "one", label2) and "active" in (
            row(app, "one", label2) or ""), "the second daemon heard", WAIT)
        assert row(app, "one", label1) and "2 nodes found" in app.screen_text()
        await select(pilot, "one", node=label2)
        await pilot.press("plus")
        await until(pilot, lambda: len(second.pids("one")) == 2, "one scaled on the second")
        await until(pilot, lambda: "2/2" in (row(app, "one", label2) or ""), "2/2 on screen")
        assert len(first.pids("one")) == 1

        # It stops: kept while silent for fewer than forget_after probes, then gone.
        await asyncio.to_thread(second.stop)
        before = app.probes
        link = app.links[shown_at(app, f"tcp://{label2}")[0].id]
        await until(pilot, lambda: not shown_at(app, f"tcp://{label2}"),
                    "the stopped daemon forgotten", WAIT)
        assert app.probes - before >= FORGET_AFTER, "not before forget_after silent probes"
        assert link.task is not None
        await until(pilot, lambda: link.task is not None and link.task.done(),
                    "its link closed")
        await until(pilot, lambda: row(app, "one", label2) is None
                    and not status(app, label2) and "1 node found" in app.screen_text(),
                    "gone from the screen")
        assert row(app, "one", label1) and node_state(app, re.escape(label1)) == "connected"

    drive(app, script)


@pytest.mark.usefixtures("loops")
def test_an_endpoint_given_by_hand_is_not_shown_twice(daemon: Factory) -> None:
    """The daemon given with --endpoint (no name: its label is the one a
    discovered node would get) answers the probe too: it stays the one
    node at its endpoint, not marked; another daemon is found beside it."""
    group = fresh_group()
    given, port1 = tcp_daemon(daemon, group)
    other, port2 = second_daemon(daemon, group, "other")
    hand = f"tcp://127.0.0.1:{port1}"
    app = discover_app(group, "--endpoint", hand)
    label1, label2 = f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"

    def heard_both() -> bool:
        heard = app.heard
        return heard is not None and heard.heard == 2 and heard.shown_already == 1

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: "active" in (row(app, "one", label1, lan=False) or "")
                    and "active" in (row(app, "one", label2) or "") and heard_both(),
                    "the given node, and the other one found", WAIT)
        probes = app.probes
        await until(pilot, lambda: app.probes >= probes + 2 and heard_both(),
                    "two more probes that heard both", WAIT)
        assert [(n.label, n.discovered) for n in shown_at(app, hand)] == [(label1, False)]
        assert [n.label for n in app.nodes] == [label1, label2], "given first, then found"
        text = app.screen_text()
        assert f"{label1}#2" not in text and row(app, "one", label1) is None, text
        assert "found on the LAN" not in status(app, label1)
        assert "found on the LAN" in status(app, label2)
        assert f"LAN {group} · 1 node found, 1 more shown already" in text, text

    drive(app, script)


@pytest.mark.usefixtures("loops")
def test_a_daemon_with_keys_is_reached_with_key_and_server_key(
        daemon: Factory, tmp_path: Path) -> None:
    ops_public, ops_secret = generate(str(tmp_path / "ops"), "ops")
    keys = tmp_path / "server-keys"
    (keys / "authorized").mkdir(parents=True)
    os.link(ops_public, keys / "authorized" / "ops.key")
    public, secret = generate(str(keys), "server")
    group, port = fresh_group(), free_port()
    keyed = daemon(f"""
        [circus]
        endpoint = tcp://127.0.0.1:{port}
        pubsub_endpoint = tcp://127.0.0.1:{free_port()}
        server_key = {secret}
        authorized_keys = {keys / 'authorized'}
        multicast_endpoint = {group}

        [watcher:one]
        cmd = sleep 1000
    """)
    label = f"127.0.0.1:{port}"
    app = discover_app(group, "--key", ops_secret, "--server-key", public)

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: "active" in (row(app, "one", label) or ""),
                    "the keyed daemon heard and reached", WAIT)
        assert node_state(app, re.escape(label)) == "connected"
        await select(pilot, "one", node=label)
        await pilot.press("plus")
        await until(pilot, lambda: len(keyed.pids("one")) == 2, "one scaled over CurveZMQ")
        await until(pilot, lambda: "2/2" in (row(app, "one", label) or ""), "2/2 on screen")

    drive(app, script)


def test_discover_alone_shows_no_default_node() -> None:
    """Nobody in the group: no node at all (not the default endpoint), and
    the status line says so once a probe is done."""
    group = fresh_group()
    app = discover_app(group)
    assert app.nodes == [] and app.multi()

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: app.probes >= 2
                    and f"LAN {group} · 0 nodes found" in app.screen_text(),
                    "two probes, nothing heard", WAIT)
        assert app.nodes == [] and app.links == {}

    drive(app, script)


# -- without daemons ---------------------------------------------------------------------

def found(label: str, endpoint: str, id: int) -> NodeState:
    state = NodeState(label, endpoint, id=id)
    state.discovered = True
    return state


def test_follow_discovery_adds_drops_and_what_is_shown_wins() -> None:
    hand = NodeState("hand", "tcp://10.0.0.1:5555", id=0)
    lan = found("10.0.0.2:5555", "tcp://10.0.0.2:5555", id=1)
    heard = follow_discovery([hand, lan], ["tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555",
                                           "tcp://10.0.0.3:5555", "ipc:///run/x.sock",
                                           "tcp://10.0.0.3:5555"])
    assert heard.add == ["tcp://10.0.0.3:5555"] and heard.drop == []
    assert (heard.heard, heard.shown_already, heard.not_tcp, heard.over) == (3, 1, 1, 0)
    heard = follow_discovery([hand, lan], ["tcp://10.0.0.1:5555"])
    assert heard.drop == [lan] and heard.add == [], "forgotten by the follower: dropped"
    assert follow_discovery([hand], []).drop == [], "the given one is never dropped"
    twin = found("10.0.0.1:5555#2", "tcp://10.0.0.1:5555", id=2)
    assert follow_discovery([hand, twin], ["tcp://10.0.0.1:5555"]).drop == [twin], \
        "one at an endpoint shown otherwise goes"
    many = [f"tcp://10.0.1.{n}:5555" for n in range(10)]
    heard = follow_discovery([lan], ["tcp://10.0.0.2:5555", *many], limit=4)
    assert heard.add == many[:3] and heard.over == 7, "at most limit found nodes"


def test_a_found_node_is_never_a_cluster_node() -> None:
    n1 = ClusterNode("n1", "tcp://10.0.0.1:5555", True, server_key="k" * 40)
    lan = found("10.0.0.1:5555", "tcp://10.0.0.1:5555", id=0)  # at n1's endpoint
    named = found("n2", "tcp://10.0.0.9:5555", id=1)  # labelled as a cluster node
    changes = follow_cluster([lan, named], ClusterView("test", "n1", {
        "n1": n1, "n2": ClusterNode("n2", "tcp://10.0.0.2:5555", True)}, {}))
    assert changes.add == [n1, ClusterNode("n2", "tcp://10.0.0.2:5555", True)]
    assert changes.drop == [lan], "it gives way to the cluster's node at its endpoint"
    assert lan.cluster_name is None and named.cluster_name is None
    assert named.record is None
    # n1 given by hand through a tunnel stands for n1: the daemon heard at
    # n1's own endpoint is shown beside it (endpoints compared as written),
    # and stays, else each reading and probe would drop and add it again.
    tunnel = NodeState("n1", "tcp://127.0.0.1:6000", id=2)
    changes = follow_cluster([tunnel, lan], ClusterView("test", "n1", {"n1": n1}, {}))
    assert changes.add == [] and changes.drop == [] and tunnel.cluster_name == "n1"
    assert follow_discovery([tunnel, lan], [lan.endpoint]).drop == []


def test_a_found_node_is_marked_lan() -> None:
    lan = found("10.0.0.2:5555", "tcp://10.0.0.2:5555", id=3)
    lan.connected("0.1.0")
    lan.apply_status({"details": {"web": {"status": "active", "running": 1, "wanted": 1}}})
    hand = NodeState("hand", "tcp://10.0.0.1:5555", id=4)
    cells = [r.cells["node"].plain for r in build_rows([lan, hand], empty_nodes=True)]
    assert cells == ["10.0.0.2:5555 lan", "hand"]


def test_discover_options() -> None:
    app = make_app(["--discover"])
    assert app.discovery is not None and app.discovery.endpoint == DEFAULT_ENDPOINT
    assert app.nodes == [] and app.multi(), "no default node beside the LAN's"
    assert app.discovery.every == 10.0 and app.discovery.ttl == 1
    group = fresh_group()
    app = make_app(["--discover", group, "--endpoint", "a=ipc:///y/c.sock", "--timeout", "2",
                    "--key", "/k/ops.key_secret", "--server-key", "/k/server.key"])
    assert app.discovery is not None and app.discovery.endpoint == group
    assert [n.label for n in app.nodes] == ["a"]
    base = app.discover_session
    assert base is not None and (base.timeout, base.key, base.server_key) == (
        2.0, "/k/ops.key_secret", "/k/server.key")
    app = make_app(["--endpoint", "ipc:///y/c.sock", "--discover", group,
                    "--pubsub-endpoint", "ipc:///y/e.sock"])
    assert app.sessions[0].pubsub_option == "ipc:///y/e.sock", "it is the given node's"
    for bad in ("udp://10.0.0.1:12027", "tcp://239.1.2.3:1", "udp://239.1.2.3"):
        with pytest.raises(SystemExit):
            make_app(["--discover", bad])
    assert make_app([]).discovery is None
