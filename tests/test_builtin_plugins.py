"""The built-in plugins of issue #8 on real daemons, each against the real
thing it talks to: processes that really use memory and CPU
(resource_watcher), an HTTP server and a TCP listener (http_observer), UDP
heartbeats (watchdog), files changed on disk (command_reloader), a real
redis-server (redis_observer)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bigtop.plugins.command_reloader import command_files, split_list
from bigtop.plugins.http_observer import parse_address, parse_statuses
from bigtop.plugins.redis_observer import without_password
from bigtop.plugins.registry import find
from bigtop.plugins.resource_watcher import Memory, parse_memory

from .conftest import free_port, wait_for
from .test_plugins import STATSD_LINE, StatsdServer, plugin_process, sleeper

PY = sys.executable


class Statsd(StatsdServer):
    """The statsd socket of test_plugins, read without waiting for a pause:
    the observers here send every 0.2 s, a stream with no pause in it."""

    def receive(self) -> list[tuple[str, float, str]]:
        self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.metrics
            for line in data.decode().splitlines():
                match = STATSD_LINE.match(line)
                assert match, f"not a statsd line: {line!r}"
                self.metrics.append((match["bucket"], float(match["value"]), match["type"]))


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def logged(d, text: str) -> None:
    """Wait for a line of the plugins' output (it reaches the daemon's
    output through a pipe, a moment after the plugin acted)."""
    wait_for(lambda: text in d.out_text(), timeout=20, message=f"{text!r} in the output")


def slots(d, watcher: str) -> dict[str, int]:
    """wid -> pid, from the daemon."""
    with d.client() as client:
        return client.call("status", name=watcher, details=True)["details"]["pids"]


# -- option parsing ------------------------------------------------------------

def test_option_parsers():
    assert parse_memory("50") == Memory(50, True) == parse_memory("50%")
    assert parse_memory("200M") == Memory(200 * 2**20, False) == parse_memory("200MB")
    assert parse_memory("1.5GiB") == Memory(1.5 * 2**30, False)
    assert parse_memory("512k") == Memory(512 * 1024, False)
    assert parse_memory("4096B") == Memory(4096, False)
    assert str(parse_memory("200M")) == "200M" and str(parse_memory("50")) == "50%"
    for bad in ("lots", "12X", "-5M", ""):
        with pytest.raises(ValueError):
            parse_memory(bad)
    assert parse_statuses("2xx") == [(200, 299)]
    assert parse_statuses("200, 204 3xx") == [(200, 200), (204, 204), (300, 399)]
    with pytest.raises(ValueError):
        parse_statuses("ok")
    assert parse_address("127.0.0.1:80") == ("127.0.0.1", 80)
    assert parse_address(":6379") == ("localhost", 6379)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ValueError):
        parse_address("localhost")
    assert without_password("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert without_password("redis://u:s3cret@db/0") == "redis://u:***@db/0"
    assert without_password("redis://db/0") == "redis://db/0"
    assert split_list("web, api") == ["web", "api"] == split_list("web api")
    assert split_list("/srv/my app/conf,\n/etc/x") == ["/srv/my app/conf", "/etc/x"]


def test_every_builtin_loads_and_circus_classes_map_to_them():
    for name, cls_name in [("watchdog", "WatchDog"), ("resource_watcher", "ResourceWatcher"),
                           ("http_observer", "HttpObserver"),
                           ("command_reloader", "CommandReloader"),
                           ("redis_observer", "RedisObserver")]:
        cls, _ = find(name)
        assert cls.__name__ == cls_name and cls.plugin_name == name
        circus_module = "circus.plugins." + name
        assert find(f"{circus_module}.{cls_name}")[0] is cls


def test_command_files_are_the_executable_and_file_arguments(tmp_path):
    app = script(tmp_path, "app/app.py", "print('hi')\n")
    conf = script(tmp_path, "app/app.ini", "")
    link = tmp_path / "current.py"
    link.symlink_to(app)
    files = command_files({"cmd": "python3", "args": "app/app.py -c app/app.ini --flag",
                           "working_dir": str(tmp_path), "env": {"PATH": os.path.dirname(PY)}})
    assert {str(app), str(conf)} <= files
    assert any(os.path.basename(f).startswith("python") for f in files)
    files = command_files({"cmd": f"{PY} {link}", "working_dir": str(tmp_path)})
    assert {str(link), str(app), PY} <= files  # the link and what it points to
    assert command_files({"cmd": "", "working_dir": str(tmp_path)}) == set()


# -- resource_watcher ------------------------------------------------------------

HOG = """\
import signal, sys, time
wid = int(sys.argv[1])
ballast = b"x" * ((80 << 20) if wid == 1 else 0)  # resident: every page written
while True:
    time.sleep(1000)
