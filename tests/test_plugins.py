"""Plugins on a real daemon: a custom plugin (found through an entry point)
following events and calling commands, its configuration kept out of ps,
and the built-ins against what they talk to: a UDP socket reading the
statsd line format, a Prometheus text-format parser, a crash-looping
watcher for flapping."""

from __future__ import annotations

import json
import re
import socket
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from .conftest import free_port, wait_for

RECORDER = '''
import json, os
from bigtop.plugins import Plugin, split_topic


class Recorder(Plugin):
    topics = ("watcher.target.",)

    def write(self, *items):
        with open(self.option("output", ""), "a") as out:
            out.write(json.dumps(items) + "\\n")

    async def handle_init(self):
        watchers = await self.watchers()
        self.write("init", self.name, watchers, self.option("secret", ""))

    async def handle_recv(self, topic, payload):
        self.write("event", topic, payload)
        _, name, event = split_topic(topic)
        if event == "spawn":
            await self.call("incr", name="counter")

    def handle_stop(self):
        self.write("stop")


class StatsReader(Recorder):
    topics = ()
    stats_topics = ("stat.counter",)

    async def handle_init(self):
        self.write("init")

    def handle_stats(self, topic, payload):
        self.write("stat", topic, payload)
'''

SLEEPER = "import time\nwhile True:\n    time.sleep(1000)\n"


def sleeper(tmp_path: Path) -> str:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    return f"{sys.executable} {tmp_path / 'sleeper.py'}"


def install_recorder(tmp_path: Path) -> Path:
    """The plugin module, and a distribution that names it in the
    bigtop.plugins entry-point group (the daemon's directory is on its
    sys.path, which plugins inherit)."""
    (tmp_path / "recorder.py").write_text(RECORDER)
    dist = tmp_path / "recorder-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: recorder\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bigtop.plugins]\nrecorder = recorder:Recorder\n")
    return tmp_path / "recorded.jsonl"


