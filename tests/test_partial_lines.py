"""Unfinished lines (issue #15): a prompt, a progress bar or the end of a
burst reaches every sink within ``partial_line_delay`` of its write, with
no newline or exit to wait for; a plain file stays a byte-exact copy of
what the child wrote, and the per-line forms (JsonStream, time prefixes,
the console, live tails, ``logs``) say or know where a line goes on."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bigtop.client.loglines import Shown
from bigtop.core import streams
from bigtop.core.capture import OutputCapture
from bigtop.core.output import PipeReader, utf8_end
from bigtop.core.writer import Writer

from .conftest import ROOT, Daemon, wait_for
from .test_bigtopctl import CTL, PY, env, ok
from .test_logs import shown

Factory = Callable[..., Daemon]

# What the writer child writes to stdout and to stderr, in this many writes,
# each 0.2 s after the one before: longer than the delay, so most are pieces.
PARTS = [b"one\ntw", b"o\nthree", b" and more", b"\nlast line\n", b"caf\xc3", b"\xa9 au lait",
         b"\nno newline at the end"]
WRITTEN = b"".join(PARTS)
LINES = WRITTEN.decode().split("\n")
WRITER = """\
import os, time
for part in {parts!r}:
    os.write(1, part)
    os.write(2, part)
    time.sleep(0.2)
