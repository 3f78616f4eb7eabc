"""Who may drive the daemon: private ipc sockets by default, CurveZMQ keys
on TCP."""

from __future__ import annotations

import os
import stat

import pytest

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

    def __init__(self, daemon, tmp_path):
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
        """)
        self.daemon.wait_pids("one", 1)

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
