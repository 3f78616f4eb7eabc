"""SIGHUP reloads the configuration as a diff."""

from __future__ import annotations

import signal
import socket
import time

from .conftest import free_port, wait_for

BASE = """
    [socket:web]
    host = 127.0.0.1
    port = {port}

    [watcher:web]
    cmd = sleep 1000
    use_sockets = true
    numprocesses = {web}

    [watcher:worker]
    cmd = sleep {worker}

    [watcher:gone]
    cmd = sleep 1000
"""


def test_reload_applies_only_the_diff(daemon):
    port = free_port()
    d = daemon(BASE.format(port=port, web=2, worker=1000))
    web = d.wait_pids("web", 2)
    worker = d.wait_pids("worker", 1)
    d.wait_pids("gone", 1)
    listener = socket.create_connection(("127.0.0.1", port))

    with d.events("watcher.") as ev:
        d.reload(BASE.format(port=port, web=3, worker=2000).replace(
            "[watcher:gone]", "[watcher:new]"))
        ev.wait("watcher.gone.remove")
        ev.wait("watcher.worker.updated")
        ev.wait("watcher.new.start")
        # The summary of a SIGHUP reload is only in the log (no event),
        # which this test reads below.
        d.wait_log("reload:")
        events = ev.sync()
    assert not [t for t, _ in events if t.startswith("watcher.web.") and
                t.endswith((".stop", ".kill", ".reap"))], "web was only scaled up"
    new_web = d.wait_pids("web", 3)
    assert web < new_web, "scaling up keeps the running processes"
    new_worker = d.wait_pids("worker", 1)
    assert new_worker != worker, "a changed cmd restarts the watcher"
    d.wait_pids("new", 1)
    d.wait_pids("gone", 0)
    # The unchanged socket stayed bound: the connection queued before the
    # reload is still there and new ones are accepted.
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    listener.close()
    assert "sockets_rebound" not in d.log_text()


def test_reload_scales_down(daemon):
    port = free_port()
    d = daemon(BASE.format(port=port, web=3, worker=1000))
    web = d.wait_pids("web", 3)
    d.reload(BASE.format(port=port, web=1, worker=1000))
    left = d.wait_pids("web", 1)
    assert left < web


def test_bad_reload_changes_nothing(daemon):
    port = free_port()
    d = daemon(BASE.format(port=port, web=2, worker=1000))
    before = d.wait_pids("web", 2) | d.wait_pids("worker", 1)
    with d.events() as ev:
        d.reload(BASE.format(port=port, web="two", worker=1000))
        # The operator's message is the behaviour here.
        d.wait_log("reload refused, nothing changed")
        assert "'two' is not an integer" in d.log_text()
        # Refused before anything was done: no event up to now.
        assert ev.sync() == []
    assert d.pids("web") | d.pids("worker") == before
    assert d.proc.poll() is None


def test_changed_socket_is_rebound_and_its_users_restart(daemon):
    port, port2 = free_port(), free_port()
    d = daemon(BASE.format(port=port, web=1, worker=1000))
    web = d.wait_pids("web", 1)
    worker = d.wait_pids("worker", 1)
    with d.events("watcher.") as ev:
        d.reload(BASE.format(port=port2, web=1, worker=1000))
        ev.wait("watcher.web.reap", process_pid=next(iter(web)), requested=True)
        ev.wait("watcher.web.start")
        d.wait_log("sockets_rebound web")  # the reload's summary, only in the log
        events = ev.sync()
    assert not [t for t, _ in events if t.startswith("watcher.worker.")], events
    wait_for(lambda: d.pids("web") and d.pids("web") != web, message="web restarted")
    assert d.pids("worker") == worker
    socket.create_connection(("127.0.0.1", port2), timeout=2).close()


def test_reload_socket_that_cannot_bind_changes_nothing(daemon):
    port = free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = blocker.getsockname()[1]
    d = daemon(BASE.format(port=port, web=1, worker=1000))
    web = d.wait_pids("web", 1)
    with d.events() as ev:
        d.reload(BASE.format(port=port, web=1, worker=1000) + f"""
    [socket:other]
    host = 127.0.0.1
    port = {busy}
    """)
        d.wait_log("reload refused, nothing changed")  # the operator's message
        assert ev.sync() == [], "refused before anything was done"
    assert d.pids("web") == web
    blocker.close()


def test_on_demand_starts_on_first_connection(daemon):
    port = free_port()
    d = daemon(f"""
        [socket:lazy]
        host = 127.0.0.1
        port = {port}

        [watcher:lazy]
        cmd = sleep 1000
        sockets = lazy
        on_demand = true
    """)
    d.wait_log("lazy: waiting for a first connection")  # no event says it is armed
    with d.events("watcher.lazy.") as ev:
        # The wait is the assertion: nothing starts lazy without a
        # connection, which no state can show at one instant.
        time.sleep(0.2)
        assert ev.sync() == []
        assert not d.pids("lazy")
        assert d.call("status", name="lazy")["status"] == "stopped"
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        pid = ev.wait("watcher.lazy.spawn")[1]["process_pid"]
        ev.wait("watcher.lazy.start")
    assert d.wait_pids("lazy", 1) == {pid}


def test_sigint_twice_kills_now(daemon, tmp_path):
    d = daemon("""
        [watcher:stubborn]
        cmd = sh -c 'trap "" TERM INT; sleep 1000 & wait; sleep 1000'
        graceful_timeout = 60
    """)
    pid = next(iter(d.wait_pids("stubborn", 1)))
    with d.events("watcher.stubborn.") as ev:
        d.signal(signal.SIGINT)
        ev.wait("watcher.stubborn.kill", process_pid=pid)  # the stop has begun
    d.signal(signal.SIGINT)
    assert d.proc.wait(10) == 0


def test_reload_restarts_a_failed_watcher_whose_config_changed(daemon):
    broken = """
        [watcher:app]
        cmd = sh -c 'exit 1'
        max_retry = {retry}
        backoff_initial = 0.01
    """
    d = daemon(broken.format(retry=0))
    # It fails at the daemon's start, before any subscriber: its state says it.
    wait_for(lambda: d.call("status", name="app")["status"] == "failed", message="app failed")
    with d.events("watcher.app.") as ev:
        d.reload(broken.format(retry=1))
        ev.wait("watcher.app.failed")
        events = ev.sync()
    assert [p["exit_code"] for t, p in events if t.endswith(".reap")] == [1, 1]


def test_changed_socket_on_same_address_is_rebound(daemon):
    port = free_port()
    config = """
        [socket:web]
        host = 127.0.0.1
        port = {port}
        backlog = {backlog}

        [watcher:web]
        cmd = sleep 1000
        use_sockets = true
    """
    d = daemon(config.format(port=port, backlog=16))
    web = d.wait_pids("web", 1)
    with d.events("watcher.web.") as ev:
        d.reload(config.format(port=port, backlog=32))
        ev.wait("watcher.web.reap", process_pid=next(iter(web)), requested=True)
        ev.wait("watcher.web.start")
        d.wait_log("sockets_rebound web")  # the reload's summary, only in the log
    wait_for(lambda: d.pids("web") and d.pids("web") != web, message="web restarted")
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert "kept the old socket" not in d.log_text()
