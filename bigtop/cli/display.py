"""How bigtopctl shows replies to people: rich tables and trees, coloured
on a terminal and plain text otherwise.

Every ``show_<command>(reply, ns, out)`` prints one successful reply;
``show`` picks the function, and prints ``ok`` for commands with nothing
more to say.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "active": "bold green",
    "starting": "cyan",
    "stopping": "magenta",
    "stopped": "dim",
    "failed": "bold red",
    "backoff": "yellow",
    "done": "green",  # a one-shot task that completed
}
WATCHER_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red",
                   "bright_cyan", "bright_magenta", "bright_green", "bright_blue")

_consoles: dict[str, Console] = {}


def console(stderr: bool = False) -> Console:
    """stdout's (or stderr's) console. Off a terminal, lines are not
    wrapped to 80 columns: the output is meant for files and pipes."""
    name = "err" if stderr else "out"
    if name not in _consoles:
        stream = sys.stderr if stderr else sys.stdout
        columns = os.environ.get("COLUMNS", "")
        width = None if stream.isatty() else int(columns) if columns.isdigit() else 400
        # No markup or emoji codes: names and output lines are printed as
        # they are, brackets and colons included.
        _consoles[name] = Console(file=stream, stderr=stderr, highlight=False, markup=False,
                                  emoji=False, width=width, soft_wrap=False)
    return _consoles[name]


def emit(out: Console, renderable: Any) -> None:
    """Print a table or tree; off a terminal, without the padding rich puts
    at the end of lines."""
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    out.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                 header_style="bold", expand=False)
    for column in columns:
        grid.add_column(column, justify="right" if column in right else "left",
                        no_wrap=column not in ("FAILURE", "CMD"))
    return grid


def watcher_style(name: str) -> str:
    return WATCHER_COLOURS[zlib.crc32(name.lower().encode()) % len(WATCHER_COLOURS)]


# -- formatting values ------------------------------------------------------

def duration(seconds: float | None) -> str:
    """3m12s, 2h05m, 4d3h; 45s; 0.4s under a second."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{max(seconds, 0):.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_text(code: int | None) -> str:
    if code is None:
        return "?"
    if code < 0:
        return signal_name(-code)
    return f"code {code}"


def last_exit(entry: dict[str, Any] | None, now: float) -> Text:
    if not entry:
        return Text("-", style="dim")
    if entry.get("exit_code") is None and entry.get("reason"):
        text = Text("spawn failed", style="red")
    else:
        code = entry.get("exit_code")
        style = "green" if code == 0 else "red" if code is not None else ""
        text = Text(exit_text(code), style=style)
    when = entry.get("time")
    if isinstance(when, (int, float)):
        text.append(f", {duration(now - when)} ago", style="dim")
    return text


