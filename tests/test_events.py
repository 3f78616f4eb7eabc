"""The in-process event bus carries Circus's events and bigtop's own.

The arbiter runs in a child Python process (it makes its process a child
subreaper, which the test runner should not become)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = """
import asyncio, json, os, signal, sys
from bigtop.config import load
from bigtop.core import Arbiter

async def main():
    arbiter = Arbiter(load(sys.argv[1]), console=lambda *a: None)
    events = []
    arbiter.bus.subscribe(lambda topic, payload: events.append([topic, payload]), "watcher.")
    await arbiter.start()
    crash = arbiter.watchers["crash"]
    while crash.state != "failed":
        await asyncio.sleep(0.01)
    sleeper = arbiter.watchers["sleeper"]
    pid = next(iter(sleeper.processes.values())).pid
    os.kill(pid, signal.SIGKILL)
    while not sleeper.processes or next(iter(sleeper.processes.values())).pid == pid:
        await asyncio.sleep(0.01)
    await arbiter.stop()
    print(json.dumps(events))

asyncio.run(main())
"""


def test_events(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text(textwrap.dedent("""
        [watcher:sleeper]
        cmd = sleep 1000

        [watcher:crash]
        cmd = sh -c 'echo boom >&2; exit 4'
        max_retry = 2
        backoff_initial = 0.01
    """))
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(config)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout.splitlines()[-1])
    topics = [topic for topic, _ in events]
    for name in ("start", "ready", "spawn", "reap", "kill", "stop"):
        assert f"watcher.sleeper.{name}" in topics, name
    for name in ("spawn", "reap", "backoff", "failed"):
        assert f"watcher.crash.{name}" in topics, name
    payloads = dict((t, p) for t, p in events)
    reap = next(p for t, p in events if t == "watcher.sleeper.reap")
    assert reap["exit_code"] == -9 and reap["process_pid"] > 0 and reap["time"] > 0
    failed = payloads["watcher.crash.failed"]
    assert "3 times in a row" in failed["reason"]
    assert failed["output"][-1] == "boom"
    assert [e["exit_code"] for e in failed["exits"]] == [4, 4, 4]
    backoff = payloads["watcher.crash.backoff"]
    assert backoff["delay"] > 0 and backoff["failures"] == 2