"""


@pytest.fixture(autouse=True)
def no_unfinished_outputs() -> Iterator[None]:
    """The sinks' record of outputs ending inside a line is the process's:
    a test's descriptors must not inherit another's."""
    streams._unfinished.clear()
    yield
    streams._unfinished.clear()


def joined(records: list[dict[str, Any]]) -> list[str]:
    """Lines put back together from pieces (``partial: true`` on all but
    the last piece of a line), as a reader of JsonStream or of the events
    would; fails on a piece left unfinished."""
    lines, begun = [], ""
    for record in records:
        assert record.get("partial") in (None, True), record
        begun += record["line"]
        if not record.get("partial"):
            lines.append(begun)
            begun = ""
    assert begun == "", "a piece nothing ended"
    return lines


# -- end to end ---------------------------------------------------------------------

def test_a_prompt_is_in_the_file_at_once_and_nothing_is_added(daemon: Factory,
                                                              tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    d = daemon(f"""
        [watcher:backup]
        cmd = sh -c "printf 'Password for backup: '; exec sleep 1000"
        autostart = false
        stdout_stream.class = FileStream
        stdout_stream.filename = {log}
    """)
    with d.events("watcher.backup.") as ev:
        d.call("start", name="backup")
        ev.wait("watcher.backup.spawn")
    wait_for(lambda: log.exists() and log.read_bytes() == b"Password for backup: ",
             timeout=1.0, message="the prompt in the file")
    reply = d.call("logs", name="backup")
    assert [e["line"] for e in reply["lines"]["backup"]] == ["Password for backup: "]
    assert d.stop() == 0
    assert log.read_bytes() == b"Password for backup: ", "no newline added at the exit"


def test_files_are_exact_and_per_line_forms_mark_the_pieces(daemon: Factory,
                                                            tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(parts=PARTS))
    exact, pieces, stamped = tmp_path / "exact.log", tmp_path / "pieces.jsonl", tmp_path / "t.log"
    d = daemon(f"""
        [watcher:exact]
        cmd = {PY} {script}
        restart = never
        autostart = false
        stdout_stream.class = FileStream
        stdout_stream.filename = {exact}
        stderr_stream.class = JsonStream
        stderr_stream.filename = {pieces}

        [watcher:stamped]
        cmd = {PY} {script}
        restart = never
        autostart = false
        stdout_stream.class = FileStream
        stdout_stream.filename = {stamped}
        stdout_stream.time_format = %H:%M:%S
        stderr_stream.class = FancyStdoutStream
        stderr_stream.time_format = T
    """)
    with d.events("watcher.") as ev:
        d.call("start", name="exact")
        d.call("start", name="stamped")
        for name in ("exact", "stamped"):
            ev.wait(f"watcher.{name}.reap", timeout=20, exit_code=0, requested=False)
    assert d.stop() == 0  # everything written

    assert exact.read_bytes() == WRITTEN, "a byte-exact copy"

    records = [json.loads(line) for line in pieces.read_text().splitlines()]
    assert any(record.get("partial") for record in records), "some lines came in pieces"
    assert {(r["watcher"], r["stream"], r["wid"]) for r in records} == {("exact", "stderr", 1)}
    assert joined(records) == LINES
    assert records[-1] == {**records[-1], "line": ""}, (
        "a line the exit ended: an object without partial ends it")

    text = stamped.read_text()
    assert not text.endswith("\n")
    stamps = [re.fullmatch(r"\d\d:\d\d:\d\d (.*)", line) for line in text.split("\n")]
    assert all(stamps), text
    assert [m.group(1) for m in stamps if m] == LINES, "a prefix at each line's start only"

    fancy = d.out_text()
    assert not fancy.endswith("\n")
    heads = [re.fullmatch(r"T stamped\[\d+\] \| (.*)", line) for line in fancy.split("\n")]
    assert all(heads), fancy
    assert [m.group(1) for m in heads if m] == LINES


def follow(d: Daemon, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([*CTL, "--endpoint", d.endpoint, "logs", "talk", "-f", *args],
                            stdout=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def test_live_tails_logs_and_the_console(daemon: Factory, tmp_path: Path) -> None:
    answered, finished = tmp_path / "answered", tmp_path / "finished"
    script = tmp_path / "talk.sh"
    script.write_text(
        "printf 'Password for backup: '\n"
        f"while [ ! -e {answered} ]; do sleep 0.02; done\n"
        "printf 'accepted\\nnext\\n'\n"
        "printf 'Working...'\n"
        f"while [ ! -e {finished} ]; do sleep 0.02; done\n"
        "printf '\\ndone\\n'\n"
        "printf 'bye'\n")
    d = daemon(f"""
        [watcher:talk]
        cmd = sh {script}
        restart = never
        autostart = false
    """)
    with d.events("stream.talk.", "watcher.talk.reap") as ev:
        d.call("start", name="talk")
        ev.wait("stream.talk.stdout", line="Password for backup: ", partial=True)
        assert shown(ok(d, "logs", "talk")) == ["talk.1 | Password for backup: "], (
            "an unfinished line as far as it has come")
        text, text_lines = follow(d)
        as_json, json_lines = follow(d, "--json")
        try:
            wait_for(lambda: text_lines and json_lines, message="the followers' history")
            answered.touch()
            ev.wait("stream.talk.stdout", line="Working...", partial=True)
            finished.touch()
            ev.wait("watcher.talk.reap")
            wait_for(lambda: shown("\n".join(text_lines[-1:])) == ["talk.1 | bye"],
                     message="bye, followed")
            wait_for(lambda: json.loads(json_lines[-1])["line"] in ("bye", ""),
                     message="the end, as JSON")
        finally:
            for proc in (text, as_json):
                proc.terminate()
                proc.wait(10)
        events = [payload for topic, payload in ev.seen() if topic.startswith("stream.")]

    whole = ["Password for backup: accepted", "next", "Working...", "done", "bye"]
    assert all(e["pid"] == events[0]["pid"] and e["wid"] == 1 for e in events)
    assert joined(events) == whole, "pieces with partial: true, joined"
    assert any(e.get("partial") for e in events)

    # Each piece as it comes, on a line of its own; the newline that only
    # ends a line shown in pieces is not shown.
    assert shown("\n".join(text_lines)) == [
        "talk.1 | Password for backup: ", "talk.1 | accepted", "talk.1 | next",
        "talk.1 | Working...", "talk.1 | done", "talk.1 | bye"]
    records = [json.loads(line) for line in json_lines]
    assert records[0]["line"] == "Password for backup: " and "partial" not in records[0], (
        "from the reply: a line, as far as it had come")
    assert joined(records[1:]) == ["accepted", "next", "Working...", "done", "bye"]
    assert records[3] == {**records[3], "line": "Working...", "partial": True}

    assert shown(ok(d, "logs", "talk")) == [f"talk.1 | {line}" for line in whole], (
        "memory has the lines whole")

    console = [re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} talk\.1 \| (.*)", line)
               for line in d.out_text().splitlines()]
    assert all(console), d.out_text()
    assert [m.group(1) for m in console if m] == [
        "Password for backup: ", "accepted", "next", "Working...", "done", "bye"]


def test_a_delay_of_zero_and_set(daemon: Factory, tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    flag = tmp_path / "go"
    d = daemon(f"""
        [watcher:slow]
        cmd = sh -c 'printf "first"; while [ ! -e {flag} ]; do sleep 0.02; done; printf "second"; exec sleep 1000'
        partial_line_delay = 1000
        stdout_stream.class = FileStream
        stdout_stream.filename = {log}
    """)
    d.wait_pids("slow", 1)
    reply = d.call("logs", name="slow")  # the sinks flushed: nothing there yet
    assert reply["lines"]["slow"] == [] and not log.exists()
    d.call("set", name="slow", options={"partial_line_delay": "0"})
    assert d.call("get", name="slow", keys=["partial_line_delay"])["options"] == {
        "partial_line_delay": 0.0}
    flag.touch()  # the delay is read when a piece starts waiting: the new one applies
    wait_for(lambda: log.exists() and log.read_bytes() == b"firstsecond",
             message="both pieces")


# -- the parts ----------------------------------------------------------------------

def test_utf8_end() -> None:
    assert utf8_end(b"") == 0
    assert utf8_end(b"abc") == 3
    assert utf8_end(b"caf\xc3") == 3
    assert utf8_end(b"caf\xc3\xa9") == 5
    assert utf8_end(b"\xe2\x82") == 0
    assert utf8_end(b"x\xe2\x82\xac") == 4
    assert utf8_end(b"\xf0\x9f\x98") == 0
    assert utf8_end(b"\x80\x80\x80\x80") == 4, "not UTF-8: cut anywhere"


Chunks = list[tuple[bytes, bool, float]]  # (bytes, last, when)
Steps = Callable[[Callable[[bytes], None], Callable[[], None], Chunks, PipeReader],
                 Awaitable[None]]


def read_pipe(delay: float, steps: Steps) -> None:
    """Run ``steps(write, end, chunks so far, reader)`` with a reader on a
    pipe: ``write`` writes to the pipe, ``end`` closes its write end."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        read, write = os.pipe()
        ends = [write]
        got: Chunks = []

        def on_chunk(chunk: bytes, last: bool = False) -> None:
            got.append((chunk, last, loop.time()))

        def end() -> None:
            if ends:
                os.close(ends.pop())

        reader = PipeReader(loop, read, on_chunk, partial_delay=lambda: delay)
        try:
            await steps(lambda data: os.write(write, data) and None, end, got, reader)
        finally:
            reader.close()
            end()

    asyncio.run(main())