"""

SPIN = """\
import os, signal, sys, time
calm = False
def on_usr1(signum, frame):
    global calm
    calm = True
    with open(sys.argv[1], "a") as out:
        out.write(f"{os.getpid()}\\n")
signal.signal(signal.SIGUSR1, on_usr1)
while not calm:
    pass
while True:
    time.sleep(1000)
"""


def test_resource_watcher_restarts_a_process_over_its_memory_limit(daemon, tmp_path):
    """Per process: the big one is replaced, its sibling left alone."""
    hog = script(tmp_path, "hog.py", HOG)
    d = daemon(f"""
        [watcher:hog]
        cmd = {PY} {hog} $(circus.wid)
        numprocesses = 2

        [plugin:memory]
        use = resource_watcher
        watcher = hog
        max_mem = 50M
        max_cpu = 0
        health_threshold = 0
        max_count = 1
        loop_rate = 0.2
        """)
    d.wait_pids("hog", 2)
    first = slots(d, "hog")
    wait_for(lambda: slots(d, "hog").get("1") not in (None, first["1"]), timeout=20,
             message="the big process replaced")
    assert slots(d, "hog")["2"] == first["2"]
    logged(d, f"hog: pid {first['1']}: memory ")
    logged(d, "> 50M, for 2 samples in a row: restarting it")
    assert f"pid {first['2']}:" not in d.out_text()


def test_resource_watcher_signals_a_busy_process(daemon, tmp_path):
    """Circus's class name; signal = USR1 sends a signal rather than
    restarting: the process calms down and keeps its pid."""
    spin = script(tmp_path, "spin.py", SPIN)
    calmed = tmp_path / "calmed.txt"
    d = daemon(f"""
        [watcher:spin]
        cmd = {PY} {spin} {calmed}

        [plugin:cpu]
        use = circus.plugins.resource_watcher.ResourceWatcher
        watcher = spin
        max_cpu = 30
        max_count = 1
        loop_rate = 0.2
        signal = USR1
        """)
    (pid,) = d.wait_pids("spin", 1)
    wait_for(calmed.exists, timeout=20, message="the busy process signalled")
    assert calmed.read_text().split() == [str(pid)]
    assert d.pids("spin") == {pid}
    logged(d, f"spin: pid {pid}: cpu ")
    logged(d, "sending SIGUSR1")


FAMILY = """\
import os, sys, time
child = os.fork()
if child == 0:
    while True:
        time.sleep(1000)
while True:  # busy, until the child is gone
    done, status = os.waitpid(child, os.WNOHANG)
    if done:
        break
with open(sys.argv[1], "w") as out:
    out.write(f"{child} {os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0}")
while True:
    time.sleep(1000)
