"""bigtop-top end to end: the textual app driven by its test pilot against
real daemons. Keys send real commands; the daemon's processes and the
screen's text are both checked."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bigtop.cli.top import make_app, split_endpoint
from bigtop.cli.top.app import Confirm, TopApp
from bigtop.cli.top.model import NodeState
from bigtop.cli.top.sparkline import sparkline
from bigtop.cli.top.view import build_rows

from .conftest import ROOT, Daemon

PY = sys.executable
Factory = Callable[..., Daemon]
SIZE = (170, 44)

CONFIG = """
    [watcher:alpha]
    cmd = sleep 1000

    [watcher:bravo]
    cmd = sleep 1000
    numprocesses = 2

    [watcher:ticker]
    cmd = {py} -u -c "import time; [print('tick-line', i, flush=True) or time.sleep(0.1) for i in range(10**6)]"
"""


def start(daemon: Factory) -> Daemon:
    d = daemon(CONFIG.format(py=PY))
    d.wait_pids("alpha", 1)
    d.wait_pids("bravo", 2)
    d.wait_pids("ticker", 1)
    return d


def app_for(*endpoints: str) -> TopApp:
    argv = ["--interval", "0.3", "--timeout", "3"]
    for endpoint in endpoints:
        argv += ["--endpoint", endpoint]
    return make_app(argv)


def drive(app: TopApp, script: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await script(pilot)

    asyncio.run(main())


async def until(pilot: Any, predicate: Callable[[], object], message: str,
                timeout: float = 15.0) -> None:
    """Let the app run until predicate() holds; fail with the screen."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}; the screen:\n"
                        f"{pilot.app.screen_text()}")
        await pilot.pause(0.05)


def row(app: TopApp, name: str, node: str = "") -> str | None:
    """The screen line of a watcher's row ("node" first when given)."""
    start = rf"^ {re.escape(node)} +" if node else "^ "
    text = app.screen_text()
    found = re.search(rf"{start}[▸▾ ] {re.escape(name)} .*$", text, re.M)
    return found.group(0) if found else None


def node_state(app: TopApp, label: str = r"\S+") -> str | None:
    """What the status line says of a node: connected, unreachable, ..."""
    found = re.search(rf"^ [●○◌] {label} (connected|unreachable|connecting)",
                      app.screen_text(), re.M)
    return found.group(1) if found else None


def shows(app: TopApp, name: str, *parts: str, node: str = "") -> bool:
    line = row(app, name, node)
    return line is not None and all(re.search(part, line) for part in parts)


async def select(pilot: Any, name: str, node: str | None = None) -> None:
    """Move the cursor (k to the top, then j) onto a watcher's row."""
    app = pilot.app
    await pilot.press(*["k"] * 10)
    for _ in range(20):
        target = app.selected()
        if target and target[1].name == name and (
                node is None or app.nodes[target[0]].label == node):
            return
        await pilot.press("j")
    pytest.fail(f"no row for {name} on {node}:\n{app.screen_text()}")


# -- against one daemon ---------------------------------------------------------------

def test_lists_watchers_and_scales(daemon: Factory) -> None:
    d = start(daemon)
    app = app_for(d.endpoint)

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: all(shows(app, name, "active") for name in
                                       ("alpha", "bravo", "ticker")), "the watchers listed")
        assert shows(app, "alpha", r"\b1/1\b") and shows(app, "bravo", r"\b2/2\b")
        assert node_state(app) == "connected"
        header = next(line for line in app.screen_text().splitlines() if "WATCHER" in line)
        for column in ("STATE", "PROCS", "CPU%", "CPU 60s", "MEM%", "MEM 60s", "RSS"):
            assert column in header
        assert "NODE" not in header, "one daemon: no node column"

        await select(pilot, "alpha")
        await pilot.press("+")
        await until(pilot, lambda: len(d.pids("alpha")) == 2, "a second alpha process")
        await until(pilot, lambda: shows(app, "alpha", r"\b2/2\b"), "alpha at 2/2 on screen")
        await pilot.press("minus")
        await until(pilot, lambda: len(d.pids("alpha")) == 1, "alpha back to one process")
        await until(pilot, lambda: shows(app, "alpha", r"\b1/1\b"), "alpha at 1/1 on screen")

        # Enter expands a watcher to its processes (pid and wid), again folds it.
        await select(pilot, "bravo")
        await pilot.press("enter")
        pids = d.pids("bravo")
        await until(pilot, lambda: all(re.search(rf"[├└] {pid}\s+#[12]", app.screen_text())
                                       for pid in pids), "bravo's processes listed")
        await pilot.press("space")
        await until(pilot, lambda: not any(f"├ {pid}" in app.screen_text() for pid in pids),
                    "bravo folded")

        # s cycles the sort column; the header shows which one and which way.
        assert "WATCHER ▲" in app.screen_text()
        await pilot.press("s")
        await until(pilot, lambda: "STATE ▲" in app.screen_text(), "sorted by state")
        await pilot.press("s")
        await until(pilot, lambda: "PROCS ▼" in app.screen_text(), "sorted by processes")
        lines = app.screen_text()
        assert lines.index(row(app, "bravo")) < lines.index(row(app, "alpha")), \
            "most processes first"

        # A click on a header sorts by its column; a second click reverses.
        async def click_header(label: str) -> None:
            lines = app.screen_text().splitlines()
            y = next(i for i, line in enumerate(lines) if "WATCHER" in line)
            await pilot.click(offset=(lines[y].index(label) + 1, y))

        await click_header("RSS")
        await until(pilot, lambda: "RSS ▼" in app.screen_text(), "sorted by RSS")
        await click_header("RSS")
        await until(pilot, lambda: "RSS ▲" in app.screen_text(), "RSS the other way")

    drive(app, script)


