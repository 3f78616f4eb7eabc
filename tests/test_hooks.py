"""Watcher hooks on a real daemon: Circus's hook points and arguments, a
False answer, before_spawn's backoff, the timeout, and the events.

The hooks live in a module written next to the configuration file (the
daemon looks for hook modules there, and in the watcher's PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

from .conftest import wait_for

HOOKS = '''
import asyncio, json, os, time

HERE = os.path.dirname(os.path.abspath(__file__))


def record(watcher, arbiter, hook_name, **kwargs):
    entry = {
        "hook": hook_name,
        "watcher": watcher.name,
        "pids": watcher.pids,
        "numprocesses": watcher.numprocesses,
        "env_mode": watcher.env.get("MODE"),
        "arbiter_watchers": sorted(arbiter.watchers),
        "kwargs": kwargs,
    }
    with open(os.path.join(HERE, "hooks.log"), "a") as out:
        out.write(json.dumps(entry) + "\\n")


def ok(watcher, arbiter, hook_name, **kwargs):
    record(watcher, arbiter, hook_name, **kwargs)
    return True


async def async_ok(watcher, arbiter, hook_name, **kwargs):
    await asyncio.sleep(0)  # not a wait: a real suspension, so the hook must be awaited
    record(watcher, arbiter, hook_name, **kwargs)
    return True


def no(watcher, arbiter, hook_name, **kwargs):
    record(watcher, arbiter, hook_name, **kwargs)
    return False


def gate(watcher, arbiter, hook_name, **kwargs):
    """Says no until the file 'open' exists."""
    record(watcher, arbiter, hook_name, **kwargs)
    return os.path.exists(os.path.join(HERE, "open"))


def slow(watcher, arbiter, hook_name, **kwargs):
    record(watcher, arbiter, hook_name, **kwargs)
    time.sleep(60)
    return True


async def async_slow(watcher, arbiter, hook_name, **kwargs):
    record(watcher, arbiter, hook_name, **kwargs)
    await asyncio.sleep(60)
    return True


def boom(watcher, arbiter, hook_name, **kwargs):
    record(watcher, arbiter, hook_name, **kwargs)
    raise RuntimeError("boom")
'''

# Survives SIGUSR1 (once it says so), so that a signal hook can be seen
# without a respawn.
SLEEPER = '''
import os, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: None)
open(os.path.join(os.path.dirname(sys.argv[0]), f"ready-{os.getpid()}"), "w").close()
while True:
    time.sleep(1000)
'''


def setup(tmp_path: Path) -> str:
    (tmp_path / "myhooks.py").write_text(HOOKS)
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    return f"{sys.executable} {tmp_path / 'sleeper.py'}"


def calls(tmp_path: Path, hook: str | None = None, watcher: str | None = None) -> list[dict]:
    log = tmp_path / "hooks.log"
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e for e in entries if (hook is None or e["hook"] == hook)
            and (watcher is None or e["watcher"] == watcher)]


def test_every_hook_point_gets_circus_arguments(daemon, tmp_path):
    cmd = setup(tmp_path)
    d = daemon(f"""
        [watcher:w]
        cmd = {cmd}
        env = MODE=test
        hooks.before_start = myhooks.ok
        hooks.after_start = myhooks.async_ok
        hooks.before_spawn = myhooks.ok
        hooks.after_spawn = myhooks.async_ok
        hooks.before_signal = myhooks.ok
        hooks.after_signal = myhooks.ok
        hooks.before_reap = myhooks.ok
        hooks.after_reap = myhooks.async_ok
        hooks.before_stop = myhooks.ok
        hooks.after_stop = myhooks.ok
        """)
    (pid,) = d.wait_pids("w", 1)
    wait_for(lambda: calls(tmp_path, "after_start"), message="after_start")
    order = [e["hook"] for e in calls(tmp_path)]
    assert order == ["before_start", "before_spawn", "after_spawn", "after_start"]
    first = calls(tmp_path)[0]
    assert first["watcher"] == "w" and first["arbiter_watchers"] == ["w"]
    assert first["numprocesses"] == 1 and first["env_mode"] == "test"
    assert first["kwargs"] == {} and first["pids"] == []
    (after_spawn,) = calls(tmp_path, "after_spawn")
    assert after_spawn["kwargs"] == {"pid": pid} and after_spawn["pids"] == [pid]

    wait_for(lambda: (tmp_path / f"ready-{pid}").exists(), message="USR1 handled")
    with d.client() as client:
        # signal: before_signal, then the signal, then after_signal
        assert client.call("signal", name="w", signum="USR1")["pids"] == [pid]
        wait_for(lambda: calls(tmp_path, "after_signal"), message="after_signal")
        for hook in ("before_signal", "after_signal"):
            (entry,) = calls(tmp_path, hook)
            assert entry["kwargs"] == {"pid": pid, "signum": signal.SIGUSR1}
        assert d.pids("w") == {pid}  # the process survives USR1

        # an exit: before_reap and after_reap, and a new process (spawn hooks)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: calls(tmp_path, "after_reap"), message="after_reap")
        (before_reap,) = calls(tmp_path, "before_reap")
        assert before_reap["kwargs"]["process_pid"] == pid
        assert isinstance(before_reap["kwargs"]["time"], float)
        (after_reap,) = calls(tmp_path, "after_reap")
        assert after_reap["kwargs"] == {"process_pid": pid, "time": before_reap["kwargs"]["time"],
                                        "exit_code": -signal.SIGKILL, "process_status": 2}
        (new,) = d.wait_pids("w", 1)
        wait_for(lambda: len(calls(tmp_path, "after_spawn")) == 2, message="second after_spawn")
        assert calls(tmp_path, "after_spawn")[1]["kwargs"] == {"pid": new}

        # stop: before_stop, the stop signal (signal hooks), after_stop
        seen = len(calls(tmp_path))
        client.call("stop", name="w", waiting=True)
    wait_for(lambda: calls(tmp_path, "after_stop") and len(calls(tmp_path, "after_reap")) == 2,
             message="after_stop and after_reap")
    stopping = [(e["hook"], e["kwargs"]) for e in calls(tmp_path)[seen:]]
    hooks = [hook for hook, _ in stopping]
    assert sorted(hooks) == sorted(["before_stop", "before_signal", "after_signal",
                                    "before_reap", "after_reap", "after_stop"]), hooks
    assert hooks[0] == "before_stop" and hooks[1] == "before_signal"
    assert hooks.index("after_signal") < hooks.index("after_stop")
    assert dict(stopping)["before_signal"] == {"pid": new, "signum": signal.SIGTERM}
    assert calls(tmp_path, "after_stop")[0]["pids"] == []


def test_before_start_false_prevents_the_start(daemon, tmp_path):
    cmd = setup(tmp_path)
    d = daemon(f"""
        [watcher:vetoed]
        cmd = {cmd}
        hooks.before_start = myhooks.no

        [watcher:other]
        cmd = {cmd}
        """)
    d.wait_pids("other", 1)
    wait_for(lambda: calls(tmp_path, "before_start"), message="before_start")
    with d.client() as client:
        reply = client.call("status", name="vetoed", details=True)
        assert reply["status"] == "stopped"
        assert "before_start" in reply["details"]["failure"]
        client.call("start", name="vetoed", waiting=True)  # asked again: no again
        assert len(calls(tmp_path, "before_start")) == 2
        assert client.call("status", name="vetoed")["status"] == "stopped"
    assert d.pids("vetoed") == set()


def test_before_spawn_false_delays_the_spawn_with_backoff(daemon, tmp_path):
    cmd = setup(tmp_path)
    d = daemon(f"""
        [watcher:gated]
        cmd = {cmd}
        max_retry = 1
        backoff_initial = 0.05
        backoff_max = 0.2
        hooks.before_spawn = myhooks.gate
        """)
    with d.client() as client:
        # Asked again and again, more often than max_retry: still waiting,
        # not failed, and nothing runs.
        wait_for(lambda: len(calls(tmp_path, "before_spawn")) >= 4, message="4 refusals")
        assert client.call("status", name="gated")["status"] == "backoff"
        assert d.pids("gated") == set()
        (tmp_path / "open").touch()
        (pid,) = d.wait_pids("gated", 1)
        wait_for(lambda: client.call("status", name="gated")["status"] == "active",
                 message="active")
        details = client.call("status", name="gated", details=True)["details"]
        assert details["failure"] is None and details["pids"] == {"1": pid}


def test_after_spawn_false_stops_the_watcher(daemon, tmp_path):
    cmd = setup(tmp_path)
    d = daemon(f"""
        [watcher:w]
        cmd = {cmd}
        hooks.after_spawn = myhooks.no
        """)
    with d.client() as client:
        wait_for(lambda: client.call("status", name="w")["status"] == "failed", message="failed")
        details = client.call("status", name="w", details=True)["details"]
        assert "after_spawn" in details["failure"]
    wait_for(lambda: not d.pids("w"), message="the process stopped")


def test_slow_hooks_time_out_without_freezing_the_daemon(daemon, tmp_path):
    cmd = setup(tmp_path)
    d = daemon(f"""
        [watcher:sync]
        cmd = {cmd}
        hook_timeout = 5
        hooks.before_start = myhooks.slow

        [watcher:asyncio]
        cmd = {cmd}
        hook_timeout = 5
        hooks.before_start = myhooks.async_slow

        [watcher:ignored]
        cmd = {cmd}
        hook_timeout = 5
        hooks.before_start = myhooks.slow, true
        """)
    # Followed from before the 5 s run out: the hooks began just before
    # the daemon bound its endpoints.
    with d.events("watcher.") as events:
        wait_for(lambda: len(calls(tmp_path, "before_start")) == 3, message="the hooks running")
        with d.client() as client:
            # The hooks are running: the daemon answers meanwhile.
            statuses = client.call("status")["statuses"]
            assert statuses == {"sync": "starting", "asyncio": "starting", "ignored": "starting"}
            assert client.call("list")["watchers"] == ["asyncio", "ignored", "sync"]
            # Then they time out: a failure, which stops the start unless ignored.
            for name in ("sync", "asyncio", "ignored"):
                events.wait(f"watcher.{name}.hook_failure", name="before_start",
                            error="timed out after 5s")
            wait_for(lambda: client.call("status", name="ignored")["status"] == "active",
                     message="ignored started")
            for name in ("sync", "asyncio"):
                wait_for(lambda name=name: client.call("status", name=name)["status"] == "stopped",
                         message=f"{name} stopped")
    d.wait_pids("ignored", 1)
    assert d.pids("sync") == set() and d.pids("asyncio") == set()


def test_hook_success_and_failure_events(daemon, tmp_path):
    cmd = setup(tmp_path)
    d = daemon(f"""
        [watcher:hooked]
        cmd = {cmd}
        autostart = false
        hooks.before_start = myhooks.ok
        hooks.after_start = myhooks.boom

        [watcher:broken]
        cmd = {cmd}
        autostart = false
        hooks.before_start = nosuchmodule.hook
        """)
    with d.client() as client, d.events("watcher.") as events:
        client.call("start", name="hooked", waiting=True)
        success = events.wait("watcher.hooked.hook_success", name="before_start")[1]
        assert isinstance(success["time"], float)
        failure = events.wait("watcher.hooked.hook_failure", name="after_start")[1]
        assert "RuntimeError: boom" in failure["error"]
        # after_start failed (not ignored): the watcher is stopped again
        assert client.call("status", name="hooked")["status"] == "stopped"

        client.call("start", name="broken", waiting=True)
        failure = events.wait("watcher.broken.hook_failure", name="before_start")[1]
        assert "cannot import nosuchmodule" in failure["error"]
        assert client.call("status", name="broken")["status"] == "stopped"


def test_hooks_found_through_the_watchers_pythonpath(daemon, tmp_path):
    """As in Circus: the watcher's PYTHONPATH is searched for hook modules."""
    cmd = setup(tmp_path)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "elsewhere.py").write_text(textwrap.dedent("""
        import os
        def hook(watcher, arbiter, hook_name, **kwargs):
            open(os.path.join(os.path.dirname(__file__), "called"), "w").close()
            return True
        """))
    d = daemon(f"""
        [watcher:w]
        cmd = {cmd}
        env = PYTHONPATH={lib}
        hooks.before_start = elsewhere.hook
        """)
    d.wait_pids("w", 1)
    assert (lib / "called").exists()


def test_hook_timeout_is_checked(tmp_path):
    from bigtop.config import ConfigError, load

    config = tmp_path / "c.ini"
    config.write_text("[watcher:w]\ncmd = sleep 1\nhooks.before_start = m.f\nhook_timeout = 2.5\n")
    assert load(str(config)).watcher("w").hook_timeout == 2.5
    assert not load(str(config)).warnings  # hooks are run: no "not run" warning
    config.write_text("[watcher:w]\ncmd = sleep 1\nhook_timeout = 0\n")
    try:
        load(str(config))
    except ConfigError as err:
        assert "must be more than 0" in str(err.problems[0])
    else:
        raise AssertionError("hook_timeout = 0 accepted")
