"""A disk that cannot take output (issue #15): the streams that write to it
are held back for a while, then their lines are dropped, whole and counted,
until it takes data again; no line is ever torn or glued onto another, and
the other files go on. On a real, small tmpfs (root only)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bigtop.client import Subscriber

from .conftest import wait_for

pytestmark = pytest.mark.chaos  # a fault: `make chaos` runs these with the other scenarios
LINE = re.compile(rb"(\d{8}) (x*)")


def line(n: int) -> bytes:
    """Numbered line n: its length says whether it is whole."""
    return b"%08d %s\n" % (n, b"x" * (n % 40))


def check_lines(data: bytes, first: int = 0) -> tuple[list[int], int, int]:
    """Every line of data whole and numbered upwards from ``first``: the
    numbers, and the lines and bytes missing between them (drops)."""
    assert data.endswith(b"\n"), data[-80:]
    numbers = []
    for text in data.split(b"\n")[:-1]:
        match = LINE.fullmatch(text)
        assert match, f"a torn or glued line: {text[:100]!r}"
        number = int(match.group(1))
        assert len(match.group(2)) == number % 40, f"a torn line: {text[:100]!r}"
        numbers.append(number)
    expected, missing, missing_bytes = first, 0, 0
    for number in numbers:
        assert number >= expected, f"{number} after {expected - 1}: not in order"
        missing += number - expected
        missing_bytes += sum(len(line(n)) for n in range(expected, number))
        expected = number + 1
    return numbers, missing, missing_bytes


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MiB tmpfs at tmp_path/disk. Ask for it before ``daemon``:
    then it is unmounted after the daemons are stopped, whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)  # still busy: detached


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the disk, then free ``leave`` bytes (whole pages on a tmpfs)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
        if leave:
            os.ftruncate(out.fileno(), max(os.fstat(out.fileno()).st_size - leave, 0))
    return filler


def first_line(data: bytes) -> bytes:
    """A line to write before data, one page's room on a tmpfs, so that the
    page ends inside a line of data (where a full disk cuts it)."""
    ends = set()
    position = 0
    for text in data.split(b"\n")[:-1]:
        position += len(text) + 1
        ends.add(position)
    page = os.sysconf("SC_PAGE_SIZE")
    for pad in range(100):
        first = b"first" + b"." * pad + b"\n"
        if page - len(first) not in ends:
            return first
    raise AssertionError("no such line")


def drain(writer) -> None:
    asyncio.run(asyncio.wait_for(writer.drain(), 10))


# -- FileTarget -------------------------------------------------------------


def test_a_partial_write_leaves_the_rest_of_the_line_to_come_first(small_disk):
    from bigtop.core.writer import FileTarget, Unwritten

    path = small_disk / "out.log"
    target = FileTarget(str(path))
    data = b"".join(line(n) for n in range(1000))
    first = first_line(data)
    target.write(first)  # one page, with room for part of data
    filler = fill(small_disk)
    with pytest.raises(Unwritten) as failed:
        target.write(data)
    written = failed.value.written
    assert failed.value.errno == errno.ENOSPC
    assert 0 < written < len(data)
    assert data[written - 1] != ord("\n") and target.mid_line, "the disk took half a line"
    assert path.read_bytes() == first + data[:written]
    filler.unlink()
    target.write(data[written:])  # the rest, its first bytes ending that line
    target.close()
    assert path.read_bytes() == first + data


def test_no_rotation_by_size_inside_a_line(tmp_path):
    from bigtop.core.writer import FileTarget

    log = tmp_path / "out.log"
    target = FileTarget(str(log), max_bytes=30, backup_count=5)
    target.write(b"0123456789\n")
    target.write(b"abcdefghijklmnopqrstuvwxyz")  # no room: a new file, and no newline
    target.write(b"ABC\nnext line\n")  # the rest of the line stays with its head
    assert (tmp_path / "out.log.2").read_bytes() == b"0123456789\n"
    assert (tmp_path / "out.log.1").read_bytes() == b"abcdefghijklmnopqrstuvwxyzABC\n"
    assert log.read_bytes() == b"next line\n"
    target.write(b"y" * 40)  # no room: a new file; longer than the limit, unfinished
    target.write(b"Y" * 5)  # over the limit, but inside the line: no rotation
    target.write(b"end\nz\n")
    target.close()
    assert (tmp_path / "out.log.2").read_bytes() == b"next line\n"
    assert (tmp_path / "out.log.1").read_bytes() == b"y" * 40 + b"Y" * 5 + b"end\n"
    assert log.read_bytes() == b"z\n"


def test_no_rotation_by_time_inside_a_line(tmp_path):
    from bigtop.core.writer import FileTarget

    log = tmp_path / "out.log"
    target = FileTarget(str(log), backup_count=5, rotate_when="S")
    target.write(b"one\nhead ")
    target.rotate_at = 0  # the period is over: the next write would rotate first
    target.write(b"more ")  # still inside the line: no rotation
    assert not list(tmp_path.glob("out.log.*"))
    target.write(b"rest\ntwo\n")  # the line ends, then it rotates
    target.close()
    (backup,) = tmp_path.glob("out.log.*")
    assert backup.read_bytes() == b"one\nhead more rest\n"
    assert log.read_bytes() == b"two\n"


def test_a_stale_handle_is_opened_again_once(tmp_path, caplog):
    from bigtop.core.writer import FileTarget

    class Stale:
        """A handle whose file went away (NFS: ESTALE)."""

        def __init__(self, real):
            self.real = real

        def write(self, data):
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))

        def fileno(self):
            return self.real.fileno()

        def close(self):
            self.real.close()

    log = tmp_path / "out.log"
    target = FileTarget(str(log))
    target.write(b"one\n")
    target.handle = Stale(target.handle)
    target.write(b"two\n")
    target.close()
    assert log.read_bytes() == b"one\ntwo\n"
    assert "opening it again" in caplog.text


def test_a_file_found_ending_inside_a_line_is_not_continued(tmp_path):
    from bigtop.core.writer import FileTarget

    log = tmp_path / "out.log"
    log.write_bytes(b"old\nhalf a li")
    target = FileTarget(str(log))
    target.write(b"new\n")
    target.close()
    assert log.read_bytes() == b"old\nhalf a li\nnew\n"
    log.write_bytes(b"old\nhalf a li")
    target = FileTarget(str(log))
    target.write(b"\nnew\n")  # what comes ends it already: no second newline
    target.close()
    assert log.read_bytes() == b"old\nhalf a li\nnew\n"


# -- the writer -------------------------------------------------------------


def test_a_full_disk_holds_then_drops_whole_lines_and_recovers(small_disk, tmp_path, caplog):
    """Held for ``hold`` seconds (the other file goes on meanwhile), then
    lines dropped whole and counted, written again once there is room."""
    from bigtop.core.writer import Writer

    caplog.set_level(logging.WARNING, "bigtop.streams")
    path = small_disk / "out.log"
    writer = Writer(hold=2.0)
    counted = 0

    def feed(count: int) -> None:
        nonlocal counted
        chunk = b"".join(line(n) for n in range(counted, counted + count))
        counted += count
        writer.submit(target, chunk, drops)
        writer.submit(healthy, chunk)

    first = first_line(b"".join(line(n) for n in range(2000)))
    try:
        target = writer.open_file(str(path))
        healthy = writer.open_file(str(tmp_path / "ok.log"))
        drops = writer.counter()
        writer.submit(target, first, drops)
        drain(writer)
        filler = fill(small_disk)
        feed(2000)  # more than there is room for: the disk takes half a line
        wait_for(lambda: writer.holds(target), message="the full file holding back")
        drain(writer)  # not held up by the full file
        assert (tmp_path / "ok.log").read_bytes() == b"".join(line(n) for n in range(2000))
        assert writer.holds(target) and drops.lines == 0, "held, nothing dropped yet"
        wait_for(lambda: not writer.holds(target), message="the end of the hold")
        wait_for(lambda: feed(50) or drops.lines > 0, message="lines dropped")
        held_lines = drops.lines
        filler.unlink()
        wait_for(lambda: feed(50) or "written again" in caplog.text, message="written again")
        feed(50)
        drain(writer)
    finally:
        asyncio.run(writer.close())
    data = path.read_bytes()
    assert data.startswith(first)
    numbers, missing, missing_bytes = check_lines(data[len(first):])
    assert numbers[-1] == counted - 1, "the last line written"
    assert drops.lines >= held_lines > 0
    assert (missing, missing_bytes) == (drops.lines, drops.bytes)
    assert (tmp_path / "ok.log").read_bytes() == b"".join(line(n) for n in range(counted))
    assert caplog.text.count("its output waits") == 1
    assert caplog.text.count("dropping its lines") == 1
    assert caplog.text.count("written again") == 1
    assert f"{drops.lines} lines ({drops.bytes} bytes) dropped" in caplog.text


def test_the_rest_of_a_dropped_line_is_dropped_too(small_disk, caplog):
    """Chunks that end inside a line (unfinished lines): a line whose head
    was dropped loses its rest too, even once the disk takes data again."""
    from bigtop.core.writer import Writer

    path = small_disk / "out.log"
    writer = Writer(hold=0)
    try:
        target = writer.open_file(str(path))
        drops = writer.counter()
        page = b"x" * 255 + b"\n"
        writer.submit(target, page * 16, drops)  # a page, full: nothing more fits
        drain(writer)
        filler = fill(small_disk)
        writer.submit(target, b"aaa\nbb", drops)
        wait_for(lambda: drops.lines == 2, message="both lines dropped")
        filler.unlink()
        writer.submit(target, b"b, the rest\nccc\n", drops)
        writer.submit(target, b"ddd\n", drops)
        wait_for(lambda: "written again" in caplog.text, message="written again")
        drain(writer)
    finally:
        asyncio.run(writer.close())
    assert path.read_bytes() == page * 16 + b"ccc\nddd\n"
    assert (drops.lines, drops.bytes) == (2, len(b"aaa\nbb") + len(b"b, the rest\n"))


def test_a_file_closed_while_full_keeps_its_half_line_apart(small_disk, caplog):
    """Given up (its stream closes): what is parked is dropped, the half
    line the disk took stays, and what is written there later begins on a
    line of its own."""
    from bigtop.core.writer import Writer

    path = small_disk / "out.log"
    writer = Writer(hold=60)
    try:
        target = writer.open_file(str(path))
        drops = writer.counter()
        chunk = b"".join(line(n) for n in range(1000))
        first = first_line(chunk)
        writer.submit(target, first, drops)
        drain(writer)
        filler = fill(small_disk)
        writer.submit(target, chunk, drops)
        writer.release(target)
        drain(writer)
        kept = path.read_bytes()
        assert not kept.endswith(b"\n"), "the disk took half a line"
        whole = kept.count(b"\n") - 1
        assert drops.lines == 1000 - whole, "the torn line counts as dropped"
        assert drops.bytes == len(chunk) - (len(kept) - len(first))
        filler.unlink()
        again = writer.open_file(str(path))
        writer.submit(again, b"after\n")
        writer.release(again)
        drain(writer)
    finally:
        asyncio.run(writer.close())
    assert path.read_bytes() == kept + b"\nafter\n"
    assert f"closed before it could be written again; {drops.lines} lines" in caplog.text


def test_a_vanished_directory_is_made_again(tmp_path, caplog):
    from bigtop.core.writer import Writer

    directory = tmp_path / "logs"
    writer = Writer()
    try:
        target = writer.open_file(str(directory / "out.log"), max_bytes=19, backup_count=2)
        drops = writer.counter()
        writer.submit(target, b"one 45678901234567\n", drops)  # full: the next rotates
        drain(writer)
        shutil.rmtree(directory)
        writer.submit(target, b"two 45678901234567\n", drops)
        wait_for(lambda: "written again" in caplog.text, message="written again")
    finally:
        asyncio.run(writer.close())
    assert (directory / "out.log").read_bytes() == b"two 45678901234567\n"
    assert drops.lines == 0 and "nothing dropped" in caplog.text


def test_past_the_queue_bound_lines_are_dropped_from_a_line_boundary(tmp_path, caplog):
    """At the door (the queue is full): the rest of a line already queued
    is queued anyway, the rest of one dropped is dropped, and once it began
    dropping it goes on until the queue is back under half its bound."""
    from bigtop.core.writer import Writer

    log = tmp_path / "out.log"
    writer = Writer(max_pending=100)
    try:
        target = writer.open_file(str(log))
        drops = writer.counter()
        assert writer.submit(target, b"head-", drops)
        with writer._lock:
            writer.pending += 1000  # as if that much were waiting for a slow disk
        assert not writer.submit(target, b"rest\nline2\nhalf", drops)
        assert not writer.submit(target, b"-end\nline3\n", drops)
        with writer._lock:
            writer.pending -= 1000
        assert writer.submit(target, b"line4\n", drops)
        writer.release(target)
        drain(writer)
    finally:
        asyncio.run(writer.close())
    assert log.read_bytes() == b"head-rest\nline4\n"
    assert (drops.lines, drops.bytes) == (3, len(b"line2\nhalf-end\nline3\n"))
    assert caplog.text.count("dropping lines until it catches up") == 1
    assert "caught up; 3 lines (21 bytes) dropped" in caplog.text


# -- a daemon ---------------------------------------------------------------


CHILD = """\
import fcntl, os, sys, time
progress = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
n = 0
while True:
    if n % 100 == 0:  # a small pipe (the daemon enlarged it): held, the child soon waits
        try:
            if fcntl.fcntl(1, fcntl.F_GETPIPE_SZ) > 4096:
                fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 4096)
        except OSError:
            pass
    os.write(1, b"%08d %s\\n" % (n, b"x" * (n % 40)))
    n += 1
    os.pwrite(progress, b"%012d" % n, 0)
    time.sleep(0.0005)