def test_restart_reload_stop_start_ask_first(daemon: Factory) -> None:
    d = start(daemon)
    app = app_for(d.endpoint)

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: shows(app, "bravo", "active", r"\b2/2\b"), "bravo listed")
        await select(pilot, "bravo")
        before = d.pids("bravo")

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        assert "Restart bravo (2 processes)?" in app.screen_text()
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, Confirm), "the dialog closed")
        assert d.pids("bravo") == before, "n does not restart"

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: len(d.pids("bravo")) == 2 and not d.pids("bravo") & before,
                    "two new bravo processes")
        restarted = d.pids("bravo")
        await pilot.press("enter")
        await until(pilot, lambda: all(re.search(rf"[├└] {pid}\s", app.screen_text())
                                       for pid in restarted), "the new pids on screen")

        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        assert "Reload (rolling" in app.screen_text()
        await pilot.press("y")
        await until(pilot, lambda: len(d.pids("bravo")) == 2 and not d.pids("bravo") & restarted,
                    "bravo reloaded one process at a time")

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: not d.pids("bravo"), "bravo stopped")
        await until(pilot, lambda: shows(app, "bravo", "stopped", r"\b0/0\b"),
                    "bravo stopped on screen")
        await pilot.press("g")
        await until(pilot, lambda: len(d.pids("bravo")) == 2, "bravo started")
        await until(pilot, lambda: shows(app, "bravo", "active", r"\b2/2\b"),
                    "bravo active on screen")

    drive(app, script)


def test_output_pane_tails_the_selected_watcher(daemon: Factory) -> None:
    d = start(daemon)
    app = app_for(d.endpoint)

    def ticks() -> list[int]:
        return [int(n) for n in re.findall(r"ticker\.1 \| tick-line (\d+)", app.screen_text())]

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: row(app, "ticker"), "ticker listed")
        await select(pilot, "ticker")
        await until(pilot, lambda: "output of ticker" in app.screen_text() and ticks(),
                    "ticker's output in the pane")
        first = max(ticks())
        await until(pilot, lambda: max(ticks(), default=0) > first + 3,
                    "new lines as the child prints them")
        seen = ticks()
        assert len(seen) == len(set(seen)), "no line shown twice (history, then live)"

        await select(pilot, "alpha")
        await until(pilot, lambda: "output of alpha" in app.screen_text() and not ticks(),
                    "the pane follows the selection")
        await pilot.press("l")
        await until(pilot, lambda: "output of" not in app.screen_text(), "the pane hidden")
        await pilot.press("l")
        await until(pilot, lambda: "output of alpha" in app.screen_text(), "the pane back")

    drive(app, script)


def test_filter_hides_other_watchers(daemon: Factory) -> None:
    d = start(daemon)
    app = app_for(d.endpoint)

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: row(app, "alpha") and row(app, "ticker"), "the watchers")
        await pilot.press("slash", "t", "i", "c")
        await until(pilot, lambda: row(app, "ticker") and not row(app, "alpha")
                    and not row(app, "bravo"), "only ticker left")
        await pilot.press("enter")
        assert "filter: tic" in app.screen_text()
        await pilot.press("+")  # keys work again on the table: the filtered row is selected
        await until(pilot, lambda: len(d.pids("ticker")) == 2, "ticker scaled")
        await pilot.press("escape")
        await until(pilot, lambda: row(app, "alpha") and row(app, "bravo"), "the filter cleared")
        assert "filter:" not in app.screen_text()

    drive(app, script)


def test_reconnects_to_a_new_daemon(daemon: Factory) -> None:
    d = start(daemon)
    app = app_for(d.endpoint)
    assert d.endpoint.startswith("ipc://")

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: node_state(app) == "connected" and row(app, "alpha"),
                    "connected")
        d.stop()
        await until(pilot, lambda: node_state(app) == "unreachable", "unreachable")
        assert re.search(r"unreachable: (the daemon stopped|cannot reach the daemon: no such socket)",
                         app.screen_text()), "and why"
        d.start(wait=False)  # a new daemon on the same endpoint
        await until(pilot, lambda: node_state(app) == "connected"
                    and shows(app, "bravo", "active", r"\b2/2\b"), "connected again")
        await select(pilot, "alpha")  # and the keys reach the new daemon
        await pilot.press("plus")
        await until(pilot, lambda: len(d.pids("alpha")) == 2, "alpha scaled on the new daemon")

    drive(app, script)


