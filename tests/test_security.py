"""Who may drive the daemon: private ipc sockets by default, CurveZMQ keys
on TCP."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import bigtop
from bigtop.client import CallError, Client, generate

from .conftest import Events, free_port


def test_default_endpoints_are_private(daemon):
    d = daemon("""
        [watcher:one]
        cmd = sleep 1000
    """)
    d.wait_pids("one", 1)
    assert stat.S_IMODE(os.stat(d.run_dir).st_mode) == 0o700
    for name in ("control.sock", "events.sock"):
        assert stat.S_IMODE(os.stat(d.run_dir / name).st_mode) == 0o600
    assert d.client().call("status")["statuses"] == {"one": "active"}


def test_tcp_outside_loopback_needs_keys_or_insecure(daemon, tmp_path):
    port = free_port()
    d = daemon(f"""
        [circus]
        endpoint = tcp://0.0.0.0:{port}

        [watcher:one]
        cmd = sleep 1000
    """, start=False)
    d.start(wait=False)
    assert d.proc.wait(10) == 2
    assert "a tcp:// endpoint outside the loopback address needs CurveZMQ keys" in d.log_text()
    assert not d.children()


def test_keyless_tcp_on_loopback_is_served_with_one_warning(daemon):
    """Circus's own first line, `endpoint = tcp://127.0.0.1:5555`, works as
    Redis's protected mode does: loopback only, with a warning."""
    port, pub = free_port(), free_port()
    d = daemon(f"""
        [circus]
        endpoint = tcp://127.0.0.1:{port}
        pubsub_endpoint = tcp://127.0.0.1:{pub}

        [watcher:one]
        cmd = sleep 1000
    """)
    d.wait_pids("one", 1)
    log = d.log_text()
    assert log.count("without CurveZMQ keys") == 1, log
    assert "any local user can drive the daemon" in log
    assert "insecure = true" not in log
    with Client(f"tcp://127.0.0.1:{port}", timeout=5) as client:
        assert client.call("list")["watchers"] == ["one"]


def test_insecure_tcp_works_and_warns(daemon):
    port, pub = free_port(), free_port()
    d = daemon(f"""
        [circus]
        endpoint = tcp://127.0.0.1:{port}
        pubsub_endpoint = tcp://127.0.0.1:{pub}
        insecure = true

        [watcher:one]
        cmd = sleep 1000
    """)
    d.wait_pids("one", 1)
    assert "insecure = true: anyone who can reach" in d.log_text()
    with Client(f"tcp://127.0.0.1:{port}", timeout=5) as client:
        assert client.call("list")["watchers"] == ["one"]


class CurveDaemon:
    """A daemon on TCP endpoints with CurveZMQ, and the keys around it."""

    def __init__(self, daemon, tmp_path, processes=1, **kw):
        keys = tmp_path / "keys"
        authorized = tmp_path / "authorized"
        authorized.mkdir()
        self.server_public, server_secret = generate(str(keys), "server")
        client_public, self.client_secret = generate(str(keys), "ops")
        _, self.stranger_secret = generate(str(keys), "stranger")
        os.link(client_public, authorized / "ops.key")
        port, pub = free_port(), free_port()
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.pubsub_endpoint = f"tcp://127.0.0.1:{pub}"
        self.daemon = daemon(f"""
            [circus]
            endpoint = {self.endpoint}
            pubsub_endpoint = {self.pubsub_endpoint}
            server_key = {server_secret}
            authorized_keys = {authorized}

            [watcher:one]
            cmd = sleep 1000
            numprocesses = {processes}
        """, **kw)
        self.daemon.wait_pids("one", processes)

    def client(self, secret: str | None, timeout: float = 5) -> Client:
        return Client(self.endpoint, timeout=timeout, key=secret,
                      server_key=self.server_public if secret else None)


def test_curve_keys_admit_listed_clients_only(daemon, tmp_path):
    curve = CurveDaemon(daemon, tmp_path)
    assert stat.S_IMODE(os.stat(curve.client_secret).st_mode) == 0o600
    with curve.client(curve.client_secret) as client:
        assert client.call("list")["watchers"] == ["one"]
    with curve.client(curve.stranger_secret, timeout=1) as client, pytest.raises(CallError):
        client.call("list")
    with curve.client(None, timeout=1) as client, pytest.raises(CallError):
        client.call("list")  # no key at all: not even a handshake
    assert curve.daemon.proc.poll() is None


def test_events_over_curve(daemon, tmp_path):
    curve = CurveDaemon(daemon, tmp_path)
    with Events(curve.pubsub_endpoint, ("watcher.one.",), key=curve.client_secret,
                server_key=curve.server_public) as ev:  # the handshake, over CurveZMQ too
        with curve.client(curve.client_secret) as client:
            client.call("incr", name="one", waiting=True)
        pid = ev.wait("watcher.one.spawn")[1]["process_pid"]
    assert pid in curve.daemon.wait_pids("one", 2)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("python3", path="/usr/bin"),
                    reason="needs root, to be another user")
def test_endpoint_owner_reaches_its_sockets(daemon, tmp_path):
    """The sockets are the named user's, and the private run directory lets
    that user through to them (once, it did not: 0700, root's)."""
    nobody = pwd.getpwnam("nobody")
    opened = []  # the test's own directories on the way, let through for the test
    for parent in [*reversed(tmp_path.parents), tmp_path]:
        mode = stat.S_IMODE(parent.stat().st_mode)
        if str(parent).startswith("/tmp/") and not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
            opened.append((parent, mode))
    try:
        d = daemon("""
            [circus]
            endpoint_owner = nobody

            [watcher:one]
            cmd = sleep 1000
            """)
        sock = d.run_dir / "control.sock"
        assert sock.stat().st_uid == nobody.pw_uid
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(d.run_dir.stat().st_mode) == 0o701  # through, not listed
        probe = ("import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])")
        reached = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}",
                                  f"--regid={nobody.pw_gid}", "--clear-groups",
                                  "/usr/bin/python3", "-c", probe, str(sock)],
                                 capture_output=True, text=True, timeout=30)
        assert reached.returncode == 0, reached.stderr
    finally:
        for parent, mode in opened:
            parent.chmod(mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to be another user")
def test_a_client_without_access_is_told_at_once(daemon, tmp_path):
    """ZeroMQ retries an ipc:// connect it may not make in silence: the
    client says "permission denied" instead of waiting for ever."""
    d = daemon("""
        [watcher:one]
        cmd = sleep 1000
        """)
    nobody = pwd.getpwnam("nobody")
    probe = ("import sys; from bigtop.client.endpoints import check_ipc\n"
             "try:\n    check_ipc(sys.argv[1])\n"
             "except Exception as err:\n    print(err)\n")
    for path in (d.run_dir / "control.sock", tmp_path / "nothing-yet.sock"):
        told = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                               "--clear-groups", sys.executable, "-I", "-c", probe,
                               f"ipc://{path}"],
                              capture_output=True, text=True, timeout=30,
                              env={"PYTHONPATH": str(Path(bigtop.__file__).parents[1])})
        assert f"cannot reach the daemon at ipc://{path}: permission denied" in told.stdout, told
