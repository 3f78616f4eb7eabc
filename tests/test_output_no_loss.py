"""No output is lost, at full speed: a million numbered lines through size
and time rotations, and a daemon stopped while its children still write,
arrive exactly once, whole and in order (about 7 s on 2 cores)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .conftest import wait_for

LINE = re.compile(rb"(\d{8}) x*")

# Numbered lines of varied length; on SIGTERM the writer stops, flushes
# what it has and notes the last number it wrote.
WRITER = """\
import signal, sys
out, last, stopping = sys.stdout.buffer, -1, []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
for n in range(int(sys.argv[1])):
    if stopping:
        break
    out.write(b"%08d " % n + b"x" * (n % 97) + b"\\n")
    last = n
out.flush()
open(sys.argv[2], "w").write(str(last))
"""


def lines_of(log: Path) -> list[bytes]:
    """Every line of a log and its backups, oldest first (numbered backups
    `.N`, the highest oldest; timed ones by name)."""
    backups = sorted(log.parent.glob(log.name + ".*"))
    numbered = [b for b in backups if b.suffix[1:].isdigit()]
    timed = [b for b in backups if not b.suffix[1:].isdigit()]
    files = sorted(numbered, key=lambda p: -int(p.suffix[1:])) + timed + [log]
    return [line for f in files for line in f.read_bytes().split(b"\n")[:-1]]


def check(lines: list[bytes], last: int) -> None:
    """0..last, each once, whole, in order."""
    numbers = []
    for line in lines:
        match = LINE.fullmatch(line)
        assert match, f"torn or glued line: {line[:80]!r}"
        n = int(match.group(1))
        assert len(line) == 9 + n % 97, f"line {n} is not whole"
        numbers.append(n)
    assert numbers == list(range(last + 1))


def test_a_million_lines_through_rotations_and_a_stop(daemon, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    logs = tmp_path / "logs"
    d = daemon(f"""
        [watcher:sized]
        cmd = {sys.executable} {script} 1000000 {tmp_path}/sized.last
        restart = never
        stdout_stream.class = FileStream
        stdout_stream.filename = {logs}/sized.log
        stdout_stream.max_bytes = 1000000
        stdout_stream.backup_count = 10000

        [watcher:timed]
        cmd = {sys.executable} {script} 1000000 {tmp_path}/timed.last
        restart = never
        stdout_stream.class = TimedRotatingFileStream
        stdout_stream.filename = {logs}/timed.log
        stdout_stream.rotate_when = S
        stdout_stream.backup_count = 10000

        [watcher:stopped]
        cmd = {sys.executable} {script} 100000000 {tmp_path}/stopped.last
        restart = never
        graceful_timeout = 30
        stdout_stream.class = FileStream
        stdout_stream.filename = {logs}/stopped.log
        stdout_stream.max_bytes = 1000000
        stdout_stream.backup_count = 10000
    """)
    for name in ("sized", "timed"):
        wait_for(lambda name=name: (tmp_path / f"{name}.last").exists(), 300,
                 message=f"{name} wrote its lines")
    wait_for(lambda: len(list(logs.glob("stopped.log*"))) > 5, 60, message="stopped writes")
    assert d.stop(timeout=120) == 0  # SIGTERM: the writers note their last line
    for name in ("sized", "timed", "stopped"):
        last = int((tmp_path / f"{name}.last").read_text())
        check(lines_of(logs / f"{name}.log"), last)
    assert int((tmp_path / "sized.last").read_text()) == 999_999
    assert len(list(logs.glob("sized.log.*"))) > 50
    assert list(logs.glob("timed.log.*")), "no time rotation happened"
