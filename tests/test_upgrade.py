"""bigtopd re-executing itself (``bigtopctl upgrade``, SIGUSR2) without its
children noticing (core/handover.py): the same daemon pid, the same child
pids, the listening socket never refusing a connection, every numbered
output line once and in order, each watcher's state, and what was changed
at run time (``add``, ``set``) kept; refused, with nothing changed, when
it cannot be done."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import Daemon, free_port, wait_for

COUNTER = ("python3 -u -c 'import itertools, time; "
           "[print(i, flush=True) or time.sleep(0.0005) for i in itertools.count()]'")
SERVER = """\
import socket
listening = socket.socket(fileno=3)
listening.setblocking(True)
while True:
    connection, _ = listening.accept()
    connection.sendall(b"hi")
    connection.close()
"""

CONFIG = """\
[watcher:count]
cmd = {counter}
stdout_stream.class = FileStream
stdout_stream.filename = {log}

[watcher:web]
cmd = python3 {server}
use_sockets = true
numprocesses = 2

[watcher:idle]
cmd = sleep 1000
autostart = false

[socket:web]
host = 127.0.0.1
port = {port}
"""


def ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopctl", "--endpoint",
                           d.endpoint, *args], capture_output=True, text=True, timeout=60)


class Knocker:
    """Connects to the socket again and again from a thread; counts the
    connections that got the workers' answer and those that did not."""

    def __init__(self, port: int):
        self.port = port
        self.ok = self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
                    got = c.recv(2)
                if got == b"hi":
                    self.ok += 1
                else:
                    self.failed += 1
            except OSError:
                self.failed += 1

    def __enter__(self) -> Knocker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def numbers(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().splitlines() if line.strip()]


def test_an_upgrade_keeps_every_process_socket_and_line(daemon: Callable[..., Daemon],
                                                        tmp_path: Path) -> None:
    log, port, server = tmp_path / "count.log", free_port(), tmp_path / "server.py"
    server.write_text(SERVER)
    d = daemon(CONFIG.format(counter=COUNTER, server=server, log=log, port=port))
    d.wait_pids("web", 2)
    d.call("add", name="extra", cmd="sleep 1001", start=True, waiting=True)
    d.call("set", name="web", options={"graceful_timeout": "7"})
    before = {name: d.pids(name) for name in ("count", "web", "extra")}
    daemon_pid = d.pid
    with Knocker(port) as knocker:
        wait_for(lambda: knocker.ok > 20, message="connections answered")
        for _ in range(2):
            result = ctl(d, "upgrade")
            assert result.returncode == 0, result.stderr
            assert f"pid {daemon_pid} kept" in result.stdout
        answered = knocker.ok
        wait_for(lambda: knocker.ok > answered + 20, message="answered after the upgrades")
    assert knocker.failed == 0
    assert d.pid == daemon_pid and d.proc is not None and d.proc.poll() is None
    assert {name: d.pids(name) for name in ("count", "web", "extra")} == before
    statuses = d.call("status")["statuses"]
    assert statuses == {"count": "active", "web": "active", "idle": "stopped",
                        "extra": "active"}
    assert d.call("get", name="web", keys=["graceful_timeout"])["options"] == {
        "graceful_timeout": 7.0}
    assert d.log_text().count("took over 4 process(es)") == 2
    d.stop()
    seen = numbers(log)
    assert seen == list(range(len(seen))) and len(seen) > 100  # none lost, split or twice


def test_sigusr2_upgrades_too_and_a_process_dead_meanwhile_is_replaced(
        daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    d = daemon("[watcher:a]\ncmd = sleep 1000\nnumprocesses = 3\n")
    pids = d.wait_pids("a", 3)
    d.signal(signal.SIGUSR2)
    d.wait_log("took over 3 process(es)")
    assert d.wait_pids("a", 3) == pids
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in d.pids("a") and len(d.pids("a")) == 3,
             message="the killed process replaced")
    assert pids - {victim} < d.pids("a")


def test_stdin_pipe_and_so_reuseport_watchers_are_handed_over(
        daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """A stdin_pipe process's stdin stays open (cat would end at its end);
    each so_reuseport process keeps its own listening socket, and one
    started after the upgrade gets one beside them."""
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    port = free_port()
    d = daemon(f"[watcher:cat]\ncmd = cat\nstdin_pipe = true\n"
               f"[watcher:web]\ncmd = {sys.executable} {server}\nuse_sockets = true\n"
               f"numprocesses = 2\n"
               f"[socket:web]\nhost = 127.0.0.1\nport = {port}\nso_reuseport = true\n")
    pids = {name: d.wait_pids(name, count) for name, count in (("cat", 1), ("web", 2))}
    result = ctl(d, "upgrade")
    assert result.returncode == 0, result.stderr
    assert {name: d.pids(name) for name in pids} == pids
    victim = min(pids["web"])
    os.kill(victim, signal.SIGTERM)
    wait_for(lambda: victim not in (now := d.pids("web")) and len(now) == 2,
             message="a web process replaced")
    for _ in range(20):  # the kernel spreads connections over the processes' sockets
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            assert conn.recv(2) == b"hi"
    assert d.pids("cat") == pids["cat"]  # its stdin did not end
    assert "cannot bind" not in d.log_text()


def test_the_new_program_is_asked_first(tmp_path: Path) -> None:
    """A state of a version this program does not read is refused by
    --handover-check, which the old image runs before it executes."""
    config = tmp_path / "c.ini"
    config.write_text("[watcher:a]\ncmd = sleep 1\n")

    def check(state: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopd", str(config),
                               "--handover-check"], input=json.dumps(state), text=True,
                              capture_output=True, timeout=30)

    refused = check({"version": 99, "config": ""})
    assert refused.returncode == 1 and "state version 99" in refused.stderr
    broken = check({"version": 1, "config": "[watchers.a]\nnumprocesses = 'many'\n"})
    assert broken.returncode == 1 and "does not read here" in broken.stderr
    assert check({"version": 1, "config": "[watchers.a]\ncmd = 'sleep 1'\n"}).returncode == 0


