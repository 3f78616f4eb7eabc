"""Every task of the daemon has an owner that ends it: a daemon run in
this process, driven through its control socket through starts, crash
loops with backoff, spawn hooks, tcp readiness, rolling reloads, on-demand
starts, added and removed watchers, background commands and a command
still running when it stops, leaves no task pending once it has stopped."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from pathlib import Path

import pytest

from bigtop.client import AsyncClient
from bigtop.config import load
from bigtop.control.server import ControlServer
from bigtop.core import Arbiter

from .conftest import free_port

HOOKS = '''
import asyncio

async def slow_yes(watcher, arbiter, hook_name, **kwargs):
    await asyncio.sleep(0.05)
    return True
'''


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "taskhooks.py").write_text(HOOKS)
    ready_port, lazy_port = free_port(), free_port()
    config = tmp_path / "bigtop.ini"
    config.write_text(textwrap.dedent(f"""
        [socket:lazy]
        host = 127.0.0.1
        port = {lazy_port}

        [watcher:sleepers]
        cmd = sleep 1000
        numprocesses = 2
        hooks.before_spawn = taskhooks.slow_yes
        hooks.after_reap = taskhooks.slow_yes

        [watcher:crasher]
        cmd = sh -c 'exit 3'
        backoff_initial = 0.05
        max_retry = 3

        [watcher:served]
        cmd = python3 -c "import socket, time; s = socket.create_server(('127.0.0.1', {ready_port})); time.sleep(1000)"
        ready = tcp:127.0.0.1:{ready_port}
        depends_on = sleepers

        [watcher:lazy]
        cmd = sleep 1000
        on_demand = true
        sockets = lazy

        [watcher:slow]
        cmd = sleep 1000
        ready = delay:100
        ready_timeout = 200
    """))
    return config


async def wait_for(predicate, timeout: float = 10.0) -> None:
    """Until predicate() holds; the loop runs meanwhile (the daemon is here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def exercise(tmp_path: Path) -> None:
    arbiter = Arbiter(load(str(write_config(tmp_path))), console=lambda *a: None)
    endpoint = f"ipc://{tmp_path}/control.sock"
    server = ControlServer(arbiter, endpoint, f"ipc://{tmp_path}/events.sock",
                           stats_endpoint=f"ipc://{tmp_path}/stats.sock")
    await server.start()
    await arbiter.start()
    async with AsyncClient(endpoint, timeout=10) as client:
        async def status(name: str) -> str:
            return str((await client.call("status", name=name))["status"])

        await wait_for(lambda: _is(status("crasher"), "failed"))
        await wait_for(lambda: _is(status("served"), "active"))
        await client.call("reload", name="sleepers", sequential=True, waiting=True)
        await client.call("incr", name="sleepers")  # replies at once, runs on
        await client.call("add", name="extra", cmd="sleep", args=["1000"], start=True,
                          waiting=True)
        await client.call("rm", name="extra", waiting=True)
        await client.call("logs", name="sleepers")
        await client.call("stats", name="sleepers")
        lazy = arbiter.sockets["lazy"].bound_address()
        with socket.create_connection(lazy):
            await wait_for(lambda: _is(status("lazy"), "active"))
        await client.call("restart", name="crasher")  # crash loops again, then stops
        # A rolling reload that waits for a readiness to come, when the daemon stops:
        reply = asyncio.ensure_future(client.call("reload", name="slow", waiting=True,
                                                  raise_on_error=False))
        await wait_for(lambda: _true(len([p for p in arbiter.registry.processes()
                                           if p.spec.name == "slow"]) == 2))
        await arbiter.stop()
        assert "the daemon is stopping" in (await reply)["reason"]
    assert not list(arbiter.registry.processes()), "the new process is stopped too"
    await server.close()


async def _true(value: bool) -> bool:
    return value


async def _is(value, wanted: str) -> bool:
    return await value == wanted


def test_no_task_outlives_the_daemon(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the children's cwd: the leftover check finds them

    async def main() -> set[asyncio.Task]:
        await exercise(tmp_path)
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                and not t.done()}

    left = asyncio.run(main())
    assert not left, f"tasks left pending: {left}"


@pytest.fixture(autouse=True)
def _no_leftover_children(daemon):
    """The daemon fixture's teardown fails the test if a child survived."""
    yield
