"""Rolling upgrades under load: bigtopd goes from one installed version of
the package to another and back (``bigtopctl upgrade``, several times)
while wrk drives two bigtop-wsgi workers on the socket it owns and a
process writes a million numbered lines through it to a file. Not one
request fails, no worker is restarted, and every line arrives once, whole
and in order (about 15 s on 2 cores)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, Daemon, free_port, wait_for
from .test_upgrade import ctl, install, installed_versions

LINES = 1_000_000
UPGRADES = 4  # old -> new -> old -> new -> old
WIDTH = 7  # every line is its number on 7 digits: 0000001 .. 1000000
LINE_BYTES = WIDTH + 1

# Writes 1..total, WIDTH digits a line, in chunks of 1000 lines with a short
# pause after each (about 70,000 lines/s, so that the lines are still
# being written while an upgrade runs), never past the number the test has
# put in the gate file (so that however slow the upgrades, there are lines
# left to write after each). Then it stays, until the daemon stops it:
# one that exited would be started again and write the numbers again.
WRITER = """\
import sys, time
gate, total, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out, n, limit = sys.stdout.buffer, 1, 0
form = b"%0" + str(width).encode() + b"d\\n"
while n <= total:
    if n > limit:
        try:
            with open(gate) as f:
                limit = int(f.read())
        except (OSError, ValueError):
            pass
        if n > limit:
            time.sleep(0.005)
            continue
    end = min(n + 1000, limit + 1)
    out.write(b"".join(form % i for i in range(n, end)))
    out.flush()
    n = end
    time.sleep(0.012)
time.sleep(3600)
"""

CONFIG = """\
[socket:web]
host = 127.0.0.1
port = {port}

[watcher:web]
cmd = {python} -m bigtop.wsgi --fd $(circus.sockets.web) --chdir {apps} hello:app
numprocesses = 2
ready = notify

