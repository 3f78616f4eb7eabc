"""The stats endpoint: stat.* topics with Circus's payloads (and bigtop's
fields), sampled only while someone subscribes; the `stats` and `dstats`
commands from the same sampler; Circus's own StatsClient and circus-top
against bigtopd."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from bigtop.client import Subscriber
from bigtop.stats.sampler import THREAD_NAME, topic_matches

from .conftest import ROOT, free_port, wait_for

CIRCUS_PYTHON = ROOT / ".venv-circus" / "bin" / "python"
CIRCUS_TOP = ROOT / ".venv-circus" / "bin" / "circus-top"
needs_circus = pytest.mark.skipif(not CIRCUS_PYTHON.exists(), reason="no .venv-circus")

MIB = 1 << 20
# A process that forks two children: one holds 64 MiB, one burns CPU.
FORKER = """\
import os, time
def child(work):
    if os.fork() == 0:
        try:
            work()
        finally:
            os._exit(0)
def hold():
    data = b"x" * (64 << 20)
    time.sleep(1000)
def burn():
    os.nice(19)
    while True:
        pass
child(hold)
child(burn)
time.sleep(1000)
"""

CIRCUS_PER_PROCESS = {"pid", "cmdline", "username", "nice", "mem_info1", "mem_info2", "cpu",
                      "mem", "ctime", "create_time", "age", "children", "subtopic", "name"}
BIGTOP_PER_PROCESS = {"rss", "vms", "threads", "fds", "read_bytes", "write_bytes", "wid",
                      "restarts", "started", "watcher", "ppid", "time"}


def config(tmp_path: Path, interval: float = 0.2) -> tuple[str, int]:
    (tmp_path / "forker.py").write_text(FORKER)
    port = free_port()
    return f"""
        [circus]
        stats_interval = {interval}
        loglevel = debug

        [socket:web]
        host = 127.0.0.1
        port = {port}

        [socket:local]
        path = {tmp_path}/local.sock

        [watcher:webapp]
        cmd = sleep 1000
        numprocesses = 2
        sockets = web, local

        [watcher:worker]
        cmd = {sys.executable} {tmp_path}/forker.py
        """, port


def stats_endpoint(d: Any) -> str:
    return f"ipc://{d.run_dir}/stats.sock"


def collect(d: Any, topics: list[str], done: Callable[[dict[str, Any]], object],
            timeout: float = 20.0) -> dict[str, Any]:
    """The latest payload of each topic, until done(latest) is true."""
    latest: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    with Subscriber(stats_endpoint(d), timeout=timeout) as sub:
        sub.subscribe(*topics)
        sub.handshake()
        while (event := sub.recv(max(deadline - time.monotonic(), 0.0))) is not None:
            topic, payload = event
            latest[topic] = payload
            if done(latest):
                return latest
    pytest.fail(f"stats: condition not met; topics seen: {sorted(latest)}")


def sampler_threads(pid: int) -> int:
    """How many threads of the daemon are the stats sampler (from /proc)."""
    count = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm:
                count += comm.read().strip() == THREAD_NAME
        except OSError:
            continue
    return count


def test_topics_and_payloads(daemon, tmp_path):
    text, port = config(tmp_path)
    d = daemon(text)
    webapp = d.wait_pids("webapp", 2)
    (worker,) = d.wait_pids("worker", 1)
    wait_for(lambda: len(psutil.Process(worker).children()) == 2, message="worker's children")
    waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    local = socket.socket(socket.AF_UNIX)
    local.connect(str(tmp_path / "local.sock"))
    with d.client() as client:
        fds = {s["name"]: s["fd"] for s in client.call("listsockets")["sockets"]}
        options = client.call("globaloptions")["options"]
    assert options["stats_endpoint"] == stats_endpoint(d)
    assert (d.run_dir / "stats.sock").stat().st_mode & 0o777 == 0o600  # private, as the others
    assert options["stats_interval"] == 0.2
    try:
        def ready(latest: dict[str, Any]) -> bool:
            work = latest.get(f"stat.worker.{worker}")
            sockets = latest.get("stat.sockets")
            topics = [f"stat.worker.{worker}", "stat.worker", "stat.webapp", "stat.sockets",
                      *(f"stat.webapp.{pid}" for pid in webapp), f"stat.circus.{d.pid}",
                      *(f"stat.sockets.{fd}" for fd in fds.values())]
            if "stat.circus" not in latest or any(t not in latest for t in topics):
                return False
            # Every topic from one round (stat.circus comes last in each).
            if any(latest[t]["time"] != latest["stat.circus"]["time"] for t in topics):
                return False
            return (len(work["children"]) == 2 and isinstance(work["cpu"], float)
                    and work["cpu"] > 0 and sockets["reads"] == 4)

        latest = collect(d, ["stat."], ready)
    finally:
        for conn in [*waiting, local]:
            conn.close()

    # One process: Circus's fields, and bigtop's.
    for pid in webapp:
        info = latest[f"stat.webapp.{pid}"]
        assert set(info) >= CIRCUS_PER_PROCESS | BIGTOP_PER_PROCESS, set(info) ^ (
            CIRCUS_PER_PROCESS | BIGTOP_PER_PROCESS)
        assert info["pid"] == info["subtopic"] == pid and info["name"] is None
        assert info["cmdline"] == "sleep" and info["children"] == []
        assert info["watcher"] == "webapp" and info["wid"] in (1, 2) and info["restarts"] == 0
        assert info["rss"] > 0 and info["vms"] >= info["rss"] and info["threads"] == 1
        assert info["fds"] >= 3  # stdio at least
        assert re.fullmatch(r"\d+\.\d\dM", info["mem_info1"])
        assert isinstance(info["cpu"], float) and isinstance(info["mem"], float)
        assert isinstance(info["age"], float) and info["age"] > 0

    # A process with children: their figures added to its own, and listed.
    work = latest[f"stat.worker.{worker}"]
    kids = work["children"]
    assert {k["ppid"] for k in kids} == {worker} and all(k["children"] == [] for k in kids)
    assert {k["pid"] for k in kids} == {p.pid for p in psutil.Process(worker).children()}
    own_rss = psutil.Process(worker).memory_info().rss
    assert own_rss < 64 * MIB <= work["rss"]
    assert work["rss"] > sum(k["rss"] for k in kids) >= 64 * MIB
    assert work["threads"] == 1 + sum(k["threads"] for k in kids)
    assert work["cpu"] >= max(k["cpu"] for k in kids) > 0
    assert work["mem"] >= sum(k["mem"] for k in kids)
    assert float(work["mem_info1"][:-1]) >= 64  # "1xx.xxM"

    # A watcher: Circus's pids, average cpu, summed mem, oldest age; bigtop's sums.
    total = latest["stat.webapp"]
    assert sorted(total["pid"]) == sorted(webapp)
    assert total["processes"] == total["wanted"] == total["numprocesses"] == 2
    assert total["status"] == "active" and total["restarts"] == 0
    assert total["rss"] == sum(latest[f"stat.webapp.{p}"]["rss"] for p in webapp)
    assert total["age"] == max(latest[f"stat.webapp.{p}"]["age"] for p in webapp)
    assert total["mem"] == round(sum(latest[f"stat.webapp.{p}"]["mem"] for p in webapp), 3)
    assert set(total) >= {"cpu", "mem", "cpu_sum", "cpu_max", "rss_max", "mem_max", "vms",
                          "threads", "fds", "read_bytes", "write_bytes", "children"}
    assert latest["stat.worker"]["children"] == 2

    # Sockets: address and accept queue (Circus's "reads" is the queue here).
    tcp, unix = latest[f"stat.sockets.{fds['web']}"], latest[f"stat.sockets.{fds['local']}"]
    assert tcp["address"] == f"127.0.0.1:{port}" and tcp["accept_queue"] == tcp["reads"] == 3
    assert unix["address"] == str(tmp_path / "local.sock") and unix["accept_queue"] == 1
    assert tcp["fd"] == tcp["subtopic"] == fds["web"] and tcp["name"] == "web"
    assert sorted(latest["stat.sockets"]["addresses"]) == sorted([tcp["address"],
                                                                  unix["address"]])

    # The daemon itself.
    me = latest[f"stat.circus.{d.pid}"]
    assert me["pid"] == d.pid and me["name"] == "bigtopd" and me["children"] == []
    assert me["threads"] >= 2  # the loop and the sampler, at least
    circus = latest["stat.circus"]
    assert circus["pid"] == [d.pid] and circus["sampler"]["publishing"]
    assert circus["sampler"]["subscriptions"] == ["stat."]
    assert circus["sampler"]["last_round"]["processes"] == 3


def test_stats_command_aggregates_children(daemon, tmp_path):
    text, _ = config(tmp_path)
    d = daemon(text)
    (worker,) = d.wait_pids("worker", 1)
    wait_for(lambda: len(psutil.Process(worker).children()) == 2, message="worker's children")
    with d.client() as client:
        def info() -> dict[str, Any]:
            return client.call("stats", name="worker", process=worker)["info"]

        got = wait_for(lambda: (i := info())["rss"] >= 64 * MIB and i, message="64 MiB child")
        assert len(got["children"]) == 2 and got["wid"] == 1
        every = client.call("stats")
        assert set(every["infos"]) == {"webapp", "worker"}
        assert {s["name"] for s in every["sockets"]} == {"web", "local"}
        dstats = client.call("dstats")
        assert dstats["info"]["pid"] == d.pid and "sampler" in dstats
        # Answered by the sampler's thread, not by rounds: nobody subscribes.
        assert dstats["sampler"]["rounds"] == 0 and dstats["sampler"]["queries"] >= 2


def test_extended_stats_hook(daemon, tmp_path):
    (tmp_path / "statshook.py").write_text(
        "def extend(watcher, arbiter, hook_name, pid, stats, **kwargs):\n"
        "    stats['extra'] = {'hook': hook_name, 'pid': pid, 'watcher': watcher.name}\n"
        "    return True\n")
    d = daemon("""
        [watcher:webapp]
        cmd = sleep 1000
        numprocesses = 2
        hooks.extended_stats = statshook.extend
        """)
    pids = d.wait_pids("webapp", 2)
    with d.client() as client:
        infos = client.call("stats", name="webapp", extended=True)["info"]
        assert {int(pid): info["extra"] for pid, info in infos.items()} == {
            pid: {"hook": "extended_stats", "pid": pid, "watcher": "webapp"} for pid in pids}
        one = client.call("stats", name="webapp", process=min(pids), extended=True)["info"]
        assert one["extra"]["pid"] == min(pids)
        plain = client.call("stats", name="webapp")["info"]
        assert all("extra" not in info for info in plain.values())


def test_no_sampling_unless_subscribed(daemon, tmp_path):
    from bigtop.client import Subscriber

    text, _ = config(tmp_path, interval=0.1)
    d = daemon(text)
    d.wait_pids("webapp", 2)
    assert sampler_threads(d.pid) == 0, "no sampler thread before anyone asks"

    # A subscription that matches no stat.* topic costs nothing either.
    quiet = Subscriber(stats_endpoint(d), timeout=10)
    quiet.subscribe("stat.nothing.")
    try:
        quiet.handshake()  # the daemon has the subscription
        window = time.monotonic() + 10 * 0.1
        while time.monotonic() < window:
            assert sampler_threads(d.pid) == 0

        # One watcher's topics: only that watcher is sampled.
        latest = collect(d, ["stat.webapp"], lambda seen: len(seen) >= 3)
        assert set(latest) == {f"stat.webapp.{p}" for p in d.pids("webapp")} | {"stat.webapp"}
        assert sampler_threads(d.pid) == 1
    finally:
        quiet.close()

    # Nobody left: the rounds stop, and soon the thread. No event or
    # handshake can tell that a subscriber has gone, and dstats would
    # sample the daemon on the very thread counted here: the log says it.
    d.wait_log("stats subscriptions: none")
    wait_for(lambda: sampler_threads(d.pid) == 0, timeout=20, message="the sampler thread to end")
    with d.client() as client:
        status = client.call("dstats")["sampler"]
        assert not status["publishing"] and status["subscriptions"] == []
        assert status["last_round"]["processes"] == 2  # webapp's, not worker's
        rounds = status["rounds"]
        assert rounds > 0
        window = time.monotonic() + 10 * 0.1
        while time.monotonic() < window:
            assert client.call("dstats")["sampler"]["rounds"] == rounds


def test_topic_matching():
    assert topic_matches({"stat."}, "stat.web")
    assert topic_matches({""}, "stat.circus")
    assert topic_matches({"stat.we"}, "stat.web")
    assert topic_matches({"stat.web.123"}, "stat.web")
    assert topic_matches({"stat.web"}, "stat.web")
    assert not topic_matches({"stat.web."}, "stat.webapp")
    assert not topic_matches({"stat.other"}, "stat.web")


def test_bad_interval_is_refused(daemon, tmp_path):
    d = daemon("""
        [circus]
        stats_interval = 0

        [watcher:a]
        cmd = sleep 1000
        """, start=False)
    d.start()
    assert d.proc.wait(10) == 2
    assert "stats_interval" in d.log_text() and "must be more than 0" in d.log_text()


# -- Circus's own clients ---------------------------------------------------

STATS_CLIENT = """\
import json, sys
from circus.stats.client import StatsClient
want = set(json.loads(sys.argv[2]))
seen = {}
for watcher, subtopic, stat in StatsClient(endpoint=sys.argv[1]):
    seen[f"{watcher}/{subtopic or ''}"] = stat
    if want <= set(seen):
        break
