"""bigtop-top: a live terminal view of one or several bigtop daemons.

One row per watcher (expandable to its processes) with CPU and memory and
their sparklines over the last minute, keys that restart, reload, scale,
stop and start the selected watcher, and a pane that tails its output.
Everything goes through bigtop.client, so a remote daemon
(``--endpoint tcp://...`` with CurveZMQ keys) works as a local one, and
``--cluster`` takes the node list from a bigtop cluster, ``--discover``
from the daemons that answer Circus's LAN discovery probe.

This module only parses options: ``bigtop-top --help`` loads neither
textual nor ZeroMQ.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ...client import DEFAULT_TIMEOUT, Session
from ..ctlcommands import GLOBAL_OPTIONS, non_negative

if TYPE_CHECKING:
    from .app import TopApp

EPILOG = """\
keys:
  up/down, j/k   move              enter/space  expand a watcher to its processes
  s              next sort column  (or click a column header; again: reverse)
  /              filter by name    Esc          clear the filter
  +/-            incr/decr         g            start
  r              restart (asks)    R            rolling reload (asks)
  x              stop (asks)       l            show/hide the output pane
  q              quit
with --cluster:
  c              cluster overview: which cluster watcher runs where (again: back)
  a, then r R + - x g
                 the same on every node the cluster watcher is assigned to
                 (r R x ask first; their question also offers a: all nodes)