def value_text(value: Any) -> str:
    """An option value as you would type it to ``set``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def human_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    number = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if number < 1024 or unit == "T":
            return f"{number:.0f}{unit}" if unit == "B" else f"{number:.1f}{unit}"
        number /= 1024
    return str(value)


# -- commands -------------------------------------------------------------------

def show_status(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    now = reply.get("time") or time.time()
    if "statuses" in reply:
        states: dict[str, str] = reply["statuses"]
        details: dict[str, dict[str, Any]] = reply.get("details") or {}
    else:
        name = getattr(ns, "name", None) or "?"
        states = {name: reply.get("status", "?")}
        details = {name: reply["details"]} if reply.get("details") else {}
    if not states:
        out.print("no watchers")
        return
    grid = table("WATCHER", "STATE", "PROCESSES", "UPTIME", "RESTARTS", "LAST EXIT",
                 right=("PROCESSES", "RESTARTS"))
    failures = []
    for name in sorted(states):
        state = states[name]
        info = details.get(name) or {}
        row: list[Text | str] = [Text(name, style="bold"),
                                 Text(state, style=STATE_STYLES.get(state, ""))]
        if info:
            running, wanted = info.get("running", 0), info.get("wanted", 0)
            count = Text(f"{running}/{wanted}")
            if running < wanted:
                count.stylize("yellow")
            row += [count, duration(info.get("uptime")) if running else "-",
                    str(info.get("restarts", 0)), last_exit(info.get("last_exit"), now)]
            if info.get("failure"):
                failures.append((name, info["failure"]))
        else:
            row += ["", "", "", ""]
        grid.add_row(*row)
    emit(out, grid)
    for name, reason in failures:
        line = Text("  ")
        line.append(name, style="bold")
        line.append(" failed: ", style="red")
        line.append(reason)
        out.print(line)
    if "statuses" not in reply and details:
        pids = next(iter(details.values())).get("pids") or {}
        if pids:
            out.print(Text("  pids: " + "  ".join(f"{pid} (#{wid})"
                                                  for wid, pid in pids.items()), style="dim"))


def _stats_rows(grid: Table, watcher: str, info: dict[str, Any] | str, pid: str,
                extended: bool) -> None:
    if isinstance(info, str):
        grid.add_row(Text(watcher, style=watcher_style(watcher)), pid, "", "", "", "",
                     Text(info, style="dim"), "", *(["", "", "", "", ""] if extended else []))
        return
    mem = info.get("mem")
    rss = human_bytes(info.get("rss")) if "rss" in info else str(info.get("mem_info1", "?"))
    memory = f"{rss} {mem}%" if isinstance(mem, (int, float)) else rss
    cpu = info.get("cpu")
    row: list[Text | str] = [Text(watcher, style=watcher_style(watcher)),
                             str(info.get("pid", pid)),
           str(info.get("wid", "")),
           f"{cpu:.1f}" if isinstance(cpu, (int, float)) else str(cpu), memory,
           duration(info["age"]) if isinstance(info.get("age"), (int, float)) else "-",
           str(info.get("cmdline", "")), str(len(info.get("children") or []))]
    if extended:
        row += [str(info.get("username", "")), str(info.get("nice", "")),
                human_bytes(info.get("vms")) if "vms" in info else str(info.get("mem_info2", "")),
                str(info.get("threads", "")), str(info.get("fds", ""))]
    grid.add_row(*row)


def show_stats(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    extended = bool(getattr(ns, "extended", False))
    columns = ["WATCHER", "PID", "WID", "CPU %", "MEMORY", "AGE", "CMD", "CHILDREN"]
    if extended:
        columns += ["USER", "NICE", "VMS", "THREADS", "FDS"]
    grid = table(*columns, right=("PID", "WID", "CPU %", "MEMORY", "AGE", "CHILDREN",
                                  "VMS", "THREADS", "FDS"))
    if "infos" in reply:
        watchers = reply["infos"]
    elif "process" in reply:
        watchers = {getattr(ns, "name", None) or "?": {str(reply["process"]): reply["info"]}}
    else:
        watchers = {reply.get("name", "?"): reply.get("info") or {}}
    rows = 0
    for watcher in sorted(watchers):
        infos = watchers[watcher]
        if isinstance(infos, str):
            infos = {"": infos}
        for pid, info in infos.items():
            _stats_rows(grid, watcher, info, pid, extended)
            rows += 1
    if not rows:
        out.print("no processes")
        return
    emit(out, grid)
    if "process" in reply and isinstance(reply.get("info"), dict):
        children = reply["info"].get("children") or []
        if children:
            kids = table("CHILD PID", "CPU %", "MEMORY", "CMD", right=("CHILD PID", "CPU %"))
            for child in children:
                cpu = child.get("cpu")
                kids.add_row(str(child.get("pid")),
                             f"{cpu:.1f}" if isinstance(cpu, (int, float)) else str(cpu),
                             human_bytes(child.get("rss")) if "rss" in child
                             else str(child.get("mem_info1")),
                             str(child.get("cmdline", "")))
            emit(out, kids)


def show_dstats(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    info = reply.get("info") or {}
    cpu = info.get("cpu")
    values = {
        "pid": info.get("pid"),
        "cpu": f"{cpu:.1f}%" if isinstance(cpu, (int, float)) else cpu,
        "memory": (f"{human_bytes(info['rss'])} rss, {human_bytes(info.get('vms'))} vms, "
                   f"{info.get('mem')}%") if "rss" in info
        else f"{info.get('mem_info1')} rss, {info.get('mem_info2')} vms, {info.get('mem')}%",
        "cpu time": info.get("ctime"),
        "age": duration(info["age"]) if isinstance(info.get("age"), (int, float)) else None,
        "user": info.get("username"),
        "threads": info.get("threads"),
        "fds": info.get("fds"),
        "cmd": info.get("cmdline"),
    }
    key_values({k: v for k, v in values.items() if v is not None}, out, raw=True)


def key_values(values: dict[str, Any], out: Console, raw: bool = False) -> None:
    for key, value in values.items():
        line = Text(f"{key}:", style="cyan")
        line.append(f" {value if raw else value_text(value)}")
        out.print(line)


def show_options(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    key_values(reply.get("options") or {}, out)


def show_list(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    items = reply.get("pids", reply.get("watchers", []))
    for item in items:
        out.print(str(item))


def show_listsockets(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    sockets = reply.get("sockets") or []
    if not sockets:
        out.print("no sockets")
        return
    grid = table("FD", "NAME", "ADDRESS", "BACKLOG", "WAITING", right=("FD", "BACKLOG", "WAITING"))
    for sock in sockets:
        if "path" in sock:
            address = f"unix:{sock['path']}"
        else:
            host, port = sock.get("host", ""), sock.get("port")
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        waiting = sock.get("accept_queue")
        grid.add_row(str(sock.get("fd")), Text(sock.get("name", ""), style="bold"), address,
                     str(sock.get("backlog", "")), "-" if waiting is None else str(waiting))
    emit(out, grid)


def show_depends(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    from rich.tree import Tree

    if "depends" not in reply:
        name = getattr(ns, "name", None) or "?"
        tree = Tree(Text(name, style="bold"))
        needs = reply.get("depends_on") or []
        needed = reply.get("dependents") or []
        tree.add(Text("depends on: ", style="cyan") + Text(", ".join(needs) or "nothing"))
        tree.add(Text("needed by: ", style="cyan") + Text(", ".join(needed) or "nothing"))
        emit(out, tree)
        return
    graph: dict[str, list[str]] = reply["depends"]
    if not graph:
        out.print("no watchers")
        return
    lower = {name.lower(): name for name in graph}
    needed = {lower.get(dep.lower(), dep) for deps in graph.values() for dep in deps}
    roots = [name for name in sorted(graph) if name not in needed] or sorted(graph)
    top = Tree(Text("watchers (each above what it depends on)", style="dim"), hide_root=False)

    def grow(branch: Tree, name: str, path: tuple[str, ...]) -> None:
        for dep in sorted(graph.get(name, [])):
            dep = lower.get(dep.lower(), dep)
            if dep in path:
                branch.add(Text(f"{dep} (cycle)", style="red"))
                continue
            grow(branch.add(Text(dep, style=watcher_style(dep))), dep, (*path, dep))

    for root in roots:
        grow(top.add(Text(root, style="bold " + watcher_style(root))), root, (root,))
    emit(out, top)


def log_line(name: str, entry: dict[str, Any], stamped: bool = False) -> Text:
    """``watcher.wid | line``, stderr in red; ``stamped``: after the line's
    time, in local time to the millisecond as in the daemon's own log
    (``2026-11-27 10:00:00.123``), or blanks as wide when the line does not
    say (one read from a file without a time)."""
    wid = entry.get("wid")
    label = f"{name}.{wid}" if wid else name
    text = Text()
    if stamped:
        when = entry.get("time")
        stamp = " " * 23
        if isinstance(when, int | float) and not isinstance(when, bool):
            try:
                stamp = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
                         + f".{int(when % 1 * 1000):03d}")
            except (OverflowError, ValueError, OSError):  # not a time a clock shows
                pass
        text.append(f"{stamp} ")  # unstyled: dim is no color, and NO_COLOR would keep it
    text.append(f"{label} | ", style=watcher_style(name))
    if entry.get("stream") == "stderr":
        text.append(str(entry.get("line", "")), style="red")
    else:
        text.append(str(entry.get("line", "")))
    return text


def show_number(field: str) -> Callable[[dict[str, Any], argparse.Namespace, Console], None]:
    def show(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
        if reply.get("singleton"):
            out.print(f"{reply.get(field)} (a singleton watcher: the number of processes "
                      "does not change)")
            return
        if "was" in reply and field in reply:  # incr, decr: what changed
            out.print(f"{ns.name}: {reply['was']} -> {reply[field]} processes")
            return
        out.print(str(reply.get(field, "ok")))

    return show


def show_history(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    """One line an action: when, who (from where, through what), what, the reply."""
    entries = reply.get("history") or []
    if not entries:
        out.print("no action taken yet")
        return
    for entry in entries:
        by = entry.get("by") or {}
        who = by.get("user", "?") + (f"@{by['host']}" if by.get("host") else "")
        if by.get("from"):
            who += f" from {by['from']}"
        if by.get("via"):
            who += f" ({by['via']})"
        props = entry.get("properties") or {}
        action = " ".join([str(entry.get("command"))] + [
            f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in props.items()])
        when = entry.get("time")
        line = Text(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
                    if isinstance(when, (int, float)) else "?", style="dim")
        line.append(f"  {who}  ", style="bold")
        line.append(action)
        if entry.get("status") == "ok":
            line.append("  ok", style="green")
        else:
            line.append(f"  error: {entry.get('reason')}", style="red")
        out.print(line, soft_wrap=True)


def show_save(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    lines = reply.get("lines") or []
    if not lines:
        out.print(f"nothing changed at run time; no saved state ({reply.get('file')})",
                  soft_wrap=True)
        return
    out.print(f"saved to {reply.get('file')}:", soft_wrap=True)
    for line in lines:
        out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def show_diff(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    lines = reply.get("lines") or []
    if not lines:
        out.print("the daemon runs what its configuration file says")
        return
    unsaved = set(reply.get("unsaved") or ())
    for line in lines:
        text = Text(line)
        text.append("  (not saved)" if line in unsaved else "  (saved)", style="dim")
        out.print(text, soft_wrap=True)
    if unsaved:
        out.print(Text("bigtopctl save keeps them across restarts", style="dim"))


def show_info(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    """start/stop/restart/reload/add: what happened to which pids."""
    info = reply.get("info", reply if "started" in reply else None)
    name = getattr(ns, "name", None)
    if getattr(ns, "match", None) not in (None, "simple") or any(c in (name or "")
                                                                  for c in "*?["):
        name = None  # a pattern: the reply does not say which watcher it matched
    if "info" in reply and info is None:  # stop NAME --waiting
        out.print(f"{name}: stopped" if name else "stopped")
        return
    if not isinstance(info, dict):
        out.print("ok")
        return
    parts = []
    for key in ("stopped", "started", "kept"):
        pids = info.get(key)
        if pids:
            parts.append(f"{key} {', '.join(str(p) for p in pids)}")
    text = "; ".join(parts) or "nothing to do"
    out.print(f"{name}: {text}" if name else text)


def show_signal(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    pids = reply.get("pids")
    if pids is None:
        out.print("ok")
        return
    sig = getattr(ns, "args", ["?"])[-1]
    if sig.isdigit():
        sig = signal_name(int(sig))
    elif not sig.upper().startswith("SIG"):
        sig = "SIG" + sig.upper()
    out.print(f"sent {sig} to {', '.join(str(p) for p in pids) or 'no process'}")


def show_reloadconfig(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    changes = reply.get("changes")
    if not isinstance(changes, dict):
        out.print("ok")
        return
    done = {k: v for k, v in changes.items() if v and k != "errors"}
    if not done:
        out.print("nothing changed")
    for key, names in done.items():
        line = Text(f"{key.replace('_', ' ')}: ", style="cyan")
        line.append(", ".join(names))
        out.print(line)
    for problem in changes.get("errors") or []:
        out.print(Text(f"warning: {problem}", style="yellow"))


def show_version(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    from .. import __version__

    protocol = reply.get("circus")
    out.print(f"bigtopd {reply.get('version', '?')}"
              + (f" (Circus protocol {protocol})" if protocol else ""))
    out.print(f"bigtopctl {__version__}")


def show_upgrade(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    out.print(f"bigtopd {reply.get('before')} -> {reply.get('after')}, pid {reply.get('pid')} "
              f"kept, answering again after {float(reply.get('seconds') or 0) * 1000:.0f} ms")


def show_quit(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    out.print("the daemon is stopping" if not getattr(ns, "waiting", False)
              else "the daemon stopped its watchers and is exiting")


def show_cluster_nodes(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    grid = table("node", "state", "labels", "endpoint", "version", "load", "watchers",
                 "processes", right=("load", "watchers", "processes"))
    for node in sorted(reply.get("nodes", []), key=lambda n: str(n.get("name"))):
        name = str(node.get("name"))
        labels = node.get("labels") or {}
        load = node.get("load") or []
        up = node.get("up", True)
        grid.add_row(
            name, Text("up", "bold green") if up else Text("down", "bold red"),
            " ".join(f"{k}={v}" for k, v in sorted(labels.items())),
            str(node.get("endpoint") or ""), str(node.get("version") or ""),
            f"{load[0]:.2f}" if load else "", str(node.get("watchers", "")),
            str(node.get("processes", "")))
    emit(out, grid)
    if not reply.get("nodes"):
        out.print(f"no node registered in cluster {reply.get('cluster')}")
    out.print(f"leader: {reply.get('leader') or 'none'}")


def show_cluster_placement(reply: dict[str, Any], ns: argparse.Namespace,
                           out: Console) -> None:
    grid = table("watcher", "placement", "node", "state")
    for watcher in reply.get("watchers", []):
        placement = " ".join(f"{k}={value_text(v)}"
                             for k, v in sorted((watcher.get("placement") or {}).items()))
        nodes = watcher.get("nodes") or {}
        if not nodes:
            grid.add_row(str(watcher.get("name")), placement, "", Text("unplaced", "yellow"))
        for i, (node, state) in enumerate(sorted(nodes.items())):
            what = str(state.get("state", "?"))
            if not state.get("up", True):
                what = f"{what}, node down"
            if state.get("error"):
                what = f"{what}: {state['error']}"
            grid.add_row(str(watcher.get("name")) if i == 0 else "",
                         placement if i == 0 else "", node,
                         Text(what, STATE_STYLES.get(str(state.get("state")), "")))
    emit(out, grid)


def show_cluster_change(reply: dict[str, Any], ns: argparse.Namespace, out: Console) -> None:
    for key in ("applied", "unchanged", "removed", "forgotten"):
        if key in reply:
            out.print(f"{key}: {', '.join(reply[key]) or 'none'}")


RENDERERS: dict[str, Callable[[dict[str, Any], argparse.Namespace, Console], None]] = {
    "status": show_status,
    "stats": show_stats,
    "dstats": show_dstats,
    "options": show_options,
    "get": show_options,
    "globaloptions": show_options,
    "list": show_list,
    "listsockets": show_listsockets,
    "depends": show_depends,
    "numprocesses": show_number("numprocesses"),
    "numwatchers": show_number("numwatchers"),
    "history": show_history,
    "save": show_save,
    "diff": show_diff,
    "incr": show_number("numprocesses"),
    "decr": show_number("numprocesses"),
    "start": show_info,
    "stop": show_info,
    "restart": show_info,
    "reload": show_info,
    "add": show_info,
    "signal": show_signal,
    "reloadconfig": show_reloadconfig,
    "version": show_version,
    "quit": show_quit,
    "upgrade": show_upgrade,
    "cluster_nodes": show_cluster_nodes,
    "cluster_placement": show_cluster_placement,
    "cluster_apply": show_cluster_change,
    "cluster_rm": show_cluster_change,
    "cluster_forget": show_cluster_change,
}


def show(command: str, reply: dict[str, Any], ns: argparse.Namespace,
         out: Console | None = None) -> None:
    out = out or console()
    RENDERERS.get(command, lambda r, n, o: o.print("ok"))(reply, ns, out)


def error(message: str, prefix: str = "error: ") -> None:
    err = console(stderr=True)
    line = Text(prefix, style="bold red")
    line.append(message)
    err.print(line, soft_wrap=True)
