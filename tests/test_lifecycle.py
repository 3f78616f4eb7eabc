"""End to end: real daemons, real children, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import psutil
import pytest

from .conftest import free_port, names_under, wait_for

PY = sys.executable


def stamps(path: Path) -> list[float]:
    if not path.exists():
        return []
    return [float(x) for x in path.read_text().split()]


def test_runs_numprocesses_and_stops_them(daemon):
    d = daemon("""
        [watcher:sleepers]
        cmd = sleep 1000
        numprocesses = 4
    """)
    pids = d.wait_pids("sleepers", 4)
    for pid in pids:
        assert os.getpgid(pid) == pid, "each child leads its own process group"
    assert d.stop() == 0
    assert not any(psutil.pid_exists(p) for p in pids)


@pytest.mark.chaos
def test_killed_child_is_replaced_at_once(daemon):
    d = daemon("""
        [watcher:sleepers]
        cmd = sleep 1000
        numprocesses = 3
    """)
    before = d.wait_pids("sleepers", 3)
    victim = sorted(before)[0]
    with d.events("watcher.sleepers.") as ev:
        os.kill(victim, signal.SIGKILL)
        ev.wait("watcher.sleepers.reap", process_pid=victim, exit_code=-signal.SIGKILL,
                requested=False)
        replacement = ev.wait("watcher.sleepers.spawn")[1]["process_pid"]
        events = ev.sync()
    assert not [t for t, _ in events if t.endswith(".backoff")], "respawned at once"
    # The replacement is spawned before the exit is told; told in order still.
    kinds = [t.rsplit(".", 1)[1] for t, _ in events]
    assert kinds.index("reap") < kinds.index("spawn"), kinds
    after = d.wait_pids("sleepers", 3)
    assert after == before - {victim} | {replacement}


@pytest.mark.chaos
def test_crash_loop_backs_off_exponentially_then_fails(daemon, tmp_path):
    # The delays themselves are the policy's (tests/test_policy.py); here,
    # the daemon's decisions as it announces them. Not started with the
    # daemon: its events are followed from before the first spawn.
    d = daemon(f"""
        [watcher:crasher]
        cmd = sh -c 'echo $$ >> {tmp_path}/spawns; exit 3'
        max_retry = 4
        backoff_initial = 0.2
        backoff_factor = 2
        autostart = false
    """)
    with d.events("watcher.crasher.") as ev:
        d.call("start", name="crasher")
        failed = ev.wait("watcher.crasher.failed", timeout=15)[1]
        events = ev.sync()  # everything published up to now
    kinds = [topic.rsplit(".", 1)[1] for topic, _ in events]
    cycle = [k for k in kinds if k in ("spawn", "reap", "backoff", "failed")]
    # The first restart is immediate (no backoff), then 0.2, 0.4, 0.8 s.
    assert cycle == ["spawn", "reap", "spawn", "reap",
                     "backoff", "spawn", "reap", "backoff", "spawn", "reap",
                     "backoff", "spawn", "reap", "failed"], kinds
    backoffs = [payload for topic, payload in events if topic.endswith(".backoff")]
    assert [b["delay"] for b in backoffs] == [0.2, 0.4, 0.8]
    assert [b["failures"] for b in backoffs] == [2, 3, 4]
    assert all(b["wid"] == 1 for b in backoffs)
    reaps = [payload for topic, payload in events if topic.endswith(".reap")]
    assert [(r["exit_code"], r["requested"]) for r in reaps] == [(3, False)] * 5
    assert failed["reason"] == ("process 1 failed 5 times in a row, last: status 3 "
                                "(4 restarts in all)")
    assert [e["exit_code"] for e in failed["exits"]][-5:] == [3] * 5
    assert len(stamps(tmp_path / "spawns")) == 5, "the first run and max_retry retries"
    # A failed watcher spawns nothing more: it runs none of the process it
    # still counts as wanted, its restarts are those of the reason, and
    # every backoff timer (armed only with a backoff event) has had its
    # spawn, with none after the last exit (checked above).
    details = d.call("status", name="crasher", details=True)
    assert details["status"] == "failed"
    assert (details["details"]["wanted"], details["details"]["running"]) == (1, 0)
    assert details["details"]["restarts"] == 4
    assert details["details"]["failure"] == failed["reason"]
    assert d.proc.poll() is None, "the daemon keeps running"


def test_missing_binary_is_a_spawn_failure_not_a_crash(daemon):
    # ghost and nobody start once their events are followed.
    d = daemon("""
        [watcher:ghost]
        cmd = /no/such/program --flag
        max_retry = 2
        backoff_initial = 0.05
        autostart = false

        [watcher:nobody]
        cmd = sleep 1000
        uid = no-such-user
        max_retry = 0
        autostart = false

        [watcher:alive]
        cmd = sleep 1000
    """)
    with d.events("watcher.ghost.", "watcher.nobody.") as ev:
        d.call("start", name="ghost")
        d.call("start", name="nobody")
        ghost = ev.wait("watcher.ghost.failed")[1]
        nobody = ev.wait("watcher.nobody.failed")[1]
        events = ev.sync()
    missing = "/no/such/program: no such file or directory"
    assert [p["reason"] for t, p in events if t == "watcher.ghost.spawn_failure"] == [missing] * 3
    assert [p["reason"] for t, p in events if t == "watcher.nobody.spawn_failure"] == [
        "no user named 'no-such-user'"]
    assert missing in ghost["reason"]
    assert "no user named 'no-such-user'" in nobody["reason"]
    # Nothing was started, so nothing crashed.
    assert not [t for t, _ in events if t.endswith((".spawn", ".reap"))], events
    assert d.proc.poll() is None
    d.wait_pids("alive", 1)


def test_restart_policies(daemon, tmp_path):
    names = ("clean", "dirty", "expected", "never")
    d = daemon(f"""
        [watcher:clean]
        cmd = sh -c 'echo x >> {tmp_path}/clean; exit 0'
        restart = on-failure
        autostart = false

        [watcher:dirty]
        cmd = sh -c 'echo x >> {tmp_path}/dirty; exit 7'
        restart = on-failure
        max_retry = 2
        backoff_initial = 0.01
        autostart = false

        [watcher:expected]
        cmd = sh -c 'echo x >> {tmp_path}/expected; exit 7'
        restart = on-failure
        success_exit_codes = 0, 7
        autostart = false

        [watcher:never]
        cmd = sh -c 'echo x >> {tmp_path}/never; exit 1'
        respawn = false
        autostart = false
    """)
    with d.events(*(f"watcher.{name}." for name in names)) as ev:
        for name in names:
            d.call("start", name=name)
        ev.wait("watcher.dirty.failed")
        for name in ("clean", "expected", "never"):
            ev.wait(f"watcher.{name}.reap")
        # The decision on an exit is taken as its reap is announced: a
        # respawn would show as a spawn or a backoff published before the
        # daemon answers this handshake.
        events = ev.sync()
    spawns = {name: len([t for t, _ in events if t == f"watcher.{name}.spawn"])
              for name in names}
    assert spawns == {"clean": 1, "dirty": 3, "expected": 1, "never": 1}
    assert [t for t, _ in events if t.endswith(".failed")] == ["watcher.dirty.failed"]
    count = lambda name: len((tmp_path / name).read_text().split())  # noqa: E731
    assert {name: count(name) for name in names} == spawns


def test_backoff_resets_after_stable_uptime(daemon, tmp_path):
    d = daemon("""
        [watcher:flaky]
        cmd = sh -c 'sleep 0.3; exit 1'
        backoff_reset = 0.2
        backoff_initial = 5
        max_retry = 3
        autostart = false
    """)
    with d.events("watcher.flaky.") as ev:
        d.call("start", name="flaky")
        for _ in range(5):  # without the reset, the 4th exit in a row would be the last
            ev.wait("watcher.flaky.spawn")
        events = ev.sync()
    assert len([t for t, _ in events if t.endswith(".reap")]) >= 4
    # No backoff: every restart is immediate (the first failure in a row).
    assert not [t for t, _ in events if t.endswith((".backoff", ".failed"))], events


def test_priority_orders_start(daemon, tmp_path):
    d = daemon(f"""
        [watcher:low]
        cmd = sh -c 'date +%s.%N > {tmp_path}/low; exec sleep 1000'
        priority = 1

        [watcher:high]
        cmd = sh -c 'sleep 0.2; date +%s.%N > {tmp_path}/high; exec sleep 1000'
        priority = 10
        ready = delay:0.3

        [watcher:mid]
        cmd = sleep 1000
        priority = 5
    """)
    d.wait_pids("low", 1)
    # The order of a daemon's own start: no subscriber follows it from its
    # first event, so the log is the daemon's record of it.
    assert d.log_text().index("high: started") < d.log_text().index("mid: started")
    assert d.log_text().index("mid: started") < d.log_text().index("low: started")


def test_depends_on_waits_for_readiness(daemon, tmp_path):
    notify_app = tmp_path / "notify_app.py"
    notify_app.write_text(
        "import os, socket, time, sys\n"
        "time.sleep(0.5)\n"
        f"open('{tmp_path}/db_ready', 'w').write(repr(time.time()))\n"
        "addr = os.environ['NOTIFY_SOCKET']\n"
        "if addr.startswith('@'): addr = '\\0' + addr[1:]\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "s.sendto(b'READY=1', addr)\n"
        "time.sleep(1000)\n"
    )
    d = daemon(f"""
        [watcher:app]
        cmd = sh -c 'date +%s.%N > {tmp_path}/app_start; exec sleep 1000'
        depends_on = db, cache

        [watcher:db]
        cmd = {PY} {notify_app}
        ready = notify

        [watcher:cache]
        cmd = sh -c 'sleep 0.3; exec {PY} -m http.server --bind 127.0.0.1 0'
        ready = delay:0.4
    """)
    d.wait_pids("app", 1, timeout=15)
    # The pid exists before the shell has written its stamp: wait for it.
    app_start = wait_for(lambda: stamps(tmp_path / "app_start"), message="app stamp")[0]
    db_ready = float((tmp_path / "db_ready").read_text())
    assert app_start >= db_ready
    # At the daemon's start: no subscriber can see these events (see
    # test_priority_orders_start), the log is the record of their order.
    assert d.log_text().index("db: ready") < d.log_text().index("app: started")
    assert d.log_text().index("cache: ready") < d.log_text().index("app: started")


def test_tcp_readiness(daemon, tmp_path):
    port = free_port()
    d = daemon(f"""
        [watcher:server]
        cmd = sh -c 'sleep 0.4; exec {PY} -m http.server --bind 127.0.0.1 {port}'
        ready = tcp:127.0.0.1:{port}

        [watcher:client]
        cmd = sleep 1000
        depends_on = server
    """)
    d.wait_pids("client", 1, timeout=15)
    import socket

    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_readiness_timeout_counts_as_failure(daemon):
    d = daemon("""
        [watcher:mute]
        cmd = sleep 1000
        ready = notify
        ready_timeout = 0.3
        max_retry = 1
        backoff_initial = 0.01
        autostart = false

        [watcher:after]
        cmd = sleep 1000
        depends_on = mute
        autostart = false
    """)
    with d.events("watcher.mute.", "watcher.after.") as ev:
        d.call("start", name="after")  # mute first: after depends on it
        first = ev.wait("watcher.mute.spawn")[1]["process_pid"]
        ev.wait("watcher.mute.ready_timeout", process_pid=first)
        ev.wait("watcher.mute.reap", process_pid=first, requested=False)
        second = ev.wait("watcher.mute.spawn")[1]["process_pid"]
        ev.wait("watcher.mute.ready_timeout", process_pid=second)
        ev.wait("watcher.mute.failed")
        ev.wait("watcher.after.dependency_failed", dependency="mute")
        events = ev.sync()
    assert not [t for t, _ in events if t.startswith("watcher.after.") and
                not t.endswith(".dependency_failed")], events
    assert not [t for t, _ in events if t.endswith(".ready")], events
    assert not d.pids("after")


def test_stop_order_is_reverse_of_dependencies(daemon, tmp_path):
    trap = ("trap 'date +%s.%N > {out}; exit 0' TERM; touch {out}.armed; "
            "while true; do sleep 0.05; done")
    d = daemon(f"""
        [watcher:web]
        cmd = sh -c "{trap.format(out=tmp_path / 'web_stop')}"
        depends_on = db

        [watcher:db]
        cmd = sh -c "sleep 0.3; {trap.format(out=tmp_path / 'db_stop')}"
    """)
    d.wait_pids("web", 1)
    wait_for(lambda: all((tmp_path / f"{name}_stop.armed").exists() for name in ("web", "db")),
             message="both traps set")
    assert d.stop() == 0
    assert stamps(tmp_path / "web_stop")[0] <= stamps(tmp_path / "db_stop")[0]


@pytest.mark.chaos
def test_stop_kills_the_whole_tree(daemon, tmp_path):
    d = daemon("""
        [watcher:script]
        cmd = sh -c 'sleep 1000 & sleep 1000 & setsid sleep 1000 & (setsid sleep 1000 &); wait'

        [watcher:stubborn]
        cmd = sh -c 'trap "" TERM; sleep 1000 & wait; sleep 1000'
        graceful_timeout = 0.5
    """)
    wait_for(lambda: d.call("status", name="script")["status"] == "active", message="script started")

    def tree() -> set[int]:
        return {p.pid for p in psutil.Process(d.pid).children(recursive=True)}

    wait_for(lambda: len(tree()) >= 7, message="grandchildren")
    everything = tree()
    assert d.stop() == 0
    survivors = [p for p in everything if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not survivors


@pytest.mark.chaos
def test_leftovers_of_an_exited_process_are_cleaned(daemon, tmp_path):
    d = daemon(f"""
        [watcher:leaky]
        cmd = sh -c 'setsid sleep 1000 & sleep 1000 & echo $$ >> {tmp_path}/runs; sleep 0.3; exit 1'
        backoff_initial = 10
        graceful_timeout = 1
    """)
    wait_for(lambda: (tmp_path / "runs").exists())
    wait_for(lambda: len((tmp_path / "runs").read_text().split()) >= 2, timeout=5)
    # Each run leaves two sleeps; once the run has exited they must go.
    wait_for(lambda: names_under(d.pid).count("sleep") <= 2, timeout=5, message="cleanup")


@pytest.mark.chaos
def test_orphans_are_reaped(daemon, tmp_path):
    orphan = f'sh -c "echo \\$\\$ >> {tmp_path}/orphans; exec sleep 0.1"'
    d = daemon(f"""
        [watcher:parent]
        cmd = sh -c '({orphan} &) && ({orphan} &) && exec sleep 1000'
    """)
    d.wait_pids("parent", 1)
    orphans = wait_for(lambda: len(found := stamps(tmp_path / "orphans")) == 2 and found,
                       message="two orphans")
    # Reparented to the daemon (a subreaper), they are gone once it reaped them.
    wait_for(lambda: not any(psutil.pid_exists(int(pid)) for pid in orphans),
             message="the orphans reaped")
    zombies = [p for p in psutil.Process(d.pid).children()
               if p.status() == psutil.STATUS_ZOMBIE]
    assert not zombies


def test_environment_working_dir_umask_rlimits(daemon, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    d = daemon(f"""
        [env]
        GREETING = hello

        [env:prob*]
        TARGET = world

        [watcher:probe]
        cmd = sh -c 'echo "$GREETING $TARGET $EXTRA $(pwd) $(umask) $(ulimit -n) $BIGTOP_WID $(circus.wid)" > out; exec sleep 1000'
        env = EXTRA=$(circus.env.greeting)!
        working_dir = {work}
        umask = 027
        rlimit_nofile = 123
    """)
    wait_for(lambda: (work / "out").exists() and (work / "out").read_text().strip())
    assert (work / "out").read_text().split() == [
        "hello", "world", "hello!", str(work), "0027", "123", "1", "1"]
    assert d.pids("probe")


def test_copy_env_and_minimal_env(daemon, tmp_path):
    d = daemon(f"""
        [watcher:copy]
        cmd = sh -c 'echo "$HOME" > {tmp_path}/copy; exec sleep 1000'
        copy_env = true

        [watcher:bare]
        cmd = sh -c 'echo "[$HOME]" > {tmp_path}/bare; exec sleep 1000'
    """)
    wait_for(lambda: (tmp_path / "bare").exists() and (tmp_path / "copy").exists())
    assert (tmp_path / "copy").read_text().strip() == os.environ["HOME"]
    assert (tmp_path / "bare").read_text().strip() == "[]"
    d.stop()


def test_uid_drop_to_nobody(daemon, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    import pwd
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="bigtop-uid-"))
    shared.chmod(0o777)
    try:
        d = daemon(f"""
            [watcher:unprivileged]
            cmd = sh -c 'id -u > ids && id -g >> ids && id -G >> ids && echo $USER >> ids && exec sleep 1000'
            uid = nobody
            working_dir = {shared}
        """)
        ids = shared / "ids"
        wait_for(lambda: ids.exists() and len(ids.read_text().splitlines()) == 4)
        nobody = pwd.getpwnam("nobody")
        uid, gid, groups, user = ids.read_text().splitlines()
        assert (int(uid), int(gid), user) == (nobody.pw_uid, nobody.pw_gid, "nobody")
        assert {int(g) for g in groups.split()} == set(os.getgrouplist("nobody", nobody.pw_gid))
        child = d.children("unprivileged")[0]
        assert child.uids().real == nobody.pw_uid
        d.stop()
    finally:
        shutil.rmtree(shared)


def test_singleton_autostart_and_warmup(daemon, tmp_path):
    d = daemon(f"""
        [watcher:one]
        cmd = sleep 1000
        singleton = true

        [watcher:later]
        cmd = sleep 1000
        autostart = false

        [watcher:slow]
        cmd = sh -c 'date +%s.%N >> {tmp_path}/slow; exec sleep 1000'
        numprocesses = 3
        warmup_delay = 0.2
    """)
    d.wait_pids("slow", 3)
    assert len(d.pids("one")) == 1
    assert not d.pids("later")
    times = wait_for(lambda: len(stamps(tmp_path / "slow")) == 3 and stamps(tmp_path / "slow"),
                     message="3 stamps")
    assert all(b - a >= 0.18 for a, b in zip(times, times[1:], strict=False)), times


def test_max_age_recycles(daemon):
    d = daemon("""
        [watcher:aging]
        cmd = sleep 1000
        max_age = 1
        max_age_variance = 0
        autostart = false
    """)
    with d.events("watcher.aging.") as ev:
        d.call("start", name="aging")
        first = ev.wait("watcher.aging.spawn")[1]["process_pid"]
        ev.wait("watcher.aging.reap", timeout=5, process_pid=first, requested=True)
        second = ev.wait("watcher.aging.spawn")[1]["process_pid"]
        events = ev.sync()
    assert d.wait_pids("aging", 1) == {second}
    # Recycled, not failed: no backoff, no failure.
    assert not [t for t, _ in events if t.endswith((".backoff", ".failed"))], events
    assert d.call("status", name="aging")["status"] == "active"


def test_virtualenv_and_stdin_socket(daemon, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    tool = venv / "bin" / "venv-tool"
    tool.write_text(f"#!/bin/sh\necho \"$VIRTUAL_ENV\" > {tmp_path}/venv_out\nexec sleep 1000\n")
    tool.chmod(0o755)
    port = free_port()
    d = daemon(f"""
        [socket:echo]
        host = 127.0.0.1
        port = {port}

        [watcher:tool]
        cmd = venv-tool
        virtualenv = {venv}
        copy_env = true

        [watcher:inetd]
        cmd = {PY} -c "import socket; s = socket.socket(fileno=0); c, _ = s.accept(); c.sendall(b'hi'); c.close(); import time; time.sleep(1000)"
        stdin_socket = echo
    """)
    out = tmp_path / "venv_out"  # made by the shell, then written: wait for the line
    wait_for(lambda: out.exists() and out.read_text().endswith("\n"))
    assert out.read_text().strip() == str(venv)
    d.wait_pids("inetd", 1)
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.recv(10) == b"hi"


def test_stop_order_follows_priority(daemon, tmp_path):
    trap = ("trap 'date +%s.%N > {out}; sleep 0.2; exit 0' TERM; touch {out}.armed; "
            "while true; do sleep 0.05; done")
    d = daemon(f"""
        [circus]
        warmup_delay = 0.2

        [watcher:first]
        cmd = sh -c "{trap.format(out=tmp_path / 'first')}"
        priority = 10

        [watcher:second]
        cmd = sh -c "{trap.format(out=tmp_path / 'second')}"
        priority = 5
    """)
    d.wait_pids("second", 1)
    log = d.log_text()  # the daemon's own start: see test_priority_orders_start
    assert log.index("first: started") < log.index("second: started")
    wait_for(lambda: all((tmp_path / f"{name}.armed").exists() for name in ("first", "second")),
             message="both traps set")
    assert d.stop() == 0
    # Lower priority stops first, and fully, before the next one is signalled.
    assert stamps(tmp_path / "second")[0] + 0.2 <= stamps(tmp_path / "first")[0]


def test_instant_exits_do_not_leave_a_dead_slot(daemon):
    # A process can exit before the daemon has finished registering it.
    d = daemon("""
        [watcher:instant]
        cmd = true
        restart = on-failure

        [watcher:looping]
        cmd = sh -c 'exit 2'
        max_retry = 0
    """)
    # At the daemon's start, before any subscriber: their state says it.
    wait_for(lambda: d.call("status", name="looping")["status"] == "failed",
             message="looping failed")
    instant = wait_for(lambda: (info := d.call("status", name="instant", details=True)["details"])
                       ["last_exit"] and info, message="instant exited")
    assert (instant["running"], instant["pids"]) == (0, {}), "no dead process in its slot"
    assert instant["last_exit"]["exit_code"] == 0
    with d.events("watcher.looping.") as ev:
        d.reload("""
            [watcher:instant]
            cmd = true
            restart = on-failure

            [watcher:looping]
            cmd = sh -c 'exit 2'
            max_retry = 1
        """)
        ev.wait("watcher.looping.failed")
        events = ev.sync()
    assert [p["exit_code"] for t, p in events if t.endswith(".reap")] == [2, 2]
    assert len([t for t, _ in events if t.endswith(".spawn")]) == 2


def test_stdin_pipe_keeps_a_reader_waiting(daemon):
    """stdin_pipe: standard input is a pipe the daemon holds, so `cat`
    waits on it (with /dev/null it would exit at once); the daemon lets go
    of the pipe when the process exits."""
    d = daemon("""
        [watcher:cat]
        cmd = cat
        stdin_pipe = true
    """)
    (pid,) = d.wait_pids("cat", 1)
    assert os.readlink(f"/proc/{pid}/fd/0").startswith("pipe:")
    held = len(os.listdir(f"/proc/{d.pid}/fd"))
    d.call("kill", name="cat")
    wait_for(lambda: d.pids("cat") not in (set(), {pid}), message="cat replaced")
    wait_for(lambda: len(os.listdir(f"/proc/{d.pid}/fd")) <= held, message="pipe released")


def test_a_burst_of_exits_takes_one_look_for_leftovers(monkeypatch):
    # A look reads the daemon's child lists in /proc (9 ms at 5,000
    # children): the exits of a kill storm share one.
    import asyncio

    from bigtop.core import process

    looks = []

    def look(managed):
        looks.append(managed)
        return {("web", "2"): {4242}}

    monkeypatch.setattr(process, "orphans_by_slot", look)
    leftovers = process.LeftoverLook()

    async def burst():
        first = await asyncio.gather(*(leftovers.orphans("web", wid, set) for wid in (1, 2, 3)))
        return first, await leftovers.orphans("web", 2, set)  # a later exit: a new look

    assert asyncio.run(burst()) == ([set(), {4242}, set()], {4242})
    assert len(looks) == 2
