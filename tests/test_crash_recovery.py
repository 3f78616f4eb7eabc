"""A bigtopd killed with SIGKILL leaves its children running under PID 1.
The next bigtopd on the same file finds them by the tag each child
carries (core/leftovers.py) and stops them, grandchildren included,
before it binds its sockets and starts fresh ones: exactly the configured
processes run afterwards, none twice, none orphaned."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from bigtop.core.leftovers import DAEMON_ENV

from .conftest import Daemon, environ_of, free_port, names_under, wait_for
from .test_upgrade import SERVER, ctl

CONFIG = """\
[watcher:tree]
cmd = sh -c 'sleep 1001 & exec sleep 1002'
numprocesses = 10
graceful_timeout = 5

[watcher:web]
cmd = {python} -c 'import socket, sys, time; s = socket.socket(fileno=3); time.sleep(1000)'
use_sockets = true
numprocesses = 2

[socket:web]
host = 127.0.0.1
port = {port}
"""


def tagged(tag: str) -> set[int]:
    """Every process carrying the daemon's tag."""
    found = set()
    for proc in psutil.process_iter():
        try:
            if environ_of(proc).get(DAEMON_ENV) == tag:
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


def settled(pid: int) -> bool:
    """Its 22 processes are up, and no shell is between fork and exec."""
    try:
        tree = psutil.Process(pid).children(recursive=True)
        return len(tree) == 22 and all(p.name() != "sh" for p in tree)
    except psutil.Error:
        return False


def test_a_daemon_killed_with_9_leaves_nothing_twice(daemon: Callable[..., Daemon]) -> None:
    d = daemon(CONFIG.format(port=free_port(), python=sys.executable))
    d.wait_pids("tree", 10)
    d.wait_pids("web", 2)
    wait_for(lambda: settled(d.pid), message="10 shells' grandchildren")
    tag = environ_of(psutil.Process(d.pid).children()[0])[DAEMON_ENV]
    before = tagged(tag)
    assert len(before) == 22  # 10 + their 10 background sleeps + 2 socket holders
    assert d.proc is not None
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    assert tagged(tag) == before  # still running, under PID 1 now
    d.start()
    assert d.proc.poll() is None, d.log_text()  # the socket could be bound
    d.wait_pids("tree", 10)
    d.wait_pids("web", 2)
    wait_for(lambda: settled(d.pid), message="exactly the configured processes")
    now = tagged(tag)
    assert not now & before
    assert now == {p.pid for p in psutil.Process(d.pid).children(recursive=True)}
    assert "found 22 process(es) left running by a previous bigtopd" in d.log_text()


# Writes 1, 2, 3 ... one number a line, never past the number in the gate
# file: the test decides when lines are written (before, while and after no
# daemon reads them).
GATED = """\
import sys, time
gate, n = sys.argv[1], 1
while True:
    try:
        with open(gate) as f:
            limit = int(f.read() or 0)
    except (OSError, ValueError):
        limit = 0
    if n > limit:
        time.sleep(0.01)
        continue
    last = min(limit, n + 999)
    sys.stdout.write("".join(f"{i}\\n" for i in range(n, last + 1)))
    sys.stdout.flush()
    n = last + 1
"""

ADOPTING = """\
[watcher:count]
cmd = {python} -u {writer} {gate}
on_daemon_crash = adopt
stdout_stream.class = FileStream
stdout_stream.filename = {log}

[watcher:tree]
cmd = sh -c 'sleep 1001 & exec sleep 1002'
numprocesses = 8
on_daemon_crash = adopt

[watcher:web]
cmd = {python} {server}
use_sockets = true
numprocesses = 2
on_daemon_crash = adopt

[watcher:plain]
cmd = sleep 1000
numprocesses = 9

[socket:web]
host = 127.0.0.1
port = {port}
"""


