"""``bigtopctl logs``: each line after its time, in the daemon's log format
(local time to the millisecond); ``--json`` as it was."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bigtop.cli.display import log_line

from .conftest import Daemon, wait_for
from .test_bigtopctl import ok

Factory = Callable[..., Daemon]
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
BLANK = " " * 23


def stamp(when: float) -> str:
    return (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            + f".{int(when % 1 * 1000):03d}")


def test_a_line_after_its_time() -> None:
    when = time.mktime((2026, 11, 27, 10, 0, 0, 0, 0, -1)) + 0.125  # exact in binary
    entry = {"time": when, "pid": 42, "wid": 2, "stream": "stdout", "line": "hello"}
    assert log_line("web", entry, stamped=True).plain == "2026-11-27 10:00:00.125 web.2 | hello"
    assert log_line("web", {**entry, "time": when - 0.125}, stamped=True).plain.startswith(
        "2026-11-27 10:00:00.000 ")
    text = log_line("web", {**entry, "stream": "stderr"}, stamped=True)
    assert text.plain == "2026-11-27 10:00:00.125 web.2 | hello"
    assert [span.style for span in text.spans][-1:] == ["red"], "the line, not its time"
    assert not any(span.start < 24 for span in text.spans if span.style == "red")


def test_a_line_whose_time_is_unknown_keeps_the_columns() -> None:
    for when in (None, "soon", True, float("nan"), float("inf"), 1e300):
        entry = {"time": when, "wid": None, "stream": None, "line": "from a plain file"}
        assert log_line("web", entry, stamped=True).plain == f"{BLANK} web | from a plain file"


def test_unstamped_as_before() -> None:
    """As bigtop-top's panes show a line: no time."""
    entry = {"time": time.time(), "wid": 1, "stream": "stdout", "line": "hi"}
    assert log_line("web", entry).plain == "web.1 | hi"


def test_bigtopctl_logs_prints_the_time_of_each_line(daemon: Factory) -> None:
    d = daemon("""
        [watcher:talk]
        cmd = sh -c 'echo first; echo oops >&2; exec sleep 1000'
    """)
    wait_for(lambda: len(ok(d, "logs", "talk").splitlines()) == 2)
    records = [json.loads(line) for line in ok(d, "logs", "talk", "--json").splitlines()]
    assert all(list(r) == ["time", "watcher", "pid", "wid", "stream", "line"] for r in records), (
        "--json: the same fields as before")
    lines = ok(d, "logs", "talk").splitlines()
    assert [re.fullmatch(rf"{STAMP} talk\.1 \| (first|oops)", line) is not None
            for line in lines] == [True, True], lines
    assert lines == [f"{stamp(r['time'])} talk.1 | {r['line']}" for r in records]
    assert ok(d, "logs", "talk", "--stderr").splitlines() == [
        f"{stamp(r['time'])} talk.1 | oops" for r in records if r["stream"] == "stderr"]


def test_lines_from_files_with_and_without_a_time(daemon: Factory, tmp_path: Path) -> None:
    """After a restart, memory is empty: the times are the files' own, the
    format's (to the second), or none for a plain file."""
    stamped, plain = tmp_path / "stamped.log", tmp_path / "plain.log"
    config = f"""
        [watcher:stamped]
        cmd = {{cmd}}
        stdout_stream.class = FileStream
        stdout_stream.filename = {stamped}
        stdout_stream.time_format = %Y-%m-%d %H:%M:%S

        [watcher:plain]
        cmd = {{cmd}}
        stdout_stream.class = FileStream
        stdout_stream.filename = {plain}
    """
    speak = f"{sys.executable} -u -c \"print('said once'); import time; time.sleep(1000)\""
    first = daemon(config.format(cmd=speak), where="first")
    wait_for(lambda: stamped.exists() and plain.exists()
             and "said once" in stamped.read_text() and "said once" in plain.read_text())
    assert first.stop() == 0

    d = daemon(config.format(cmd="sleep 1000"), where="second")
    written = stamped.read_text().split(" said once")[0]
    assert ok(d, "logs", "stamped").splitlines() == [f"{written}.000 stamped | said once"]
    assert ok(d, "logs", "plain").splitlines() == [f"{BLANK} plain | said once"]
