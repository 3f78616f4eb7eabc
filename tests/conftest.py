"""Fixtures that start real daemons and make sure nothing outlives a test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from bigtop.client import Client, Event, Subscriber

if TYPE_CHECKING:
    from .etcd import EtcdCluster

ROOT = Path(__file__).resolve().parent.parent
SETTLED = "every watcher started or waiting"  # bigtopd's log, once its start has settled


def free_port() -> int:
    """A TCP port nobody listens on now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> object:
    """Poll until predicate() is truthy; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def environ_of(process: psutil.Process) -> dict[str, str]:
    """A process's environment. Right after exec, /proc/PID/environ reads
    empty for a moment (the parent learns of the exec before the kernel
    has laid out the new stack), so an empty one is read again."""
    deadline = time.monotonic() + 1.0
    env = process.environ()
    while not env and time.monotonic() < deadline:
        time.sleep(0.005)
        env = process.environ()
    return env


def names_under(pid: int) -> list[str]:
    """The names of every live descendant of pid. A process that ends
    between the listing and the read of its name is left out: a test
    polling a tree that is being cleaned up sees it end, not an error."""
    names = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            names.append(proc.name())
        except psutil.NoSuchProcess:
            continue
    return names


def processes_under(directory: Path) -> list[psutil.Process]:
    """Processes started by a bigtop daemon whose cwd is inside directory."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if "BIGTOP_WATCHER" not in proc.environ():
                continue
            if Path(proc.cwd()).is_relative_to(directory):
                found.append(proc)
        except psutil.Error:
            continue
    return found


Match = str | Callable[[str, dict[str, Any]], object]


class Events:
    """A daemon's events as a test follows them: subscribed, handshake
    done, on entering (so nothing published after is missed); ``wait``
    for one, ``seen`` for all so far, ``sync`` to catch up with the daemon."""

    def __init__(self, endpoint: str, topics: tuple[str, ...] = (), timeout: float = 10.0,
                 key: str | None = None, server_key: str | None = None):
        """``timeout``: the handshakes'; ``key``/``server_key``: CurveZMQ's."""
        self._sub = Subscriber(endpoint, timeout=timeout, key=key, server_key=server_key)
        self._topics = topics or ("",)
        self.events: list[Event] = []  # every event read so far, in order
        self._taken: set[int] = set()  # indexes of events wait() returned

    def __enter__(self) -> Events:
        try:
            self._sub.subscribe(*self._topics)
            self._sub.handshake()
        except BaseException:
            self._sub.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._sub.close()

    @staticmethod
    def _matches(match: Match, fields: dict[str, Any], event: Event) -> bool:
        topic, payload = event
        if isinstance(match, str):
            if topic != match:
                return False
        elif not match(topic, payload):
            return False
        return all(payload.get(key) == value for key, value in fields.items())

    def _read(self, timeout: float) -> bool:
        event = self._sub.recv(timeout)
        if event is not None:
            self.events.append(event)
        return event is not None

    def wait(self, match: Match, timeout: float = 10.0, **fields: Any) -> Event:
        """The first event not yet returned by wait whose topic is ``match``
        (or for which ``match(topic, payload)`` is true) and whose payload
        has these ``fields``; fails the test after timeout seconds."""
        deadline = time.monotonic() + timeout
        checked = 0  # events before this one do not match
        while True:
            for index in range(checked, len(self.events)):
                if index not in self._taken and self._matches(match, fields, self.events[index]):
                    self._taken.add(index)
                    return self.events[index]
            checked = len(self.events)
            if not self._read(max(deadline - time.monotonic(), 0.0)):
                break
        what = match if isinstance(match, str) else getattr(match, "__name__", repr(match))
        seen = [topic for topic, _ in self.events]
        pytest.fail(f"timed out after {timeout}s waiting for the event {what}"
                    f"{f' with {fields}' if fields else ''}; seen: {seen}")

    def seen(self, match: Match | None = None, **fields: Any) -> list[Event]:
        """Every event read so far (those arrived are read first, without
        waiting), or those matching as in wait."""
        while self._read(0):
            pass
        if match is None and not fields:
            return list(self.events)
        return [e for e in self.events if self._matches(match or (lambda *_: True), fields, e)]

    def sync(self) -> list[Event]:
        """Every event the daemon published before this call: a handshake
        is answered on the events socket after what was published before
        it (protocol.md), so once answered all that has been read."""
        self._sub.handshake()
        return self.seen()


