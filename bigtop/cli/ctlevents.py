"""bigtopctl commands that follow the daemon's event stream: ``listen``,
``reload --rolling`` with its progress bar, and ``logs`` (-f)."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..control.endpoints import guess_pubsub, reachable_host
from ..control.loglines import LOG_KEYS, Shown, log_entries
from ..control.session import Session, Unreachable, timeout_message

if TYPE_CHECKING:
    import zmq

EVENT_ROOTS = ("watcher", "arbiter", "stat")


def pubsub_endpoint(session: Session) -> str:
    """--pubsub-endpoint, $BIGTOPCTL_PUBSUB_ENDPOINT, what the daemon says
    (``globaloptions``), or a guess from the control endpoint."""
    if session.pubsub_option:
        return session.pubsub_option
    if os.environ.get("BIGTOPCTL_PUBSUB_ENDPOINT"):
        return os.environ["BIGTOPCTL_PUBSUB_ENDPOINT"]
    control = session.endpoint
    try:
        reply = session.call("globaloptions", timeout=min(session.timeout, 2.0),
                             option="pubsub_endpoint")
        told = (reply.get("options") or {}).get("pubsub_endpoint")
    except Unreachable:
        told = None
    if isinstance(told, str) and told:
        return reachable_host(told, control)
    return guess_pubsub(control)


def open_subscriber(session: Session, endpoint: str, topics: list[str]) -> zmq.Socket[bytes]:
    """A SUB socket on endpoint, with this session's CurveZMQ keys on tcp://."""
    import zmq

    from ..control.client import CallError, connect_socket

    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    try:
        connect_socket(sock, endpoint, session.key, session.server_key)
    except (CallError, OSError, zmq.ZMQError) as err:
        sock.close()
        raise Unreachable(f"bigtopctl: cannot subscribe to {endpoint}: {err}") from None
    for topic in topics:
        sock.subscribe(topic.encode())
    return sock


def topic_prefix(word: str) -> str:
    """A bare watcher name means all of its events."""
    if "." not in word and word and word not in EVENT_ROOTS:
        return f"watcher.{word.lower()}."
    return word


# -- listen --------------------------------------------------------------------------

def listen(session: Session, ns: argparse.Namespace) -> int:
    import sys

    topics = [topic_prefix(t) for t in ns.topics] or [""]
    endpoint = pubsub_endpoint(session)
    sock = open_subscriber(session, endpoint, topics)
    out = None
    if not session.json:
        from . import display

        out = display.console()
        if sys.stderr.isatty():
            display.console(stderr=True).print(
                f"listening to {endpoint} (Ctrl-C to stop)", style="dim")
    seen = 0
    try:
        while ns.count is None or seen < ns.count:
            if not sock.poll(250):
                continue
            frames = sock.recv_multipart()
            topic = frames[0].decode("utf-8", "replace")
            try:
                payload = json.loads(frames[1]) if len(frames) > 1 else {}
            except ValueError:
                payload = {"raw": frames[1].decode("utf-8", "replace")}
            if out is None:
                sys.stdout.write(json.dumps({"topic": topic, "payload": payload}) + "\n")
                sys.stdout.flush()
            else:
                out.print(event_line(topic, payload), soft_wrap=True)
                out.file.flush()
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def event_line(topic: str, payload: Any) -> Any:
    from rich.text import Text

    from .display import watcher_style

    when = payload.get("time") if isinstance(payload, dict) else None
    stamp = time.strftime("%H:%M:%S", time.localtime(when if isinstance(when, (int, float))
                                                       else time.time()))
    if isinstance(when, (int, float)):
        stamp += f".{int(when * 1000) % 1000:03d}"
    line = Text(stamp + " ", style="dim")
    parts = topic.split(".")
    if parts[0] == "watcher" and len(parts) >= 3:
        line.append(f"watcher.{'.'.join(parts[1:-1])}.", style=watcher_style(parts[1]))
        line.append(parts[-1], style="bold")
    else:
        line.append(topic, style="bold")
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "time":
                continue
            shown = value if isinstance(value, (int, float, str)) else json.dumps(value)
            line.append(f" {key}=", style="dim")
            line.append(str(shown))
    return line


# -- reload with progress -------------------------------------------------------------