[watcher:lines]
cmd = {python} -u {writer} {gate} {lines} {width}
stdout_stream.class = FileStream
stdout_stream.filename = {out}
"""


def parse_wrk(returncode: int, out: str, err: str) -> tuple[int, dict[str, int]]:
    """wrk's responses, and its failures: socket errors by kind and
    non-2xx/3xx responses (wrk prints those lines only when not 0), as
    bench/http.py reads them."""
    count = re.search(r"(\d+) requests in", out)
    assert returncode == 0 and count, f"wrk failed ({returncode}): {out}{err}"
    failures = dict.fromkeys(("connect", "read", "write", "timeout", "non-2xx"), 0)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                        r"timeout (\d+)", out)
    if sockets:
        for kind, value in zip(("connect", "read", "write", "timeout"), sockets.groups(),
                               strict=True):
            failures[kind] = int(value)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        failures["non-2xx"] = int(non2xx.group(1))
    return int(count.group(1)), failures


def written(out: Path) -> int:
    """Lines in the output file so far (every one LINE_BYTES long)."""
    return out.stat().st_size // LINE_BYTES if out.exists() else 0


def release(gate: Path, upto: int) -> None:
    """Let the writer go on up to line ``upto`` (the file replaced in one step)."""
    swap = gate.with_name(gate.name + ".new")
    swap.write_text(str(upto))
    swap.replace(gate)


def check_lines(data: bytes, total: int) -> None:
    """1..total, once each, whole, in order; or where it first goes wrong."""
    expected = b"".join(b"%0*d\n" % (WIDTH, i) for i in range(1, total + 1))
    if data == expected:
        return
    lines = data.split(b"\n")
    torn = [line for line in lines[:-1] if len(line) != WIDTH or not line.isdigit()]
    numbers = [int(line) for line in lines[:-1] if len(line) == WIDTH and line.isdigit()]
    first = next((i for i, (a, b) in enumerate(zip(numbers, range(1, total + 1),
                                                   strict=False)) if a != b), None)
    around = "" if first is None else f" (line {first + 1}: {numbers[max(first - 1, 0):first + 3]})"
    pytest.fail(f"{len(data):,} bytes, {len(lines) - 1:,} lines for {total:,}: "
                f"{len(torn):,} not whole (first {torn[:3]!r}), unfinished last "
                f"{lines[-1][:20]!r}, {len(numbers) - len(set(numbers)):,} repeated, "
                f"{len(set(range(1, total + 1)) - set(numbers)):,} missing; first out of "
                f"place: {first is not None}{around}")


def workers(d: Daemon) -> dict[str, dict[str, Any]]:
    """Per watcher: its pids by wid, restarts, last exit and dropped lines."""
    details = d.call("status", details=True)["details"]
    return {name: {key: details[name][key]
                   for key in ("status", "pids", "restarts", "last_exit", "dropped_lines")}
            for name in ("web", "lines")}


def test_rolling_upgrades_under_load_lose_no_request_worker_or_line(
        daemon: Callable[..., Daemon], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("no wrk, which drives the HTTP load (apt-get install wrk; make wrk)")
    current, old, new = installed_versions(tmp_path)
    writer, gate, out = tmp_path / "writer.py", tmp_path / "gate", tmp_path / "lines.out"
    writer.write_text(WRITER)
    port = free_port()
    monkeypatch.setenv("PYTHONPATH", str(current))  # the daemon's, and its next images'
    d = daemon(CONFIG.format(port=port, python=sys.executable, apps=ROOT / "examples" / "apps",
                             writer=writer, gate=gate, lines=LINES, width=WIDTH, out=out))
    monkeypatch.delenv("PYTHONPATH")  # the test's own commands run this checkout
    d.wait_ready("web", timeout=30)
    assert d.call("version")["version"] == old
    before = workers(d)
    assert [len(before["web"]["pids"]), len(before["lines"]["pids"])] == [2, 1], before
    children = d.pids()  # as the kernel sees them: the daemon's live children
    daemon_pid = d.pid

    segment = LINES // (UPGRADES + 1)  # the lines the writer may write before each upgrade
    load = subprocess.Popen([wrk, "-t1", "-c8", "-d110s", "--timeout", "5s",
                             f"http://127.0.0.1:{port}/"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        versions = [old]
        for step in range(UPGRADES):
            # The writer may go on only now, after the previous upgrade: lines
            # are written after each upgrade. This one starts once some of the
            # segment has arrived (lines before it), with more still to write.
            release(gate, segment * (step + 1))
            wait_for(lambda step=step: written(out) >= segment * step + segment // 20,
                     timeout=30, message=f"the lines before upgrade {step + 1}")
            at_start = written(out)
            assert at_start < segment * (step + 1), "the writer had nothing left to write"
            versions.append(new if versions[-1] == old else old)
            install(current, versions[-1])
            result = ctl(d, "upgrade")
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"bigtopd {versions[-2]} -> {versions[-1]}, pid {daemon_pid} kept" in \
                result.stdout, result.stdout
            assert d.call("version")["version"] == versions[-1]
            at_end = written(out)
            print(f"upgrade {step + 1} {versions[-2]} -> {versions[-1]}: "
                  f"{result.stdout.strip()}; lines {at_start:,} at the command, "
                  f"{at_end:,} once answered")
        release(gate, LINES)  # the last segment, after the last upgrade
        wait_for(lambda: written(out) >= LINES, timeout=60, message="every line")
        assert load.poll() is None, "wrk ended before the upgrades did"
        load.send_signal(signal.SIGINT)  # wrk stops and prints its figures
        stdout, stderr = load.communicate(timeout=30)
    finally:
        if load.poll() is None:
            load.kill()
        load.wait()
    requests, failures = parse_wrk(load.returncode, stdout, stderr)
    print(f"wrk: {requests:,} responses, failures {failures}")
    assert failures == dict.fromkeys(failures, 0), f"{requests:,} responses; {failures}"
    assert requests > 1000

    assert d.log_text().count("took over 3 process(es)") == UPGRADES, d.log_text()[-3000:]
    assert d.pid == daemon_pid and d.proc is not None and d.proc.poll() is None
    after = workers(d)
    assert after == before, f"before {before}, after {after}"
    assert d.pids() == children
    assert before["web"]["restarts"] == before["lines"]["restarts"] == 0
    assert before["lines"]["dropped_lines"] == 0
    d.stop()
    check_lines(out.read_bytes(), LINES)