print(json.dumps(seen))
"""


@needs_circus
def test_circus_stats_client(daemon, tmp_path):
    text, _ = config(tmp_path)
    d = daemon(text)
    webapp, worker = d.wait_pids("webapp", 2), d.wait_pids("worker", 1)
    want = [f"webapp/{p}" for p in webapp] + [f"worker/{p}" for p in worker] + [
        "webapp/", "worker/", "sockets/", "circus/", f"circus/{d.pid}"]
    proc = subprocess.run([str(CIRCUS_PYTHON), "-c", STATS_CLIENT, stats_endpoint(d),
                           json.dumps(want)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert set(want) <= set(seen)
    assert seen[f"circus/{d.pid}"]["name"] == "bigtopd"
    assert seen["webapp/"]["pid"] and isinstance(seen["webapp/"]["cpu"], float)
    assert "addresses" in seen["sockets/"]


def run_in_pty(argv: list[str], until: Callable[[str], bool], timeout: float = 30.0,
               size: tuple[int, int] = (50, 120)) -> tuple[int, str]:
    """Run argv on a terminal until until(screen text) is true, then Ctrl-C
    it; its exit status and what it wrote, without escape sequences."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.environ["TERM"] = "xterm"
        # A test run in the background (`make test &`) ignores SIGINT, and
        # so would the program: Python then sets no KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execv(argv[0], argv)
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    raw = b""

    def text() -> str:
        plain = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]", b" ", raw)
        return plain.decode(errors="replace")

    def read(wait: float) -> bool:
        nonlocal raw
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return True
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return False
        raw += chunk
        return bool(chunk)

    try:
        deadline = time.monotonic() + timeout
        while not until(text()) and time.monotonic() < deadline and read(0.1):
            pass
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), text()
            if not read(0.1):  # the terminal closed: the exit comes next, wait for it
                time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), text()
    finally:
        os.close(fd)


@needs_circus
def test_circus_top(daemon, tmp_path):
    text, port = config(tmp_path, interval=0.5)
    d = daemon(text)
    webapp, (worker,) = d.wait_pids("webapp", 2), d.wait_pids("worker", 1)

    def shown(screen: str) -> bool:
        return all(word in screen for word in (
            "webapp", "worker", "sockets", "circus", f"{d.pid} (bigtopd)", f"127.0.0.1:{port}",
            *(str(p) for p in webapp), str(worker), "(avg)", "(sum)"))

    status, screen = run_in_pty([str(CIRCUS_TOP), "--endpoint", stats_endpoint(d)], shown)
    assert shown(screen), screen[-2000:]
    assert "Traceback" not in screen and "Error" not in screen, screen[-2000:]
    assert status == 0, screen[-2000:]