"""


def test_resource_watcher_signals_an_idle_child(daemon, tmp_path):
    """process_children: each descendant against the limits on its own, and
    sent child_signal; the process itself (busy) is left alone."""
    family = script(tmp_path, "family.py", FAMILY)
    marker = tmp_path / "child-gone.txt"
    d = daemon(f"""
        [watcher:family]
        cmd = {PY} {family} {marker}

        [plugin:children]
        use = resource_watcher
        watcher = family
        max_cpu = 0
        max_mem = 0
        health_threshold = 0
        min_cpu = 5
        max_count = 1
        loop_rate = 0.2
        process_children = true
        child_signal = TERM
        """)
    (parent,) = d.wait_pids("family", 1)
    wait_for(lambda: marker.exists() and marker.read_text(), timeout=20,
             message="the child signalled")
    child, signum = marker.read_text().split()
    assert int(signum) == signal.SIGTERM
    assert d.pids("family") == {parent}
    logged(d, f"family: child {child} of pid {parent}: cpu 0% <= 5%, for 2 samples in a row: "
              "sending SIGTERM")


def test_resource_watcher_restarts_the_whole_watcher_when_idle(daemon, tmp_path):
    """per_process = false is Circus's way: watcher-wide figures, and the
    watcher restarted; min_cpu catches a process doing nothing."""
    cmd = sleeper(tmp_path)
    d = daemon(f"""
        [watcher:idle]
        cmd = {cmd}
        numprocesses = 2

        [plugin:idle]
        use = resource_watcher
        watcher = idle
        min_cpu = 5
        max_count = 1
        loop_rate = 0.2
        per_process = false
        """)
    first = d.wait_pids("idle", 2)
    wait_for(lambda: len(d.pids("idle")) == 2 and not d.pids("idle") & first, timeout=20,
             message="both processes replaced")
    logged(d, "idle: cpu 0% <= 5%, for 2 samples in a row: restarting the watcher")


# -- http_observer ------------------------------------------------------------------

HTTP_APP = """\
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, trigger, hits = int(sys.argv[1]), sys.argv[2], sys.argv[3]

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if os.path.exists(trigger) else 200
        with open(hits, "a") as out:
            out.write(f"{os.getpid()} {code}\\n")
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

TCP_APP = """\
import os, socket, sys, time
port, trigger = int(sys.argv[1]), sys.argv[2]
listener = socket.create_server(("127.0.0.1", port))
listener.settimeout(0.05)
while not os.path.exists(trigger):
    try:
        listener.accept()[0].close()
    except TimeoutError:
        pass
listener.close()  # still running, no longer serving
while True:
    time.sleep(1000)
"""


def test_http_observer_restarts_a_failing_app(daemon, tmp_path):
    app = script(tmp_path, "http_app.py", HTTP_APP)
    tcp_app = script(tmp_path, "tcp_app.py", TCP_APP)
    http_port, tcp_port = free_port(), free_port()
    broken, closed, hits = tmp_path / "broken", tmp_path / "closed", tmp_path / "hits.txt"
    metrics = Statsd()
    try:
        d = daemon(f"""
            [watcher:web]
            cmd = {PY} {app} {http_port} {broken} {hits}

            [watcher:tcpapp]
            cmd = {PY} {tcp_app} {tcp_port} {closed}

            [plugin:http]
            use = circus.plugins.http_observer.HttpObserver
            check_url = http://127.0.0.1:{http_port}/health
            loop_rate = 0.2
            timeout = 2
            restart_on_error = web
            failures = 2
            host = 127.0.0.1
            port = {metrics.port}

            [plugin:tcp]
            use = http_observer
            tcp = 127.0.0.1:{tcp_port}
            interval = 0.2
            timeout = 2
            watcher = tcpapp
            failures = 2
            """)
        (web,) = d.wait_pids("web", 1)
        (tcp,) = d.wait_pids("tcpapp", 1)

        def answers(code: int) -> list[str]:
            lines = hits.read_text().splitlines() if hits.exists() else []
            return [line for line in lines if line.endswith(f" {code}")]

        wait_for(lambda: len(answers(200)) >= 3, timeout=20, message="probes answered")
        assert d.pids("web") == {web}
        wait_for(lambda: any(b == "circus.http_observer.watcher.http_stats.request_time"
                             and kind == "ms" for b, _, kind in metrics.receive()),
                 message="the request time")

        broken.touch()
        wait_for(lambda: d.pids("web") - {web}, timeout=20, message="web restarted")
        broken.unlink()
        assert len([a for a in answers(500) if a.startswith(f"{web} ")]) >= 2
        logged(d, f"http://127.0.0.1:{http_port}/health failed 2 time(s) in a row: "
                  "restarting web")
        wait_for(lambda: ("circus.http_observer.watcher.http_stats.error.500", 1.0, "c")
                 in metrics.receive(), message="the error counter")
        assert ("circus.http_observer.watcher.http_stats.restart_on_error", 1.0, "c") in \
            metrics.metrics

        closed.touch()
        wait_for(lambda: d.pids("tcpapp") - {tcp}, timeout=20, message="tcpapp restarted")
        logged(d, f"tcp 127.0.0.1:{tcp_port} failed 2 time(s) in a row: restarting tcpapp")

        # A watcher stopped on purpose is not started again.
        with d.client() as client:
            client.call("stop", name="web", waiting=True)
        logged(d, "(web is stopped: not counted)")  # a probe failed meanwhile
        with d.client() as client:
            assert client.call("status", name="web")["status"] == "stopped"
    finally:
        metrics.close()


