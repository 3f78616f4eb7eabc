"""The table's columns and rows, built from the model: sorting, filtering,
expanded watchers, and the colours of each cell.

Pure functions of the model, the sort and the filter, returning rich
``Text`` cells keyed by stable row keys, so the app can update the table in
place and keep the cursor on the same watcher while rows move.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from .. import display
from .model import CONNECTED, NodeState, ProcessView, WatcherView
from .sparkline import sparkline

SPARK_WIDTH = 20
SEP = "\x1f"  # joins the parts of a row key (never in a watcher name or a label)


@dataclass(frozen=True)
class Palette:
    """Colours from the app's theme, so that they fit its background (dark
    or light) instead of assuming one."""

    ok: str = "green"
    bad: str = "red"
    warn: str = "yellow"
    busy: str = "cyan"
    chart: str = "blue"
    muted: str = "dim"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None  # None: as wide as the content
    numeric: bool = False  # right-aligned; sorted highest first
    sortable: bool = True


COLUMNS = (
    Column("node", "NODE", None),
    Column("name", "WATCHER", None),
    Column("state", "STATE", 9),
    Column("procs", "PROCS", 6, numeric=True),
    Column("cpu", "CPU%", 6, numeric=True),
    Column("cpu_spark", "CPU 60s", SPARK_WIDTH, sortable=False),
    Column("mem", "MEM%", 6, numeric=True),
    Column("mem_spark", "MEM 60s", SPARK_WIDTH, sortable=False),
    Column("rss", "RSS", 7, numeric=True),
    Column("uptime", "UPTIME", 7, numeric=True),
    Column("restarts", "RESTARTS", 8, numeric=True),
    Column("last_exit", "LAST EXIT", None, sortable=False),
)
BY_KEY = {column.key: column for column in COLUMNS}


def columns(multi_node: bool) -> list[Column]:
    return [c for c in COLUMNS if multi_node or c.key != "node"]


def sort_keys(multi_node: bool) -> list[str]:
    """The columns ``s`` cycles through, in table order."""
    return [c.key for c in columns(multi_node) if c.sortable]


def header(column: Column, sort: str, reverse: bool) -> Text:
    label = Text(column.label, justify="right" if column.numeric else "left")
    if column.key == sort:
        # The arrow shows the order rows are in: highest first is "down".
        label.append(" ▼" if reverse else " ▲")
    return label


# -- sorting ---------------------------------------------------------------------------

STATE_ORDER = {"failed": 0, "backoff": 1, "starting": 2, "stopping": 3, "active": 4,
               "done": 5, "stopped": 6}


def _num(value: float | None) -> float:
    return float("-inf") if value is None else value


def watcher_sort_key(sort: str) -> Callable[[WatcherView], Any]:
    keys: dict[str, Callable[[WatcherView], Any]] = {
        "node": lambda w: (w.node, w.name.lower()),
        "name": lambda w: (w.name.lower(), w.node),
        "state": lambda w: (STATE_ORDER.get(w.status, 9), w.name.lower()),
        "procs": lambda w: (w.running, w.wanted),
        "cpu": lambda w: _num(w.cpu),
        "mem": lambda w: _num(w.mem),
        "rss": lambda w: _num(w.rss),
        "uptime": lambda w: _num(w.uptime),
        "restarts": lambda w: w.restarts,
    }
    return keys.get(sort, keys["name"])


def process_sort_key(sort: str, now: float) -> Callable[[ProcessView], Any]:
    keys: dict[str, Callable[[ProcessView], Any]] = {
        "procs": lambda p: p.usage.children,
        "cpu": lambda p: _num(p.usage.cpu),
        "mem": lambda p: _num(p.usage.mem),
        "rss": lambda p: _num(p.usage.rss),
        "uptime": lambda p: _num(p.age(now)),
    }
    return keys.get(sort, lambda p: (p.wid or 0, p.pid))


def matches(view: WatcherView, text: str) -> bool:
    """The filter: a case-insensitive part of the watcher's name (or of
    its node's label, to see one node of several)."""
    text = text.strip().lower()
    return not text or text in view.name.lower() or text in view.node.lower()


# -- rows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    key: str
    node: int  # index of the node
    watcher: str  # lower-case name
    pid: int | None  # None: the watcher's own row
    cells: dict[str, Text]


def watcher_key(node: int, watcher: str) -> str:
    return f"{node}{SEP}{watcher}"


