"""The activity log: every action taken on the daemon, who asked and from
where (as the client says), what, and the reply; kept by the daemon,
published as an ``activity`` event, read with ``history``; reads are not
actions; a malformed ``by`` is refused; an upgrade keeps the log."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bigtop.control import protocol

from .conftest import ROOT, Daemon


def ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopctl", "--endpoint",
                           d.endpoint, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_actions_are_logged_with_who_and_the_reply(daemon: Callable[..., Daemon]) -> None:
    d = daemon("[watcher:web]\ncmd = sleep 1000\n")
    d.wait_pids("web", 1)
    with d.events("activity") as events:
        assert ctl(d, "incr", "web", "--waiting").returncode == 0
        assert ctl(d, "status").returncode == 0  # a read: not an action
        assert ctl(d, "set", "nope", "numprocesses", "2").returncode == 3
        event = events.wait("activity", command="incr")
    assert event[1]["status"] == "ok"
    history = d.call("history")["history"]
    assert [e["command"] for e in history] == ["incr", "set"]
    incr, failed = history
    assert incr["status"] == "ok" and incr["properties"] == {"name": "web", "waiting": True}
    assert incr["by"]["via"] == "bigtopctl" and incr["by"]["host"] == \
        socket.gethostname()
    assert failed["status"] == "error" and "nope" in failed["reason"]
    out = ctl(d, "history").stdout
    assert "incr name=web waiting=true" in out and "error: program nope not found" in out
    # Another client's word, and none at all (circusctl says nothing).
    with d.client() as client:
        client.call("decr", by={"user": "alice", "via": "bigtop-web", "from": "10.0.0.7"},
                    name="web", waiting=True)
        client.socket.send(protocol.encode({"command": "incr", "properties": {"name": "web"},
                                            "id": "x"}))
        client.socket.recv()
        bad = client.call("incr", raise_on_error=False, by={"user": ["x"]}, name="web")
    assert bad["status"] == "error" and "'by' must be an object" in bad["reason"]
    last = d.call("history", limit=2)["history"]
    assert last[0]["by"] == {"user": "alice", "via": "bigtop-web", "from": "10.0.0.7"}
    assert last[1]["by"] is None
    assert "alice from 10.0.0.7" in ctl(d, "history", "-n", "3").stdout
    too_many = ctl(d, "--json", "history", "-n", "5000")
    assert json.loads(too_many.stdout)["reason"] == "'limit' must be between 0 and 1000"
    # An upgrade keeps the log.
    assert ctl(d, "upgrade").returncode == 0
    after = d.call("history", limit=1000)["history"]
    assert [e["command"] for e in after][:4] == ["incr", "set", "decr", "incr"]
    assert after[-1]["command"] == "upgrade"


def test_a_read_only_key_reads_and_the_log_names_each_key(daemon: Callable[..., Daemon],
                                                          tmp_path: Path) -> None:
    from .conftest import free_port

    keys, clients = make_keys(tmp_path)
    port = free_port()
    d = daemon(f"""
        [circus]
        endpoint = tcp://127.0.0.1:{port}
        pubsub_endpoint = tcp://127.0.0.1:{free_port()}
        server_key = {keys / "server.key_secret"}
        authorized_keys = {clients}

        [watcher:web]
        cmd = sleep 1000

        [watcher:vault]
        cmd = sh -c 'echo s3cret; exec sleep 1000'
        private = true
    """)
    d.wait_pids("web", 1)

    def as_key(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return ctl_plain("--endpoint", f"tcp://127.0.0.1:{port}", "--key",
                         str(keys / f"{name}.key_secret"), "--server-key",
                         str(keys / "server.key"), *args)

    assert as_key("viewer", "list").stdout.split() == ["vault", "web"]  # it reads
    assert as_key("viewer", "logs", "web").returncode == 0
    private = as_key("viewer", "logs", "vault")
    assert private.returncode == 3 and "the output of vault is private" in private.stderr
    assert "s3cret" not in private.stdout
    assert "s3cret" in as_key("ops", "logs", "vault").stdout
    refused = as_key("viewer", "incr", "web")
    assert refused.returncode == 3
    assert "the key 'viewer' is read-only: incr changes something" in refused.stderr
    assert as_key("ops", "incr", "web", "--waiting").returncode == 0
    history = json.loads(as_key("ops", "--json", "history").stdout)["history"]
    assert [(e["command"], e["status"], e["by"]["key"]) for e in history] == [
        ("incr", "error", "viewer"), ("incr", "ok", "ops")]


def test_a_read_only_key_never_gets_a_private_watchers_live_output(
        daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """On the events endpoint too: whatever a read-only key subscribes to
    ("", stream., the private watcher's own topic, even the mark), it gets
    every other event and line but none of the private watcher's lines; a
    key with full control gets them, under the topic it subscribed to."""
    from bigtop.client import Subscriber

    from .conftest import free_port

    keys, clients = make_keys(tmp_path)
    pubsub = f"tcp://127.0.0.1:{free_port()}"
    daemon(f"""
        [circus]
        endpoint = tcp://127.0.0.1:{free_port()}
        pubsub_endpoint = {pubsub}
        server_key = {keys / "server.key_secret"}
        authorized_keys = {clients}

        [watcher:web]
        cmd = sh -c 'while true; do echo hello; sleep 0.05; done'

        [watcher:vault]
        cmd = sh -c 'while true; do echo s3cret; sleep 0.05; done'
        private = true
    """)

    def subscriber(name: str, *topics: str) -> Subscriber:
        sub = Subscriber(pubsub, key=str(keys / f"{name}.key_secret"),
                         server_key=str(keys / "server.key"))
        sub.subscribe(*topics)
        sub.handshake()
        return sub

    viewers = [subscriber("viewer", ""), subscriber("viewer", "stream."),
               subscriber("viewer", "stream.vault.", "~stream.vault.", "~", "stream.web.")]
    ops = subscriber("ops", "stream.vault.")
    try:
        got: dict[int, list[tuple[str, dict]]] = {i: [] for i in range(len(viewers) + 1)}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                len(got[3]) >= 20 and all(any(p.get("line") == "hello" for _, p in got[i])
                                          for i in range(3))):
            for i, sub in enumerate([*viewers, ops]):
                event = sub.recv(0.01)
                if event is not None:
                    got[i].append(event)
        assert all(t == "stream.vault.stdout" and p["line"] == "s3cret" and p["private"]
                   for t, p in got[3]) and len(got[3]) >= 20
        for i in range(3):
            assert any(p.get("line") == "hello" for _, p in got[i]), i
            assert not [e for e in got[i] if "s3cret" in json.dumps(e)], i
        # A subscriber gone, the others' subscriptions stay in force.
        viewers.pop(0).close()
        ops.close()
        ops = subscriber("ops", "")
        seen = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(seen) < 2:
            event = ops.recv(1)
            if event is not None and event[0].startswith("stream."):
                seen.add(event[1]["watcher"])
        assert seen == {"web", "vault"}
    finally:
        for sub in [*viewers, ops]:
            sub.close()


def make_keys(tmp_path: Path) -> tuple[Path, Path]:
    """The server's key, ops (full control) and viewer (read-only): the
    key files' directory and the daemon's authorized_keys."""
    keys, clients = tmp_path / "keys", tmp_path / "clients"
    for name in ("server", "ops", "viewer"):
        assert ctl_plain("keygen", name, "--dir", str(keys)).returncode == 0
    (clients / "read-only").mkdir(parents=True)
    (clients / "ops.key").write_text((keys / "ops.key").read_text())
    (clients / "read-only" / "viewer.key").write_text((keys / "viewer.key").read_text())
    return keys, clients


def ctl_plain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopctl", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