def managed(d: Daemon, watcher: str) -> set[int]:
    """The pids the daemon has in the watcher's slots (adopted ones are not
    its children)."""
    return set(d.call("list", name=watcher)["pids"])


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_daemon_killed_with_9_has_its_adopt_watchers_adopted(
        daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """20 children, 8 with a grandchild: after a kill -9 and a start, those
    of the adopt watchers are the same processes, their socket still
    answers, their output goes on with nothing lost (what they wrote while
    no daemon ran included), their exits are seen; the others are new."""
    writer, server = tmp_path / "writer.py", tmp_path / "server.py"
    writer.write_text(GATED)
    server.write_text(SERVER)
    gate, log = tmp_path / "gate", tmp_path / "count.log"
    port = free_port()
    d = daemon(ADOPTING.format(python=sys.executable, writer=writer, gate=gate, log=log,
                               server=server, port=port))
    gate.write_text("10000")
    wait_for(lambda: lines_in(log) == 10000, message="10,000 lines")
    kept = {name: d.wait_pids(name, count) for name, count in (("count", 1), ("tree", 8),
                                                                 ("web", 2))}
    plain = d.wait_pids("plain", 9)
    wait_for(lambda: len(names := names_under(d.pid)) == 28 and "sh" not in names,
             message="20 processes and 8 grandchildren")
    tag = environ_of(psutil.Process(d.pid).children()[0])[DAEMON_ENV]
    before = tagged(tag)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    try:
        recover(d, tag, tmp_path, port, kept, plain, before)
    finally:  # whatever failed: no process left without a daemon
        for pid in tagged(tag):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def recover(d: Daemon, tag: str, tmp_path: Path, port: int, kept: dict[str, set[int]],
            plain: set[int], before: set[int]) -> None:
    gate, log = tmp_path / "gate", tmp_path / "count.log"
    writer_pid = next(iter(kept["count"]))
    written = psutil.Process(writer_pid).io_counters().write_chars
    gate.write_text("210000")  # 1.35 MB while nobody reads: more than a pipe holds (1 MiB)

    def blocked() -> bool:
        """It wrote a pipe's worth (64 KiB at least) and is stuck there."""
        before = psutil.Process(writer_pid).io_counters().write_chars
        time.sleep(0.2)
        return before - written >= 65536 and psutil.Process(
            writer_pid).io_counters().write_chars == before

    wait_for(blocked, message="the writer blocked on its full pipe")
    d.start()
    assert d.proc.poll() is None, d.log_text()
    for name, pids in kept.items():
        assert managed(d, name) == pids, name
    assert not d.wait_pids("plain", 9) & plain
    assert "adopting 11 process(es) left running by a previous bigtopd" in d.log_text()
    assert "found 9 process(es) left running" in d.log_text()  # the plain ones, stopped
    now = tagged(tag)
    assert before - now == plain
    slots = set().union(*(managed(d, name) for name in ("count", "tree", "web", "plain")))
    trees = {c.pid for pid in slots for c in psutil.Process(pid).children(recursive=True)}
    assert len(slots) == 20 and len(trees) == 8
    assert now == slots | trees  # exactly the configured processes: none twice, none orphaned
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.recv(2) == b"hi"  # an adopted worker, on the socket taken back
    gate.write_text("220000")
    wait_for(lambda: lines_in(log) == 220000, message="every line")
    assert log.read_text().split() == [str(i) for i in range(1, 220001)]
    victim = min(kept["tree"])
    psutil.Process(victim).terminate()
    wait_for(lambda: victim not in (pids := managed(d, "tree")) and len(pids) == 8,
             message="the adopted process replaced")
    assert f"(pid {victim}) exited with signal SIGTERM" in d.log_text()
    result = ctl(d, "upgrade")  # adopted processes are handed over like the others
    assert result.returncode == 0, result.stderr
    assert managed(d, "web") == kept["web"]
    victim = min(kept["web"])
    psutil.Process(victim).terminate()
    wait_for(lambda: victim not in (pids := managed(d, "web")) and len(pids) == 2,
             message="the adopted process replaced after the upgrade")
    d.stop()
    wait_for(lambda: not tagged(tag), message="every process stopped with the daemon")