class Daemon:
    """A real bigtopd on a config file in a temporary directory."""

    def __init__(self, path: Path, config: str, name: str = "bigtop.ini",
                 args: tuple[str, ...] = (),
                 rlimits: dict[int, tuple[int, int]] | None = None):
        self.path = path
        self.config = path / name
        self.config.write_text(textwrap.dedent(config))
        self.log = path / "daemon.log"
        self.out = path / "daemon.out"
        self.args = args
        self.rlimits = rlimits or {}  # resource.RLIMIT_* -> the daemon's (soft, hard) limit
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        """The daemon's runtime directory: its default control endpoints."""
        return self.path / "run"

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.run_dir}/control.sock"

    @property
    def pubsub_endpoint(self) -> str:
        return f"ipc://{self.run_dir}/events.sock"

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.endpoint, timeout=timeout)

    def call(self, command: str, **properties: Any) -> dict[str, Any]:
        """One command on a client of its own (CommandFailed on an error)."""
        with self.client() as client:
            return client.call(command, **properties)

    def events(self, *topics: str) -> Events:
        """``with d.events("watcher.web.") as ev:`` follows these topic
        prefixes (every event without), from before the block's first line."""
        return Events(self.pubsub_endpoint, topics)

    def start(self, wait: bool = True) -> Daemon:
        cmd = [sys.executable, "-m", "bigtop.cli.bigtopd", str(self.config), *self.args]
        env = {**os.environ, "BIGTOP_RUNTIME_DIR": str(self.run_dir)}
        before = self.log_text().count(SETTLED)  # a daemon before it, in the same log
        with open(self.out, "ab") as out, open(self.log, "ab") as err:
            proc = self.proc = subprocess.Popen(cmd, cwd=self.path, stdout=out, stderr=err,
                                                start_new_session=True, env=env,
                                                preexec_fn=self._limit if self.rlimits else None)
        if wait:  # until what can start has started (or the daemon gave up): no
            # event can say so before a subscriber connects, the daemon's log does
            wait_for(lambda: self.log_text().count(SETTLED) > before
                     or proc.poll() is not None, message="daemon start")
        return self

    def _limit(self) -> None:
        import resource

        for which, limits in self.rlimits.items():
            resource.setrlimit(which, limits)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def out_text(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def children(self, watcher: str | None = None) -> list[psutil.Process]:
        """The daemon's live (non-zombie) managed children, optionally of one watcher."""
        found = []
        try:
            kids = psutil.Process(self.pid).children()
        except psutil.Error:
            return []
        for child in kids:
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                env = environ_of(child)
            except psutil.Error:
                continue
            if "BIGTOP_WATCHER" not in env:
                continue
            if watcher is None or env["BIGTOP_WATCHER"] == watcher:
                found.append(child)
        return found

    def pids(self, watcher: str | None = None) -> set[int]:
        return {p.pid for p in self.children(watcher)}

    def assert_running(self) -> None:
        """Fails at once, with the daemon's log and output, if it ended."""
        assert self.proc is None or self.proc.poll() is None, (
            "the daemon ended\n" + self.log_text()[-3000:] + self.out_text()[-3000:])

    def wait_pids(self, watcher: str, count: int, timeout: float = 10.0) -> set[int]:
        def counted() -> bool:
            self.assert_running()
            return len(self.pids(watcher)) == count

        wait_for(counted, timeout, message=f"{count} processes of {watcher}")
        return self.pids(watcher)

    def wait_ready(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """Until every wanted process of the watcher is ready, as its state
        says (for a start no subscriber could follow); fails at once, with
        the daemon's log and output, if the watcher failed or the daemon
        ended. Returns the watcher's ``status --details``."""
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            self.assert_running()
            info: dict[str, Any] = self.call("status", name=name, details=True)["details"]
            assert info["status"] != "failed", (
                f"{name} failed\n" + self.log_text()[-3000:] + self.out_text()[-3000:])
            done = info["status"] == "active" and 0 < info["wanted"] == info["ready"]
            return info if done else None

        return wait_for(ready, timeout, message=f"{name} ready")  # type: ignore[return-value]

    def wait_log(self, text: str, timeout: float = 10.0, count: int = 1) -> None:
        wait_for(lambda: self.log_text().count(text) >= count, timeout,
                 message=f"{text!r} in the daemon log")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def reload(self, config: str) -> None:
        self.config.write_text(textwrap.dedent(config))
        self.signal(signal.SIGHUP)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("daemon did not stop on SIGTERM")
        return -1


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``daemon(config_text, **kw)`` starts bigtopd; teardown stops it and
    fails the test if any process it started is still alive, or if the
    daemon ended with a task still pending."""
    started: list[Daemon] = []

    def make(config: str, start: bool = True, where: str | None = None,
             **kw: object) -> Daemon:
        """``where``: a directory of its own under the test's (several daemons)."""
        path = tmp_path / where if where else tmp_path
        path.mkdir(exist_ok=True)
        d = Daemon(path, config, **kw)  # type: ignore[arg-type]
        started.append(d)
        return d.start() if start else d

    yield make
    failures = []
    for d in started:  # every one, even after one that would not stop
        try:
            d.stop()
        except BaseException as err:  # pytest.fail's exception too
            failures.append(err)
    leftovers = processes_under(tmp_path)
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.Error:
            pass
    if failures:
        raise failures[0]
    for d in started:  # bigtopd logs any task still pending when it has stopped
        assert "tasks left at shutdown" not in d.log_text(), d.log_text()[-2000:]
    assert not leftovers, f"processes left behind: {[p.pid for p in leftovers]}"


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every daemon a test starts, and every client, uses endpoints in the
    test's own directory, never the machine's /run/bigtop."""
    monkeypatch.setenv("BIGTOP_RUNTIME_DIR", str(tmp_path / "run"))


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 3-member etcd cluster for one test (tests/etcd.py), stopped after it."""
    from .etcd import ETCD, EtcdCluster

    if ETCD is None:
        pytest.skip("no etcd (apt-get install etcd-server)")
    cluster = EtcdCluster(tmp_path / "etcd")
    try:
        yield cluster.start()
    finally:
        cluster.stop()