async def until(got: Chunks, count: int) -> None:
    for _ in range(1000):
        if len(got) >= count:
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"{count} chunks expected, got {got}")


def test_the_reader_hands_on_an_unfinished_line_after_the_delay() -> None:
    async def steps(write: Callable[[bytes], None], end: Callable[[], None], got: Chunks,
                    reader: PipeReader) -> None:
        sent = asyncio.get_running_loop().time()
        write(b"Password: ")
        await until(got, 1)
        assert got[0][:2] == (b"Password: ", False)
        assert got[0][2] - sent >= 0.045, "it waited for its newline first"
        write(b"secret\nmore")
        await until(got, 3)
        assert [chunk for chunk, _, _ in got[1:]] == [b"secret\n", b"more"]
        write(b"caf\xc3")
        await until(got, 4)
        assert got[3][0] == b"caf", "not the first byte of a character"
        write(b"\xa9!")
        await until(got, 5)
        assert got[4][0] == b"\xc3\xa9!"
        write(b"whole\nlines\n")
        await until(got, 6)
        assert got[5][0] == b"whole\nlines\n" and reader._waiting is None
        write(b"end")
        end()
        await until(got, 7)
        await until(got, 7 if got[6][1] else 8)  # at the exit, or a piece and then the exit
        assert b"".join(chunk for chunk, _, _ in got[6:]) == b"end"
        assert got[-1][1] and not any(last for _, last, _ in got[:-1])
        assert reader.fd is None

    read_pipe(0.05, steps)


