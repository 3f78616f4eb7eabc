"""The table's columns and rows, built from the model: sorting, filtering,
expanded watchers, and the colours of each cell.

Pure functions of the model, the sort and the filter, returning rich
``Text`` cells keyed by stable row keys, so the app can update the table in
place and keep the cursor on the same watcher while rows move (and while
cluster nodes come and go: a row names its node by ``NodeState.id``).

The columns fit the terminal (:func:`fit_columns`): each as wide as its
content, the sparklines narrowed and then dropped first when the width
runs short, then MEM% (RSS says the same), and LAST EXIT gets what is left.

With ``--cluster``, the overview is a second table: one row per cluster
watcher and node it is assigned to. A node found with ``--discover`` is
marked ``lan`` in the NODE column: a hint, never a cluster node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from .. import display
from .model import (
    CONNECTED,
    CONNECTING,
    DOWN,
    ClusterState,
    NodeState,
    ProcessView,
    WatcherView,
)
from .sparkline import sparkline

SPARK_WIDTH = 20  # the widest a sparkline is drawn
MIN_SPARK = 8  # the narrowest (else it is not shown)
PADDING = 2  # what the table adds to each column (a space either side)
SCROLLBAR = 2  # kept free for the table's vertical scrollbar
# The narrowest a column is, whatever it holds now (numbers grow; the
# table is rebuilt when a width changes, so this keeps it from doing so
# at every tick).
FLOORS = {"state": 7, "procs": 5, "cpu": 5, "mem": 5, "rss": 6, "uptime": 5, "restarts": 3}
LAST_EXIT_MIN = 20  # LAST EXIT's, before sparklines get room ("SIGTERM, 12m01s ago")
NAME_MIN = 10  # a NODE or WATCHER column shrinks to this at the very least
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
    short: str = ""  # the header where the width runs short


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
    Column("uptime", "UPTIME", 7, numeric=True, short="UP"),
    Column("restarts", "RESTARTS", 8, numeric=True, short="RST"),
    Column("last_exit", "LAST EXIT", None, sortable=False),
)
BY_KEY = {column.key: column for column in COLUMNS}

OVERVIEW_COLUMNS = (  # the cluster overview: never sorted, in watcher then node order
    Column("name", "CLUSTER WATCHER", None, sortable=False),
    Column("node", "NODE", None, sortable=False),
    Column("assigned", "ASSIGNED", 8, sortable=False),
    Column("state", "STATE", 11, sortable=False),
    Column("procs", "PROCS", 6, numeric=True, sortable=False),
    Column("placement", "PLACEMENT", None, sortable=False),
    Column("detail", "DETAIL", None, sortable=False),
)
LEADER = "★"  # marks the leading node
LAN = "lan"  # marks a node found on the LAN (--discover)
NODE_MARKS = {CONNECTED: "●", CONNECTING: "◌", DOWN: "✕"}  # else ○: unreachable


def columns(multi_node: bool) -> list[Column]:
    return [c for c in COLUMNS if multi_node or c.key != "node"]


def sort_keys(multi_node: bool) -> list[str]:
    """The columns ``s`` cycles through, in table order."""
    return [c.key for c in columns(multi_node) if c.sortable]


@dataclass(frozen=True)
class Fitted:
    """The columns to show, each with its width, the sparklines' width (0:
    none shown), and the columns whose header is abbreviated."""

    columns: tuple[tuple[Column, int], ...]
    spark: int
    short: frozenset[str] = frozenset()


def fit_columns(cols: list[Column], rows: list[Row], width: int, sort: str = "",
                scrollbar: bool = True) -> Fitted:
    """Columns that fit ``width`` terminal cells (less the vertical
    scrollbar's, with ``scrollbar``): each as wide as its widest cell or
    header (the sorted one's arrow included), never under its floor, and
    LAST EXIT with all that is left. When that is too wide, in this order:
    the sparklines narrow, then go (MEM's first); MEM% goes (RSS says the
    same); headers are abbreviated (RESTARTS: RST, UPTIME: UP); NODE and
    WATCHER shrink; and last, LAST EXIT below LAST_EXIT_MIN."""
    budget = width - (SCROLLBAR if scrollbar else 0)
    content = {c.key: max((row.cells[c.key].cell_len for row in rows if c.key in row.cells),
                          default=0) for c in cols}
    sparks = [c for c in cols if c.key.endswith("_spark")]
    others = [c for c in cols if c not in sparks]
    dropped: set[str] = set()
    short: set[str] = set()

    def natural(column: Column) -> int:
        label = column.short if column.key in short else column.label
        shown = len(label) + (2 if column.key == sort else 0)
        return max(shown, FLOORS.get(column.key, 0), content[column.key])

    def measure() -> dict[str, int]:
        widths = {c.key: natural(c) for c in others if c.key not in dropped}
        if "last_exit" in widths:  # the least it asks for; it gets the rest below
            widths["last_exit"] = min(widths["last_exit"], LAST_EXIT_MIN)
        return widths

    def cost(widths: dict[str, int]) -> int:
        return sum(w + PADDING for w in widths.values())

    widths = measure()
    shown: list[Column] = []
    spark = 0
    room = budget - cost(widths)
    if room >= 0:
        if len(sparks) >= 2 and room >= 2 * (MIN_SPARK + PADDING):
            spark, shown = min(SPARK_WIDTH, room // 2 - PADDING), sparks
        elif sparks and room >= MIN_SPARK + PADDING:
            spark, shown = min(SPARK_WIDTH, room - PADDING), sparks[:1]  # CPU's: it moves
    else:
        for step in ("mem", "short"):
            if cost(widths) <= budget:
                break
            if step == "mem":
                dropped.add("mem")
            else:
                short.update(c.key for c in cols if c.short)
            widths = measure()
        for key in ("name", "node"):
            over = cost(widths) - budget
            if over > 0 and widths.get(key, 0) > NAME_MIN:
                widths[key] = max(NAME_MIN, widths[key] - over)
    room = budget - cost(widths) - sum(spark + PADDING for _ in shown)
    if "last_exit" in widths:
        # All that is left (so it changes only when another column does);
        # short of room, it gives what it must.
        widths["last_exit"] = max(4, widths["last_exit"] + room)
    fitted = tuple((c, spark if c in shown else widths[c.key]) for c in cols
                   if c in shown or c.key in widths)
    return Fitted(fitted, spark, frozenset(short))


def crop(rows: list[Row], fitted: Fitted) -> list[Row]:
    """The rows with each cell wider than its column cut with an ellipsis
    (the table would cut it without one)."""
    widths = {column.key: width for column, width in fitted.columns}
    out = []
    for row in rows:
        cells = row.cells
        for key, width in widths.items():
            cell = cells.get(key)
            if cell is not None and cell.cell_len > width:
                if cells is row.cells:
                    cells = dict(row.cells)
                cut = cell.copy()
                cut.truncate(width, overflow="ellipsis")
                cells[key] = cut
        out.append(row if cells is row.cells else Row(row.key, row.node, row.watcher,
                                                          row.pid, cells))
    return out


def header(column: Column, sort: str, reverse: bool, short: bool = False) -> Text:
    label = Text(column.short if short and column.short else column.label,
                 justify="right" if column.numeric else "left")
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
    node: int  # the node's NodeState.id (-1: a node not shown)
    watcher: str  # lower-case name ("": a node's own row, it has no watcher to show)
    pid: int | None  # None: the watcher's own row
    cells: dict[str, Text]


def watcher_key(node: int, watcher: str) -> str:
    return f"{node}{SEP}{watcher}"


def build_rows(nodes: list[NodeState], sort: str = "name", reverse: bool = False,
               text: str = "", expanded: Iterable[str] = (), palette: Palette | None = None,
               now: float | None = None, leader: str | None = None,
               empty_nodes: bool = False, spark_width: int = SPARK_WIDTH) -> list[Row]:
    """Every row to show, in order: each watcher that passes the filter,
    followed by its processes when it is expanded (its key in ``expanded``);
    with ``empty_nodes``, then a row for each node that has no watcher to
    show (down, never reached, or running none), so that it is not silent."""
    palette = palette or Palette()
    now = time.time() if now is None else now
    open_keys = set(expanded)
    found = [(node, key, view) for node in nodes
             for key, view in node.watchers.items() if matches(view, text)]
    found.sort(key=lambda item: watcher_sort_key(sort)(item[2]), reverse=reverse)
    rows = []
    for node, key, view in found:
        row_key = watcher_key(node.id, key)
        rows.append(Row(row_key, node.id, key, None,
                        watcher_cells(view, node, row_key in open_keys, palette, now, leader,
                                      spark_width)))
        if row_key not in open_keys:
            continue
        processes = sorted(view.processes.values(), key=process_sort_key(sort, now),
                           reverse=reverse and sort in ("procs", "cpu", "mem", "rss", "uptime"))
        for position, process in enumerate(processes):
            last = position == len(processes) - 1
            rows.append(Row(f"{row_key}{SEP}{process.pid}", node.id, key, process.pid,
                            process_cells(process, node, last, palette, now, spark_width)))
    if empty_nodes:
        needle = text.strip().lower()
        for node in nodes:
            if not node.watchers and (not needle or needle in node.label.lower()):
                rows.append(Row(watcher_key(node.id, ""), node.id, "", None,
                                node_cells(node, palette, leader)))
    return rows


def node_text(node: NodeState, palette: Palette, leader: str | None = None) -> Text:
    """The NODE cell: the label; for a cluster node also whether it is up
    (● answering, ○ unreachable, ✕ down: its lease ended, ◌ connecting)
    and ★ for the leader; for a node found on the LAN, ``lan``."""
    live = node.state == CONNECTED
    cell = Text(node.label, style="" if live else palette.muted)
    if node.discovered:
        cell.append(f" {LAN}", style=palette.muted)
    if node.cluster_name is None:
        return cell
    state = node.shown_state
    styles = {CONNECTED: palette.ok, CONNECTING: palette.muted, DOWN: f"bold {palette.bad}"}
    cell.append(f" {NODE_MARKS.get(state, '○')}", style=styles.get(state, palette.bad))
    if state == DOWN:
        cell.append(" down", style=f"bold {palette.bad}")
    elif node.lease_ended:
        cell.append(" lease ended", style=palette.warn)
    if leader is not None and node.cluster_name == leader:
        cell.append(f" {LEADER}", style=palette.warn)
    return cell


def node_cells(node: NodeState, palette: Palette, leader: str | None) -> dict[str, Text]:
    """The row of a node without watchers to show."""
    blank = {column.key: Text("") for column in COLUMNS}
    state = node.shown_state
    name = Text("  (no watchers)" if state == CONNECTED else "  -", style=palette.muted)
    reason = node.shown_reason
    return {**blank, "node": node_text(node, palette, leader), "name": name,
            "state": Text(state, style=palette.muted if state in (CONNECTED, CONNECTING)
                          else f"bold {palette.bad}"),
            "last_exit": Text(reason, style=palette.bad) if reason else Text("")}


def state_text(view: WatcherView, node: NodeState, palette: Palette) -> Text:
    if node.state != CONNECTED:
        bad = node.down or node.reason
        return Text(node.shown_state, style=palette.bad if bad else palette.muted)
    styles = {"active": f"bold {palette.ok}", "failed": f"bold {palette.bad}",
              "backoff": palette.warn, "starting": palette.busy, "stopping": palette.busy,
              "stopped": palette.muted, "done": palette.ok}
    return Text(view.status, style=styles.get(view.status, ""))


def percent(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.1f}", justify="right")


def size(value: float | None) -> Text:
    return Text("-" if value is None else display.human_bytes(int(value)), justify="right")


def spark(samples: Iterable[float | None], floor: float, style: str,
          width: int = SPARK_WIDTH) -> Text:
    return Text(sparkline(samples, max(1, width), floor), style=style)


def watcher_cells(view: WatcherView, node: NodeState, is_open: bool, palette: Palette,
                  now: float, leader: str | None = None,
                  spark_width: int = SPARK_WIDTH) -> dict[str, Text]:
    live = node.state == CONNECTED
    mark = ("▾ " if is_open else "▸ ") if view.processes else "  "
    name = Text(mark, style=palette.muted)
    name.append(view.name, style=f"bold {display.watcher_style(view.name)}" if live
                else palette.muted)
    procs = Text(f"{view.running}/{view.wanted}", justify="right")
    if live and view.running < view.wanted:
        procs.stylize(palette.warn)
    cells = {
        "node": node_text(node, palette, leader),
        "name": name,
        "state": state_text(view, node, palette),
        "procs": procs,
        "cpu": percent(view.cpu if live else None),
        "cpu_spark": spark(view.cpu_history, 1.0, palette.chart, spark_width),
        "mem": percent(view.mem if live else None),
        "mem_spark": spark(view.mem_history, 0.0, palette.chart, spark_width),
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
                  now: float, spark_width: int = SPARK_WIDTH) -> dict[str, Text]:
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
        "cpu_spark": spark(process.cpu_history, 1.0, palette.chart, spark_width),
        "mem": percent(use.mem),
        "mem_spark": spark(process.mem_history, 0.0, palette.chart, spark_width),
        "rss": size(use.rss),
        "uptime": Text(display.duration(process.age(now)), justify="right"),
        "restarts": Text(""),
        "last_exit": detail,
    }


# -- the cluster overview --------------------------------------------------------------

def overview_key(watcher: str, node: str) -> str:
    return f"cluster{SEP}{watcher}{SEP}{node}"


def overview_rows(cluster: ClusterState, nodes: list[NodeState], text: str = "",
                  palette: Palette | None = None) -> list[Row]:
    """One row per cluster watcher and node it is assigned to: what the
    cluster says (running, failed, pending) and what the node itself says
    of the watcher; a watcher assigned nowhere has one row, ``unplaced``."""
    palette = palette or Palette()
    view = cluster.view
    if view is None:
        return []
    by_name = {n.cluster_name: n for n in nodes if n.cluster_name is not None}
    needle = text.strip().lower()
    rows = []
    assigned_styles = {"running": f"bold {palette.ok}", "failed": f"bold {palette.bad}",
                       "pending": palette.warn}
    for name in sorted(view.placement, key=str.lower):
        entry = view.placement[name]
        placement = " ".join(f"{k}={display.value_text(v)}"
                             for k, v in sorted((entry.get("placement") or {}).items()))
        where = entry.get("nodes") or {}
        if not where:
            if needle and needle not in name.lower():
                continue
            rows.append(Row(overview_key(name, ""), -1, name.lower(), None, {
                "name": Text(name, style=f"bold {display.watcher_style(name)}"),
                "node": Text("-", style=palette.muted),
                "assigned": Text("unplaced", style=f"bold {palette.warn}"),
                "state": Text(""), "procs": Text(""),
                "placement": Text(placement, style=palette.muted),
                "detail": Text("no node fits its placement", style=palette.warn)}))
            continue
        for node_name in sorted(where):
            if needle and needle not in name.lower() and needle not in node_name.lower():
                continue
            info = where[node_name] if isinstance(where[node_name], dict) else {}
            node = by_name.get(node_name)
            assigned = str(info.get("state") or "?")
            if node is not None:
                node_cell = node_text(node, palette, view.leader)
            else:
                node_cell = Text(node_name, style=palette.muted)
                if node_name == view.leader:
                    node_cell.append(f" {LEADER}", style=palette.warn)
            watcher = node.watchers.get(name.lower()) if node is not None else None
            if node is None:
                state, procs = Text("not shown", style=palette.muted), Text("")
            elif watcher is None or node.state != CONNECTED:
                state = Text(node.shown_state if node.state != CONNECTED else "absent",
                             style=palette.bad if node.state != CONNECTED else palette.muted)
                procs = Text("")
            else:
                state = state_text(watcher, node, palette)
                procs = Text(f"{watcher.running}/{watcher.wanted}", justify="right")
            detail = Text("")
            if not info.get("up", True):
                detail.append("node down", style=f"bold {palette.bad}")
            if info.get("error"):
                detail.append(("; " if detail else "") + str(info["error"]), style=palette.bad)
            rows.append(Row(overview_key(name, node_name), node.id if node else -1,
                            name.lower(), None, {
                                "name": Text(name, style=f"bold {display.watcher_style(name)}"),
                                "node": node_cell,
                                "assigned": Text(assigned,
                                                 style=assigned_styles.get(assigned, "")),
                                "state": state, "procs": procs,
                                "placement": Text(placement, style=palette.muted),
                                "detail": detail}))
    return rows