# -- watchdog -----------------------------------------------------------------------

BEAT = """\
import os, signal, socket, sys, time
port, trigger, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def note(text):
    with open(log, "a") as out:
        out.write(f"{os.getpid()} {text}\\n")

def on_term(signum, frame):
    note("TERM")
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    if not os.path.exists(trigger):
        sock.sendto(f"{os.getpid()};{time.time()}".encode(), ("127.0.0.1", port))
        note("beat")
    time.sleep(0.05)
"""


def test_watchdog_replaces_a_process_that_stops_sending_heartbeats(daemon, tmp_path):
    beat = script(tmp_path, "beat.py", BEAT)
    port = free_port()
    silent, log = tmp_path / "silent", tmp_path / "beat.log"
    cmd = sleeper(tmp_path)
    d = daemon(f"""
        [watcher:beat]
        cmd = {PY} {beat} {port} {silent} {log}

        [watcher:quiet]
        cmd = {cmd}

        [plugin:watchdog]
        use = circus.plugins.watchdog.WatchDog
        loop_rate = 0.2
        max_count = 3
        ip = 127.0.0.1
        port = {port}
        watchers_regex = ^beat$
        """)
    (first,) = d.wait_pids("beat", 1)
    (quiet,) = d.wait_pids("quiet", 1)
    plugin = plugin_process(d, "watchdog").pid

    def beats(pid: int) -> int:
        lines = log.read_text().splitlines() if log.exists() else []
        return lines.count(f"{pid} beat")

    logged(d, f"listening on udp 127.0.0.1:{port}; 1 processes watched, each stopped after "
              "0.6s without a heartbeat")
    # Heartbeats keep it alive for far longer than 0.6 s of silence would.
    seen = beats(first)
    wait_for(lambda: beats(first) >= seen + 30, timeout=20, message="30 more heartbeats")
    assert d.pids("beat") == {first}

    silent.touch()
    wait_for(lambda: d.pids("beat") - {first}, timeout=20, message="the silent one replaced")
    assert f"{first} TERM" in log.read_text().splitlines()  # its stop signal: graceful
    logged(d, f"beat: pid {first} sent no heartbeat for 0.6s: stopping it")
    # Not followed: a watcher the regex leaves out, and the plugins.
    assert d.pids("quiet") == {quiet}
    assert plugin_process(d, "watchdog").pid == plugin


# -- command_reloader -----------------------------------------------------------------

APP = """\
import time
VERSION = {version}
while True:
    time.sleep(1000)
"""