def test_two_endpoints_show_a_node_column(daemon: Factory, tmp_path: Path) -> None:
    north = start(daemon)
    (tmp_path / "south").mkdir()
    south = Daemon(tmp_path / "south", CONFIG.format(py=PY)).start()
    try:
        south.wait_pids("alpha", 1)
        app = app_for(f"north={north.endpoint}", f"south={south.endpoint}")

        async def script(pilot: Any) -> None:
            await until(pilot, lambda: shows(app, "alpha", "active", node="north")
                        and shows(app, "alpha", "active", node="south"), "both nodes' watchers")
            text = app.screen_text()
            assert node_state(app, "north") == node_state(app, "south") == "connected"
            header = next(line for line in text.splitlines() if "WATCHER" in line)
            assert header.split()[0] == "NODE"
            await select(pilot, "alpha", node="south")
            await pilot.press("plus")
            await until(pilot, lambda: len(south.pids("alpha")) == 2, "south's alpha scaled")
            await until(pilot, lambda: shows(app, "alpha", r"\b2/2\b", node="south"),
                        "south's alpha at 2/2")
            assert len(north.pids("alpha")) == 1 and shows(app, "alpha", r"\b1/1\b",
                                                            node="north")

        drive(app, script)
    finally:
        south.stop()


# -- without a daemon -----------------------------------------------------------------

def test_sparkline() -> None:
    assert sparkline([], 5) == "     "
    assert sparkline([0.0] * 60, 20) == "▁" * 20, "idle: a flat line, not noise"
    line = sparkline([None] * 57 + [0.0, 50.0, 100.0], 20)
    assert len(line) == 20 and line[-1] == "█" and line[:19].strip() == ""
    assert sparkline([10.0, 20.0, 40.0], 3, span=3) == "▃▅█"
    assert sparkline([0.2, 0.1], 2, floor=100.0, span=2) == "▁▁", "scaled to the floor"


def test_rows_sorted_filtered_expanded() -> None:
    node = NodeState("n1", "ipc://x")
    node.apply_status({"details": {
        "web": {"status": "active", "running": 2, "wanted": 2, "pids": {"1": 11, "2": 12}},
        "db": {"status": "failed", "running": 0, "wanted": 0, "pids": {}},
    }})
    node.apply_stats({"web": {"11": {"cpu": 5.0, "mem": 1.0, "rss": 1000},
                              "12": {"cpu": 15.0, "mem": 2.0, "rss": 3000, "children": [{}]}},
                      "db": {}})
    web = node.watchers["web"]
    assert (web.cpu, web.mem, web.rss) == (20.0, 3.0, 4000)
    assert web.processes[12].usage.children == 1

    def names(**kw: Any) -> list[str]:
        return [r.cells["name"].plain.strip(" ▸▾├└") for r in build_rows([node], **kw)]

    assert names() == ["db", "web"]
    assert names(sort="cpu", reverse=True) == ["web", "db"]
    assert names(sort="state") == ["db", "web"], "failed first"
    assert names(text="WE") == ["web"]
    assert names(sort="cpu", reverse=True, expanded={"0\x1fweb"}) == ["web", "12", "11", "db"]
    node.apply_status({"details": {"web": {"status": "active", "pids": {"1": 11}}}})
    assert list(node.watchers) == ["web"] and list(web.processes) == [11]
    assert node.apply_stat("stat.web.11", {"cpu": 7.5, "mem": 1.5}) and web.cpu == 7.5
    assert not node.apply_stat("stat.web.99", {"cpu": 1.0}), "not a process status named"
    assert not node.apply_stat("stat.web", {"cpu": 1.0}), "the aggregate is not used"
    assert node.streaming(1.0)


def test_options() -> None:
    assert split_endpoint("web1=tcp://10.0.0.5:5555") == ("web1", "tcp://10.0.0.5:5555")
    assert split_endpoint("ipc:///run/a=b/control.sock") == (None, "ipc:///run/a=b/control.sock")
    app = make_app(["--endpoint", "a=ipc:///x/control.sock", "--endpoint",
                    "ipc:///y/run/control.sock", "--light"])
    assert [n.label for n in app.nodes] == ["a", "/y/run"]
    assert app.theme == "textual-light"
    with pytest.raises(SystemExit):
        make_app(["--endpoint", "a", "--endpoint", "b", "--pubsub-endpoint", "c"])


def test_help_starts_without_textual() -> None:
    code = ("import sys; from bigtop.cli import top; top.parser().format_help(); "
            "print(sorted(m for m in ('textual', 'zmq', 'asyncio') if m in sys.modules))")
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["bigtop-top"] == "bigtop.cli.top:main"
