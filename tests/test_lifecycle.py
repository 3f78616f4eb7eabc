"""End to end: real daemons, real children, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from .conftest import wait_for

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


def test_killed_child_is_replaced_at_once(daemon):
    d = daemon("""
        [watcher:sleepers]
        cmd = sleep 1000
        numprocesses = 3
    """)
    before = d.wait_pids("sleepers", 3)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    after = wait_for(lambda: (p := d.pids("sleepers")) and len(p) == 3 and victim not in p and p,
                     message="replacement")
    assert len(after & before) == 2
    assert "exited with signal SIGKILL" in d.log_text()


def test_crash_loop_backs_off_exponentially_then_fails(daemon, tmp_path):
    d = daemon(f"""
        [watcher:crasher]
        cmd = sh -c 'date +%s.%N >> {tmp_path}/spawns; exit 3'
        max_retry = 4
        backoff_initial = 0.2
        backoff_factor = 2
    """)
    d.wait_log("crasher: failed", timeout=15)
    times = stamps(tmp_path / "spawns")
    assert len(times) == 5, times  # the first run and max_retry retries
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] < 0.15, f"first restart is immediate: {gaps}"
    for gap, expected in zip(gaps[1:], (0.2, 0.4, 0.8), strict=True):
        assert expected * 0.9 <= gap < expected + 0.5, gaps
    assert "status 3" in d.log_text()
    time.sleep(0.5)
    assert len(stamps(tmp_path / "spawns")) == 5, "a failed watcher spawns nothing more"
    assert d.proc.poll() is None, "the daemon keeps running"


def test_missing_binary_is_a_spawn_failure_not_a_crash(daemon):
    d = daemon("""
        [watcher:ghost]
        cmd = /no/such/program --flag
        max_retry = 2
        backoff_initial = 0.05

        [watcher:nobody]
        cmd = sleep 1000
        uid = no-such-user
        max_retry = 0

        [watcher:alive]
        cmd = sleep 1000
    """)
    d.wait_log("ghost: failed")
    d.wait_log("nobody: failed")
    assert "/no/such/program: no such file or directory" in d.log_text()
    assert "no user named 'no-such-user'" in d.log_text()
    assert d.proc.poll() is None
    d.wait_pids("alive", 1)


def test_restart_policies(daemon, tmp_path):
    d = daemon(f"""
        [watcher:clean]
        cmd = sh -c 'echo x >> {tmp_path}/clean; exit 0'
        restart = on-failure

        [watcher:dirty]
        cmd = sh -c 'echo x >> {tmp_path}/dirty; exit 7'
        restart = on-failure
        max_retry = 2
        backoff_initial = 0.01

        [watcher:expected]
        cmd = sh -c 'echo x >> {tmp_path}/expected; exit 7'
        restart = on-failure
        success_exit_codes = 0, 7

        [watcher:never]
        cmd = sh -c 'echo x >> {tmp_path}/never; exit 1'
        respawn = false
    """)
    d.wait_log("dirty: failed")
    time.sleep(0.3)
    count = lambda name: len((tmp_path / name).read_text().split())  # noqa: E731
    assert count("clean") == 1
    assert count("dirty") == 3
    assert count("expected") == 1
    assert count("never") == 1


def test_backoff_resets_after_stable_uptime(daemon, tmp_path):
    d = daemon(f"""
        [watcher:flaky]
        cmd = sh -c 'date +%s.%N >> {tmp_path}/spawns; sleep 0.3; exit 1'
        backoff_reset = 0.2
        backoff_initial = 5
        max_retry = 3
    """)
    wait_for(lambda: len(stamps(tmp_path / "spawns")) >= 5, timeout=10, message="5 runs")
    times = stamps(tmp_path / "spawns")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(g < 1.0 for g in gaps), f"every restart immediate after stable uptime: {gaps}"
    assert "flaky: failed" not in d.log_text()


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

        [watcher:after]
        cmd = sleep 1000
        depends_on = mute
    """)
    d.wait_log("mute: failed", timeout=10)
    assert "not ready after 0.3s" in d.log_text()
    d.wait_log("after: not started, dependency mute is failed")
    assert not d.pids("after")


def test_stop_order_is_reverse_of_dependencies(daemon, tmp_path):
    trap = "trap 'date +%s.%N > {out}; exit 0' TERM; while true; do sleep 0.05; done"
    d = daemon(f"""
        [watcher:web]
        cmd = sh -c "{trap.format(out=tmp_path / 'web_stop')}"
        depends_on = db

        [watcher:db]
        cmd = sh -c "sleep 0.3; {trap.format(out=tmp_path / 'db_stop')}"
    """)
    d.wait_pids("web", 1)
    time.sleep(0.5)
    assert d.stop() == 0
    assert stamps(tmp_path / "web_stop")[0] <= stamps(tmp_path / "db_stop")[0]


def test_stop_kills_the_whole_tree(daemon, tmp_path):
    d = daemon("""
        [watcher:script]
        cmd = sh -c 'sleep 1000 & sleep 1000 & setsid sleep 1000 & (setsid sleep 1000 &); wait'

        [watcher:stubborn]
        cmd = sh -c 'trap "" TERM; sleep 1000 & wait; sleep 1000'
        graceful_timeout = 0.5
    """)
    d.wait_log("script: started")

    def tree() -> set[int]:
        return {p.pid for p in psutil.Process(d.pid).children(recursive=True)}

    wait_for(lambda: len(tree()) >= 7, message="grandchildren")
    everything = tree()
    assert d.stop() == 0
    survivors = [p for p in everything if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not survivors


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
    wait_for(lambda: len([p for p in psutil.Process(d.pid).children(recursive=True)
                          if p.name() == "sleep"]) <= 2, timeout=5, message="cleanup")


def test_orphans_are_reaped(daemon):
    d = daemon("""
        [watcher:parent]
        cmd = sh -c '(sleep 0.1 &) && (sleep 0.1 &) && exec sleep 1000'
    """)
    d.wait_pids("parent", 1)
    time.sleep(0.6)
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
    """)
    first = d.wait_pids("aging", 1)
    wait_for(lambda: (p := d.pids("aging")) and p != first, timeout=5, message="recycle")
    assert "aging: failed" not in d.log_text()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    wait_for(lambda: (tmp_path / "venv_out").exists())
    assert (tmp_path / "venv_out").read_text().strip() == str(venv)
    d.wait_pids("inetd", 1)
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.recv(10) == b"hi"


def test_stop_order_follows_priority(daemon, tmp_path):
    trap = "trap 'date +%s.%N > {out}; sleep 0.2; exit 0' TERM; while true; do sleep 0.05; done"
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
    log = d.log_text()
    assert log.index("first: started") < log.index("second: started")
    time.sleep(0.3)
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
    d.wait_log("looping: failed")
    d.wait_log("instant: process 1")
    d.reload("""
        [watcher:instant]
        cmd = true
        restart = on-failure

        [watcher:looping]
        cmd = sh -c 'exit 2'
        max_retry = 1
    """)
    d.wait_log("looping: failed", count=2)