"""


def last_number(path: Path) -> int:
    """The number of the last line of a file (-1: none yet)."""
    data = path.read_bytes()
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    head = data[start:start + 8]
    return int(head) if head.isdigit() else -1


class Progress:
    """How far a child got, and whether that stopped moving."""

    def __init__(self, path: Path):
        self.path = path
        self.seen = (-1, 0.0)

    def value(self) -> int:
        try:
            return int(self.path.read_bytes() or 0)
        except (OSError, ValueError):
            return 0

    def still_for(self, seconds: float) -> bool:
        value, now = self.value(), time.monotonic()
        if value != self.seen[0]:
            self.seen = (value, now)
        return now - self.seen[1] >= seconds


def test_a_full_disk_holds_the_child_then_drops_counted_lines_then_resumes(
        small_disk, daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("BIGTOP_OUTPUT_HOLD", "4")  # the writer's hold, in seconds
    (tmp_path / "child.py").write_text(CHILD)
    log, other_log = small_disk / "app.log", tmp_path / "other.log"
    app, other = Progress(tmp_path / "app.progress"), Progress(tmp_path / "other.progress")
    filler = fill(small_disk, leave=24 * 1024)
    d = daemon(f"""
        [watcher:app]
        cmd = {sys.executable} child.py {app.path}
        working_dir = {tmp_path}
        autostart = false
        stdout_stream.class = FileStream
        stdout_stream.filename = {log}

        [watcher:other]
        cmd = {sys.executable} child.py {other.path}
        working_dir = {tmp_path}
        autostart = false
        stdout_stream.class = FileStream
        stdout_stream.filename = {other_log}
        """)

    def details(name: str = "app") -> dict:
        return d.call("status", name=name, details=True)["details"]

    with d.events("watcher.app.") as events:
        d.call("start", name="app")
        d.call("start", name="other")
        d.wait_log("cannot write", timeout=30)  # the disk is full
        # Held: the child waits on its full pipe, while the other one goes on.
        wait_for(lambda: app.still_for(0.5), timeout=3, message="the child held back")
        assert "dropping its lines" not in d.log_text(), "held within the bound"
        blocked = app.value()
        moving = other.value()
        assert details()["dropped_lines"] == 0
        wait_for(lambda: other.value() > moving, message="the other child going on")

        # Past the bound: the child goes on, its lines dropped and counted.
        wait_for(lambda: app.value() > blocked + 100, timeout=30, message="the child going on")
        # Several tries of the file, each failing: what came meanwhile is dropped.
        wait_for(lambda: details()["dropped_lines"] > 300, timeout=30,
                 message="dropped lines counted")
        assert details()["dropped_bytes"] > 0
        topic, started = events.wait("watcher.app.output_dropped", timeout=20, dropping=True)
        assert started["file"] == str(log) and started["lines"] > 0
        assert started["reason"] == os.strerror(errno.ENOSPC)
        assert started["dropped_lines"] >= started["lines"]
        with Subscriber(f"ipc://{d.run_dir}/stats.sock", timeout=20) as stats:
            stats.subscribe("stat.app")
            stats.handshake()
            deadline = time.monotonic() + 20
            while (event := stats.recv(max(deadline - time.monotonic(), 0))) is not None:
                if event[0] == "stat.app" and event[1]["dropped_lines"] > 0:
                    assert event[1]["dropped_bytes"] > 0
                    break
            else:
                pytest.fail("no stat.app with dropped lines")

        # Room again: writing resumes by itself.
        filler.unlink()
        d.wait_log("written again", timeout=30)
        _, ended = events.wait("watcher.app.output_dropped", timeout=20, dropping=False)
        assert ended["lines"] >= started["lines"] and ended["bytes"] > 0
        resumed = app.value()
        wait_for(lambda: last_number(log) > resumed, timeout=30,
                 message="lines written after the recovery")
        d.call("stop", name="app", waiting=True)
        d.call("stop", name="other", waiting=True)
        final = details()
        assert details("other")["dropped_lines"] == 0

    d.stop()
    numbers, missing, missing_bytes = check_lines(log.read_bytes())
    assert numbers[-1] > resumed
    assert (missing, missing_bytes) == (final["dropped_lines"], final["dropped_bytes"])
    assert final["dropped_lines"] == ended["lines"] and final["dropped_bytes"] == ended["bytes"]
    assert check_lines(other_log.read_bytes())[1] == 0, "the other file: every line"
    text = d.log_text()
    assert text.count("dropping its lines") == 1, text[-3000:]
    assert text.count("written again") == 1, text[-3000:]
    assert f"{final['dropped_lines']} lines ({final['dropped_bytes']} bytes) dropped" in text