def test_a_line_finished_within_the_delay_is_one_chunk() -> None:
    async def steps(write: Callable[[bytes], None], end: Callable[[], None], got: Chunks,
                    reader: PipeReader) -> None:
        write(b"par")
        await asyncio.sleep(0.05)
        write(b"t\nand more")
        await until(got, 1)
        await asyncio.sleep(0.05)
        assert [chunk for chunk, _, _ in got] == [b"part\n"]
        reader.close()
        assert [chunk for chunk, _, _ in got] == [b"part\n", b"and more"]
        assert got[-1][1], "the rest, last: the line ends there"

    read_pipe(5.0, steps)


def test_memory_joins_the_pieces_of_each_pipe() -> None:
    capture = OutputCapture("app", lambda: None, None, None)  # type: ignore[arg-type,return-value]
    one, two = SimpleNamespace(pid=1, wid=1), SimpleNamespace(pid=2, wid=2)
    for now, process, stream, chunk in [
            (1.0, one, "stdout", b"a1\npart"), (2.0, two, "stdout", b"b1\n"),
            (3.0, one, "stdout", b"ial "), (4.0, one, "stderr", b"err\n"),
            (5.0, one, "stdout", b"end\nnext\n"), (6.0, two, "stdout", b"unfin")]:
        capture._remember(now, process, stream, chunk)  # type: ignore[arg-type]
    assert capture.recent_lines(10) == [
        (1.0, 1, 1, "stdout", "a1"), (2.0, 2, 2, "stdout", "b1"), (4.0, 1, 1, "stderr", "err"),
        (5.0, 1, 1, "stdout", "partial end"), (5.0, 1, 1, "stdout", "next"),
        (6.0, 2, 2, "stdout", "unfin")], "a line has the time of its last piece"
    assert capture.recent_lines(3) == [
        (5.0, 1, 1, "stdout", "partial end"), (5.0, 1, 1, "stdout", "next"),
        (6.0, 2, 2, "stdout", "unfin")], "the beginning of a line found past the count"
    assert capture.recent_lines(10, "stderr") == [(4.0, 1, 1, "stderr", "err")]
    assert [line for *_, line in capture.recent_lines(10, since=3.0)] == [
        "err", "ial end", "next", "unfin"], "only what was read since"


def test_live_pieces_of_a_line_shown_whole_are_not_shown_again() -> None:
    base = {"watcher": "app", "pid": 1, "stream": "stdout"}
    shown = Shown([{**base, "time": 3.0, "line": "before"},
                   {**base, "time": 5.0, "line": "Password: accepted"},
                   {**base, "time": 6.0, "line": "Working"}])
    assert shown.hide({**base, "time": 4.0, "line": "Password: ", "partial": True}), (
        "within the times shown of its pipe: a piece of a line shown")
    assert shown.hide({**base, "time": 5.0, "line": "accepted"})
    assert shown.hide({**base, "time": 6.0, "line": "Working", "partial": True}), (
        "the line shown as far as it had come")
    assert not shown.hide({**base, "time": 6.1, "line": "...", "partial": True})
    assert shown.hide({**base, "time": 6.2, "line": ""}), "only ends a line shown in pieces"
    assert not shown.hide({**base, "time": 6.3, "line": ""}), "an empty line of its own"
    assert not shown.hide({**base, "pid": 2, "time": 5.5, "line": "other"})
    assert not shown.again({**base, "time": 6.4, "line": "", "partial": True})
    assert not shown.again({**base, "time": 6.5, "line": ""}), "JSON shows every piece"
    older = Shown([{**base, "time": 1.0, "line": "x"}])  # times not the same: within the slack
    assert older.again({**base, "time": 1.001, "line": "x"})
    assert not older.again({**base, "time": 1.002, "line": "x"}), "once"


def write_sink(make: Callable[[Writer], streams.StreamSink],
               calls: list[tuple[Any, ...]]) -> None:
    """Feed (chunk, pid, last) calls to a sink on a real writer thread."""
    async def main() -> None:
        writer = Writer()
        sink = make(writer)
        for chunk, pid, *last in calls:
            sink.write(chunk, pid, pid, "stdout", *last)
        sink.close()
        await writer.close()

    asyncio.run(main())


