"""The placement function alone: labels, counts, spread, conflicts,
stability and grace."""

from __future__ import annotations

from bigtop.cluster.placement import place
from bigtop.config.cluster import read_placement

NODES = {"a1": {"role": "web", "zone": "a"}, "a2": {"role": "web", "zone": "a"},
         "b1": {"role": "web", "zone": "b"}, "d1": {"role": "db", "zone": "b"}}


def p(**raw: object):  # type: ignore[no-untyped-def]
    return read_placement("w", {k: str(v) for k, v in raw.items()})


def test_labels_count_and_every_node() -> None:
    desired = {"web": p(nodes=2, constraints="role=web"), "db": p(constraints="role=db"),
               "agent": p(nodes="all"), "notdb": p(nodes="all", constraints="role!=db")}
    result = place(desired, NODES, {})
    assert len(result["web"]) == 2 and result["web"] <= {"a1", "a2", "b1"}
    assert result["db"] == {"d1"}
    assert result["agent"] == set(NODES)
    assert result["notdb"] == {"a1", "a2", "b1"}


def test_spread_puts_one_per_zone_first() -> None:
    result = place({"web": p(nodes=2, constraints="role=web", spread="zone")}, NODES, {})
    assert {NODES[n]["zone"] for n in result["web"]} == {"a", "b"}


def test_conflicts_hold_both_ways() -> None:
    desired = {"a": p(conflicts="b"), "b": p(), "c": p(nodes=4)}
    result = place(desired, NODES, {})
    assert not result["a"] & result["b"]
    result = place({"x": p(nodes=4), "y": p(conflicts="x")}, NODES, {})
    assert result["y"] == set()  # nowhere left to go: unplaced, not together


def test_a_watcher_stays_where_it_runs() -> None:
    desired = {"web": p(nodes=1, constraints="role=web")}
    assert place(desired, NODES, {"web": {"b1"}}) == {"web": {"b1"}}
    # Its node gone: it moves; its node held (down, in grace): it stays.
    up = {n: v for n, v in NODES.items() if n != "b1"}
    assert place(desired, up, {"web": {"b1"}})["web"] in ({"a1"}, {"a2"})
    assert place(desired, up, {"web": {"b1"}}, held={"b1"}) == {"web": {"b1"}}


def test_fewer_wanted_leaves_down_nodes_first() -> None:
    up = {n: v for n, v in NODES.items() if n != "a1"}
    result = place({"w": p(nodes=2)}, up, {"w": {"a1", "a2", "b1"}}, held={"a1"})
    assert result["w"] == {"a2", "b1"}


def test_load_evens_out() -> None:
    desired = {f"w{i}": p() for i in range(8)}
    result = place(desired, NODES, {})
    per_node = [sum(n in nodes for nodes in result.values()) for n in NODES]
    assert per_node == [2, 2, 2, 2]