--endpoint may be given several times: one node per daemon, with a NODE
column. Name a node with NAME=ENDPOINT (web1=tcp://10.0.0.5:5555); the same
--key/--server-key are used for every tcp:// endpoint.

--cluster [NAME=]ENDPOINT reads a cluster's nodes every 5 s through one of
them (any node answers for all; if it does not, the others last seen up)
and watches each: on tcp:// with --key and the node's own public key from
its record. A node whose lease ended shows as down; one the cluster forgot
goes. NAME= names the cluster in the status line. --endpoint nodes may be
added; one named as a cluster node stands for it (its endpoint and keys win).

--discover [GROUP] probes the LAN every 10 s as circus-web does (Circus's
group by default, udp://ADDRESS:PORT otherwise) and watches each tcp://
daemon that answers, with --key/--server-key: named host:port, marked "lan"
(a hint, never a cluster node). One silent for 3 probes in a row goes. An
endpoint shown already (--endpoint, a cluster node) is not shown twice.
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigtop-top", description="Watch and drive bigtop daemons in a terminal.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    shared = {option.flag: option for option in GLOBAL_OPTIONS}
    parser.add_argument("--endpoint", metavar="[NAME=]ENDPOINT", action="append", default=[],
                        help=shared["--endpoint"].help + "; repeat it to watch several daemons")
    parser.add_argument("--cluster", metavar="[NAME=]ENDPOINT",
                        help="a cluster node's control endpoint: watch every node of its "
                             "cluster (the list read again every 5 s)")
    parser.add_argument("--discover", metavar="GROUP", nargs="?", const="",
                        help="watch the daemons that answer Circus's LAN discovery probe "
                             "on this multicast group (udp://ADDRESS:PORT; default: "
                             "Circus's group), probed every 10 s")
    parser.add_argument("--interval", metavar="SECONDS", type=positive, default=1.0,
                        help="how often the view refreshes and the sparklines take a "
                             "sample (default: 1)")
    for flag in ("--timeout", "--key", "--server-key"):
        option = shared[flag]
        parser.add_argument(flag, metavar=option.metavar, help=option.help,
                            type=option.type or str)
    parser.add_argument("--pubsub-endpoint", metavar="ENDPOINT",
                        help="the events endpoint, with one --endpoint (default: "
                             "$BIGTOPCTL_PUBSUB_ENDPOINT, else asked from the daemon)")
    parser.add_argument("--no-logs", action="store_true",
                        help="start with the output pane hidden (l shows it)")
    parser.add_argument("--theme", metavar="NAME",
                        help="a textual theme: textual-dark (default), textual-light, "
                             "ansi-dark, ansi-light (the terminal's own colours), nord, ...")
    parser.add_argument("--light", action="store_const", const="textual-light", dest="theme",
                        help="the same as --theme textual-light")
    return parser


def positive(text: str) -> float:
    value = non_negative(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError(f"must be at least 0.1 seconds, not {text!r}")
    return value


def split_endpoint(word: str) -> tuple[str | None, str]:
    """``NAME=ENDPOINT`` -> (NAME, ENDPOINT); a bare endpoint -> (None, it)."""
    name, sep, rest = word.partition("=")
    if sep and "://" not in name and name:
        return name, rest
    return None, word


def sessions(ns: argparse.Namespace) -> list[tuple[str, Session]]:
    """One (label, Session) per node, with bigtopctl's defaults for
    endpoints and keys."""
    words = ns.endpoint or ([] if ns.cluster or ns.discover is not None else [None])
    alone = len(words) == 1 and not ns.cluster  # one daemon: its events endpoint may be given
    pubsub = ns.pubsub_endpoint
    if pubsub is None and alone:
        pubsub = os.environ.get("BIGTOPCTL_PUBSUB_ENDPOINT") or None
    out: list[tuple[str, Session]] = []
    taken: set[str] = set()
    for word in words:
        name, endpoint = split_endpoint(word) if word else (None, None)
        session = Session(endpoint=endpoint or None,
                          timeout=DEFAULT_TIMEOUT if ns.timeout is None else ns.timeout,
                          key=ns.key, server_key=ns.server_key,
                          pubsub_endpoint=pubsub if alone else None)
        label = name or node_label(session.endpoint, taken)
        taken.add(label)
        out.append((label, session))
    return out


def cluster_session(ns: argparse.Namespace) -> tuple[str | None, Session] | None:
    """(NAME, the Session of the node to read the cluster through), with
    the options' timeout and keys; None without --cluster."""
    if not ns.cluster:
        return None
    name, endpoint = split_endpoint(ns.cluster)
    return name, Session(endpoint=endpoint,
                         timeout=DEFAULT_TIMEOUT if ns.timeout is None else ns.timeout,
                         key=ns.key, server_key=ns.server_key)


def discover_group(ns: argparse.Namespace) -> tuple[str, Session] | None:
    """(the multicast group --discover probes, a Session with the options'
    timeout and keys for the nodes it finds); None without --discover.
    Exits 2 on a group that is not udp://MULTICAST-IPV4:PORT."""
    if ns.discover is None:
        return None
    from ...client.discovery import DEFAULT_ENDPOINT, parse_endpoint

    group = ns.discover or DEFAULT_ENDPOINT
    try:
        parse_endpoint(group)
    except ValueError as err:
        parser().error(f"--discover: {err}")
    return group, Session(timeout=DEFAULT_TIMEOUT if ns.timeout is None else ns.timeout,
                          key=ns.key, server_key=ns.server_key)


def node_label(endpoint: str, taken: set[str]) -> str:
    """How a node is named in the table: host:port, or the ipc socket's
    directory (the daemon's runtime directory), "~" for home."""
    label = endpoint
    for scheme in ("tcp://", "ipc://"):
        if endpoint.startswith(scheme):
            label = endpoint[len(scheme):]
    if endpoint.startswith("ipc://"):
        label = label.removesuffix("/control.sock")
        home = os.path.expanduser("~")
        if label.startswith(home + os.sep):
            label = "~" + label[len(home):]
    base, count = label, 1
    while label in taken:
        count += 1
        label = f"{base}#{count}"
    return label


def make_app(argv: list[str]) -> TopApp:
    """The app for these command-line arguments (tests drive it with
    textual's pilot); exits 2 on bad arguments, as argparse does."""
    ns = parser().parse_args(argv)
    if ns.pubsub_endpoint and (len(ns.endpoint) > 1 or ns.cluster):
        parser().error("--pubsub-endpoint goes with a single --endpoint (and no --cluster)")
    if ns.theme:
        from textual.theme import BUILTIN_THEMES

        if ns.theme not in BUILTIN_THEMES:
            parser().error(f"unknown theme {ns.theme!r}; one of: "
                           + ", ".join(sorted(BUILTIN_THEMES)))
    discover = discover_group(ns)
    from .app import TopApp

    return TopApp(sessions(ns), interval=ns.interval, logs=not ns.no_logs, theme=ns.theme,
                  cluster=cluster_session(ns), discover=discover)


def main(argv: list[str] | None = None) -> int:
    app = make_app(sys.argv[1:] if argv is None else argv)
    try:
        app.run()
    except KeyboardInterrupt:
        return 130
    return 0