def records(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def until(predicate, trigger, timeout: float = 20.0, message: str = "condition") -> None:
    """Trigger, then wait a moment for predicate; again until timeout. For
    events to a plugin that does not show when it has subscribed (before
    that, it misses them)."""
    deadline = time.monotonic() + timeout
    while True:
        trigger()
        try:
            wait_for(predicate, timeout=1.0, message=message)
            return
        except pytest.fail.Exception:
            if time.monotonic() > deadline:
                raise


def plugin_process(d, name: str) -> psutil.Process:
    (pid,) = d.wait_pids(f"plugin:{name}", 1)
    return psutil.Process(pid)


def test_custom_plugin_follows_events_and_calls_commands(daemon, tmp_path):
    output = install_recorder(tmp_path)
    cmd = sleeper(tmp_path)
    d = daemon(f"""
        [watcher:target]
        cmd = {cmd}
        autostart = false

        [watcher:counter]
        cmd = {cmd}

        [watcher:noise]
        cmd = {cmd}

        [plugin:rec]
        use = recorder
        output = {output}
        secret = s3cr3t-t0ken
        """)
    wait_for(lambda: records(output), message="the plugin's handle_init")
    (init,) = records(output)
    assert init == ["init", "rec", ["counter", "noise", "plugin:rec", "target"], "s3cr3t-t0ken"]

    # The configuration is not in the plugin's argv (ps), nor in its options.
    proc = plugin_process(d, "rec")
    cmdline = " ".join(proc.cmdline())
    assert "bigtop.plugins.run" in cmdline and "s3cr3t" not in cmdline
    assert b"s3cr3t" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    with d.client() as client:
        options = client.call("options", name="plugin:rec")["options"]
        assert "s3cr3t" not in json.dumps(options)
        assert options["singleton"] is True

        # An event reaches it (handle_init ran once subscribed: none is
        # missed from then on); it answers with a command.
        client.call("restart", name="target", waiting=True)
        wait_for(lambda: any(r[0] == "event" and r[1] == "watcher.target.spawn"
                             for r in records(output)), message="a spawn event")
        wait_for(lambda: len(d.pids("counter")) > 1, message="counter incremented")
        client.call("incr", name="noise", waiting=True)
        client.call("stop", name="target", waiting=True)
        wait_for(lambda: any(r[1] == "watcher.target.stop" for r in records(output)[1:]),
                 message="the stop event")
    topics = {r[1] for r in records(output) if r[0] == "event"}
    assert all(t.startswith("watcher.target.") for t in topics), topics
    d.stop()
    assert records(output)[-1] == ["stop"]


def test_plugins_follow_a_reload(daemon, tmp_path):
    output = install_recorder(tmp_path)
    cmd = sleeper(tmp_path)
    watchers = f"""
        [watcher:counter]
        cmd = {cmd}
        """
    plugin = f"""
        [plugin:rec]
        use = recorder.Recorder
        output = {output}
        """
    d = daemon(watchers)
    d.wait_pids("counter", 1)
    d.reload(watchers + plugin)
    wait_for(lambda: records(output), message="the added plugin")
    first = plugin_process(d, "rec").pid
    d.reload(watchers + plugin.rstrip() + "\n        secret = changed\n")
    wait_for(lambda: len(records(output)) >= 3, message="the plugin restarted")
    assert records(output)[1:3] == [["stop"], ["init", "rec", ["counter", "plugin:rec"],
                                               "changed"]]
    assert plugin_process(d, "rec").pid != first
    d.reload(watchers)
    with d.client() as client:
        wait_for(lambda: client.call("list")["watchers"] == ["counter"],
                 message="the plugin removed")
    assert not d.pids("plugin:rec")


STATSD_LINE = re.compile(r"^(?P<bucket>[^:|]+):(?P<value>-?[0-9.e+-]+)\|(?P<type>c|g|ms|s)"
                         r"(?:\|@(?P<rate>[0-9.]+))?$")


class StatsdServer:
    """A real UDP socket, parsing what it receives as statsd lines."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.metrics: list[tuple[str, float, str]] = []

    def receive(self) -> list[tuple[str, float, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return self.metrics
            for line in data.decode().splitlines():
                match = STATSD_LINE.match(line)
                assert match, f"not a statsd line: {line!r}"
                self.metrics.append((match["bucket"], float(match["value"]), match["type"]))

    def close(self) -> None:
        self.sock.close()


def test_statsd_counters_and_gauges_on_a_real_udp_socket(daemon, tmp_path):
    """A Circus config naming Circus's StatsdEmitter gets bigtop's statsd
    plugin, with Circus's metric names; the gauges come every loop_rate."""
    cmd = sleeper(tmp_path)
    counters, gauges = StatsdServer(), StatsdServer()
    try:
        d = daemon(f"""
            [watcher:web]
            cmd = {cmd}
            numprocesses = 2

            [plugin:statsd]
            use = circus.plugins.statsd.StatsdEmitter
            host = 127.0.0.1
            port = {counters.port}
            application_name = shop

            [plugin:gauges]
            use = statsd
            host = 127.0.0.1
            port = {gauges.port}
            events = false
            loop_rate = 0.2
            """)
        d.wait_pids("web", 2)
        assert "bigtop.plugins.run" in " ".join(plugin_process(d, "statsd").cmdline())
        with d.client() as client:
            until(lambda: ("circus.shop.watcher.web.spawn", 1.0, "c") in counters.receive(),
                  lambda: client.call("incr", name="web", waiting=True),
                  message="a spawn counter")
            client.call("decr", name="web", waiting=True)
        wait_for(lambda: ("circus.shop.watcher.web.kill", 1.0, "c") in counters.receive(),
                 message="a kill counter")
        assert all(kind == "c" for _, _, kind in counters.metrics)

        def gauge(name: str) -> float | None:
            found = [v for b, v, k in gauges.receive() if b == name and k == "g"]
            return found[-1] if found else None

        with d.client() as client:
            running = len(client.call("list", name="web")["pids"])
        wait_for(lambda: gauge("circus.app.watcher._stats.web.watchers_num") == running,
                 message="the process count gauge")
        wait_for(lambda: gauge("circus.app.watcher._stats.web.mem_sum") is not None,
                 message="the memory gauge")
        assert gauge("circus.app.watcher._stats.web.mem_sum") > 0
        assert gauge("circus.app.watcher._stats.web.mem_max") > 0
        assert gauge("circus.app.watcher._stats.web.cpu_sum") >= 0
        assert all(kind == "g" for _, _, kind in gauges.metrics)
        assert not any("plugin:" in bucket for bucket, _, _ in gauges.metrics)
    finally:
        counters.close()
        gauges.close()


def test_flapping_stops_a_crash_looping_watcher(daemon, tmp_path):
    cmd = sleeper(tmp_path)
    crash = """
        cmd = sh -c 'exit 3'
        max_retry = -1
        backoff_initial = 0.01
        backoff_max = 0.05
        """
    d = daemon(f"""
        [watcher:crash]
        {crash}

        [watcher:once]
        {crash}
        flapping.max_retry = 0

        [watcher:unchecked]
        {crash}
        check_flapping = false

        [watcher:steady]
        cmd = {cmd}

        [plugin:flapping]
        use = circus.plugins.flapping.Flapping
        attempts = 3
        window = 30
        retry_in = 0.5
        max_retry = 1
        """)
    d.wait_pids("steady", 1)
    wait_for(lambda: d.call("status", name="plugin:flapping")["status"] == "active",
             timeout=15, message="the plugin started")
    wait_for(lambda: "crash: flapping detected: reached max retry limit (1)" in d.out_text(),
             timeout=30, message="crash given up")
    wait_for(lambda: "once: flapping detected: reached max retry limit (0)" in d.out_text(),
             timeout=30, message="once given up")
    out = d.out_text()
    assert re.search(r"crash: flapping detected \(3 exits in [0-9.]+s\): stopped, retry 1 in "
                     r"0\.5s", out), out
    assert "crash: retrying after flapping" in out
    assert "once: flapping detected (" not in out  # no retry: max_retry 0
    assert "unchecked: flapping" not in out
    with d.client() as client:
        statuses = client.call("status")["statuses"]
    assert statuses["crash"] == "stopped" and statuses["once"] == "stopped"
    assert statuses["steady"] == "active" and statuses["unchecked"] != "stopped"


def test_prometheus_metrics_parse(daemon, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    cmd = sleeper(tmp_path)
    port = free_port()
    d = daemon(f"""
        [watcher:web]
        cmd = {cmd}
        numprocesses = 2

        [watcher:idle]
        cmd = {cmd}
        autostart = false

        [plugin:metrics]
        use = prometheus
        host = 127.0.0.1
        port = {port}
        """)
    pids = d.wait_pids("web", 2)

    def scrape() -> dict[str, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return {}
        families = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value
                                     for s in family.samples}
        return families

    metrics = wait_for(scrape, message="the /metrics endpoint")
    assert metrics["bigtop_up"] == {("bigtop_up", ()): 1.0}
    status = metrics["bigtop_watcher_status"]
    assert status["bigtop_watcher_status", (("status", "active"), ("watcher", "web"))] == 1
    assert status["bigtop_watcher_status", (("status", "stopped"), ("watcher", "web"))] == 0
    assert status["bigtop_watcher_status", (("status", "stopped"), ("watcher", "idle"))] == 1
    assert metrics["bigtop_watcher_processes"][
        "bigtop_watcher_processes", (("watcher", "web"),)] == 2
    assert metrics["bigtop_watcher_processes_wanted"][
        "bigtop_watcher_processes_wanted", (("watcher", "web"),)] == 2
    assert ("bigtop_watcher_restarts_total", (("watcher", "web"),)) in metrics[
        "bigtop_watcher_restarts"]
    for counted in ("lines", "bytes"):
        assert metrics[f"bigtop_watcher_dropped_{counted}"][
            f"bigtop_watcher_dropped_{counted}_total", (("watcher", "web"),)] == 0
    slots = {labels: value for (_, labels), value in metrics["bigtop_process_pid"].items()
             if dict(labels)["watcher"] == "web"}
    assert {dict(labels)["wid"] for labels in slots} == {"1", "2"}
    assert set(slots.values()) == {float(p) for p in pids}
    for labels in slots:
        assert metrics["bigtop_process_resident_memory_bytes"][
            "bigtop_process_resident_memory_bytes", labels] > 0
        assert metrics["bigtop_process_start_time_seconds"][
            "bigtop_process_start_time_seconds", labels] > 0
        assert ("bigtop_process_cpu_percent", labels) in metrics["bigtop_process_cpu_percent"]

    # Events are counted from the subscription, in force before /metrics answers.
    with d.client() as client:
        def spawns() -> float:
            return scrape().get("bigtop_watcher_events", {}).get(
                ("bigtop_watcher_events_total", (("event", "spawn"), ("watcher", "web"))), 0)

        client.call("incr", name="web", waiting=True)
        wait_for(spawns, message="a spawn counted")


@pytest.mark.parametrize("use, message", [
    ("nosuch.module.Plugin", "cannot import nosuch.module"),
])
def test_a_plugin_that_cannot_load_fails_with_the_reason(daemon, tmp_path, use, message):
    d = daemon(textwrap.dedent(f"""
        [plugin:bad]
        use = {use}
        """))
    with d.client() as client:
        wait_for(lambda: client.call("status", name="plugin:bad")["status"] == "failed",
                 timeout=30, message="the plugin failed")
    assert message in d.out_text()


CIRCUS_SITE = sorted((Path(__file__).resolve().parent.parent / ".venv-circus" / "lib").glob(
    "python3*/site-packages"))

LEGACY = '''
import json, sys
sys.path.append(SITE)  # after this venv's own packages: its pyzmq, Circus's tornado
from circus.plugins import CircusPlugin


class Legacy(CircusPlugin):
    name = "legacy"

    def write(self, *items):
        with open(self.config["output"], "a") as out:
            out.write(json.dumps(items) + "\\n")

    def handle_recv(self, data):
        watcher, action, msg = self.split_data(data)
        self.write("event", watcher, action, json.loads(msg))
        if watcher == "target" and action == "spawn":
            self.write("list", self.call("list"))

    def handle_stop(self):
        self.write("stop", self.config["greeting"])
'''


@pytest.mark.skipif(not CIRCUS_SITE, reason="needs Circus in .venv-circus (make test)")
def test_a_circus_plugin_class_runs_unchanged(daemon, tmp_path):
    """A third-party plugin written for Circus (a CircusPlugin subclass) runs
    as Circus's runner would run it, against bigtop's wire protocol."""
    (tmp_path / "legacy.py").write_text(LEGACY.replace("SITE", repr(str(CIRCUS_SITE[0]))))
    output = tmp_path / "legacy.jsonl"
    cmd = sleeper(tmp_path)
    d = daemon(f"""
        [watcher:target]
        cmd = {cmd}
        autostart = false

        [plugin:legacy]
        use = legacy.Legacy
        output = {output}
        greeting = hello
        """)
    plugin_process(d, "legacy")
    with d.client() as client:
        until(lambda: any(r[:3] == ["event", "target", "spawn"] for r in records(output)),
              lambda: client.call("restart", name="target", waiting=True),
              message="a spawn event")
        wait_for(lambda: any(r[0] == "list" for r in records(output)), message="a call")
    (listed,) = [r[1] for r in records(output) if r[0] == "list"][:1]
    assert listed["status"] == "ok" and "target" in listed["watchers"]
    d.stop()
    assert ["stop", "hello"] in records(output)


def test_flapping_options_of_a_watcher_in_ini_and_toml(tmp_path):
    from bigtop.config import ConfigError, load

    ini = tmp_path / "c.ini"
    ini.write_text(textwrap.dedent("""
        [watcher:w]
        cmd = sleep 1
        flapping.attempts = 3
        flapping.window = 2.5
        flapping.active = false

        [plugin:flapping]
        use = flapping
        """))
    toml = tmp_path / "c.toml"
    toml.write_text(textwrap.dedent("""
        [watchers.w]
        cmd = "sleep 1"
        flapping = {attempts = 3, window = 2.5, active = false}

        [plugins.flapping]
        use = "flapping"
        """))
    from_ini, from_toml = load(str(ini)), load(str(toml))
    assert from_ini.watcher("w").flapping == {"attempts": 3, "window": 2.5, "active": False}
    assert from_ini.watchers == from_toml.watchers and from_ini.plugins == from_toml.plugins
    assert not from_ini.warnings  # plugins are run: no "not run" warning
    ini.write_text("[watcher:w]\ncmd = sleep 1\nflapping.attempt = 3\n")
    with pytest.raises(ConfigError) as err:
        load(str(ini), strict=True)
    assert "did you mean 'flapping.attempts'?" in str(err.value.problems[0])


def test_a_plugin_reads_the_statistics_stream(daemon, tmp_path):
    output = install_recorder(tmp_path)
    cmd = sleeper(tmp_path)
    d = daemon(f"""
        [circus]
        stats_interval = 0.2

        [watcher:counter]
        cmd = {cmd}
        numprocesses = 2

        [plugin:stats]
        use = recorder.StatsReader
        output = {output}
        """)
    pids = d.wait_pids("counter", 2)
    wait_for(lambda: any(r[0] == "stat" and r[1] == "stat.counter" for r in records(output)),
             message="a stat.counter message")
    stat = next(r[2] for r in records(output) if r[0] == "stat" and r[1] == "stat.counter")
    assert set(stat["pid"]) == pids  # Circus's payload: the pids, cpu, mem, age
    assert all(r[1].startswith("stat.counter") for r in records(output) if r[0] == "stat")