def test_a_cluster_node_upgrades_without_its_lease_ending(daemon: Callable[..., Daemon],
                                                          etcd: Any) -> None:
    """The new image renews the lease the old one held: the node never
    shows down, its cluster watcher stays where it runs."""
    from .clusters import WATCHERS, apply, start_nodes, wait_running

    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n2": "role=web"})
    apply(nodes["n1"], WATCHERS)
    placed = wait_running(nodes, "web", 1)
    (where,) = placed
    result = ctl(nodes[where], "upgrade")
    assert result.returncode == 0, result.stderr
    nodes[where].wait_log("took over")
    wait_for(lambda: "cluster: node" in nodes[where].log_text().split("took over")[-1],
             message="the agent back")
    listed = {n["name"]: n for n in nodes[where].call("cluster_nodes")["nodes"]}
    assert listed[where]["up"] and listed[where]["pid"] == nodes[where].pid
    assert "registered by another lease" not in nodes[where].log_text()
    assert wait_running(nodes, "web", 1) == placed  # same node, same pid
    other = ({"n1", "n2"} - {where}).pop()
    assert "is gone" not in nodes[other].log_text()


def installed_versions(tmp_path: Path) -> tuple[Path, str, str]:
    """Two copies of the package, as two installed versions: this one's
    version string and another; ``current`` (the returned symlink, to put on
    PYTHONPATH) points at this version's. ``install`` switches it."""
    import shutil

    import bigtop

    source, old, new = Path(bigtop.__file__).parent, bigtop.__version__, "9.9.9"
    for version in (old, new):
        copy = tmp_path / f"v{version}" / "bigtop"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        init = copy / "__init__.py"
        init.write_text(init.read_text().replace(bigtop.__version__, version))
    current = tmp_path / "current"
    current.symlink_to(tmp_path / f"v{old}")
    return current, old, new


def install(current: Path, version: str) -> None:
    """Point ``current`` at that version's copy, as a package upgrade (or
    downgrade) replaces what is installed: in one step (a rename)."""
    swap = current.with_name(current.name + ".new")
    swap.symlink_to(current.parent / f"v{version}")
    swap.replace(current)


def test_an_upgrade_to_another_installed_version(daemon: Callable[..., Daemon],
                                                 tmp_path: Path) -> None:
    """As after a `pip install -U`: the daemon runs from a copy of the
    package, the copy is swapped for one with another version string, and
    `upgrade` brings that version in, every process kept."""
    current, old, new = installed_versions(tmp_path)
    os.environ["PYTHONPATH"] = str(current)  # the daemon's, and its next image's
    try:
        d = daemon("[watcher:a]\ncmd = sleep 1000\nnumprocesses = 3\n")
    finally:
        del os.environ["PYTHONPATH"]
    pids = d.wait_pids("a", 3)
    assert d.call("version")["version"] == old
    install(current, new)  # the new version installed
    result = ctl(d, "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"bigtopd {old} -> {new}" in result.stdout
    assert d.call("version")["version"] == new
    assert d.pids("a") == pids
    assert f"bigtopd {new} took over from bigtopd {old}" in d.log_text()


def test_an_upgrade_asked_during_a_rolling_reload_lets_it_finish_first(
        daemon: Callable[..., Daemon]) -> None:
    d = daemon("[watcher:a]\ncmd = sleep 1000\nnumprocesses = 3\nready = delay:0.4\n")
    d.wait_ready("a")
    old = d.pids("a")
    reload = subprocess.Popen([sys.executable, "-m", "bigtop.cli.bigtopctl", "--endpoint",
                               d.endpoint, "reload", "a", "--rolling"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(d.pids("a")) > 3, message="the rolling reload under way")
        result = ctl(d, "upgrade")
        out, err = reload.communicate(timeout=30)
    finally:
        reload.kill()
        reload.wait()
    assert reload.returncode == 0, err
    assert result.returncode == 0, result.stderr
    new = d.wait_pids("a", 3)
    assert not new & old
    assert f"started {', '.join(map(str, sorted(new)))}" in out
    log = d.log_text()
    assert log.index("a: reloaded 3 of 3") < log.index("upgrading: bigtopd")
    assert d.call("status", name="a")["status"] == "active"