# Two processes on one file: a piece of one, then the other's line, then the
# rest of the first; an unfinished line the exit ended; a line after it.
SHARED = [(b"abc", 1), (b"x\n", 2), (b"def\n", 1), (b"Pass", 1), (b"word\n", 1),
          (b"tail", 2, True), (b"y\n", 1)]


def test_another_pipe_never_continues_a_line(tmp_path: Path) -> None:
    plain, stamped = tmp_path / "plain.log", tmp_path / "stamped.log"
    write_sink(lambda w: streams.FileSink(w, {"class": "FileStream", "filename": str(plain)},
                                          "web"), SHARED)
    assert plain.read_bytes() == b"abc\nx\ndef\nPassword\ntail\ny\n"
    write_sink(lambda w: streams.FileSink(w, {"class": "FileStream", "time_format": "T",
                                              "filename": str(stamped)}, "web"), SHARED)
    assert stamped.read_bytes() == b"T abc\nT x\nT def\nT Password\nT tail\nT y\n"


def test_json_pieces(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_sink(lambda w: streams.FileSink(w, {"class": "JsonStream", "filename": str(path)},
                                          "web"),
               [(b"abc", 1), (b"def\nghi", 1), (b"", 1, True), (b"one\n", 2)])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["line"], r.get("partial")) for r in records] == [
        ("abc", True), ("def", None), ("ghi", True), ("", None), ("one", None)]
    assert joined(records) == ["abcdef", "ghi", "one"]


def test_the_daemons_stdout() -> None:
    """FancyStdoutStream's prefix at line starts; the console after another
    class's unfinished line starts a line."""
    read, write = os.pipe()

    async def main() -> None:
        writer = Writer()
        fancy = streams.FancyStdoutSink(writer, {"time_format": "T"}, "web", fd=write)
        plain = streams.StdoutSink(writer, {}, "api", fd=write)
        console = streams.ConsoleSink(lambda: writer, fd=write)
        fancy.write(b"Password: ", 42)
        fancy.write(b"ok\nmore", 42)
        plain.write(b"as is", 7)
        fancy.write(b"", 42, last=True)
        console("db", 1, 9, "stdout", "hello")
        fancy.close()
        plain.close()
        console.flush()
        await writer.close()

    try:
        asyncio.run(main())
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as pipe:
        out = pipe.read()
    text, console_line, after = out.rsplit(b"\n", 2)
    assert text == b"T web[42] | Password: ok\nT web[42] | more\nas is"
    assert re.fullmatch(rb"\d\d:\d\d:\d\d\.\d{3} db\.1 \| hello", console_line), out
    assert after == b""


def test_the_web_console_gets_each_piece_but_not_a_bare_end() -> None:
    from bigtop.web.app import Viewer

    viewer = Viewer(None, None)  # type: ignore[arg-type]
    viewer.tailing, viewer.backlog, viewer.shown = ("node", "talk"), None, Shown([])
    base = {"watcher": "talk", "pid": 1, "wid": 1, "stream": "stdout"}
    for time, line, partial in [(1.0, "Working...", True), (1.1, "", False), (1.2, "", False),
                                (1.3, "Password: ", True), (1.4, "ok", False)]:
        viewer.on_output("node", {**base, "time": time, "line": line,
                                  **({"partial": True} if partial else {})})
    assert [(e["line"], e.get("partial")) for e in viewer.output] == [
        ("Working...", True), ("", None), ("Password: ", True), ("ok", None)]


def test_memory_of_tiny_chunks_is_bounded_by_what_they_cost() -> None:
    """A child that writes a byte at a time: the output kept in memory is
    bounded by what each chunk costs, not by its bytes alone."""
    import tracemalloc

    from bigtop.core.capture import RECENT_BYTES

    capture = OutputCapture("app", lambda: None, None, None)  # type: ignore[arg-type,return-value]
    process = SimpleNamespace(pid=1, wid=1)
    tracemalloc.start()
    try:
        for n in range(100_000):
            capture._remember(float(n), process, "stdout", b"%d" % (n % 10))  # type: ignore[arg-type]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 2 * RECENT_BYTES, held
