"""bigtop-top's textual application: the status bar, the watcher table, the
output pane, the filter line and the confirmation dialog, and the keys
that drive them.

The data comes from one ``NodeLink`` per daemon (see link.py); this module
only shows it and turns keys into commands.

With ``--cluster``, the node list also comes from the cluster: a task owned
by the app reads it through one node every few seconds (``ClusterFollower``
of bigtop.client.directory) and adds and drops links to match
(``model.follow_cluster``). ``c`` switches the table to the cluster
overview; ``a`` makes the next command act on every node a cluster watcher
is assigned to, one call per node through its link, each with its own
timeout, each result shown as it comes.

With ``--discover``, nodes also come from the LAN: a task owned by the app
sends Circus's multicast probe every few seconds (``DiscoveryFollower`` of
bigtop.client.discovery), and each tcp:// endpoint that answers becomes a
node, marked as found so (``model.follow_discovery``), until it has been
silent for a few probes. An endpoint shown already (given by hand, or a
cluster node's) is not shown twice; a discovered node is never a cluster
node, and gives way to one at its endpoint.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, RichLog, Static

from ...client import Session, Shown, Unreachable, log_entries
from ...client.directory import REFRESH_S, ClusterFollower, ClusterNode, ClusterView
from ...client.discovery import DiscoveryFollower
from .. import display
from . import node_label, view
from .link import NodeLink, one_line
from .model import (
    CONNECTED,
    CONNECTING,
    LEASE_ENDED,
    MAX_DISCOVERED,
    ClusterState,
    Heard,
    NodeState,
    WatcherView,
    follow_cluster,
    follow_discovery,
)

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
ACROSS_KEYS = "r R + - x g"  # the commands `a` applies to every node
DISCOVER_EVERY = 10.0  # seconds between two probes of --discover


@dataclass
class Across:
    """A command sent to every node a cluster watcher is assigned to, and
    each node's result: None while it runs, then (ok, what it said)."""

    label: str
    watcher: str
    results: dict[str, tuple[bool, str] | None] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return all(result is not None for result in self.results.values())

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r is not None and not r[0]]


class WatcherTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "down", show=False),
        Binding("k", "cursor_up", "up", show=False),
    ]


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.clear_filter", "clear filter", show=False),
    ]


