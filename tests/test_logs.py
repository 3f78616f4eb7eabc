"""``logs``: the last lines of a watcher's output, read backwards from its
files and their rotated backups (plain or gzipped) or taken from memory,
with ``since``, several watchers, JSON lines and live lines."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bigtop.core import logtail
from bigtop.core.logtail import Budget, LogLine

from .conftest import ROOT, Daemon, wait_for
from .test_bigtopctl import CTL, ctl, env, ok

PY = sys.executable
Factory = Callable[..., Daemon]


BLANK = " " * 23  # where `bigtopctl logs` shows the time of a line whose file does not say
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


def shown(output: str) -> list[str]:
    """`bigtopctl logs` lines without their time (each must have one)."""
    lines = output.splitlines()
    assert all(STAMP.match(line) for line in lines), output
    return [STAMP.sub("", line, count=1) for line in lines]


def plain(stream: str | None = "stdout") -> logtail.Parser:
    return logtail.parser({"class": "FileStream", "filename": "x"}, stream)


def texts(lines: list[LogLine]) -> list[str]:
    return [entry.line for entry in lines]


def json_line(when: float, text: str, stream: str = "stdout") -> str:
    return json.dumps({"time": when, "watcher": "w", "pid": 42, "wid": 1, "stream": stream,
                       "line": text}) + "\n"


# -- reading backwards ---------------------------------------------------------------

@pytest.mark.parametrize("content", [
    b"", b"\n", b"\n\n", b"a", b"a\n", b"a\nb", b"a\nb\n", b"\na", b"one\ntwo\n\nthree",
    b"first line\n" + b"x" * 50 + b"\nlast without newline",
    b"".join(b"line %d %s\n" % (n, b"y" * (n % 13)) for n in range(200)),
])
def test_reverse_lines_across_block_boundaries(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(content)
    lines = content.split(b"\n")
    if content.endswith(b"\n") or not content:
        lines.pop()  # after the last newline: the end of the file, not a line
    for block in (1, 2, 3, 5, 7, 16, 64, 4096):
        assert list(logtail.reverse_lines(str(path), block)) == lines[::-1], block


def test_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(b"one\ntwo\nthree")
    assert texts(logtail.tail(str(path), 2, plain())) == ["two", "three"]
    assert texts(logtail.tail(str(path), 10, plain())) == ["one", "two", "three"]
    assert logtail.tail(str(path), 0, plain()) == []


def test_a_huge_file_is_only_partly_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with open(path, "wb") as file:
        file.truncate(16 * 1024 ** 3)  # 16 GiB of holes (no disk used) before the end
        file.seek(0, os.SEEK_END)
        file.write(b"".join(b"line %d\n" % n for n in range(1000)))
    budget = Budget(10 ** 15)
    lines = logtail.reverse_lines(str(path), budget=budget)
    assert [next(lines) for _ in range(3)] == [b"line 999", b"line 998", b"line 997"]
    lines.close()
    assert 10 ** 15 - budget.left <= logtail.BLOCK, "one block read, not the file"
    assert texts(logtail.tail(str(path), 5, plain())) == [f"line {n}" for n in range(995, 1000)]


def test_reading_stops_at_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "one-line.log"
    path.write_bytes(b"start\n" + b"z" * 300_000)  # a last line longer than the budget
    (tmp_path / "one-line.log.1").write_text("older\n")
    assert logtail.tail(str(path), 5, plain(), limit=100_000) == [], (
        "a line cut short is not given, and older files are not read on")
    assert texts(logtail.tail(str(path), 5, plain())) == ["older", "start", "z" * 300_000]


# -- rotated backups ------------------------------------------------------------------

def numbered_lines(first: int, last: int) -> str:
    return "".join(f"line {n}\n" for n in range(first, last + 1))


def test_tail_goes_on_into_rotated_backups(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text(numbered_lines(21, 25))
    (tmp_path / "out.log.1").write_text(numbered_lines(11, 20))
    with gzip.open(tmp_path / "out.log.2.gz", "wt") as older:
        older.write(numbered_lines(1, 10))
    (tmp_path / "out.log.other").write_text("not a backup\n")
    (tmp_path / "out.logger.1").write_text("another file's backup\n")
    (tmp_path / ".out.log.3.gz.tmp").write_text("an archive being written\n")
    assert texts(logtail.tail(str(path), 3, plain())) == ["line 23", "line 24", "line 25"]
    assert texts(logtail.tail(str(path), 8, plain())) == [f"line {n}" for n in range(18, 26)]
    assert texts(logtail.tail(str(path), 18, plain())) == [f"line {n}" for n in range(8, 26)]
    assert texts(logtail.tail(str(path), 100, plain())) == [f"line {n}" for n in range(1, 26)]


def test_a_backup_being_compressed_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text(numbered_lines(6, 7))
    (tmp_path / "out.log.1").write_text(numbered_lines(1, 5))
    with gzip.open(tmp_path / "out.log.1.gz", "wt") as half:  # the same lines, compressed
        half.write(numbered_lines(1, 5))
    assert logtail.backups(str(path)) == [
        (str(tmp_path / "out.log.1"), str(tmp_path / "out.log.1.gz"))]
    assert texts(logtail.tail(str(path), 10, plain())) == [f"line {n}" for n in range(1, 8)]
    (tmp_path / "out.log.1").unlink()  # compressed: only the archive is left
    assert texts(logtail.tail(str(path), 10, plain())) == [f"line {n}" for n in range(1, 8)]


def test_a_broken_archive_is_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text(numbered_lines(3, 4))
    whole = gzip.compress(numbered_lines(1, 2).encode())
    (tmp_path / "out.log.1.gz").write_bytes(whole[:len(whole) // 2])
    assert texts(logtail.tail(str(path), 10, plain())) == ["line 3", "line 4"]


def test_timed_backups_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text("line 5\n")
    (tmp_path / "out.log.2026-01-01_10-00-00").write_text("line 1\n")
    (tmp_path / "out.log.2026-01-01_10-00-01").write_text("line 2\n")
    with gzip.open(tmp_path / "out.log.2026-01-01_10-00-01-1.gz", "wt") as archive:
        archive.write("line 3\n")
    (tmp_path / "out.log.2026-01-01_10-00-01-2").write_text("line 4\n")
    assert texts(logtail.tail(str(path), 10, plain())) == [f"line {n}" for n in range(1, 6)]


def test_no_file_yet(tmp_path: Path) -> None:
    assert logtail.tail(str(tmp_path / "missing.log"), 5, plain()) == []
    (tmp_path / "missing.log.1").write_text("rotated away, not yet reopened\n")
    assert texts(logtail.tail(str(tmp_path / "missing.log"), 5, plain())) == [
        "rotated away, not yet reopened"]


# -- parsing lines back -----------------------------------------------------------------

def test_json_lines_are_parsed_back(tmp_path: Path) -> None:
    parse = logtail.parser({"class": "bigtop.JsonStream", "filename": "x"}, "stdout")
    assert parse(json_line(12.5, "hello", "stderr").encode()) == LogLine(
        12.5, 42, 1, "stderr", "hello")
    assert parse(b"not json") == LogLine(None, None, None, "stdout", "not json")
    assert parse(b'{"line": "x", "time": "soon", "pid": true}') == LogLine(
        None, None, None, "stdout", "x")
    assert parse(b'{"time": 1}') == LogLine(None, None, None, "stdout", '{"time": 1}')


def test_time_prefixes_are_parsed_back() -> None:
    parse = logtail.parser({"class": "FileStream", "filename": "x",
                            "time_format": "%Y-%m-%d %H:%M:%S"}, "stderr")
    when = time.mktime((2026, 11, 27, 10, 0, 5, 0, 0, -1))
    assert parse(b"2026-11-27 10:00:05 hello world") == LogLine(
        when, None, None, "stderr", "hello world")
    assert parse(b"2026-11-27 10:00:05 ") == LogLine(when, None, None, "stderr", "")
    assert parse(b"written before time_format was set") == LogLine(
        None, None, None, "stderr", "written before time_format was set")
    # No date in the format: no time, but the prefix still goes.
    clock = logtail.parser({"class": "FileStream", "filename": "x", "time_format": "%H:%M:%S"},
                           "stdout")
    assert clock(b"10:00:05 tick") == LogLine(None, None, None, "stdout", "tick")
    # A format strptime cannot read back: as many words as it makes go.
    odd = logtail.parser({"class": "FileStream", "filename": "x", "time_format": "[%s]"},
                         "stdout")
    assert odd(b"[1764237605] tick tock") == LogLine(None, None, None, "stdout", "tick tock")


def test_since_stops_at_the_first_older_line(tmp_path: Path) -> None:
    parse = logtail.parser({"class": "JsonStream", "filename": "x"}, "stdout")
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json_line(n, f"line {n}") for n in range(11, 16)) + "garbage\n")
    with gzip.open(tmp_path / "out.jsonl.1.gz", "wt") as older:
        older.write("".join(json_line(n, f"line {n}") for n in range(1, 11)))
    (tmp_path / "out.jsonl.2").write_text(json_line(100, "never read: older than since"))
    assert texts(logtail.tail(str(path), 100, parse, since=7)) == [
        f"line {n}" for n in range(7, 16)], "the line with no time is left out"
    assert texts(logtail.tail(str(path), 3, parse, since=7)) == ["line 13", "line 14",
                                                                 "line 15"]
    assert texts(logtail.tail(str(path), 100, parse, since=12.5)) == [
        "line 13", "line 14", "line 15"]


# -- files and memory together -----------------------------------------------------------

def test_combine_takes_the_recent_lines_from_memory() -> None:
    def file(*lines: str) -> list[LogLine]:
        return [LogLine(None, None, None, "stdout", line) for line in lines]

    def memory(*lines: str) -> list[LogLine]:
        return [LogLine(100.0 + n, 7, 1, "stdout", line) for n, line in enumerate(lines)]

    older = file("a", "b", "c", "d")
    assert logtail.combine(older, memory("c", "d")) == older[:2] + memory("c", "d")
    assert logtail.combine(older, memory("c", "d", "e")) == older[:2] + memory("c", "d", "e"), (
        "a line in memory the file has not got yet")
    assert logtail.combine(older, memory("a", "b", "c", "d")) == memory("a", "b", "c", "d")
    assert logtail.combine(file("c", "d"), memory("a", "b", "c", "d")) == memory(
        "a", "b", "c", "d"), "memory goes further back than the lines read"
    assert logtail.combine(older, []) == older
    assert logtail.combine([], memory("x")) == memory("x")
    assert logtail.combine(older, memory("x", "y")) == older + memory("x", "y")
    ticks = file("tick", "tick", "tick", "tick")
    assert logtail.combine(ticks, memory("tick", "tick")) == ticks[:2] + memory("tick", "tick")


def test_merge_by_time_lines_without_time_first() -> None:
    out = [LogLine(None, None, None, "stdout", "old out"), LogLine(2.0, 1, 1, "stdout", "o2"),
           LogLine(4.0, 1, 1, "stdout", "o4")]
    err = [LogLine(None, None, None, "stderr", "old err"), LogLine(1.0, 1, 1, "stderr", "e1"),
           LogLine(3.0, 1, 1, "stderr", "e3")]
    assert texts(logtail.merge([out, err])) == ["old out", "old err", "e1", "o2", "e3", "o4"]


# -- end to end ------------------------------------------------------------------------

def json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


def test_logs_from_files_after_a_restart(daemon: Factory, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "talk.log"
    config = """
        [watcher:talk]
        cmd = {cmd}
        stdout_stream.class = FileStream
        stdout_stream.filename = {log}
        stdout_stream.max_bytes = 120
        stdout_stream.backup_count = 5
    """
    speak = f"""{PY} -u -c "[print(f'line {{n:02d}}') for n in range(1, 31)]; import time; time.sleep(1000)" """
    first = daemon(config.format(cmd=speak, log=log))
    wait_for(lambda: "line 30" in ok(first, "logs", "talk", "-n", "1"))
    assert first.stop() == 0

    d = daemon(config.format(cmd="sleep 1000", log=log))  # says nothing: memory is empty
    assert (tmp_path / "logs" / "talk.log.1").exists(), "rotated"
    assert ok(d, "logs", "talk", "-n", "25").splitlines() == [
        f"{BLANK} talk | line {n:02d}" for n in range(6, 31)], "from the file and its backups"
    assert ok(d, "logs", "-n", "2").splitlines() == [f"{BLANK} talk | line 29",
                                                     f"{BLANK} talk | line 30"]
    entries = json_lines(ok(d, "logs", "talk", "-n", "3", "--json"))
    assert entries == [{"time": None, "watcher": "talk", "pid": None, "wid": None,
                        "stream": "stdout", "line": f"line {n}"} for n in (28, 29, 30)]
    assert ok(d, "logs", "talk", "--stderr").strip() == "no output yet"
    assert ok(d, "logs", "talk", "--since", "1h").strip() == "no output yet", (
        "plain file lines have no time: left out with --since")


def test_logs_since_and_json_with_a_json_stream(daemon: Factory, tmp_path: Path) -> None:
    log = tmp_path / "talk.jsonl"
    flag = tmp_path / "go"
    config = f"""
        [watcher:talk]
        cmd = sh -c '{{script}}; exec sleep 1000'
        stdout_stream.class = JsonStream
        stdout_stream.filename = {log}
    """
    first = daemon(config.format(script='echo "old 1"; echo "old 2"'))
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 2)
    assert first.stop() == 0
    between = time.time()

    d = daemon(config.format(
        script=f'echo "new 1"; while [ ! -e {flag} ]; do sleep 0.02; done; echo "new 2"'))
    pid = d.wait_pids("talk", 1).pop()
    wait_for(lambda: "new 1" in ok(d, "logs", "talk"))
    flag.touch()
    wait_for(lambda: "new 2" in ok(d, "logs", "talk"))
    everything = json_lines(ok(d, "logs", "talk", "--json"))
    assert [e["line"] for e in everything] == ["old 1", "old 2", "new 1", "new 2"], (
        "the file's lines, then memory's, each once")
    assert all(e["pid"] == pid and e["wid"] == 1 for e in everything[2:])
    assert everything[0]["pid"] and everything[0]["wid"] == 1, "from the JSON file"
    assert all(isinstance(e["time"], float) for e in everything)
    assert [e["time"] for e in everything] == sorted(e["time"] for e in everything)

    since = json_lines(ok(d, "logs", "talk", "--json", "--since", repr(between)))
    assert [e["line"] for e in since] == ["new 1", "new 2"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(int(between) - 3600))
    assert shown(ok(d, "logs", "talk", "--since", iso)) == [
        "talk.1 | old 1", "talk.1 | old 2", "talk.1 | new 1", "talk.1 | new 2"]
    assert shown(ok(d, "logs", "talk", "-n", "1", "--since", "1d")) == ["talk.1 | new 2"]
    reply = d.client().call("logs", name="talk", since=everything[3]["time"])
    assert [e["line"] for e in reply["lines"]["talk"]] == ["new 2"]


def test_logs_since_from_memory_and_errors(daemon: Factory, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    d = daemon(f"""
        [watcher:talk]
        cmd = sh -c 'echo first; echo oops >&2; while [ ! -e {flag} ]; do sleep 0.02; done; echo second; exec sleep 1000'
    """)
    wait_for(lambda: "oops" in ok(d, "logs", "talk"))
    between = time.time()
    flag.touch()
    wait_for(lambda: "second" in ok(d, "logs", "talk"))
    assert shown(ok(d, "logs", "talk", "--since", str(between))) == ["talk.1 | second"]
    lines = shown(ok(d, "logs", "talk"))
    assert lines[-1] == "talk.1 | second", "stdout and stderr merged by time"
    assert sorted(lines[:2]) == ["talk.1 | first", "talk.1 | oops"]
    assert shown(ok(d, "logs", "talk", "--stderr")) == ["talk.1 | oops"]

    bad = ctl(d, "logs", "talk", "--since", "yesterday")
    assert bad.returncode == 2 and "--since: expected a time ago (30s, 10m, 2h, 1d)" in bad.stderr
    assert "Traceback" not in bad.stderr
    negative = ctl(d, "logs", "-n", "-3")
    assert negative.returncode == 2 and "-n must be 0 or more" in negative.stderr
    unknown = ctl(d, "logs", "talk", "nope")
    assert unknown.returncode == 3 and "no watcher named 'nope'" in unknown.stderr
    assert json.loads(ctl(d, "--json", "logs", "nope").stdout)["status"] == "error"
    client = d.client()
    for props in ({"since": "soon"}, {"since": float("nan")}, {"stream": "stdin"},
                  {"name": ["talk", 3]}, {"since": True}):
        reply = client.call("logs", raise_on_error=False, **props)
        assert reply["status"] == "error" and reply["errno"] == 3, (props, reply)


def test_logs_of_several_watchers(daemon: Factory) -> None:
    d = daemon("""
        [watcher:alpha]
        cmd = sh -c 'echo from alpha; exec sleep 1000'

        [watcher:beta]
        cmd = sh -c 'echo from beta; echo beta complains >&2; exec sleep 1000'

        [watcher:gamma]
        cmd = sh -c 'echo from gamma; exec sleep 1000'
    """)
    wait_for(lambda: len(ok(d, "logs").splitlines()) == 4)
    two = shown(ok(d, "logs", "alpha", "beta"))
    assert sorted(two) == ["alpha.1 | from alpha", "beta.1 | beta complains",
                           "beta.1 | from beta"]
    assert shown(ok(d, "logs", "--stderr")) == ["beta.1 | beta complains"]
    entries = json_lines(ok(d, "logs", "gamma", "beta", "--json", "--stdout"))
    assert {(e["watcher"], e["line"]) for e in entries} == {("gamma", "from gamma"),
                                                            ("beta", "from beta")}
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries), "by time"
    assert all(list(e) == ["time", "watcher", "pid", "wid", "stream", "line"] for e in entries)


def read_lines(proc: subprocess.Popen[str], into: list[str]) -> threading.Thread:
    def run() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            into.append(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_follow_as_json_lines_without_gaps_or_repeats(daemon: Factory) -> None:
    d = daemon("""
        [watcher:talk]
        cmd = sh -c 'i=0; while true; do i=$((i+1)); echo "out $i"; sleep 0.02; done'
    """)
    wait_for(lambda: "out 5" in ok(d, "logs", "talk"))
    proc = subprocess.Popen(
        [*CTL, "--endpoint", d.endpoint, "logs", "talk", "-n", "3", "-f", "--json"],
        stdout=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    lines: list[str] = []
    reader = read_lines(proc, lines)
    try:
        wait_for(lambda: len(lines) >= 25, message="25 lines")
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
    entries = [json.loads(line) for line in lines]
    assert all(e["watcher"] == "talk" and e["wid"] == 1 and isinstance(e["time"], float)
               for e in entries)
    numbers = [int(str(e["line"]).split()[1]) for e in entries]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (
        "the last lines, then the live ones: none twice, none missing")


def test_colors_on_a_terminal_only_without_no_color(daemon: Factory) -> None:
    d = daemon("""
        [watcher:talk]
        cmd = sh -c 'echo hello; echo trouble >&2; exec sleep 1000'
    """)
    wait_for(lambda: len(ok(d, "logs", "talk").splitlines()) == 2)
    assert "\x1b[" not in ok(d, "logs", "talk"), "not a terminal: no escape codes"

    def on_a_terminal(**extra: str) -> str:
        main, child = pty.openpty()
        environ = {k: v for k, v in env().items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        environ.update(TERM="xterm-256color", **extra)
        done = subprocess.run([*CTL, "--endpoint", d.endpoint, "logs", "talk"], stdout=child,
                              stderr=subprocess.PIPE, env=environ, cwd=ROOT, timeout=30)
        os.close(child)
        output = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal is closed and read out
                break
            if not chunk:
                break
            output += chunk
        os.close(main)
        assert done.returncode == 0, done.stderr
        return output.decode()

    colored = on_a_terminal()
    assert "\x1b[" in colored and "hello" in colored and "trouble" in colored
    assert "\x1b[31m" in colored or "\x1b[91m" in colored or ";31m" in colored, "stderr in red"
    assert "\x1b[" not in on_a_terminal(NO_COLOR="1")


def test_jsonstream_pieces_are_joined_when_read_back(tmp_path):
    """Pieces of one line (``"partial": true`` on all but the last), with
    another process's lines between them, come back as that line, once."""
    import json

    def record(pid, line, partial=False, at=1.0):
        out = {"time": at, "watcher": "w", "pid": pid, "wid": 1, "stream": "stdout",
               "line": line}
        return json.dumps(out | ({"partial": True} if partial else {}))

    path = tmp_path / "out.json"
    path.write_text("\n".join([
        record(1, "first"),
        record(1, "Password for ", partial=True),
        record(2, "other"),
        record(1, "backup: ", partial=True),
        record(1, "secret", at=2.0),
        record(1, "still typ", partial=True),  # unfinished: a line as far as it came
    ]) + "\n")
    parse = logtail.parser({"class": "JsonStream", "filename": str(path)}, "stdout")
    found = logtail.tail(str(path), 10, parse)
    assert [(e.pid, e.line) for e in found] == [
        (1, "first"), (2, "other"), (1, "Password for backup: secret"), (1, "still typ")]
    assert found[2].time == 2.0 and not any(e.partial for e in found)
    assert [e.line for e in logtail.tail(str(path), 2, parse)] == [
        "Password for backup: secret", "still typ"]
