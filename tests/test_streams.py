"""Child output into files: rotation never drops, duplicates or splits a
line, and what is in the pipes when a child exits is still written."""

from __future__ import annotations

import re
import sys

from .conftest import wait_for

WRITER = (
    "import sys\n"
    "out = sys.stdout\n"
    "for n in range({count}):\n"
    "    out.write(f'line {{n:08d}} ' + 'x' * (n % 50) + '\\n')\n"
    "out.flush()\n"
)


def read_rotated(path):
    """Every line of path and its numbered backups, oldest first."""
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    lines = []
    for file in [*files, path]:
        lines += file.read_bytes().split(b"\n")[:-1]
    return lines, len(files)


def test_rotation_keeps_every_line_exactly_once(daemon, tmp_path):
    count = 200_000
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(count=count))
    log = tmp_path / "logs" / "out.log"
    d = daemon(f"""
        [watcher:chatty]
        cmd = {sys.executable} {script}
        restart = never
        stdout_stream.class = FileStream
        stdout_stream.filename = {log}
        stdout_stream.max_bytes = 200000
        stdout_stream.backup_count = 1000
    """)
    d.wait_log("chatty: process 1", timeout=60)  # it exited: its pipe is drained
    assert d.stop() == 0  # and the writer has written everything
    lines, backups = read_rotated(log)
    assert backups > 20
    numbers = []
    for line in lines:
        match = re.fullmatch(rb"line (\d{8}) x*", line)
        assert match, line[:80]
        number = int(match.group(1))
        assert len(line) == 14 + number % 50, "a whole line"
        numbers.append(number)
    assert numbers == list(range(count)), "every line once, in order"
    for file in log.parent.iterdir():
        assert file.stat().st_size <= 200_000


def test_time_format_prefix_and_output_left_in_the_pipe(daemon, tmp_path):
    log = tmp_path / "out.log"
    d = daemon(f"""
        [watcher:burst]
        cmd = sh -c 'for i in 1 2 3; do echo "burst $i"; done; printf "no newline"'
        restart = never
        stdout_stream.class = circus.stream.FileStream
        stdout_stream.filename = {log}
        stdout_stream.time_format = %Y-%m-%d %H:%M:%S
    """)
    d.wait_log("burst: process 1")
    d.stop()
    lines = log.read_text().splitlines()
    assert len(lines) == 4
    for line, text in zip(lines, ["burst 1", "burst 2", "burst 3", "no newline"], strict=True):
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {text}", line)


def test_stderr_to_a_file_and_stdout_to_the_console(daemon, tmp_path):
    err = tmp_path / "err.log"
    d = daemon(f"""
        [watcher:mixed]
        cmd = sh -c 'echo to-out; echo to-err >&2; exec sleep 1000'
        stderr_stream.class = FileStream
        stderr_stream.filename = {err}
    """)
    wait_for(lambda: err.exists() and err.read_text() == "to-err\n")
    wait_for(lambda: "mixed.1 | to-out" in d.out_text())
    assert "to-err" not in d.out_text()


def test_json_stream(daemon, tmp_path):
    import json

    log = tmp_path / "out.jsonl"
    d = daemon(f"""
        [watcher:jsony]
        cmd = sh -c 'echo "hello \\"world\\""; exec sleep 1000'
        stdout_stream.class = JsonStream
        stdout_stream.filename = {log}
    """)
    pid = d.wait_pids("jsony", 1).pop()
    wait_for(lambda: log.exists() and log.read_text())
    record = json.loads(log.read_text())
    assert record["line"] == 'hello "world"'
    assert (record["watcher"], record["pid"], record["wid"], record["stream"]) == (
        "jsony", pid, 1, "stdout")
    assert record["time"] > 0


