"""bigtop-top's textual application: the status bar, the watcher table, the
output pane, the filter line and the confirmation dialog, and the keys
that drive them.

The data comes from one ``NodeLink`` per daemon (see link.py); this module
only shows it and turns keys into commands.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, RichLog, Static

from ...client import Session, Shown, Unreachable, log_entries
from .. import display
from . import view
from .link import NodeLink
from .model import CONNECTED, CONNECTING, NodeState, WatcherView

RENDER_DELAY = 0.05  # seconds: changes within this are drawn together
LOG_HISTORY = 100  # lines of output shown when the pane starts on a watcher
LOG_KEEP = 2000  # lines the pane keeps

NOTIFY_EVENTS = {  # event -> severity of its notification
    "failed": "error",
    "spawn_failure": "error",
    "reload_aborted": "warning",
    "ready_timeout": "warning",
    "dependency_failed": "warning",
}


class WatcherTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "down", show=False),
        Binding("k", "cursor_up", "up", show=False),
    ]


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.clear_filter", "clear filter", show=False),
    ]


class Confirm(ModalScreen[bool]):
    """A yes/no question; only ``y`` (or its button-less enter) says yes."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Static {
        width: auto; max-width: 80%; height: auto;
        padding: 1 3; border: thick $error; background: $surface;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n", "answer(False)", "no"),
        Binding("escape", "answer(False)", "cancel", show=False),
    ]

    def __init__(self, question: Text):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        text = self.question.copy()
        text.append("\n\n")
        text.append("y", style="bold")
        text.append(" yes    ")
        text.append("n", style="bold")
        text.append("/")
        text.append("Esc", style="bold")
        text.append(" no")
        yield Static(text)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TopApp(App[None]):
    TITLE = "bigtop-top"
    CSS = """
    #status { height: auto; padding: 0 1; background: $panel; }
    #watchers { height: 1fr; }
    #logs {
        height: 35%; border-top: solid $primary; border-title-align: left;
        padding: 0 1;
    }
    #logs.hidden { display: none; }
    #filter { dock: bottom; display: none; }
    #filter.shown { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("space", "expand", "expand", show=False),
        Binding("s", "sort", "sort"),
        Binding("slash", "filter", "filter"),
        Binding("r", "restart", "restart"),
        Binding("R", "reload", "reload"),
        Binding("plus", "incr", "incr"),
        Binding("minus", "decr", "decr"),
        Binding("x", "stop", "stop"),
        Binding("g", "start", "start"),
        Binding("l", "toggle_logs", "logs"),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def __init__(self, sessions: list[tuple[str, Session]], interval: float = 1.0,
                 logs: bool = True, theme: str | None = None):
        super().__init__()
        if theme:
            self.theme = theme
        self.interval = interval
        self.nodes = [NodeState(label, session.endpoint) for label, session in sessions]
        self.sessions = [session for _, session in sessions]
        self.links: list[NodeLink] = []
        self.sort = "name"
        self.reverse = False
        self.filter_text = ""
        self.expanded: set[str] = set()
        self.rows: dict[str, view.Row] = {}
        self.shown_keys: list[str] = []
        self.shown_cells: dict[str, dict[str, Text]] = {}
        self.column_signature: tuple[Any, ...] = ()
        self.render_pending = False
        self.palettes: dict[str, view.Palette] = {}
        self.show_logs = logs
        self.log_target: tuple[int, str] | None = None
        self.log_generation = 0
        self.log_pending: list[dict[str, Any]] | None = None  # while the history loads
        self.log_shown: Shown | None = None

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept, not queried: a query would look in a dialog when one is open.
        self.status = Static(id="status")
        self.table = WatcherTable(id="watchers", cursor_type="row", zebra_stripes=True)
        self.log_pane = RichLog(id="logs", max_lines=LOG_KEEP, wrap=False, markup=False,
                                highlight=False, auto_scroll=True)
        self.log_pane.can_focus = False
        self.log_pane.set_class(not self.show_logs, "hidden")
        self.filter_line = FilterInput(id="filter", placeholder="filter watchers by name "
                                                                "(Enter keeps it, Esc clears it)")
        yield self.status
        with Vertical():
            yield self.table
            yield self.log_pane
        yield self.filter_line
        yield Footer()

    def on_mount(self) -> None:
        for state, session in zip(self.nodes, self.sessions, strict=True):
            link = NodeLink(state, session, self.interval, self.schedule_render,
                            self.on_node_event)
            self.links.append(link)
            link.start()
        self.set_interval(self.interval, self.tick)
        self.table.focus()
        self.render_now()

    def on_unmount(self) -> None:
        for link in self.links:
            link.close()
        self.links = []

    # -- drawing --------------------------------------------------------------------

    def tick(self) -> None:
        for node in self.nodes:
            node.sample()
        self.render_now()

    def schedule_render(self) -> None:
        if not self.render_pending:
            self.render_pending = True
            self.set_timer(RENDER_DELAY, self.render_now)

    def palette(self) -> view.Palette:
        theme = self.current_theme
        if theme.name not in self.palettes:
            from textual.color import Color

            def colour(value: str | None, fallback: str) -> str:
                if not value:
                    return fallback
                if value.startswith("ansi_"):
                    return value[len("ansi_"):]
                if theme.dark:
                    return value
                # Light backgrounds: the themes' greens and oranges are made
                # for dark ones; darken them until they read on light grey.
                return Color.parse(value).darken(0.25).hex

            self.palettes[theme.name] = view.Palette(
                ok=colour(theme.success, "green"), bad=colour(theme.error, "red"),
                warn=colour(theme.warning, "yellow"), busy=colour(theme.accent, "cyan"),
                chart=colour(theme.primary, "blue"))
        return self.palettes[theme.name]

    def render_now(self) -> None:
        self.render_pending = False
        if not self.links:
            return  # not mounted yet, or gone
        self.render_status()
        self.render_table()
        self.follow_selection()

    def render_status(self) -> None:
        palette = self.palette()
        text = Text()
        for node in self.nodes:
            if text:
                text.append("\n")
            if node.state == CONNECTED:
                text.append("● ", style=palette.ok)
                text.append(node.label, style="bold")
                text.append(" connected", style=palette.ok)
                if node.version:
                    text.append(f" · bigtop {node.version}", style=palette.muted)
                source = "live" if node.streaming(self.interval) else "polled"
                text.append(f" · stats {source}", style=palette.muted)
                if node.daemon.cpu is not None:
                    text.append(f" · bigtopd {node.daemon.cpu:.1f}% cpu", style=palette.muted)
            elif node.state == CONNECTING:
                text.append("◌ ", style=palette.muted)
                text.append(node.label, style="bold")
                text.append(" connecting", style=palette.muted)
            else:
                text.append("○ ", style=palette.bad)
                text.append(node.label, style="bold")
                text.append(" unreachable", style=f"bold {palette.bad}")
                if node.reason:
                    text.append(f": {node.reason}", style=palette.bad)
                if node.retry_at is not None:
                    wait = node.retry_at - asyncio.get_running_loop().time()
                    text.append(" · retrying" + (f" in {wait:.0f}s" if wait >= 1 else ""),
                                style=palette.muted)
        summary = Text("\n")
        watchers = sum(len(n.watchers) for n in self.nodes)
        processes = sum(len(w.processes) for n in self.nodes for w in n.watchers.values())
        summary.append(f"{watchers} watchers, {processes} processes", style=palette.muted)
        column = view.BY_KEY[self.sort]
        summary.append("  sort: ", style=palette.muted)
        summary.append(column.label.lower() + (" ▼" if self.reverse else " ▲"))
        if self.filter_text:
            summary.append("  filter: ", style=palette.muted)
            summary.append(self.filter_text, style=f"bold {palette.warn}")
        text.append_text(summary)
        self.status.update(text)

    def render_table(self) -> None:
        table = self.table
        multi = len(self.nodes) > 1
        cols = view.columns(multi)
        rows = view.build_rows(self.nodes, self.sort, self.reverse, self.filter_text,
                               self.expanded, self.palette())
        keep = self.cursor_key()
        index = table.cursor_row
        signature = (tuple(c.key for c in cols), self.sort, self.reverse)
        if signature != self.column_signature:
            table.clear(columns=True)
            for column in cols:
                width = None if column.width is None else max(column.width, len(column.label) + 2)
                table.add_column(view.header(column, self.sort, self.reverse), key=column.key,
                                 width=width)
            self.column_signature = signature
            self.shown_keys = []
        keys = [row.key for row in rows]
        if keys == self.shown_keys:
            for row in rows:
                old = self.shown_cells.get(row.key, {})
                for column in cols:
                    cell = row.cells[column.key]
                    if old.get(column.key) != cell:
                        table.update_cell(row.key, column.key, cell,
                                          update_width=column.width is None)
        else:
            table.clear()
            for row in rows:
                table.add_row(*(row.cells[c.key] for c in cols), key=row.key)
            self.shown_keys = keys
            if keep in keys:
                table.move_cursor(row=keys.index(keep), animate=False)
            elif keys:
                table.move_cursor(row=min(index, len(keys) - 1), animate=False)
        self.shown_cells = {row.key: row.cells for row in rows}
        self.rows = {row.key: row for row in rows}

    # -- the selection --------------------------------------------------------------

    def cursor_key(self) -> str | None:
        index = self.table.cursor_row
        if 0 <= index < len(self.shown_keys):
            return self.shown_keys[index]
        return None

    def selected(self) -> tuple[int, WatcherView] | None:
        """The node and watcher under the cursor (a process row: its watcher)."""
        row = self.rows.get(self.cursor_key() or "")
        if row is None:
            return None
        found = self.nodes[row.node].watchers.get(row.watcher)
        return None if found is None else (row.node, found)

    @on(DataTable.RowHighlighted, "#watchers")
    def highlighted(self) -> None:
        self.follow_selection()

    @on(DataTable.RowSelected, "#watchers")
    def row_selected(self) -> None:
        self.action_expand()

    @on(DataTable.HeaderSelected, "#watchers")
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        column = view.BY_KEY.get(key)
        if column is None or not column.sortable:
            return
        if key == self.sort:
            self.reverse = not self.reverse
        else:
            self.sort, self.reverse = key, column.numeric
        self.render_now()

    def action_expand(self) -> None:
        row = self.rows.get(self.cursor_key() or "")
        if row is None:
            return
        key = view.watcher_key(row.node, row.watcher)
        if key in self.expanded:
            self.expanded.discard(key)
        else:
            self.expanded.add(key)
        self.render_now()
        if key in self.shown_keys:
            self.table.move_cursor(row=self.shown_keys.index(key), animate=False)

    def action_sort(self) -> None:
        keys = view.sort_keys(len(self.nodes) > 1)
        following = keys[(keys.index(self.sort) + 1) % len(keys)] if self.sort in keys \
            else keys[0]
        self.sort, self.reverse = following, view.BY_KEY[following].numeric
        self.render_now()

    # -- filter ---------------------------------------------------------------------

    def action_filter(self) -> None:
        line = self.filter_line
        line.add_class("shown")
        line.value = self.filter_text
        line.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.render_now()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.filter_line.remove_class("shown")
        self.table.focus()

    def action_clear_filter(self) -> None:
        line = self.filter_line
        line.value = ""
        line.remove_class("shown")
        self.filter_text = ""
        self.table.focus()
        self.render_now()

    # -- commands -------------------------------------------------------------------

    def action_incr(self) -> None:
        self.command("incr", "incr", nb=1)

    def action_decr(self) -> None:
        self.command("decr", "decr", nb=1)

    def action_start(self) -> None:
        self.command("start", "start")

    def action_restart(self) -> None:
        self.confirm("Restart", "restart", "restart")

    def action_reload(self) -> None:
        self.confirm("Reload (rolling, one process at a time)", "reload", "rolling reload",
                     rolling=True)

    def action_stop(self) -> None:
        self.confirm("Stop", "stop", "stop")

    def confirm(self, verb: str, command: str, label: str, **props: Any) -> None:
        target = self.selected()
        if target is None:
            self.notify("no watcher selected", severity="warning")
            return
        node, watcher = target
        question = Text(f"{verb} ")
        question.append(watcher.name, style="bold")
        if len(self.nodes) > 1:
            question.append(f" on {self.nodes[node].label}")
        question.append(f" ({watcher.running} process{'es' if watcher.running != 1 else ''})?")

        def answered(yes: bool | None) -> None:
            if yes:
                self.send(node, watcher.name, command, label, props)

        self.push_screen(Confirm(question), answered)

    def command(self, command: str, label: str, **props: Any) -> None:
        target = self.selected()
        if target is None:
            self.notify("no watcher selected", severity="warning")
            return
        node, watcher = target
        self.send(node, watcher.name, command, label, props)

    def send(self, node: int, name: str, command: str, label: str,
             props: dict[str, Any]) -> None:
        link = self.links[node]

        async def run() -> None:
            try:
                reply = await link.call(command, name=name, **props)
            except Unreachable as err:
                self.notify(f"{label} {name}: {err}", severity="error")
                self.schedule_render()
                return
            if reply.get("status") == "error":
                self.notify(f"{label} {name}: {reply.get('reason') or 'failed'}",
                            severity="error")
            else:
                self.notify(f"{label} {name}", timeout=2)
            link.wake.set()

        self.run_worker(run(), group="commands")

    # -- events and output ----------------------------------------------------------

    def on_node_event(self, link: NodeLink, topic: str, payload: dict[str, Any]) -> None:
        node = self.links.index(link)
        if topic.startswith("stream."):
            self.output(node, topic, payload)
            return
        parts = topic.split(".")
        if parts[0] == "watcher" and len(parts) >= 3 and parts[-1] in NOTIFY_EVENTS:
            name = ".".join(parts[1:-1])
            detail = payload.get("reason") or payload.get("dependency") or ""
            where = f" ({self.nodes[node].label})" if len(self.nodes) > 1 else ""
            self.notify(f"{name}{where}: {parts[-1].replace('_', ' ')}"
                        + (f": {detail}" if detail else ""),
                        severity=NOTIFY_EVENTS[parts[-1]])  # type: ignore[arg-type]

    def action_toggle_logs(self) -> None:
        self.show_logs = not self.show_logs
        self.log_pane.set_class(not self.show_logs, "hidden")
        self.follow_selection()

    def follow_selection(self) -> None:
        """Point the output pane at the selected watcher: subscribe to its
        lines, unsubscribe from the previous one's, show its last lines."""
        target = None
        selected = self.selected()
        if self.show_logs and selected is not None:
            target = (selected[0], selected[1].name.lower())
        if target == self.log_target:
            return
        if self.log_target is not None:
            self.links[self.log_target[0]].follow(None)
        self.log_target = target
        self.log_generation += 1
        pane = self.log_pane
        pane.clear()
        if target is None:
            pane.border_title = "output"
            return
        node, name = target
        watcher = self.nodes[node].watchers[name]
        title = f"output of {watcher.name}"
        if len(self.nodes) > 1:
            title += f" on {self.nodes[node].label}"
        pane.border_title = title
        link = self.links[node]
        link.follow(name)
        self.log_pending = []
        self.log_shown = None
        self.run_worker(self.load_history(self.log_generation, link, watcher.name),
                        group="logs")

    async def load_history(self, generation: int, link: NodeLink, name: str) -> None:
        await link.handshake()  # subscribed before asking: no line falls in between
        try:
            reply = await link.call("logs", name=name, lines=LOG_HISTORY)
        except Unreachable:
            reply = {}
        if generation != self.log_generation:
            return
        history = log_entries(reply) if reply.get("status") != "error" else []
        pane = self.log_pane
        for entry in history:
            pane.write(display.log_line(str(entry.get("watcher") or name), entry))
        self.log_shown = Shown(history)
        pending, self.log_pending = self.log_pending or [], None
        for entry in pending:
            self.write_line(entry)

    def output(self, node: int, topic: str, payload: dict[str, Any]) -> None:
        if self.log_target is None or self.log_target[0] != node:
            return
        if not topic.startswith(NodeLink.stream_topic(self.log_target[1])):
            return
        if self.log_pending is not None:
            self.log_pending.append(payload)
        else:
            self.write_line(payload)

    def write_line(self, entry: dict[str, Any]) -> None:
        if self.log_shown is not None and self.log_shown.hide(entry):
            return  # a repeat, or the end of a line shown in pieces
        name = str(entry.get("watcher") or (self.log_target or (0, "?"))[1])
        self.log_pane.write(display.log_line(name, entry))

    # -- for tests and docs ---------------------------------------------------------

    def screen_text(self) -> str:
        """The screen as plain text, as a terminal would show it."""
        import io

        from rich.console import Console

        width, height = self.size
        console = Console(width=width, height=height, file=io.StringIO(), record=True,
                          color_system=None, legacy_windows=False, safe_box=False)
        console.print(self.screen._compositor.render_update(
            full=True, screen_stack=self._background_screens))
        return console.export_text()
