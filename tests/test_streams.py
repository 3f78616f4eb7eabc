"""Child output into files: rotation never drops, duplicates or splits a
line, and what is in the pipes when a child exits is still written."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time

from .conftest import wait_for

WRITER = (
    "import sys\n"
    "out = sys.stdout\n"
    "for n in range({count}):\n"
    "    out.write(f'line {{n:08d}} ' + 'x' * (n % 50) + '\\n')\n"
    "out.flush()\n"
)


def exited(d, name: str, timeout: float = 10.0) -> None:
    """Start the watcher (autostart = false) and wait for its one process
    to end on its own, with status 0."""
    with d.events(f"watcher.{name}.") as ev:
        d.call("start", name=name)
        ev.wait(f"watcher.{name}.reap", timeout=timeout, exit_code=0, requested=False)


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
        autostart = false
    """)
    exited(d, "chatty", timeout=60)  # its pipe is drained
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
        autostart = false
    """)
    exited(d, "burst")
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
        autostart = false
    """)
    exited(d, "ticker", timeout=20)
    d.stop()
    files = sorted(tmp_path.glob("out.log.*")) + [log]
    assert len(files) >= 3
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert lines == [f"tick {i}" for i in range(60)]


def test_logs_and_live_tail(daemon):
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

    with d.events("stream.talk.stdout") as ev:
        seen = [ev.wait("stream.talk.stdout")[1] for _ in range(5)]
        assert {topic for topic, _ in ev.seen()} == {"stream.talk.stdout"}
    numbers = [int(p["line"].split()[1]) for p in seen]
    assert numbers == list(range(numbers[0], numbers[0] + 5)), "consecutive, none lost"