def reload_with_progress(session: Session, props: dict[str, Any]) -> dict[str, Any]:
    """Send ``reload`` with waiting=true and show its ``reload_progress``
    events as a progress bar until the reply comes. The wait is not bounded
    by --timeout while the daemon keeps answering: when it has been quiet
    for --timeout, it is pinged (``version``) and only a missed ping fails.
    Returns the reply."""
    import uuid

    import zmq

    from ..control import protocol

    name = props.get("name")
    totals: dict[str, int] = {}
    if name:
        status = session.call("status", name=name, details=True)
        if status.get("status") == "error":
            return status
        details = status.get("details") or {}
        totals[name.lower()] = int(details.get("running") or details.get("numprocesses") or 1)
    endpoint = pubsub_endpoint(session)
    prefix = f"watcher.{name.lower()}." if name else "watcher."
    sub = open_subscriber(session, endpoint, [prefix])
    time.sleep(0.05)  # let the subscription reach the publisher first
    client = session.client()
    progress = None
    tasks: dict[str, Any] = {}
    if not session.json:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from . import display

        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("processes"),
                            TimeElapsedColumn(), console=display.console())
        for watcher, total in totals.items():
            tasks[watcher] = progress.add_task(name or watcher, total=total)
        progress.start()
    msg_id = uuid.uuid4().hex
    poller = zmq.Poller()
    poller.register(client.socket, zmq.POLLIN)
    poller.register(sub, zmq.POLLIN)
    try:
        client.socket.send(protocol.encode(
            protocol.request("reload", msg_id, **{**props, "waiting": True})))
        quiet_since = time.monotonic()
        ping: tuple[str, float] | None = None
        while True:
            ready = dict(poller.poll(100))
            now = time.monotonic()
            if sub in ready:
                while sub.poll(0):
                    frames = sub.recv_multipart()
                    topic = frames[0].decode("utf-8", "replace")
                    payload = json.loads(frames[1]) if len(frames) > 1 else {}
                    watcher = topic[len("watcher."):].rsplit(".", 1)[0]
                    quiet_since = now
                    if progress is None:
                        continue
                    if topic.endswith(".reload_progress"):
                        totals[watcher] = int(payload.get("total") or 1)
                        if watcher not in tasks:
                            tasks[watcher] = progress.add_task(watcher)
                        progress.update(tasks[watcher], total=totals[watcher],
                                        completed=payload.get("done", 0))
                    elif topic.endswith(".reload_aborted") and watcher in tasks:
                        progress.update(tasks[watcher], description=f"{watcher} (aborted)")
            if client.socket in ready:
                while client.socket.poll(0):
                    try:
                        reply = json.loads(client.socket.recv())
                    except ValueError:
                        continue
                    if not isinstance(reply, dict):
                        continue
                    if reply.get("id") == msg_id:
                        if reply.get("status") != "error" and progress is not None:
                            for watcher, task in tasks.items():
                                progress.update(task, completed=totals.get(watcher, 1))
                        return reply
                    if ping and reply.get("id") == ping[0]:
                        ping, quiet_since = None, now
            if now - quiet_since > session.timeout:
                if ping is None:
                    ping = (uuid.uuid4().hex, now)
                    client.socket.send(protocol.encode(protocol.request("version", ping[0])))
                elif now - ping[1] > session.timeout:
                    raise Unreachable(timeout_message(session.endpoint, session.timeout))
    finally:
        if progress is not None:
            progress.stop()
        sub.close()


# -- logs ------------------------------------------------------------------------------



def follow_logs(session: Session, ns: argparse.Namespace, props: dict[str, Any],
                report: Callable[[dict[str, Any]], int]) -> int:
    """Every ``logs``, with or without -f: the last lines of the watchers
    merged by time, then with -f (``ns.follow``) the lines as they come
    (``stream.*`` events, which the daemon publishes only while someone
    subscribes to them). --json: one object a line (time, watcher, pid,
    wid, stream, line); else ``watcher.wid | line`` like docker compose,
    colored per watcher and stderr in red on a terminal (not with NO_COLOR)."""
    sock = None
    if ns.follow:  # subscribed first: no line falls between the last lines and the live ones
        sock = open_subscriber(session, pubsub_endpoint(session), live_topics(ns.names, ns.only))
        sock.poll(100)  # a moment for the subscription to reach the daemon (a line ends it)
    try:
        reply = session.call("logs", **props)
        if reply.get("status") == "error":
            return report(reply)
        show = LogPrinter(session.json)
        history = log_entries(reply)
        for entry in history:
            show(entry)
        if sock is None:
            if not history:
                show.nothing()
            show.flush()
            return 0
        show.flush()
        shown = Shown(history)
        while True:
            if not sock.poll(250):
                continue
            frames = sock.recv_multipart()
            try:
                entry = json.loads(frames[1])
            except (IndexError, ValueError):
                continue
            if not isinstance(entry, dict) or (ns.only and entry.get("stream") != ns.only):
                continue
            if not shown.again(entry):
                show(entry)
                show.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        if sock is not None:
            sock.close()


def live_topics(names: list[str], only: str | None) -> list[str]:
    """stream.NAME.[STREAM] for each watcher; all of them: stream. (and
    --stdout/--stderr filtered here: a prefix cannot skip the name)."""
    if not names:
        return ["stream."]
    return [f"stream.{name.lower()}.{only or ''}" for name in names]


class LogPrinter:
    """Lines as JSON objects, or for people through rich (which leaves
    colors out off a terminal and with NO_COLOR)."""

    def __init__(self, as_json: bool):
        self.out = None
        if not as_json:
            from . import display

            self.out = display.console()

    def __call__(self, entry: dict[str, Any]) -> None:
        import sys

        if self.out is None:
            sys.stdout.write(json.dumps({key: entry.get(key) for key in LOG_KEYS}) + "\n")
            return
        from .display import log_line

        self.out.print(log_line(str(entry.get("watcher") or "?"), entry), soft_wrap=True)

    def nothing(self) -> None:
        if self.out is not None:
            from rich.text import Text

            self.out.print(Text("no output yet", style="dim"))

    def flush(self) -> None:
        import sys

        (sys.stdout if self.out is None else self.out.file).flush()