def test_command_reloader_restarts_when_the_program_changes(daemon, tmp_path):
    app = script(tmp_path, "app/app.py", APP.format(version=1))
    api = script(tmp_path, "app/api.py", APP.format(version=1))
    conf = tmp_path / "conf"
    conf.mkdir()
    config = """
        [watcher:web]
        cmd = {python} {web}

        [watcher:other]
        cmd = {python} app/app.py

        [watcher:api]
        cmd = {python}
        args = {api}

        [plugin:reloader]
        use = circus.plugins.command_reloader.CommandReloader
        watchers = web
        paths = {conf}

        [plugin:graceful]
        use = command_reloader
        watchers = api
        reload = true
        """
    d = daemon(config.format(python=PY, web="app/app.py", api=api, conf=conf))
    (web,) = d.wait_pids("web", 1)
    (other,) = d.wait_pids("other", 1)
    (api_pid,) = d.wait_pids("api", 1)
    logged(d, "web: watching ")
    logged(d, "api: watching ")
    assert str(app) in d.out_text() and str(conf) in d.out_text()

    app.write_text(APP.format(version=2))  # edited in place
    wait_for(lambda: d.pids("web") - {web}, timeout=20, message="web restarted")
    logged(d, f"{app} changed: restarting web")
    assert d.pids("other") == {other}  # same file, not followed
    assert d.pids("api") == {api_pid}

    (web,) = d.wait_pids("web", 1)
    (conf / "settings.ini").write_text("debug = false\n")  # a new file under paths
    wait_for(lambda: d.pids("web") - {web}, timeout=20, message="web restarted again")
    logged(d, f"{conf / 'settings.ini'} changed: restarting web")

    fresh = api.with_suffix(".tmp")
    fresh.write_text(APP.format(version=2))
    fresh.replace(api)  # replaced by a rename, as editors and deploys do
    wait_for(lambda: d.pids("api") - {api_pid}, timeout=20, message="api reloaded")
    logged(d, f"{api} changed: reloading api")
    assert d.pids("other") == {other}

    # A new command (a reload of the configuration) is followed at once.
    v2 = script(tmp_path, "app/v2.py", APP.format(version=3))
    d.reload(config.format(python=PY, web=v2, api=api, conf=conf))
    wait_for(lambda: any("web: watching " in line and str(v2) in line
                         for line in d.out_text().splitlines()),
             timeout=20, message="v2.py watched")
    (web,) = d.wait_pids("web", 1)
    v2.write_text(APP.format(version=4))
    wait_for(lambda: d.pids("web") - {web}, timeout=20, message="web restarted by v2.py")
    logged(d, f"{v2} changed: restarting web")


# -- redis_observer -----------------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server")


@pytest.mark.skipif(REDIS_SERVER is None,
                    reason="needs redis-server (make redis-server, or apt-get install "
                           "redis-server)")
def test_redis_observer_reports_info_and_restarts_on_connection_loss(daemon, tmp_path):
    pytest.importorskip("redis", reason="needs the redis package (pip install redis)")
    port = free_port()
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    metrics = Statsd()
    try:
        def redis_up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return server.poll() is not None  # gave up: fail below
            return True

        wait_for(redis_up, message="redis-server listening")
        assert server.poll() is None, "redis-server did not start"
        cmd = sleeper(tmp_path)
        d = daemon(f"""
            [watcher:app]
            cmd = {cmd}

            [plugin:redis]
            use = circus.plugins.redis_observer.RedisObserver
            redis_url = redis://127.0.0.1:{port}/0
            loop_rate = 0.2
            timeout = 1
            restart_on_timeout = app
            host = 127.0.0.1
            port = {metrics.port}

            [plugin:redislog]
            use = redis_observer
            redis_url = redis://127.0.0.1:{port}/0
            loop_rate = 0.2
            """)
        (app,) = d.wait_pids("app", 1)

        def gauge(name: str) -> float | None:
            found = [v for b, v, k in metrics.receive()
                     if b == f"circus.redis_observer.watcher.redis_stats.{name}" and k == "g"]
            return found[-1] if found else None

        wait_for(lambda: gauge("connected_clients"), timeout=20, message="INFO gauges")
        assert gauge("used_memory") > 0 and gauge("uptime_in_seconds") is not None
        logged(d, "connected_clients=")  # the INFO figures, from the plugin without statsd
        assert d.pids("app") == {app}

        server.send_signal(signal.SIGTERM)
        server.wait(10)
        wait_for(lambda: d.pids("app") - {app}, timeout=20, message="app restarted")
        logged(d, f"redis://127.0.0.1:{port}/0 failed 1 time(s) in a row: restarting app")
        wait_for(lambda: ("circus.redis_observer.watcher.redis_stats.restart_on_error", 1.0,
                          "c") in metrics.receive(), message="the restart counter")
        assert ("circus.redis_observer.watcher.redis_stats.error", 1.0, "c") in metrics.metrics
    finally:
        metrics.close()
        if server.poll() is None:
            server.kill()
            server.wait()
