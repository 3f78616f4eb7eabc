"""bigtop-top's layout at the sizes terminals have: 120x35 and 80x24, one
node and two (driven by textual's pilot against real daemons, as in
test_top.py and test_top_cluster.py). Every column the table shows has its
whole header on screen, each row its RESTARTS and LAST EXIT, and the table
ends where its rows do: the output pane takes the rest of the screen."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from rich.text import Text

from bigtop.cli.top import make_app
from bigtop.cli.top.app import TopApp
from bigtop.cli.top.view import COLUMNS, Column, Row, fit_columns

from .conftest import Daemon
from .test_top import until

Factory = Callable[..., Daemon]

ONE = """
    [watcher:alpha]
    cmd = sleep 1000

    [watcher:bravo]
    cmd = sleep 1000
    numprocesses = 2

    [watcher:flaky]
    cmd = sh -c "sleep 0.4; exit 3"
    max_retry = -1
    backoff_initial = 0.1
    backoff_max = 0.3

    [watcher:payments]
    cmd = sleep 1000
"""
TWO = """
    [watcher:solo]
    cmd = sleep 1000
"""
ESSENTIAL = ("name", "state", "procs", "cpu", "rss", "uptime", "restarts", "last_exit")


def header_line(app: TopApp) -> str:
    return next(line for line in app.screen_text().splitlines() if "WATCHER" in line)


def shown_labels(app: TopApp) -> list[str]:
    """The table's column headers (the sort arrow aside)."""
    return [(c.label.plain if isinstance(c.label, Text) else str(c.label)).rstrip(" ▲▼")
            for c in app.table.ordered_columns]


def rows_complete(app: TopApp) -> bool:
    """Every row of the table on screen with its RESTARTS and LAST EXIT as
    the table holds them (whole), and no blank line under the table."""
    lines = app.screen_text().splitlines()
    try:
        top = next(i for i, line in enumerate(lines) if "WATCHER" in line)
    except StopIteration:
        return False
    body = lines[top + 1:top + 1 + len(app.shown_keys)]
    if len(body) < len(app.shown_keys):
        return False
    for line, key in zip(body, app.shown_keys, strict=True):
        cells = app.shown_cells[key]
        name = cells["name"].plain.strip(" ▸▾├└")
        restarts, last = cells["restarts"].plain, cells["last_exit"].plain
        if app.rows[key].pid is not None:  # a process: its program at least (the rest may be cut)
            last = last.split()[0]
        elif "…" in last:
            return False  # a watcher's LAST EXIT is never cut
        if name not in line or last not in line:
            return False
        if restarts and not re.search(rf" {re.escape(restarts)} ", line):
            return False
    after = lines[top + 1 + len(app.shown_keys)]
    return "output of" in after  # the pane starts right under the last row


async def check(pilot: Any, size: tuple[int, int], nodes: int) -> None:
    app = pilot.app
    await until(pilot, lambda: all(w.restarts > 0 and w.last_exit for n in app.nodes
                                   for w in n.watchers.values() if w.name == "flaky"),
                "flaky restarted")
    # A process row too, with its own LAST EXIT (its program, threads, fds).
    await pilot.press(*["k"] * 10)
    for _ in range(10):
        target = app.selected_target()
        if target and target[1].name == "bravo":
            break
        await pilot.press("j")
    await pilot.press("enter")
    await until(pilot, lambda: rows_complete(app), f"every row whole at {size}")
    labels = shown_labels(app)
    header = header_line(app)
    for label in labels:
        assert label in header, (label, header)
    assert "WATCHER ▲" in header  # the sort arrow too
    keys = [str(c.key.value) for c in app.table.ordered_columns]
    for key in ESSENTIAL + (("node",) if nodes > 1 else ()):
        assert key in keys, (key, keys)
    width, height = size
    if width >= 120:  # the sparklines too, and every header in full
        assert {"cpu_spark", "mem_spark", "mem"} <= set(keys)
        assert {"RESTARTS", "UPTIME", "CPU 60s", "MEM 60s"} <= set(labels)
    lines = app.screen_text().splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    assert not any(set(line.strip()) <= set("▁▂▃▄▅▆▇█▍▌▋▊▉ ") and line.strip()
                   and "▍" in line for line in lines), "a horizontal scrollbar"
    # The output pane reaches the footer: the empty half is gone.
    border = next(i for i, line in enumerate(lines) if "output of" in line)
    assert border == lines.index(header) + len(app.shown_keys) + 1
    assert app.log_pane.size.height >= height - border - 3, app.log_pane.size
    # Without the pane, the table has the screen.
    await pilot.press("l")
    await pilot.pause(0.3)
    assert app.table.size.height >= height - border, app.table.size
    await pilot.press("l")
    if width >= 120:  # narrowed to 80 columns, the table fits again, sparklines gone
        await pilot.resize_terminal(80, 24)

        def refitted() -> bool:
            keys = {str(c.key.value) for c in app.table.ordered_columns}
            return not keys & {"cpu_spark", "mem_spark"} and rows_complete(app)

        await until(pilot, refitted, "the columns fitted to 80 columns")


@pytest.mark.parametrize("size", [(120, 35), (80, 24)])
@pytest.mark.parametrize("nodes", [1, 2])
def test_every_column_fits(daemon: Factory, size: tuple[int, int], nodes: int) -> None:
    first = daemon(ONE, where="one")
    first.wait_pids("bravo", 2)
    argv = ["--interval", "0.3", "--timeout", "3", "--endpoint", f"one={first.endpoint}"]
    if nodes > 1:
        second = daemon(TWO, where="two")
        second.wait_pids("solo", 1)
        argv += ["--endpoint", f"two={second.endpoint}"]
    app = make_app(argv)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await check(pilot, size, nodes)

    asyncio.run(main())


def test_sparklines_go_first_then_mem() -> None:
    rows = [Row("k", 0, "w", None, {c.key: Text("x" * 4) for c in COLUMNS})]
    cols = [c for c in COLUMNS if c.key != "node"]

    def keys(width: int) -> list[str]:
        return [c.key for c, _ in fit_columns(cols, rows, width).columns]

    wide = fit_columns(cols, rows, 200)
    assert wide.spark == 20 and len(wide.columns) == len(cols)
    assert sum(w + 2 for _, w in wide.columns) == 200 - 2  # LAST EXIT takes the rest
    assert 8 <= fit_columns(cols, rows, 120).spark < 20
    assert "mem_spark" not in keys(95) and "cpu_spark" in keys(95)
    assert not {"cpu_spark", "mem_spark"} & set(keys(85)) and "mem" in keys(85)
    assert "mem" not in keys(72) and "last_exit" in keys(72)
    narrow: list[tuple[Column, int]] = list(fit_columns(cols, rows, 72).columns)
    assert sum(w + 2 for _, w in narrow) <= 70