def test_watched_file_reopens_after_logrotate_moves_it(daemon, tmp_path):
    log = tmp_path / "out.log"
    flag = tmp_path / "go"
    d = daemon(f"""
        [watcher:rotated]
        cmd = sh -c 'echo before; while [ ! -e {flag} ]; do sleep 0.05; done; echo after; exec sleep 1000'
        stdout_stream.class = WatchedFileStream
        stdout_stream.filename = {log}
    """)
    wait_for(lambda: log.exists() and log.read_text() == "before\n")
    log.rename(tmp_path / "out.log.1")  # what logrotate does
    flag.touch()
    wait_for(lambda: log.exists() and log.read_text() == "after\n")
    assert (tmp_path / "out.log.1").read_text() == "before\n"
    d.stop()


def test_timed_rotation_keeps_every_line(daemon, tmp_path):
    log = tmp_path / "out.log"
    d = daemon(f"""
        [watcher:ticker]
        cmd = sh -c 'i=0; while [ $i -lt 60 ]; do echo "tick $i"; i=$((i+1)); sleep 0.05; done'
        restart = never
        stdout_stream.class = TimedRotatingFileStream
        stdout_stream.filename = {log}
        stdout_stream.rotate_when = S
        stdout_stream.backup_count = 100
    """)
    d.wait_log("ticker: process 1", timeout=20)
    d.stop()
    files = sorted(tmp_path.glob("out.log.*")) + [log]
    assert len(files) >= 3
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert lines == [f"tick {i}" for i in range(60)]


def test_logs_and_live_tail(daemon):
    import threading

    from bigtop.control.client import subscribe

    d = daemon("""
        [watcher:talk]
        cmd = sh -c 'i=0; while true; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; sleep 0.05; done'
    """)
    client = d.client()
    entries = wait_for(lambda: len(e := client.call("logs", name="talk", lines=3,
                                                     stream="stderr")["lines"]["talk"]) == 3
                       and e)
    assert len(entries) == 3 and all(e["stream"] == "stderr" for e in entries)
    assert all(e["line"].startswith("err ") and e["wid"] == 1 for e in entries)

    seen: list[dict] = []

    def tail() -> None:
        for topic, payload in subscribe(["stream.talk.stdout"], d.pubsub_endpoint, timeout=5):
            assert topic == "stream.talk.stdout"
            seen.append(payload)
            if len(seen) == 5:
                return

    thread = threading.Thread(target=tail)
    thread.start()
    thread.join(10)
    assert len(seen) == 5
    numbers = [int(p["line"].split()[1]) for p in seen]
    assert numbers == list(range(numbers[0], numbers[0] + 5)), "consecutive, none lost"


def test_logs_follow_cli(daemon):
    import os
    import subprocess
    import time

    d = daemon("""
        [watcher:talk]
        cmd = sh -c 'i=0; while true; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; sleep 0.05; done'
    """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bigtop", "--endpoint", d.endpoint,
         "--pubsub-endpoint", d.pubsub_endpoint, "logs", "-n", "2", "--stderr", "-f", "talk"],
        stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    time.sleep(1.5)
    proc.terminate()
    output = proc.communicate(timeout=10)[0]
    lines = output.splitlines()
    assert len(lines) > 5, output
    assert all(line.startswith("talk.1 | err ") for line in lines), output


def test_set_stream_options_at_run_time(daemon, tmp_path):
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    d = daemon(f"""
        [watcher:talk]
        cmd = sh -c 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.05; done'
        stdout_stream.class = FileStream
        stdout_stream.filename = {first}
    """)
    pids = d.wait_pids("talk", 1)
    wait_for(lambda: first.exists() and first.read_text())
    d.client().call("set", name="talk", options={"stdout_stream.filename": str(second)},
                    waiting=True)
    wait_for(lambda: second.exists() and len(second.read_text().splitlines()) > 3)
    assert d.pids("talk") == pids, "no restart for a new log file"
    numbers = [int(line.split()[1]) for f in (first, second)
               for line in f.read_text().splitlines()]
    assert numbers == list(range(1, len(numbers) + 1)), "nothing lost or doubled in the switch"
    details = d.client().call("status", name="talk", details=True)["details"]
    assert details["dropped_lines"] == 0
