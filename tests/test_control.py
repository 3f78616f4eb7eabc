"""The control server and clients, end to end (bigtop's own client; the
Circus tools are in test_circus_compat)."""

from __future__ import annotations

import asyncio

import pytest

from bigtop.client import AsyncClient, CallError, Client, CommandFailed

from .conftest import wait_for


def test_async_client(daemon):
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        numprocesses = 2
    """)
    d.wait_pids("web", 2)

    async def talk() -> tuple[dict, dict, list]:
        async with AsyncClient(d.endpoint, timeout=5) as client:
            status, incr = await asyncio.gather(
                client.call("status", name="web"),
                client.call("incr", name="web", nb=2, waiting=True))
            lists = await asyncio.gather(*(client.call("list") for _ in range(20)))
            with pytest.raises(CommandFailed) as failed:
                await client.call("status", name="nope")
            assert failed.value.errno == 3
            return status, incr, lists

    status, incr, lists = asyncio.run(talk())
    assert status["status"] == "active"
    assert incr["numprocesses"] == 4
    assert all(reply["watchers"] == ["web"] for reply in lists)
    d.wait_pids("web", 4)


def test_unreachable_daemon_times_out(tmp_path):
    with Client(f"ipc://{tmp_path}/nothing.sock", timeout=0.3) as client, \
            pytest.raises(CallError, match="timed out"):
        client.call("status")


def test_set_checks_everything_before_changing_anything(daemon):
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        numprocesses = 2
    """)
    pids = d.wait_pids("web", 2)
    client = d.client()
    with pytest.raises(CommandFailed, match="'lots' is not an integer"):
        client.call("set", name="web", options={"graceful_timeout": 3, "numprocesses": "lots"})
    assert client.call("get", name="web", keys=["graceful_timeout"])["options"] == {
        "graceful_timeout": 30.0}
    # A new command line replaces the processes gracefully.
    client.call("set", name="web", options={"cmd": "sleep 2000"}, waiting=True)
    new = d.wait_pids("web", 2)
    assert not new & pids
    assert all(p.cmdline() == ["sleep", "2000"] for p in d.children("web"))


def test_set_with_a_broken_command_keeps_the_old_processes(daemon):
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        ready = delay:0.2
        ready_timeout = 2
    """)
    pids = d.wait_pids("web", 1)
    client = d.client()
    with pytest.raises(CommandFailed, match="reload aborted"):
        client.call("set", name="web", options={"cmd": "sh -c 'exit 3'"}, waiting=True)
    assert d.pids("web") == pids
    assert client.call("get", name="web", keys=["cmd"])["options"]["cmd"] == "sleep 1000"


@pytest.mark.parametrize("asked_by", ["request", "config"])
def test_rolling_reload_waits_for_readiness(daemon, asked_by):
    d = daemon(f"""
        [watcher:web]
        cmd = sleep 1000
        numprocesses = 3
        ready = delay:0.3
        rolling_reload = {str(asked_by == "config").lower()}
    """)
    old = d.wait_pids("web", 3)
    client = d.client(timeout=20)
    with d.events("watcher.web.") as ev:
        asked = {"rolling": True} if asked_by == "request" else {}
        reply = client.call("reload", name="web", waiting=True, **asked)
        ev.wait("watcher.web.reload")
        events = [topic.rsplit(".", 1)[1] for topic, _ in ev.sync()]
    assert events[-1] == "reload", events
    info = reply["info"]
    assert set(info["stopped"]) == old and len(info["started"]) == 3 and not info["kept"]
    assert d.pids("web") == set(info["started"])
    # Never fewer than 3 processes: each old one is stopped only after its
    # replacement was spawned and ready.
    # And one at a time: never more than 4.
    running, lowest, highest = 3, 3, 3
    for event in events:
        running += {"spawn": 1, "reap": -1}.get(event, 0)
        lowest, highest = min(lowest, running), max(highest, running)
    assert events.count("spawn") == 3 and lowest == 3 and highest == 4, events


def test_add_and_rm_at_run_time(daemon):
    d = daemon("""
        [watcher:first]
        cmd = sleep 1000
    """)
    d.wait_pids("first", 1)
    client = d.client()
    with pytest.raises(CommandFailed, match="depends_on: no watcher named 'ghost'"):
        client.call("add", name="second", cmd="sleep 1000",
                    options={"depends_on": ["ghost"]})
    reply = client.call("add", name="second", cmd="sleep", args=["1000"],
                        options={"numprocesses": 2, "depends_on": ["first"]},
                        start=True, waiting=True)
    assert len(reply["started"]) == 2
    d.wait_pids("second", 2)
    assert client.call("list")["watchers"] == ["first", "second"]
    client.call("rm", name="second", waiting=True)
    wait_for(lambda: not d.pids("second"))
    assert client.call("list")["watchers"] == ["first"]


def test_quit_stops_the_daemon(daemon):
    d = daemon("""
        [watcher:first]
        cmd = sleep 1000
    """)
    pids = d.wait_pids("first", 1)
    d.client().call("quit", waiting=True)
    assert d.proc.wait(10) == 0
    assert not any(d.pids("first") & pids)