def test_logs_follow_cli(daemon):
    import os
    import subprocess
    import threading

    d = daemon("""
        [watcher:talk]
        cmd = sh -c 'i=0; while true; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; sleep 0.05; done'
    """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bigtop", "--endpoint", d.endpoint,
         "--pubsub-endpoint", d.pubsub_endpoint, "logs", "-n", "2", "--stderr", "-f", "talk"],
        stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # bigtopctl writes out each line as it comes
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(lines) > 5, message="the last 2 lines then live ones")
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} talk\.1 \| err ")
    assert all(stamp.match(line) for line in lines), lines
    numbers = [int(line.split()[-1]) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "none lost or twice"


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


# -- compressed backups ------------------------------------------------------


def read_gzipped(path):
    """Every line of path and its backups (FILE.N.gz, or FILE.N where
    compression failed), oldest first."""
    import gzip

    backups = {}
    for file in path.parent.glob(path.name + ".*"):
        match = re.fullmatch(re.escape(path.name) + r"\.(\d+)(\.gz)?", file.name)
        assert match, f"unexpected file {file.name}"
        backups[int(match.group(1))] = file
    lines = []
    for _, file in sorted(backups.items(), reverse=True):
        data = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
        assert data.endswith(b"\n"), f"{file.name} ends in a whole line"
        lines += data.split(b"\n")[:-1]
    lines += path.read_bytes().split(b"\n")[:-1]
    return lines, backups


def test_gzip_rotation_keeps_every_line_exactly_once(daemon, tmp_path):
    import gzip

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
        stdout_stream.compress = true
        autostart = false
    """)
    exited(d, "chatty", timeout=60)
    assert d.stop() == 0
    lines, backups = read_gzipped(log)
    assert len(backups) > 20
    assert all(file.suffix == ".gz" for file in backups.values()), "every backup compressed"
    assert sorted(backups) == list(range(1, len(backups) + 1))
    assert not [f for f in log.parent.iterdir() if f.name.startswith(".")], "no temp left"
    numbers = []
    for line in lines:
        match = re.fullmatch(rb"line (\d{8}) x*", line)
        assert match, line[:80]
        number = int(match.group(1))
        assert len(line) == 14 + number % 50, "a whole line"
        numbers.append(number)
    assert numbers == list(range(count)), "every line once, in order"
    for file in backups.values():
        assert len(gzip.decompress(file.read_bytes())) <= 200_000
        assert file.stat().st_size < 200_000 // 2, "actually compressed"
    assert "cannot compress" not in d.log_text()


def test_gzip_backups_shift_and_the_oldest_goes(tmp_path):
    from bigtop.core.writer import FileTarget

    log = tmp_path / "out.log"
    target = FileTarget(str(log), max_bytes=100, backup_count=3, compress=True)
    for n in range(100):
        target.write(f"line {n:04d} {'y' * 10}\n".encode())  # 21 bytes: 4 a file
    target.close()
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "out.log", "out.log.1.gz", "out.log.2.gz", "out.log.3.gz"]
    lines, _ = read_gzipped(log)
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(100 - len(numbers), 100)), "the newest, in order"
    assert len(numbers) == 4 * 4  # three full backups and the current file


def test_failed_compression_keeps_the_plain_backup(tmp_path, caplog):
    from bigtop.core.writer import FileTarget

    log = tmp_path / "out.log"
    blocker = tmp_path / ".out.log.1.gz.tmp"
    blocker.mkdir()  # the temporary archive cannot be created: as a full disk would do
    target = FileTarget(str(log), max_bytes=100, backup_count=5, compress=True)
    n = 0

    def write_until(files: set[str]) -> None:
        nonlocal n
        while {f.name for f in tmp_path.iterdir()} != files:
            target.write(f"line {n:04d} {'y' * 10}\n".encode())
            n += 1
            assert n < 1000, sorted(f.name for f in tmp_path.iterdir())

    write_until({".out.log.1.gz.tmp", "out.log", "out.log.1"})
    assert "cannot compress" in caplog.text
    blocker.rmdir()
    write_until({"out.log", "out.log.1.gz", "out.log.2"})  # the plain one shifted
    write_until({"out.log", "out.log.1.gz", "out.log.2.gz", "out.log.3"})
    target.close()
    lines, _ = read_gzipped(log)
    assert [int(line.split()[1]) for line in lines] == list(range(n)), "nothing lost"


def test_timed_rotation_compresses_and_prunes(tmp_path):
    import gzip

    from bigtop.core.writer import FileTarget

    log = tmp_path / "out.log"
    target = FileTarget(str(log), backup_count=3, rotate_when="S", compress=True)
    for n in range(10):
        target.write(f"tick {n}\n".encode())
        target.rotate_at = 0  # the next write starts a new period
    target.close()
    backups = sorted(tmp_path.glob("out.log.*"))
    assert len(backups) == 3
    assert all(re.fullmatch(r"out\.log\.\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(-\d+)?\.gz", f.name)
               for f in backups), backups

    def order(file):  # same-second rotations are numbered -1, -2, ...
        match = re.search(r"(?:-(\d+))?\.gz$", file.name)
        return file.name[:len("out.log.") + 19], int(match.group(1) or 0)

    lines = [line for f in sorted(backups, key=order)
             for line in gzip.decompress(f.read_bytes()).decode().splitlines()]
    lines += log.read_text().splitlines()
    assert lines == [f"tick {n}" for n in range(6, 10)], "the newest 3 backups and the file"


def test_timed_rotation_compressed_in_a_daemon(daemon, tmp_path):
    import gzip

    log = tmp_path / "out.log"
    d = daemon(f"""
        [watcher:ticker]
        cmd = sh -c 'i=0; while [ $i -lt 60 ]; do echo "tick $i"; i=$((i+1)); sleep 0.05; done'
        restart = never
        stdout_stream.class = TimedRotatingFileStream
        stdout_stream.filename = {log}
        stdout_stream.rotate_when = S
        stdout_stream.backup_count = 100
        stdout_stream.compress = gzip
        autostart = false
    """)
    exited(d, "ticker", timeout=20)
    d.stop()
    backups = sorted(tmp_path.glob("out.log.*"))  # one stamp a second: in order
    assert backups and all(f.suffix == ".gz" for f in backups)
    lines = [line for f in backups
             for line in gzip.decompress(f.read_bytes()).decode().splitlines()]
    lines += log.read_text().splitlines()
    assert lines == [f"tick {i}" for i in range(60)]


def test_compress_and_color_are_checked_with_file_and_line(tmp_path):
    import pytest

    from bigtop.config import ConfigError, load

    path = tmp_path / "bigtop.ini"
    path.write_text(
        "[watcher:web]\n"
        "cmd = sleep 1000\n"
        "stdout_stream.class = FileStream\n"
        "stdout_stream.filename = /tmp/web.log\n"
        "stdout_stream.max_bytes = 1000\n"
        "stdout_stream.compress = maybe\n"
        "stderr_stream.class = FancyStdoutStream\n"
        "stderr_stream.color = purple\n")
    with pytest.raises(ConfigError) as info:
        load(str(path), environ={})
    found = {(p.line, p.key): p.message for p in info.value.problems}
    assert set(found) == {(6, "stdout_stream.compress"), (8, "stderr_stream.color")}
    assert "not a boolean" in found[6, "stdout_stream.compress"]
    assert "red, green" in found[8, "stderr_stream.color"]
    assert str(info.value).startswith(f"{path}:6: ")

    path.write_text(
        "[watcher:web]\n"
        "cmd = sleep 1000\n"
        "stdout_stream.class = circus.stream.TimedRotatingFileStream\n"
        "stdout_stream.filename = /tmp/web.log\n"
        "stdout_stream.compress = gzip\n"
        "stderr_stream.class = circus.stream.FancyStdoutStream\n"
        "stderr_stream.color = Cyan\n"
        "stderr_stream.time_format = %H:%M\n")
    (web,) = load(str(path), environ={}).watchers
    assert web.stdout_stream.options["compress"] == "gzip"
    assert web.stderr_stream.options["color"] == "Cyan"


# -- StdoutStream and FancyStdoutStream ---------------------------------------

FANCY = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_stdout_and_fancy_stdout_streams(daemon):
    d = daemon("""
        [watcher:plain]
        cmd = sh -c 'echo "raw 1"; echo "raw | 2"; exec sleep 1000'
        stdout_stream.class = StdoutStream

        [watcher:fancy]
        cmd = sh -c 'echo "out 1"; echo "err 1" >&2; echo "err 2" >&2; exec sleep 1000'
        stdout_stream.class = circus.stream.FancyStdoutStream
        stderr_stream.class = FancyStdoutStream
        stderr_stream.color = red
        stderr_stream.time_format = %H:%M:%S

        [watcher:console]
        cmd = sh -c 'echo "default"; exec sleep 1000'
    """)
    pid = d.wait_pids("fancy", 1).pop()
    want = ["raw 1", "raw | 2", "out 1", "err 1", "err 2", "default"]
    wait_for(lambda: all(text in d.out_text() for text in want), message=f"{want} in stdout")
    lines = d.out_text().splitlines()
    assert [line for line in lines if "raw" in line] == ["raw 1", "raw | 2"], "no prefix"
    (out,) = [line for line in lines if "out 1" in line]
    assert re.fullmatch(rf"{FANCY} fancy\[{pid}\] \| out 1", out), out
    errs = [line for line in lines if "err " in line]
    assert len(errs) == 2
    for line, text in zip(errs, ["err 1", "err 2"], strict=True):
        # not a terminal: no color, whatever the color option says
        assert re.fullmatch(rf"\d\d:\d\d:\d\d fancy\[{pid}\] \| {text}", line), line
    (default,) = [line for line in lines if "default" in line]
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} console\.1 \| default", default), default
    assert "\x1b" not in d.out_text()


def test_switch_to_fancy_stdout_at_run_time(daemon):
    d = daemon("""
        [watcher:talk]
        cmd = sh -c 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.02; done'
        stdout_stream.class = StdoutStream
    """)
    pid = d.wait_pids("talk", 1).pop()
    wait_for(lambda: d.out_text().count("\n") >= 3, message="plain lines")
    d.client().call("set", name="talk", options={"stdout_stream.class": "FancyStdoutStream"},
                    waiting=True)
    wait_for(lambda: d.out_text().count(f"talk[{pid}] | ") >= 5, message="fancy lines")
    assert d.pids("talk") == {pid}, "no restart to change the stream class"
    details = d.client().call("status", name="talk", details=True)["details"]
    assert details["dropped_lines"] == 0
    d.stop()
    numbers, fancy = [], False
    for line in d.out_text().splitlines():
        match = re.fullmatch(rf"({FANCY} talk\[{pid}\] \| )?line (\d+)", line)
        assert match, line
        assert fancy <= bool(match.group(1)), "once switched, every line is fancy"
        fancy = bool(match.group(1))
        numbers.append(int(match.group(2)))
    assert fancy
    assert numbers == list(range(1, len(numbers) + 1)), "nothing lost or doubled"


def run_sink(make, chunks, max_pending=64 * 1024 * 1024):
    """Feed chunks (pid, bytes) to a sink made on a real writer thread; the
    sink once everything is written."""
    import asyncio

    from bigtop.core.writer import Writer

    async def main():
        writer = Writer(max_pending)
        sink = make(writer)
        for pid, chunk in chunks:
            sink.write(chunk, pid, 1, "stdout")
        sink.close()
        await writer.close()
        return sink

    return asyncio.run(main())


def test_fancy_stdout_colors_on_a_terminal_unless_no_color(monkeypatch):
    import os
    import pty
    import select
    import tty

    from bigtop.core.streams import FancyStdoutSink, StdoutSink, watcher_color

    monkeypatch.delenv("NO_COLOR", raising=False)
    master, slave = pty.openpty()
    tty.setraw(slave)  # no \n -> \r\n: the bytes as written
    try:
        run_sink(lambda w: FancyStdoutSink(w, {"color": "red", "time_format": "T"}, "web",
                                           fd=slave),
                 [(42, b"one\ntwo\n"), (43, b"three\n")])
        run_sink(lambda w: FancyStdoutSink(w, {"time_format": "T"}, "api", fd=slave),
                 [(7, b"auto\n")])
        monkeypatch.setenv("NO_COLOR", "1")
        run_sink(lambda w: FancyStdoutSink(w, {"color": "red", "time_format": "T"}, "web",
                                           fd=slave),
                 [(42, b"plain\n")])
        run_sink(lambda w: StdoutSink(w, {}, "web", fd=slave), [(42, b"as is\x1b[1m\n")])
        expected = (
            b"\x1b[31mT web[42]\x1b[0m | one\n\x1b[31mT web[42]\x1b[0m | two\n"
            b"\x1b[31mT web[43]\x1b[0m | three\n"
            + f"\x1b[{watcher_color('api')}mT api[7]\x1b[0m | auto\n".encode()
            + b"T web[42] | plain\n"
            b"as is\x1b[1m\n")
        got = b""
        while len(got) < len(expected) and select.select([master], [], [], 10)[0]:
            got += os.read(master, 4096)
        assert got == expected
    finally:
        os.close(master)
        os.close(slave)


def test_a_sink_that_cannot_keep_up_counts_its_drops():
    from bigtop.core.streams import FancyStdoutSink, StdoutSink

    for cls in (StdoutSink, FancyStdoutSink):
        sink = run_sink(lambda w, cls=cls: cls(w, {}, "web"),
                        [(1, b"more than ten bytes\nand another line\n")], max_pending=10)
        assert sink.dropped == 2


def test_set_checks_stream_options_and_changes_nothing(daemon):
    d = daemon("""
        [watcher:app]
        cmd = sleep 1000
        """)
    d.wait_pids("app", 1)
    with d.client() as client:
        reply = client.call("set", raise_on_error=False, name="app",
                            options={"stdout_stream.class": "FancyStdoutStream",
                                     "stdout_stream.color": "mauve"})
        assert reply["status"] == "error" and "'mauve' is not a color" in reply["reason"]
        options = client.call("options", name="app")["options"]
        assert not any(key.startswith("stdout_stream") and value
                       for key, value in options.items()), options
    d.stop()


SLOW_DISK_CHILD = """\
import os, sys, time
count, progress = int(sys.argv[1]), sys.argv[2]
batch = []
for i in range(count):
    batch.append(b"%09d %s\\n" % (i, b"x" * 89))
    if len(batch) == 1000:
        os.write(1, b"".join(batch))
        batch = []
        with open(progress, "w") as f:
            f.write(str(i + 1))
os.write(1, b"".join(batch))
with open(progress, "w") as f:
    f.write("done")
time.sleep(1000)
"""


def test_a_slow_disk_holds_the_children_back_instead_of_dropping(daemon, tmp_path):
    """100 MB into a "disk" that takes nothing for a while (a FIFO nobody
    reads yet): past half of the writer's 64 MiB the pipes are no longer
    read, the child waits, and once the disk takes data again every line
    arrives, none dropped."""
    import threading

    (tmp_path / "child.py").write_text(SLOW_DISK_CHILD)
    fifo = tmp_path / "disk"
    os.mkfifo(fifo)
    progress = tmp_path / "progress"
    count = 1_000_000
    d = daemon(f"""
        [watcher:app]
        cmd = {sys.executable} child.py {count} {progress}
        working_dir = {tmp_path}
        stdout_stream.class = FileStream
        stdout_stream.filename = {fifo}
        """)

    def written() -> str:
        return progress.read_text() if progress.exists() else "0"

    lines: list[bytes] = []

    def read_disk() -> None:
        with open(fifo, "rb") as disk:
            for line in disk:
                lines.append(line)

    reader = threading.Thread(target=read_disk, daemon=True)
    try:
        # Without holding back, the child would be done long before this.
        # The wait is the assertion: no state of the daemon says it holds
        # its readers back, only a child that does not get on does.
        deadline = time.monotonic() + 3
        while written() != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert written() != "done", "the child was not held back"
    finally:
        reader.start()  # the disk takes data again
    wait_for(lambda: len(lines) >= count, timeout=120, message="every line")
    assert [int(line[:9]) for line in lines] == list(range(count))
    assert all(len(line) == 100 for line in lines)
    wait_for(lambda: written() == "done")
    with d.client() as client:
        details = client.call("status", name="app", details=True)["details"]
        assert details["dropped_lines"] == 0
    d.stop()
    reader.join(10)


def test_a_stuck_writer_no_longer_holds_output_back(monkeypatch):
    from bigtop.core.writer import STUCK_AFTER, Writer

    writer = Writer(max_pending=100)
    try:
        writer.pending = 80  # congested: more than half queued
        writer.progress = time.monotonic()
        assert writer.holding()
        writer.progress -= STUCK_AFTER + 1  # no write completed since
        assert not writer.holding()
        writer.pending = 10
        writer.progress = time.monotonic()
        assert not writer.holding()
    finally:
        writer.pending = 0
        asyncio.run(writer.close())


def test_a_line_longer_than_max_line_is_cut_not_dropped(daemon, tmp_path):
    log = tmp_path / "out.log"
    d = daemon(f"""
        [watcher:app]
        cmd = {sys.executable} -c "import sys, time; sys.stdout.write('a' * 2500 + 'b\\\\n'); sys.stdout.write('short\\\\n'); sys.stdout.flush(); time.sleep(1000)"
        max_line = 1000
        stdout_stream.class = FileStream
        stdout_stream.filename = {log}
        """)
    wait_for(lambda: log.exists() and b"short\n" in log.read_bytes())
    lines = log.read_bytes().split(b"\n")[:-1]
    assert lines == [b"a" * 1000 + b" [...cut]", b"a" * 1000 + b" [...cut]",
                     b"a" * 500 + b"b", b"short"]
    d.stop()


def test_long_lines_are_cut_wherever_they_fall():
    """Any mix of line lengths: every piece at most max_line (plus the
    marker), and the pieces put back together are the input."""
    import random

    from bigtop.core.output import CUT_MARKER, PipeReader

    rnd = random.Random(4)
    for _ in range(500):
        limit = rnd.randint(1, 40)
        data = b"".join(b"x" * rnd.choice([0, 1, limit - 1, limit, limit + 1, 2 * limit + 1,
                                           rnd.randint(0, 150)]) + b"\n"
                        for _ in range(rnd.randint(1, 20)))
        pieces: list[bytes] = []
        reader = PipeReader.__new__(PipeReader)  # no pipe needed to cut lines
        reader.max_line, reader.on_chunk = limit, pieces.append
        reader._deliver(data)
        rebuilt = b""
        for line in b"".join(pieces).split(b"\n")[:-1]:
            if line.endswith(CUT_MARKER):
                assert len(line) == limit + len(CUT_MARKER)
                rebuilt += line[:-len(CUT_MARKER)]
            else:
                assert len(line) <= limit
                rebuilt += line + b"\n"
        assert rebuilt == data


def test_streams_naming_one_file_share_its_target(tmp_path):
    """stdout and stderr (or two watchers) on one file: one target, so
    rotation counts every line; closed when the last stream lets go."""
    from bigtop.core.writer import Writer

    writer = Writer()
    path = str(tmp_path / "shared.log")
    first = writer.open_file(path, max_bytes=100, backup_count=2)
    second = writer.open_file(str(tmp_path / "." / "shared.log"), max_bytes=5)
    assert second is first and first.max_bytes == 100
    writer.submit(first, b"one\n")
    writer.release(first)
    writer.submit(second, b"two\n")
    writer.release(second)
    asyncio.run(writer.drain())
    assert first.handle is None  # closed after the second release
    assert writer.open_file(path) is not first
    asyncio.run(writer.close())
    assert (tmp_path / "shared.log").read_bytes() == b"one\ntwo\n"


def test_large_chunks_reach_the_writer_uncopied_and_small_ones_joined(tmp_path):
    """A loop turn's chunks: a join copies, so large ones go on as the same
    objects; small ones are joined up to JOIN_BELOW; the order is kept."""
    from bigtop.core import streams

    def line(size: int) -> bytes:
        return b"x" * (size - 1) + b"\n"

    big = streams.JOIN_BELOW
    chunks = [line(20), line(big), line(2), line(big // 2), line(big // 2), line(2)]
    submitted = []

    class Recorder:
        def counter(self):
            return streams.Writer.counter()

        def submit(self, target, data, drops):
            submitted.append(data)
            return True

    async def main():
        sink = streams.BatchSink(Recorder(), None)  # type: ignore[arg-type]
        for chunk in chunks:
            sink.add(chunk)
        sink.flush()

    asyncio.run(main())
    assert b"".join(submitted) == b"".join(chunks)
    assert submitted[1] is chunks[1]  # not a copy
    assert submitted == [chunks[0], chunks[1], b"".join(chunks[2:5]), chunks[5]]


def test_a_read_takes_what_there_is_and_a_closed_reader_lets_go() -> None:
    """A read allocates the bytes that came, not READ_SIZE shrunk to them
    (which fragmented the heap: docs/benchmarks.md, Soak); a closed reader
    drops its sink, whose closure holds the process that holds the reader,
    so that both go by reference counting, without a full collection."""
    import fcntl
    import gc
    import weakref

    from bigtop.core.output import READ_SIZE, PipeReader, read_available

    r, w = os.pipe()
    try:
        os.write(w, b"a line\n")
        data = read_available(r)
        assert data == b"a line\n" and sys.getsizeof(data) < sys.getsizeof(b"") + 16
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 2 * READ_SIZE)  # the write must not block
        os.write(w, b"x" * (READ_SIZE + 10))
        assert len(read_available(r)) == READ_SIZE and read_available(r) == b"x" * 10
    finally:
        os.close(r)
        os.close(w)

    class Process:
        reader: PipeReader

    loop = asyncio.new_event_loop()
    r, w = os.pipe()
    try:
        process = Process()

        def sink(chunk: bytes, last: bool = False, process: Process = process) -> None:
            pass

        process.reader = PipeReader(loop, r, sink)
        gone = weakref.ref(process)
        os.write(w, b"last words\n")
        os.close(w)
        process.reader.close()
        gc.disable()
        try:
            del process, sink
            assert gone() is None
        finally:
            gc.enable()
    finally:
        loop.close()