def build_rows(nodes: list[NodeState], sort: str = "name", reverse: bool = False,
               text: str = "", expanded: Iterable[str] = (), palette: Palette | None = None,
               now: float | None = None) -> list[Row]:
    """Every row to show, in order: each watcher that passes the filter,
    followed by its processes when it is expanded (its key in ``expanded``)."""
    palette = palette or Palette()
    now = time.time() if now is None else now
    open_keys = set(expanded)
    found = [(index, key, view) for index, node in enumerate(nodes)
             for key, view in node.watchers.items() if matches(view, text)]
    found.sort(key=lambda item: watcher_sort_key(sort)(item[2]), reverse=reverse)
    rows = []
    for index, key, view in found:
        node = nodes[index]
        row_key = watcher_key(index, key)
        rows.append(Row(row_key, index, key, None,
                        watcher_cells(view, node, row_key in open_keys, palette, now)))
        if row_key not in open_keys:
            continue
        processes = sorted(view.processes.values(), key=process_sort_key(sort, now),
                           reverse=reverse and sort in ("procs", "cpu", "mem", "rss", "uptime"))
        for position, process in enumerate(processes):
            last = position == len(processes) - 1
            rows.append(Row(f"{row_key}{SEP}{process.pid}", index, key, process.pid,
                            process_cells(process, node, last, palette, now)))
    return rows


def state_text(view: WatcherView, node: NodeState, palette: Palette) -> Text:
    if node.state != CONNECTED:
        return Text(node.state, style=palette.bad if node.reason else palette.muted)
    styles = {"active": f"bold {palette.ok}", "failed": f"bold {palette.bad}",
              "backoff": palette.warn, "starting": palette.busy, "stopping": palette.busy,
              "stopped": palette.muted, "done": palette.ok}
    return Text(view.status, style=styles.get(view.status, ""))


def percent(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.1f}", justify="right")


def size(value: float | None) -> Text:
    return Text("-" if value is None else display.human_bytes(int(value)), justify="right")


def spark(samples: Iterable[float | None], floor: float, style: str) -> Text:
    return Text(sparkline(samples, SPARK_WIDTH, floor), style=style)


def watcher_cells(view: WatcherView, node: NodeState, is_open: bool, palette: Palette,
                  now: float) -> dict[str, Text]:
    live = node.state == CONNECTED
    mark = ("▾ " if is_open else "▸ ") if view.processes else "  "
    name = Text(mark, style=palette.muted)
    name.append(view.name, style=f"bold {display.watcher_style(view.name)}" if live
                else palette.muted)
    procs = Text(f"{view.running}/{view.wanted}", justify="right")
    if live and view.running < view.wanted:
        procs.stylize(palette.warn)
    cells = {
        "node": Text(node.label, style="" if live else palette.muted),
        "name": name,
        "state": state_text(view, node, palette),
        "procs": procs,
        "cpu": percent(view.cpu if live else None),
        "cpu_spark": spark(view.cpu_history, 1.0, palette.chart),
        "mem": percent(view.mem if live else None),
        "mem_spark": spark(view.mem_history, 0.0, palette.chart),
        "rss": size(view.rss if live else None),
        "uptime": Text(display.duration(view.uptime), justify="right"),
        "restarts": Text(str(view.restarts), justify="right",
                         style=palette.warn if view.restarts else ""),
        "last_exit": display.last_exit(view.last_exit, now),
    }
    if view.failure and live:
        cells["last_exit"].append(f"  {view.failure}", style=palette.bad)
    if not live:
        for key in ("procs", "uptime", "restarts", "last_exit"):
            cells[key].stylize(palette.muted)
    return cells


def process_cells(process: ProcessView, node: NodeState, last: bool, palette: Palette,
                  now: float) -> dict[str, Text]:
    use = process.usage
    name = Text("  └ " if last else "  ├ ", style=palette.muted)
    name.append(str(process.pid))
    state = Text(f"#{process.wid}" if process.wid is not None else "", style=palette.muted)
    children = Text(f"+{use.children}" if use.children else "", justify="right",
                    style=palette.muted)
    detail = Text(use.cmd or "", style=palette.muted)
    if use.threads is not None:
        detail.append(f"  {int(use.threads)} thr", style=palette.muted)
    if use.fds is not None:
        detail.append(f"  {int(use.fds)} fds", style=palette.muted)
    return {
        "node": Text(""),
        "name": name,
        "state": state,
        "procs": children,
        "cpu": percent(use.cpu),
        "cpu_spark": spark(process.cpu_history, 1.0, palette.chart),
        "mem": percent(use.mem),
        "mem_spark": spark(process.mem_history, 0.0, palette.chart),
        "rss": size(use.rss),
        "uptime": Text(display.duration(process.age(now)), justify="right"),
        "restarts": Text(""),
        "last_exit": detail,
    }
