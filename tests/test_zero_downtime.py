"""The seed idea of Circus, held to: workers restarted behind a socket the
daemon owns refuse or reset no request. Real HTTP clients drive load at
bigtop-wsgi workers through a rolling reload and a plain restart (with
graceful stop); not one request may fail."""

from __future__ import annotations

import http.client
import sys
import threading

import pytest

from .conftest import free_port, wait_for

APP = """\
import os

def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


class Load:
    """Client threads sending requests, each on a new connection (as
    nginx talks to an upstream by default) or on kept-alive ones, counting
    what fails."""

    def __init__(self, port: int, keepalive: bool, clients: int = 4):
        self.port = port
        self.keepalive = keepalive
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        headers = {} if self.keepalive else {"Connection": "close"}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self._stop.is_set():
            try:
                # A kept-alive connection the server closed after saying
                # "Connection: close" is opened again by http.client.
                conn.request("GET", "/", headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}")
                with self._lock:
                    self.ok += 1
                    self.pids.add(int(body))
            except Exception as err:  # every failure counts, whatever it is
                with self._lock:
                    self.failures.append(repr(err))
                conn.close()
            if not self.keepalive:
                conn.close()
        conn.close()

    def served_at_least(self, count: int) -> None:
        start = self.ok
        wait_for(lambda: self.ok >= start + count or self.failures, timeout=60,
                 message=f"{count} more requests")


@pytest.mark.parametrize("keepalive", [False, True], ids=["new-connections", "keep-alive"])
@pytest.mark.parametrize("backend", ["waitress", "gevent"])
def test_no_request_fails_through_rolling_reload_and_restart(daemon, tmp_path, backend,
                                                            keepalive):
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    d = daemon(f"""
        [socket:web]
        host = 127.0.0.1
        port = {port}

        [watcher:web]
        cmd = {sys.executable} -m bigtop.wsgi --fd $(circus.sockets.web)
              --backend {backend} app:application
        working_dir = {tmp_path}
        numprocesses = 2
        ready = notify
        graceful_timeout = 20
        """)
    client = d.client(timeout=60)
    wait_for(lambda: client.call("status", details=True)["details"]["web"]["ready"] == 2,
             message="web ready")
    first = d.pids("web")
    with Load(port, keepalive) as load:
        load.served_at_least(500)
        client.call("reload", name="web", rolling=True, waiting=True)
        rolled = d.pids("web")
        assert not rolled & first
        load.served_at_least(500)
        # Every worker stopped, then new ones started: meanwhile the
        # connections wait in the daemon's socket, none is refused.
        client.call("restart", name="web", waiting=True)
        restarted = d.pids("web")
        assert not restarted & rolled
        load.served_at_least(500)
    assert not load.failures, f"{len(load.failures)} failed of {load.ok + len(load.failures)}: " \
                              f"{sorted(set(load.failures))[:5]}"
    assert load.ok >= 1500
    assert load.pids & first and load.pids & rolled and load.pids & restarted
    d.stop()
