"""``bigtopctl --nodes SELECTOR COMMAND``: a command on many cluster nodes.

The daemon at ``--endpoint`` lists the nodes; the command then goes to
every chosen node at once (client/fanout.py). Each node's answer is shown
under its name, an unreachable node as its error; ``logs`` merges the
lines of every node by time, each watcher prefixed by its node.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..client import Session
from .ctlcommands import Spec, wire_command
from .dispatch import FAILED, OK, USAGE


def on_nodes(session: Session, spec: Spec, ns: argparse.Namespace, props: dict[str, Any]) -> int:
    import asyncio

    from ..client.fanout import NODE_TIMEOUT, fan_out, select
    from . import display

    if spec.name == "cluster":
        display.error("cluster commands go to one node: drop --nodes")
        return USAGE
    if spec.name == "logs" and ns.follow:
        display.error("logs -f follows one node; without -f, --nodes merges the last lines "
                      "of every node")
        return USAGE
    listing = session.call("cluster_nodes")
    if listing.get("status") == "error":
        display.error(str(listing.get("reason")))
        return FAILED
    assert session.nodes is not None
    placement = None
    if "@" in session.nodes:  # @WATCHER: where a cluster watcher runs
        found = session.call("cluster_placement")
        placement = {str(w.get("name")): sorted(w.get("nodes") or {})
                     for w in found.get("watchers") or []}
    chosen, unmatched = select(listing.get("nodes") or [], session.nodes, placement)
    command = wire_command(spec, ns)
    rows = asyncio.run(fan_out(chosen, command, props, session.node_timeout or NODE_TIMEOUT,
                               session.key))
    rows += [{"node": part, "endpoint": None, "error": "no such node"} for part in unmatched]
    failed = any("error" in r or r["reply"].get("status") == "error" for r in rows)
    if session.json:
        sys.stdout.write(json.dumps({"nodes": rows}) + "\n")
    elif command == "logs":
        show_logs(rows)
    else:
        out = display.console()
        for row in rows:
            out.rule(str(row["node"]), align="left")
            reply = row.get("reply")
            if reply is None:
                display.error(str(row["error"]))
            elif reply.get("status") == "error":
                display.error(str(reply.get("reason") or "the daemon gave no reason"))
            else:
                display.show(command, reply, ns, out)
    return FAILED if failed else OK


def show_logs(rows: list[dict[str, Any]]) -> None:
    from ..client import log_entries
    from . import display
    from .ctlevents import LogPrinter

    merged: dict[str, Any] = {}
    for row in rows:
        reply = row.get("reply")
        if reply is None:
            display.error(f"{row['node']}: {row['error']}")
            continue
        for watcher, lines in (reply.get("lines") or {}).items():
            merged[f"{row['node']}:{watcher}"] = lines
    show = LogPrinter(False)
    entries = log_entries({"lines": merged})
    for entry in entries:
        show(entry)
    if not entries:
        show.nothing()
    show.flush()
