"""A bigtopd killed with SIGKILL leaves its children running under PID 1.
The next bigtopd on the same file finds them by the tag each child
carries (core/leftovers.py) and stops them, grandchildren included,
before it binds its sockets and starts fresh ones: exactly the configured
processes run afterwards, none twice, none orphaned."""

from __future__ import annotations

import signal
from collections.abc import Callable

import psutil

from bigtop.core.leftovers import DAEMON_ENV

from .conftest import Daemon, environ_of, free_port, wait_for

CONFIG = """\
[watcher:tree]
cmd = sh -c 'sleep 1001 & exec sleep 1002'
numprocesses = 10
graceful_timeout = 5

[watcher:web]
cmd = python3 -c 'import socket, sys, time; s = socket.socket(fileno=3); time.sleep(1000)'
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
    d = daemon(CONFIG.format(port=free_port()))
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
