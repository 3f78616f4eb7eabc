"""The charts' history (bigtop/web/history.py) on its own, fed samples by
hand: its tiers' resolution, its bounds, its gaps (never zeros), a rolling
reload's replacements; then GET /api/history and GET /api/options over
aiohttp's test client, and a node sampling a real daemon while no page is
open, without subscribing to its stats."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("pytest_aiohttp")

from bigtop.web.app import make_app  # noqa: E402
from bigtop.web.auth import Auth  # noqa: E402
from bigtop.web.history import (  # noqa: E402
    DEFAULT,
    MAX_SLOTS,
    MAX_WATCHERS,
    History,
    Layout,
    Proc,
    Range,
    Sample,
    Tier,
    layout,
    memory_bound,
    series_bytes,
)
from bigtop.web.nodes import Cluster, Node, build_sample  # noqa: E402

from .conftest import Daemon  # noqa: E402

SMALL = Layout((Tier("fine", 1.0, 10.0), Tier("coarse", 5.0, 60.0)),
               (Range("10m", "10 min", 10.0, "fine"), Range("1h", "1 h", 30.0, "coarse"),
                Range("24h", "24 h", 60.0, "coarse")), idle=1.0)
WIDE = Layout((Tier("fine", 1.0, 60.0), Tier("coarse", 5.0, 120.0)),
              (Range("10m", "10 min", 60.0, "fine"), Range("1h", "1 h", 120.0, "coarse"),
               Range("24h", "24 h", 120.0, "coarse")), idle=1.0)
T0 = 1_000_000.0


def sample(watchers: dict[str, dict[str, tuple[int, float | None, float | None]]],
           daemon: tuple[int, float, float] | None = (1, 0.5, 1e6)) -> Sample:
    return Sample(Proc(*daemon) if daemon else None,
                  {name: {slot: Proc(*proc) for slot, proc in slots.items()}
                   for name, slots in watchers.items()})


def steady(t: float, cpu: float = 10.0) -> Sample:
    return sample({"web": {"1": (100, cpu, 2e6), "2": (101, cpu, 3e6)}, "cron": {}})


# -- tiers ---------------------------------------------------------------------------------

def test_each_tier_keeps_its_span_at_its_step_as_means() -> None:
    history = History(SMALL)
    for i in range(480):  # 120 s, a sample every 0.25 s, CPU alternating 0 and 20
        history.add(T0 + i * 0.25, steady(T0, cpu=20.0 * (i % 2)), 0.25)
    now = T0 + 119.75
    fine = history.read("10m", now)
    coarse = history.read("24h", now)
    assert fine is not None and coarse is not None
    assert fine["step"] == 1.0 and coarse["step"] == 5.0
    # One point a step (the mean time of the 4 or 20 samples in it), the span's worth.
    assert len(fine["t"]) == 10 and len(coarse["t"]) == 12
    for data, step, span in ((fine, 1.0, 10.0), (coarse, 5.0, 60.0)):
        gaps = [b - a for a, b in zip(data["t"], data["t"][1:], strict=False)]
        assert all(abs(g - step) < 1e-6 for g in gaps), gaps
        assert data["t"][0] >= now - span
        web = data["watchers"]["web"]
        assert all(c == 20.0 for c in web["cpu"])  # (0 + 20) / 2, summed over 2 slots
        assert all(r == 5e6 for r in web["rss"])
        assert data["watchers"]["cron"] == {"cpu": [0.0] * len(data["t"]),
                                            "rss": [0.0] * len(data["t"])}  # no process: 0
        assert data["daemon"]["rss"] == [1e6] * len(data["t"])
    assert len(history.read("1h", now)["t"]) == 6  # the coarse tier's last 30 s
    assert history.rings["fine"].n == 120 and history.rings["fine"].capacity == 11


def test_the_default_tiers_are_a_second_for_10_minutes_and_10_s_for_24_hours() -> None:
    fine, coarse = DEFAULT.tiers
    assert (fine.step, fine.span, coarse.step, coarse.span) == (1.0, 600.0, 10.0, 86400.0)
    assert [(r.name, r.seconds, r.tier) for r in DEFAULT.ranges] == [
        ("10m", 600.0, "fine"), ("1h", 3600.0, "coarse"), ("24h", 86400.0, "coarse")]
    assert DEFAULT.idle == 10.0
    scaled = layout(0.05)
    assert scaled.tiers[1].span == pytest.approx(4320.0) and scaled.idle == pytest.approx(0.5)
    assert layout(idle=0).idle == 0


# -- gaps ----------------------------------------------------------------------------------

def test_missing_data_is_a_gap_never_a_zero() -> None:
    history = History(WIDE)
    first = history.add(T0, steady(T0), 1.0)
    assert len(first) == 1  # nothing before the first point: no gap row to send
    history.add(T0 + 1, steady(T0), 1.0)
    # bigtop-web did not read for 6 s (more than 2.5 intervals + 2 s): a gap.
    points = history.add(T0 + 7, steady(T0), 1.0)
    assert len(points) == 2 and points[0]["d"] is None and points[0]["w"] == {}
    assert points[0]["t"] < points[1]["t"]
    history.add(T0 + 8, steady(T0), 1.0)
    # The node was unreachable: whatever comes next comes after a gap.
    history.missing()
    assert len(history.add(T0 + 9, steady(T0), 1.0)) == 2
    # A slow reply within the slack is no gap; neither is idle sampling's pace.
    assert len(history.add(T0 + 13.4, steady(T0), 1.0)) == 1
    assert len(history.add(T0 + 22, steady(T0), 10.0)) == 1
    data = history.read("10m", T0 + 22)
    assert data is not None
    rss = data["watchers"]["web"]["rss"]
    assert rss.count(None) == 2 and all(v is None or v == 5e6 for v in rss)
    assert rss[0] is not None and rss[-1] is not None
    recent = history.recent()
    assert sum(1 for p in recent if p["d"] is None) == 2  # the same rows, live-feed shaped
    assert all(set(p) == {"t", "d", "w", "p"} for p in recent)
    # A figure the daemon could not give is null too, never 0.
    history.add(T0 + 23, sample({"web": {"1": (100, None, None)}}), 1.0)
    last = history.recent()[-1]
    assert last["w"].get("web", [None, None])[:2] == [None, None] and last["p"] == {}
    data = history.read("10m", T0 + 23)
    assert data is not None and data["watchers"]["web"]["rss"][-1] is None


def test_a_clock_going_back_is_a_gap() -> None:
    history = History(SMALL)
    history.add(T0, steady(T0), 1.0)
    assert len(history.add(T0 - 30, steady(T0), 1.0)) == 2


# -- a rolling reload ------------------------------------------------------------------------

def test_a_replaced_process_goes_on_in_its_slot() -> None:
    history = History(SMALL)
    history.add(T0, sample({"web": {"1": (100, 30.0, 4e6), "2": (101, 10.0, 4e6)}}), 1.0)
    # Slot 1 replaced: the newcomer's first reading says 0.0 CPU (no reading
    # before): the slot carries its predecessor's 30 for this one sample.
    history.add(T0 + 1, sample({"web": {"1": (200, 0.0, 1e6), "2": (101, 10.0, 4e6)}}), 1.0)
    history.add(T0 + 2, sample({"web": {"1": (200, 25.0, 3e6), "2": (101, 10.0, 4e6)}}), 1.0)
    # A new slot has no CPU figure at its first reading.
    history.add(T0 + 3, sample({"web": {"1": (200, 25.0, 3e6), "2": (101, 10.0, 4e6),
                                        "3": (300, 0.0, 1e6)}}), 1.0)
    data = history.read("10m", T0 + 3, watcher="WEB")
    assert data is not None
    watcher = data["watcher"]
    assert watcher["name"] == "web"
    assert watcher["cpu"] == [40.0, 40.0, 35.0, 35.0]  # never a dip to 10
    assert watcher["rss"] == [8e6, 5e6, 7e6, 8e6]  # what ran in the slots then
    slots = watcher["slots"]
    assert list(slots) == ["1", "2", "3"]
    assert slots["1"]["pid"] == 200 and slots["1"]["cpu"] == [30.0, 30.0, 25.0, 25.0]
    assert slots["3"]["cpu"] == [None, None, None, None]
    assert slots["3"]["rss"] == [None, None, None, 1e6]
    # The live feed's points name each slot's pid of the time.
    recent = history.recent(watcher="web")
    assert recent[0]["w"][2]["1"][2] == 100 and recent[-1]["w"][2]["1"][2] == 200
    assert set(recent[-1]["p"]) == {"200", "101", "300"}
    assert history.read("10m", T0, watcher="nope") == {**history.read(
        "10m", T0, watcher="nope"), "watcher": None}


def test_the_daemon_infos_make_slots() -> None:
    kid = {"pid": 9, "cpu": 5.0, "mem": 1.0, "rss": 1000}
    infos = {"web": {
        "10": {"pid": 10, "wid": 1, "cpu": 12.0, "mem": 2.0, "rss": 5000, "children": [kid]},
        "11": "No such process (stopped?)"},  # gone since: out of its slot
        "circus": {"12": {"pid": 12, "cpu": 1.0, "mem": 1.0, "rss": 100, "children": [kid]}}}
    built = build_sample(infos, {"pid": 1, "cpu": 0.5, "rss": 77},
                         wids={"circus": {"12": 4}})
    assert built.watchers["web"] == {"1": Proc(10, 12.0, 5000.0)}  # bigtopd: tree figures
    assert built.watchers["circus"] == {"4": Proc(12, 6.0, 1100.0)}  # Circus: + children
    assert built.daemon == Proc(1, 0.5, 77.0)


# -- bounds ----------------------------------------------------------------------------------

def test_watchers_and_slots_kept_are_bounded() -> None:
    history = History(SMALL, max_watchers=3, max_slots=4)
    many = {f"w{i}": {"1": (10 + i, 1.0, 1e6), "2": (20 + i, 1.0, 1e6)} for i in range(5)}
    history.add(T0, sample(many), 1.0)
    kept = {k for k in history.seen if k[0] == "w"}
    assert len(kept) == 3 and len([k for k in history.seen if k[0] == "s"]) == 4
    assert len(history.not_kept["watchers"]) == 2
    data = history.read("10m", T0)
    assert data is not None and len(data["watchers"]) == 3
    assert data["not_kept"]["watchers"] == sorted(history.not_kept["watchers"])
    # A watcher no longer sampled gives its place to a newcomer.
    first = sorted(k[1] for k in kept)
    fewer = {name: many[name] for name in first[1:]}
    fewer["fresh"] = {"1": (99, 1.0, 1e6)}
    history.add(T0 + 1, sample(fewer), 1.0)
    names = {k[1] for k in history.seen if k[0] == "w"}
    assert names == {*first[1:], "fresh"}
    assert all(k[1] != first[0] for k in history.rings["coarse"].series)


def test_memory_stays_within_the_stated_bound() -> None:
    # The figures the docs state: per series in both tiers, per node at most.
    fine, coarse = DEFAULT.tiers
    assert series_bytes(fine) + series_bytes(coarse) == 92_420
    assert series_bytes(fine, slot=True) + series_bytes(coarse, slot=True) == 94_824
    assert memory_bound() == 33_711_026 and (MAX_WATCHERS, MAX_SLOTS) == (100, 256)
    assert memory_bound(watchers=10, slots=20) < 3_100_000
    # Filled past its rings' capacity, with churning watchers, a history holds no more.
    history = History(SMALL, max_watchers=4, max_slots=6)
    for i in range(400):
        names = [f"w{(i // 50 + j) % 7}" for j in range(3)]
        history.add(T0 + i * 0.5, sample({n: {str(s): (i * 10 + s, 1.0, 1e6)
                                             for s in range(1, 4)} for n in names}), 0.5)
        assert history.nbytes() <= memory_bound(SMALL, 4, 6)
    # Series no ring holds a value of any more are gone, not kept forever.
    rings = history.rings.values()
    held = {key for ring in rings for key in ring.series}
    assert held == set(history.seen)
    assert all(any(ring.alive(key) for ring in rings) for key in held)
    assert {k[1] for k in held if k[0] == "w"} < {f"w{i}" for i in range(7)}


# -- the API -------------------------------------------------------------------------------

TOKEN = "history-token-0123"


async def logged_in(aiohttp_client: Any, cluster: Cluster) -> tuple[Any, str]:
    client = await aiohttp_client(make_app(cluster, Auth(TOKEN), start_nodes=False))
    url = client.make_url("/")
    origin = f"{url.scheme}://{url.host}:{url.port}"
    response = await client.post("/login", data={"token": TOKEN}, headers={"Origin": origin},
                                 allow_redirects=False)
    assert response.status == 303
    return client, origin


@pytest.mark.asyncio
async def test_history_api_validates_its_input(aiohttp_client: Any) -> None:
    node = Node("n1", "ipc:///nonexistent/control.sock", history=SMALL)
    now = time.time()
    for i in range(5):
        node.history.add(now - 5 + i, steady(now), 1.0)
    client, _ = await logged_in(aiohttp_client, Cluster([node], history=SMALL))

    async def get(query: str, status: int) -> Any:
        response = await client.get(f"/api/history{query}")
        assert response.status == status, (query, await response.text())
        return await response.json()

    data = await get("?node=n1&range=1h", 200)
    assert data["ok"] and data["node"] == "n1" and data["range"] == "1h"
    assert data["seconds"] == 30.0 and data["step"] == 5.0 and data["t"]
    assert set(data["watchers"]) == {"web", "cron"} and "daemon" in data
    assert (await get("?node=n1", 200))["range"] == "10m"  # the default
    one = await get("?node=n1&range=10m&watcher=web", 200)
    assert set(one["watcher"]["slots"]) == {"1", "2"} and len(one["watcher"]["rss"]) == 5
    assert (await get("?node=n1&range=1w", 400))["error"] == (
        "unknown range '1w': the range is one of 10m, 1h, 24h")
    long = await get("?node=n1&range=" + "x" * 500, 400)
    assert len(long["error"]) < 100
    assert (await get("?range=1h", 400))["error"] == "node is required"
    assert "unknown parameter 'nodes'" in (await get("?nodes=n1", 400))["error"]
    assert "once" in (await get("?node=n1&range=1h&range=24h", 400))["error"]
    assert (await get("?node=n2", 404))["error"] == "no such node"
    assert "no history of a watcher 'nope' on n1" in (
        await get("?node=n1&watcher=nope", 404))["error"]
    session = await (await client.get("/api/session")).json()
    assert [r["name"] for r in session["history"]["ranges"]] == ["10m", "1h", "24h"]
    assert session["history"]["idle"] == 1.0


@pytest.mark.asyncio
async def test_option_table_is_served_from_the_config_model(aiohttp_client: Any) -> None:
    from bigtop.config.options import table

    client, _ = await logged_in(aiohttp_client, Cluster([], history=SMALL))
    data = await (await client.get("/api/options")).json()
    options = data["options"]
    assert set(table("watcher")) <= set(options)
    graceful = options["graceful_timeout"]
    assert graceful["default"] == 30.0 and graceful["doc"] == table("watcher")[
        "graceful_timeout"].doc
    assert options["stop_signal"]["signal"] is True and options["stop_signal"]["default"] == 15
    assert options["numprocesses"]["signal"] is False
    assert options["stdout_stream_conf"]["alias"] == "stdout_stream"
    assert data["signals"]["15"] == "SIGTERM" and data["signals"]["2"] == "SIGINT"
    assert options["sockets"]["default"] == [] and options["ready"]["default"] == "spawned"
    # Behind the session, like the rest of the API.
    anonymous = await aiohttp_client(make_app(Cluster([], history=SMALL), Auth(TOKEN),
                                              start_nodes=False))
    for path in ("/api/options", "/api/history?node=n1"):
        response = await anonymous.get(path)
        assert response.status == 401, path


# -- a node sampling a daemon while nobody looks ---------------------------------------------

@pytest.mark.asyncio
async def test_an_idle_node_samples_without_subscribing(daemon: Callable[..., Daemon],
                                                         tmp_path: Path) -> None:
    d = daemon(f"[watcher:web]\ncmd = {sys.executable} -c \"import time; time.sleep(600)\"\n"
               "numprocesses = 2\n")
    d.wait_pids("web", 2)
    node = Node("local", d.endpoint, history=layout(0.05))  # an idle sample every 0.5 s
    node.start()
    try:
        await asyncio.sleep(3.2)
        data = node.history.read("10m", time.time())
        assert data is not None
        assert 5 <= len(data["t"]) <= 9, data["t"]
        # Every 0.5 s, at the middle of each step: one point in each step.
        steps = [math.floor(t / 0.5) for t in data["t"][1:]]
        assert steps == list(range(steps[0], steps[0] + len(steps))), data["t"]
        assert None not in data["watchers"]["web"]["rss"]
        assert min(data["watchers"]["web"]["rss"]) > 0
        # Nobody subscribed: the daemon sampled only when asked.
        sampler = d.call("dstats")["sampler"]
        assert sampler["publishing"] is False and sampler["subscriptions"] == []
        assert sampler["rounds"] == 0 and sampler["queries"] >= 2 * len(data["t"])
        assert not math.isnan(node.history.rings["fine"].times[0])
    finally:
        await node.close()