class Confirm(ModalScreen[str | None]):
    """A yes/no question; only ``y`` says yes ("yes"). With ``everywhere``
    (a cluster watcher on several nodes), ``a`` says "all": on every node."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Static {
        width: auto; max-width: 80%; height: auto;
        padding: 1 3; border: thick $error; background: $surface;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer('yes')", "yes"),
        Binding("a", "answer('all')", "all nodes", show=False),
        Binding("n", "answer(None)", "no"),
        Binding("escape", "answer(None)", "cancel", show=False),
    ]

    def __init__(self, question: Text, everywhere: str | None = None):
        super().__init__()
        self.question = question
        self.everywhere = everywhere  # e.g. "all 3 nodes (n1, n2, n3)"

    def compose(self) -> ComposeResult:
        text = self.question.copy()
        text.append("\n\n")
        text.append("y", style="bold")
        text.append(" yes    ")
        if self.everywhere:
            text.append("a", style="bold")
            text.append(f" on {self.everywhere}    ")
        text.append("n", style="bold")
        text.append("/")
        text.append("Esc", style="bold")
        text.append(" no")
        yield Static(text)

    def action_answer(self, answer: str | None) -> None:
        if answer == "all" and not self.everywhere:
            return
        self.dismiss(answer)


class TopApp(App[None]):
    TITLE = "bigtop-top"
    CSS = """
    #status { height: auto; padding: 0 1; background: $panel; }
    #watchers { height: auto; max-height: 70%; }
    #watchers.alone { height: 1fr; max-height: 100%; }
    #logs {
        height: 1fr; min-height: 4; border-top: solid $primary; border-title-align: left;
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
        Binding("c", "overview", "cluster"),
        Binding("a", "across", "all nodes"),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def __init__(self, sessions: list[tuple[str, Session]], interval: float = 1.0,
                 logs: bool = True, theme: str | None = None,
                 cluster: tuple[str | None, Session] | None = None,
                 cluster_every: float = REFRESH_S,
                 discover: tuple[str, Session] | None = None,
                 discover_every: float = DISCOVER_EVERY):
        """``cluster``: (NAME or None, the session of the node to read the
        cluster through): its nodes are added to ``sessions``'s, with its
        key and timeout; ``cluster_every``: seconds between two readings.
        ``discover``: (the multicast group to probe, a session whose
        timeout and keys the nodes found are reached with; its endpoint is
        not used); ``discover_every``: seconds between two probes (the
        follower, ``self.discovery``, has the probe's timeout, ttl and how
        many silent probes forget a node)."""
        super().__init__()
        if theme:
            self.theme = theme
        self.interval = interval
        self.nodes = [NodeState(label, session.endpoint, id=index)
                      for index, (label, session) in enumerate(sessions)]
        self.sessions = {node.id: session for node, (_, session) in zip(
            self.nodes, sessions, strict=True)}
        self.next_id = len(self.nodes)
        self.links: dict[int, NodeLink] = {}  # by NodeState.id
        self.mounted = False
        self.cluster_session = cluster[1] if cluster else None
        self.cluster = (ClusterState(cluster[1].endpoint, cluster[0]) if cluster else None)
        self.cluster_every = cluster_every
        self.discover_session = discover[1] if discover else None
        self.discovery = (DiscoveryFollower(self.on_discovered, discover[0],
                                            every=discover_every) if discover else None)
        self.heard: Heard | None = None  # what the last probe changed (None: none yet)
        self.probes = 0  # probes done (for tests: they wait on a count, not a time)
        self.overview = False  # the table shows the cluster overview
        # `a` pressed on (node id, watcher): the nodes the next command goes to
        self.armed: tuple[int, str, list[str]] | None = None
        self.across: Across | None = None  # the last command on every node
        self.sort = "name"
        self.reverse = False
        self.filter_text = ""
        self.expanded: set[str] = set()
        self.rows: dict[str, view.Row] = {}
        self.shown_keys: list[str] = []
        self.shown_cells: dict[str, dict[str, Text]] = {}
        self.column_signature: tuple[Any, ...] = ()
        self.spark_width = view.SPARK_WIDTH  # as the columns last fitted
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
        self.table.set_class(not self.show_logs, "alone")
        self.filter_line = FilterInput(id="filter", placeholder="filter watchers by name "
                                                                "(Enter keeps it, Esc clears it)")
        yield self.status
        with Vertical():
            yield self.table
            yield self.log_pane
        yield self.filter_line
        yield Footer()

    def on_mount(self) -> None:
        self.mounted = True
        for state in self.nodes:
            self.start_link(state, self.sessions[state.id])
        if self.cluster is not None:
            # A worker: the app owns it and cancels it when it exits.
            self.run_worker(self.follow_cluster(), group="cluster")
        if self.discovery is not None:
            self.run_worker(self.discovery.run(), group="discovery")  # owned the same way
        self.set_interval(self.interval, self.tick)
        self.table.focus()
        self.render_now()

    def on_unmount(self) -> None:
        self.mounted = False
        for link in self.links.values():
            link.close()
        self.links = {}

    def start_link(self, state: NodeState, session: Session,
                   server_key: bytes | None = None) -> None:
        link = NodeLink(state, session, self.interval, self.schedule_render,
                        self.on_node_event, server_key=server_key)
        self.links[state.id] = link
        link.start()

    def multi(self) -> bool:
        """Several nodes (or a cluster or the LAN, which may add some): a
        NODE column."""
        return len(self.nodes) > 1 or self.cluster is not None or self.discovery is not None

    def node(self, node_id: int) -> NodeState | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    # -- the cluster ----------------------------------------------------------------

    async def follow_cluster(self) -> None:
        """Read the cluster now and every ``cluster_every`` seconds (through
        the --cluster node, else the others that were up: the follower's)."""
        assert self.cluster is not None and self.cluster_session is not None
        session = self.cluster_session
        follower = ClusterFollower(self.cluster.endpoint, self.on_cluster_view,
                                   key=session.key, server_key=session.server_key,
                                   timeout=session.timeout, every=self.cluster_every)
        while True:
            try:
                await follower.read_once()
            except ValueError as err:  # a key file that holds no key: said, not a crash
                self.on_cluster_view(None, str(err) or type(err).__name__)
            await asyncio.sleep(self.cluster_every)

    def on_cluster_view(self, reading: ClusterView | None, error: str | None) -> None:
        """A reading of the cluster (or why there is none: the nodes stay)."""
        cluster = self.cluster
        if cluster is None or not self.mounted:
            return
        cluster.apply(reading, error)
        if reading is not None:
            changes = follow_cluster(self.nodes, reading)
            for state in changes.drop:
                self.drop_node(state)
            for record in changes.add:
                self.add_cluster_node(record)
            self.order_nodes()
        self.schedule_render()

    def order_nodes(self) -> None:
        """Given by hand first, as given; then the cluster's and the LAN's,
        each in label order."""
        hand = [n for n in self.nodes if not n.from_cluster and not n.discovered]
        cluster = sorted((n for n in self.nodes if n.from_cluster), key=lambda n: n.label)
        lan = sorted((n for n in self.nodes if n.discovered), key=lambda n: n.label)
        self.nodes = hand + cluster + lan

    def add_cluster_node(self, record: ClusterNode) -> None:
        state = NodeState(record.name, record.endpoint or "", id=self.next_id)
        self.next_id += 1
        state.from_cluster, state.cluster_name, state.record = True, record.name, record
        self.nodes.append(state)
        base = self.cluster_session
        if not record.endpoint or base is None:
            state.lost("its record gives no endpoint")
            return
        session = Session(endpoint=record.endpoint, timeout=base.timeout, key=base.key,
                          server_key=base.server_key)
        self.sessions[state.id] = session
        # Its own public key, as the cluster publishes it; else --server-key.
        self.start_link(state, session,
                        record.server_key.encode() if record.server_key else None)

    # -- the LAN ----------------------------------------------------------------------

    def on_discovered(self, endpoints: list[str]) -> None:
        """The endpoints the follower remembers after a probe (heard lately)."""
        self.probes += 1
        if self.discovery is None or not self.mounted:
            return
        heard = self.heard = follow_discovery(self.nodes, endpoints)
        for state in heard.drop:
            self.drop_node(state)
        for endpoint in heard.add:
            self.add_discovered_node(endpoint)
        self.order_nodes()
        self.schedule_render()

    def add_discovered_node(self, endpoint: str) -> None:
        """A node for an endpoint heard on the LAN, named as one given by
        hand without a name, reached with --key/--server-key."""
        state = NodeState(node_label(endpoint, {n.label for n in self.nodes}), endpoint,
                          id=self.next_id)
        self.next_id += 1
        state.discovered = True
        self.nodes.append(state)
        base = self.discover_session
        assert base is not None
        session = Session(endpoint=endpoint, timeout=base.timeout, key=base.key,
                          server_key=base.server_key)
        self.sessions[state.id] = session
        self.start_link(state, session)

    def drop_node(self, state: NodeState) -> None:
        link = self.links.pop(state.id, None)
        if link is not None:
            link.close()
        self.sessions.pop(state.id, None)
        self.nodes = [n for n in self.nodes if n.id != state.id]
        prefix = f"{state.id}{view.SEP}"
        self.expanded = {key for key in self.expanded if not key.startswith(prefix)}
        if self.log_target is not None and self.log_target[0] == state.id:
            self.log_target = None
            self.log_pending, self.log_shown = None, None
            self.log_generation += 1
        if self.armed is not None and self.armed[0] == state.id:
            self.armed = None

    def by_cluster_name(self) -> dict[str, NodeState]:
        return {n.cluster_name: n for n in self.nodes if n.cluster_name is not None}

    def spread(self, node: NodeState, watcher: WatcherView) -> list[str]:
        """The nodes (names in the cluster) a cluster watcher is assigned to;
        none: it is no cluster watcher, or this row is not a cluster node's."""
        if self.cluster is None or node.cluster_name is None:
            return []
        return self.cluster.runs_on(watcher.name)

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
        if not self.mounted:
            return  # not mounted yet, or gone
        self.render_status()
        self.render_table()
        self.follow_selection()

    def render_status(self) -> None:
        palette = self.palette()
        text = Text()
        if self.cluster is not None:
            text.append_text(self.cluster_line(palette))
        if self.discovery is not None:
            if text:
                text.append("\n")
            text.append_text(self.discovery_line(palette))
        leader = self.cluster.leader if self.cluster is not None else None
        for node in self.nodes:
            if text:
                text.append("\n")
            if node.down:
                text.append("✕ ", style=palette.bad)
                text.append(node.label, style="bold")
                text.append(" down", style=f"bold {palette.bad}")
                text.append(f": {LEASE_ENDED}", style=palette.bad)
                if node.reason:
                    text.append(f" (unreachable: {node.reason})", style=palette.muted)
            elif node.state == CONNECTED:
                text.append("● ", style=palette.ok)
                text.append(node.label, style="bold")
                text.append(" connected", style=palette.ok)
                if node.lease_ended:
                    text.append(" · its lease ended: the cluster counts it down",
                                style=palette.warn)
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
            if node.discovered:
                text.append(" · found on the LAN", style=palette.muted)
            if node.state != CONNECTED and node.retry_at is not None and node.id in self.links:
                wait = node.retry_at - asyncio.get_running_loop().time()
                text.append(" · retrying" + (f" in {wait:.0f}s" if wait >= 1 else ""),
                            style=palette.muted)
            if leader is not None and node.cluster_name == leader:
                text.append(f" · {view.LEADER} leader", style=palette.warn)
        if self.armed is not None:
            text.append_text(self.armed_line(palette))
        if self.across is not None:
            text.append_text(self.across_line(self.across, palette))
        summary = Text("\n")
        every = [w for n in self.nodes for w in n.watchers.values()]
        failed = sum(w.status == "failed" for w in every)
        running, wanted = sum(w.running for w in every), sum(w.wanted for w in every)
        summary.append(f"{len(every)} watchers", style=palette.muted)
        if failed:
            summary.append(f" ({failed} failed)", style=f"bold {palette.bad}")
        summary.append(f", {running}/{wanted} processes",
                       style=palette.warn if running < wanted else palette.muted)
        if self.overview:
            summary.append("  cluster overview", style="bold")
            summary.append(" (c: back to the watchers)", style=palette.muted)
        else:
            column = view.BY_KEY[self.sort]
            summary.append("  sort: ", style=palette.muted)
            summary.append(column.label.lower() + (" ▼" if self.reverse else " ▲"))
        if self.filter_text:
            summary.append("  filter: ", style=palette.muted)
            summary.append(self.filter_text, style=f"bold {palette.warn}")
        text.append_text(summary)
        self.status.update(text)

    def cluster_line(self, palette: view.Palette) -> Text:
        """The first status line with --cluster: the cluster, its nodes and
        leader, or why it could not be read (the nodes read before stay)."""
        cluster = self.cluster
        assert cluster is not None
        text = Text()
        if not cluster.tried:
            text.append("◇ ", style=palette.muted)
            text.append("cluster", style="bold")
            text.append(f" reading it through {cluster.endpoint}", style=palette.muted)
            return text
        if cluster.error is not None:
            text.append("◇ ", style=palette.bad)
            text.append(f"cluster {cluster.title}" if cluster.view else "cluster", style="bold")
            text.append(" cannot be read", style=f"bold {palette.bad}")
            text.append(f": {cluster.error}", style=palette.bad)
            if cluster.read_at is not None:
                ago = time.monotonic() - cluster.read_at
                text.append(f" · showing its nodes as read {display.duration(ago)} ago",
                            style=palette.muted)
            else:
                text.append(f" (through {cluster.endpoint})", style=palette.muted)
            text.append(f" · trying again every {self.cluster_every:g}s", style=palette.muted)
            return text
        reading = cluster.view
        assert reading is not None
        up = sum(1 for n in reading.nodes.values() if n.up)
        text.append("◆ ", style=palette.ok)
        text.append(f"cluster {cluster.title}", style="bold")
        text.append(f" · {len(reading.nodes)} node{'s' if len(reading.nodes) != 1 else ''}"
                    f", {up} up", style=palette.muted)
        if up < len(reading.nodes):
            text.append(f", {len(reading.nodes) - up} down", style=palette.bad)
        text.append(f" · {len(reading.placement)} cluster watcher"
                    f"{'s' if len(reading.placement) != 1 else ''}", style=palette.muted)
        text.append(f" · leader {reading.leader} {view.LEADER}" if reading.leader
                    else " · no leader", style=palette.warn if reading.leader else palette.bad)
        return text

    def discovery_line(self, palette: view.Palette) -> Text:
        """The status line of --discover: the group probed, how many nodes
        answered and are shown, and what was not shown."""
        follower = self.discovery
        assert follower is not None
        heard = self.heard
        found = sum(1 for n in self.nodes if n.discovered)
        text = Text()
        text.append("◆ " if found else "◇ ", style=palette.ok if found else palette.muted)
        text.append("LAN", style="bold")
        text.append(f" {follower.endpoint}", style=palette.muted)
        if heard is None:
            text.append(" · probing", style=palette.muted)
            return text
        text.append(f" · {found} node{'s' if found != 1 else ''} found", style=palette.muted)
        if heard.shown_already:
            text.append(f", {heard.shown_already} more shown already", style=palette.muted)
        if heard.over:
            text.append(f", {heard.over} more not shown (at most {MAX_DISCOVERED})",
                        style=palette.warn)
        if heard.not_tcp:
            text.append(f", {heard.not_tcp} not tcp:// (ignored)", style=palette.warn)
        text.append(f" · probing every {follower.every:g}s", style=palette.muted)
        return text

    def armed_line(self, palette: view.Palette) -> Text:
        assert self.armed is not None
        text = Text("\n")
        node_id, key, names = self.armed
        state = self.node(node_id)
        found = state.watchers.get(key) if state else None
        name = found.name if found else key
        text.append("all nodes: ", style=f"bold {palette.warn}")
        text.append(f"the next key ({ACROSS_KEYS}) acts on {name} on {', '.join(names)}",
                    style=palette.warn)
        text.append(" · Esc cancels", style=palette.muted)
        return text

    @staticmethod
    def across_line(across: Across, palette: view.Palette) -> Text:
        text = Text("\n")
        count = len(across.results)
        text.append(f"{across.label} {across.watcher} on {count} node{'s' if count != 1 else ''}:",
                    style="bold")
        for position, (name, result) in enumerate(across.results.items()):
            text.append(" · " if position else " ", style=palette.muted)
            if result is None:
                text.append(f"{name} …", style=palette.muted)
            elif result[0]:
                text.append(f"{name} {result[1]}", style=palette.ok)
            else:
                text.append(f"{name} {result[1]}", style=palette.bad)
        return text

    def render_table(self) -> None:
        table = self.table
        if self.overview and self.cluster is not None:
            cols = list(view.OVERVIEW_COLUMNS)
            rows = view.overview_rows(self.cluster, self.nodes, self.filter_text,
                                      self.palette())
            # Each as wide as its widest cell: a wider one (a placement read
            # after the rows were first shown) changes the signature below.
            widths = [max(c.width or 0, len(c.label) + 2,
                          max((row.cells[c.key].cell_len for row in rows), default=0))
                      for c in cols]
            short: frozenset[str] = frozenset()
        else:
            # The columns fit the table's width: sparklines narrowed, then dropped.
            every = view.columns(self.multi())
            rows = self.watcher_rows()
            fitted = view.fit_columns(every, rows, self.size.width, self.sort,
                                      scrollbar=self.table_overflows(len(rows)))
            if fitted.spark and fitted.spark != self.spark_width:
                self.spark_width = fitted.spark
                rows = self.watcher_rows()
            rows = view.crop(rows, fitted)
            cols = [column for column, _ in fitted.columns]
            widths = [width for _, width in fitted.columns]
            short = fitted.short
        keep = self.cursor_key()
        index = table.cursor_row
        signature = (self.overview, tuple(c.key for c in cols), tuple(widths), short,
                     self.sort, self.reverse)
        if signature != self.column_signature:
            table.clear(columns=True)
            for column, width in zip(cols, widths, strict=True):
                table.add_column(view.header(column, "" if self.overview else self.sort,
                                             self.reverse, column.key in short),
                                 key=column.key, width=width)
            self.column_signature = signature
            self.shown_keys = []
        keys = [row.key for row in rows]
        if keys == self.shown_keys:
            for row in rows:
                old = self.shown_cells.get(row.key, {})
                for column in cols:
                    cell = row.cells[column.key]
                    if old.get(column.key) != cell:
                        table.update_cell(row.key, column.key, cell)
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

    def watcher_rows(self) -> list[view.Row]:
        return view.build_rows(self.nodes, self.sort, self.reverse, self.filter_text,
                               self.expanded, self.palette(),
                               leader=self.cluster.leader if self.cluster else None,
                               empty_nodes=self.multi(), spark_width=self.spark_width)

    def table_overflows(self, rows: int) -> bool:
        """Will the table scroll (and so show its vertical scrollbar)? It
        may take 70% of the rows under the status lines while the output
        pane is shown (its CSS), all of them while not."""
        space = self.size.height - self.status.size.height - 1  # the footer
        if self.show_logs:
            space = int(space * 0.7)
        return rows + 1 > space

    def on_resize(self) -> None:
        self.call_after_refresh(self.render_now)  # the columns fit the new size

    # -- the selection --------------------------------------------------------------

    def cursor_key(self) -> str | None:
        index = self.table.cursor_row
        if 0 <= index < len(self.shown_keys):
            return self.shown_keys[index]
        return None

    def selected_target(self) -> tuple[NodeState, WatcherView] | None:
        """The node and watcher under the cursor (a process row: its watcher;
        an overview row: the watcher on that node, if the node shows it)."""
        row = self.rows.get(self.cursor_key() or "")
        if row is None:
            return None
        state = self.node(row.node)
        found = state.watchers.get(row.watcher) if state is not None else None
        return None if state is None or found is None else (state, found)

    def selected(self) -> tuple[int, WatcherView] | None:
        """The same, with the node as its index in ``nodes``."""
        target = self.selected_target()
        return None if target is None else (self.nodes.index(target[0]), target[1])

    @on(DataTable.RowHighlighted, "#watchers")
    def highlighted(self) -> None:
        if self.armed is not None:
            target = self.selected_target()
            if target is None or (target[0].id, target[1].name.lower()) != self.armed[:2]:
                self.armed = None  # `a` was meant for another row
                self.render_status()
        self.follow_selection()

    @on(DataTable.RowSelected, "#watchers")
    def row_selected(self) -> None:
        if self.overview:
            self.action_overview()  # Enter on an overview row: that watcher's row
        else:
            self.action_expand()

    @on(DataTable.HeaderSelected, "#watchers")
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        if self.overview:
            return  # the overview is in watcher then node order
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
        if row is None or not row.watcher or self.overview:
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
        if self.overview:
            return
        keys = view.sort_keys(self.multi())
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
        self.armed = None
        if self.across is not None and self.across.done:
            self.across = None  # its results read
        self.table.focus()
        self.render_now()

    # -- the cluster overview and `a` -----------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # c and a only with --cluster (else not in the footer either)
        return action not in ("overview", "across") or self.cluster is not None

    def action_overview(self) -> None:
        """Switch the table between the watchers and the cluster overview,
        keeping the cursor on the same watcher and node where it can."""
        if self.cluster is None:
            return
        target = self.selected_target()
        self.overview = not self.overview
        self.render_now()
        if target is not None:
            node, watcher = target
            for position, key in enumerate(self.shown_keys):
                row = self.rows[key]
                if row.node == node.id and row.watcher == watcher.name.lower() \
                        and row.pid is None:
                    self.table.move_cursor(row=position, animate=False)
                    break
        self.follow_selection()

    def action_across(self) -> None:
        """Arm "all nodes": the next command goes to every node the selected
        cluster watcher is assigned to now (as the status line lists them)."""
        if self.cluster is None:
            return
        target = self.selected_target()
        if target is None:
            self.notify("no watcher selected", severity="warning")
            return
        node, watcher = target
        spread = self.spread(node, watcher)
        if not spread:
            self.notify(f"{watcher.name} is not a cluster watcher: it runs on "
                        f"{node.label} only", severity="warning")
            return
        self.armed = (node.id, watcher.name.lower(), spread)
        self.render_status()

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

    def take_armed(self, node: NodeState, watcher: WatcherView) -> list[str]:
        """The nodes `a` armed this command for (none: just this node)."""
        armed, self.armed = self.armed, None
        if armed is None:
            return []
        self.render_status()
        if armed[:2] != (node.id, watcher.name.lower()):
            return []
        return armed[2]

    def confirm(self, verb: str, command: str, label: str, **props: Any) -> None:
        target = self.selected_target()
        if target is None:
            self.notify("no watcher selected", severity="warning")
            return
        node, watcher = target
        everywhere = self.take_armed(node, watcher)
        question = Text(f"{verb} ")
        question.append(watcher.name, style="bold")
        offer, spread = None, self.spread(node, watcher)
        if everywhere:
            question.append(f" on all {len(everywhere)} node{'s' if len(everywhere) != 1 else ''}"
                            f" ({', '.join(everywhere)})?")
        else:
            if self.multi():
                question.append(f" on {node.label}")
            question.append(f" ({watcher.running} process"
                            f"{'es' if watcher.running != 1 else ''})?")
            if spread and spread != [node.cluster_name]:
                offer = f"all {len(spread)} node{'s' if len(spread) != 1 else ''} " \
                        f"({', '.join(spread)})"

        def answered(answer: str | None) -> None:
            if answer == "yes" and everywhere:
                self.send_across(everywhere, watcher.name, command, label, props)
            elif answer == "yes":
                self.send(node.id, watcher.name, command, label, props)
            elif answer == "all":
                self.send_across(spread, watcher.name, command, label, props)

        self.push_screen(Confirm(question, offer), answered)

    def command(self, command: str, label: str, **props: Any) -> None:
        target = self.selected_target()
        if target is None:
            self.notify("no watcher selected", severity="warning")
            return
        node, watcher = target
        everywhere = self.take_armed(node, watcher)
        if everywhere:
            self.send_across(everywhere, watcher.name, command, label, props)
        else:
            self.send(node.id, watcher.name, command, label, props)

    def send_across(self, names: list[str], watcher: str, command: str, label: str,
                    props: dict[str, Any]) -> None:
        """One call per node, all at once, each through its node's link with
        that link's timeout: a dead node's row shows its error when its time
        is up, the others' as they answer, and the view stays live."""
        cluster = self.cluster
        if cluster is not None:
            watcher = cluster.cluster_watcher(watcher) or watcher  # as the cluster spells it
        across = self.across = Across(label, watcher, {name: None for name in names})
        shown = self.by_cluster_name()

        def done(name: str, ok: bool, what: str) -> None:
            across.results[name] = (ok, what)
            self.schedule_render()

        async def one(name: str) -> None:
            state = shown.get(name)
            link = self.links.get(state.id) if state is not None else None
            if state is None or link is None:
                done(name, False, state.reason if state and state.reason else "not shown")
                return
            if state.down:
                done(name, False, f"down: {LEASE_ENDED}")
                return
            assigned = cluster.assignment(watcher, name) if cluster is not None else {}
            if assigned.get("state") == "failed":
                # Not run there: a watcher of that name there is the node's own.
                done(name, False, f"not run there: {assigned.get('error') or 'failed'}")
                return
            try:
                reply = await link.call(command, name=watcher, **props)
            except Unreachable as err:
                done(name, False, one_line(str(err), link.session.endpoint))
                return
            if reply.get("status") == "error":
                done(name, False, str(reply.get("reason") or "failed"))
            else:
                done(name, True, "ok")
            link.wake.set()

        async def run() -> None:
            await asyncio.gather(*(one(name) for name in names))
            failed = across.failed
            summary = f"{label} {watcher} on {len(names)} node{'s' if len(names) != 1 else ''}"
            if failed:
                self.notify(f"{summary}: failed on " + ", ".join(
                    f"{n} ({result[1]})" for n in failed
                    if (result := across.results[n]) is not None), severity="error")
            else:
                self.notify(f"{summary}: ok", timeout=2)

        self.schedule_render()
        self.run_worker(run(), group="commands")

    def send(self, node: int, name: str, command: str, label: str,
             props: dict[str, Any]) -> None:
        link = self.links.get(node)
        if link is None:
            state = self.node(node)
            self.notify(f"{label} {name}: {state.reason if state else 'no such node'}",
                        severity="error")
            return

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
        node = link.state.id
        if topic.startswith("stream."):
            self.output(node, topic, payload)
            return
        parts = topic.split(".")
        if parts[0] == "watcher" and len(parts) >= 3 and parts[-1] in NOTIFY_EVENTS:
            name = ".".join(parts[1:-1])
            detail = payload.get("reason") or payload.get("dependency") or ""
            where = f" ({link.state.label})" if self.multi() else ""
            self.notify(f"{name}{where}: {parts[-1].replace('_', ' ')}"
                        + (f": {detail}" if detail else ""),
                        severity=NOTIFY_EVENTS[parts[-1]])  # type: ignore[arg-type]

    def action_toggle_logs(self) -> None:
        self.show_logs = not self.show_logs
        self.log_pane.set_class(not self.show_logs, "hidden")
        self.table.set_class(not self.show_logs, "alone")
        self.render_now()  # the table's height changed: its scrollbar may come or go

    def follow_selection(self) -> None:
        """Point the output pane at the selected watcher: subscribe to its
        lines, unsubscribe from the previous one's, show its last lines."""
        target = None
        selected = self.selected_target()
        if self.show_logs and selected is not None and selected[0].id in self.links:
            target = (selected[0].id, selected[1].name.lower())
        if target == self.log_target:
            return
        if self.log_target is not None and self.log_target[0] in self.links:
            self.links[self.log_target[0]].follow(None)
        self.log_target = target
        self.log_generation += 1
        pane = self.log_pane
        pane.clear()
        if target is None:
            pane.border_title = "output"
            return
        assert selected is not None
        node, name = target
        state, watcher = selected
        title = f"output of {watcher.name}"
        if self.multi():
            title += f" on {state.label}"
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
