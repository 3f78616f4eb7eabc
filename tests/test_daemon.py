"""bigtopd as operators run it: flags, daemon mode, PID 1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import psutil
import pytest

from .conftest import free_port, processes_under, wait_for

BIGTOPD = [sys.executable, "-m", "bigtop.cli.bigtopd"]


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_daemon_mode_with_pidfile_and_log_file(tmp_path):
    config = write(tmp_path / "c.ini", """
        [watcher:bg]
        cmd = sleep 1000
        numprocesses = 2
    """)
    pidfile, logfile = tmp_path / "bigtopd.pid", tmp_path / "bigtopd.log"
    config.write_text(config.read_text().replace("[watcher:bg]", f"""[circus]
log_dir = {tmp_path}/logs

[watcher:bg]""").replace("cmd = sleep 1000", "cmd = sh -c 'echo started $$; exec sleep 1000'"))
    result = subprocess.run([*BIGTOPD, str(config), "--daemon", "--pidfile", str(pidfile),
                             "--log-output", str(logfile)], cwd=tmp_path, timeout=10)
    assert result.returncode == 0
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    try:
        proc = psutil.Process(pid)
        assert proc.ppid() != os.getpid(), "detached from the caller"
        assert os.getsid(pid) != os.getsid(0), "in its own session"
        wait_for(lambda: "bg: started 2" in logfile.read_text())
        # No console in daemon mode: output without a stream goes to a file.
        out = tmp_path / "logs" / "bg.stdout.log"
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2)
        assert all(line.startswith("started ") for line in out.read_text().splitlines())
        # A second daemon on the same pidfile refuses to start.
        second = subprocess.run([*BIGTOPD, str(config), "--pidfile", str(pidfile)],
                                cwd=tmp_path, timeout=10, capture_output=True, text=True)
        assert second.returncode == 1
        assert f"names pid {pid}, which is running" in second.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not psutil.pid_exists(pid), message="daemon exit")
    assert not pidfile.exists()
    assert not processes_under(tmp_path)


def test_socket_that_cannot_bind_starts_nothing(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    config = write(tmp_path / "c.ini", f"""
        [socket:web]
        host = 127.0.0.1
        port = {port}

        [watcher:web]
        cmd = sleep 1000
        use_sockets = true
    """)
    result = subprocess.run([*BIGTOPD, str(config)], cwd=tmp_path, timeout=10,
                            capture_output=True, text=True)
    blocker.close()
    assert result.returncode == 1
    assert f"socket 'web' cannot bind 127.0.0.1:{port}" in result.stderr
    assert "nothing started" in result.stderr
    assert not processes_under(tmp_path)


@pytest.mark.parametrize("strict", [False, True], ids=["error", "strict"])
def test_invalid_config_exits_2_and_starts_nothing(tmp_path, strict):
    config = write(tmp_path / "c.ini", f"""
        [watcher:ok]
        cmd = sleep 1000

        [watcher:bad]
        cmd = sleep 1000
        {"numprocess = 2" if strict else "numprocesses = two"}
    """)
    result = subprocess.run([*BIGTOPD, *(["--strict"] if strict else []), str(config)],
                            cwd=tmp_path, timeout=10, capture_output=True, text=True)
    assert result.returncode == 2
    message = ("numprocess: unknown option (did you mean 'numprocesses'?)" if strict
               else "numprocesses: 'two' is not an integer")
    assert f"{config}:7: [watcher:bad] {message}" in result.stderr
    assert not processes_under(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for a PID namespace")
def test_runs_as_pid_1(tmp_path):
    """In a container bigtopd is PID 1: it reaps every zombie and stops
    cleanly on SIGTERM."""
    config = write(tmp_path / "c.ini", """
        [watcher:orphans]
        cmd = sh -c '(sleep 0.1 &) && (sleep 0.1 &) && exec sleep 1000'
    """)
    log = tmp_path / "log"
    with open(log, "wb") as out:
        outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", *BIGTOPD,
                                  str(config)], cwd=tmp_path, stderr=out, stdout=out)
    try:
        inner = wait_for(lambda: psutil.Process(outer.pid).children(), message="pid 1")[0]

        def alone() -> bool:
            """The watcher's sh has made its orphans and become sleep 1000
            (so they are the daemon's), and nothing else is left under the
            daemon: the orphans have ended and it has reaped them."""
            try:
                kids = inner.children(recursive=True)
                return len(kids) == 1 and kids[0].cmdline() == ["sleep", "1000"]
            except psutil.Error:
                return False

        wait_for(alone, message="the orphans reaped")
        assert not [c for c in inner.children() if c.status() == psutil.STATUS_ZOMBIE]
        inner.send_signal(signal.SIGTERM)
        assert outer.wait(10) == 0
        assert "stopped" in log.read_text()
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()


def test_the_daemon_maps_no_openssl(daemon):
    # It never speaks TLS: OpenSSL's libraries would be about 4 MB of its
    # RSS (docs/benchmarks.md lists what it imports, and why).
    d = daemon("""
        [watcher:sleepers]
        cmd = sleep 1000
        numprocesses = 2
    """)
    d.wait_pids("sleepers", 2)
    with open(f"/proc/{d.pid}/maps") as maps:
        mapped = {line.split()[-1].rsplit("/", 1)[-1] for line in maps if "/" in line}
    assert not [name for name in mapped if name.startswith(("libcrypto", "libssl", "_ssl",
                                                            "_hashlib"))], sorted(mapped)


def test_the_daemon_tag_is_the_sha256_it_always_was(tmp_path):
    # Leftovers of a daemon killed with -9 are found by it (leftovers.py):
    # a daemon of this version finds those an older one left.
    import hashlib

    from bigtop.core.leftovers import daemon_tag

    config = write(tmp_path / "bigtop.ini", "")
    key = f"{os.getuid()}:{os.path.realpath(config)}:ipc:///run/x.sock"
    assert daemon_tag(str(config), "ipc:///run/x.sock") == \
        hashlib.sha256(key.encode()).hexdigest()[:16]


def test_children_get_their_streams_and_sockets_and_no_other_descriptor(tmp_path):
    # Children are spawned without closing the daemon's descriptors one by
    # one: every one of them is close-on-exec, even one the daemon itself
    # was started with.
    config = write(tmp_path / "c.ini", f"""
        [circus]
        endpoint = ipc://{tmp_path}/control.sock
        pubsub_endpoint = ipc://{tmp_path}/events.sock
        stats_endpoint = ipc://{tmp_path}/stats.sock

        [socket:web]
        host = 127.0.0.1
        port = {free_port()}

        [watcher:plain]
        cmd = sleep 1000

        [watcher:web]
        cmd = sleep 1000
        sockets = web
    """)
    stray = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(stray, True)
    daemon = subprocess.Popen([*BIGTOPD, str(config)], cwd=tmp_path, pass_fds=(stray,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(processes_under(tmp_path)) == 2, message="both children")
        fds = {proc.environ()["BIGTOP_WATCHER"]:
               sorted(int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd"))
               for proc in processes_under(tmp_path)}
        assert fds == {"plain": [0, 1, 2], "web": [0, 1, 2, 3]}
    finally:
        daemon.terminate()
        daemon.wait(20)
        os.close(stray)
        wait_for(lambda: not processes_under(tmp_path), message="children stopped")
