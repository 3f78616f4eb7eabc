"""bigtopctl commands that follow the daemon's event stream: ``listen``,
``reload --rolling`` with its progress bar, and ``logs`` (-f)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from ..client import (
    LOG_KEYS,
    Session,
    Shown,
    Subscriber,
    Unreachable,
    check_ipc,
    guess_pubsub,
    log_entries,
    reachable_host,
    timeout_message,
)

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


def open_subscriber(session: Session, endpoint: str, topics: list[str]) -> Subscriber:
    """A Subscriber on endpoint with this session's CurveZMQ keys, its
    topics in force: every event published from now on comes. Unreachable
    at once when an ipc:// endpoint has nobody there. A publisher that does
    not answer the handshake within --timeout (Circus's does not) is
    followed all the same, with a warning: what it published before the
    subscription reached it is not shown."""
    import sys

    check_ipc(endpoint)
    try:
        sub = Subscriber(endpoint, key=session.key, server_key=session.server_key,
                         timeout=session.timeout)
    except Unreachable as err:
        raise Unreachable(f"bigtopctl: {err}") from None
    sub.subscribe(*topics)
    try:
        sub.handshake()
    except Unreachable as err:
        print(f"bigtopctl: warning: {err}; following it anyway (a Circus daemon does not "
              "answer)", file=sys.stderr)
    return sub


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
    sub = open_subscriber(session, endpoint, topics)
    out = None
    if not session.json:
        from . import display

        out = display.console()
        if sys.stderr.isatty():
            display.console(stderr=True).print(
                f"listening to {endpoint} (Ctrl-C to stop)", style="dim")
    try:
        for topic, payload in itertools.islice(sub, ns.count):
            if out is None:
                sys.stdout.write(json.dumps({"topic": topic, "payload": payload}) + "\n")
                sys.stdout.flush()
            else:
                out.print(event_line(topic, payload), soft_wrap=True)
                out.file.flush()
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    return 0


def event_line(topic: str, payload: dict[str, Any]) -> Any:
    from rich.text import Text

    from .display import watcher_style

    when = payload.get("time")
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
    poller.register(sub.socket, zmq.POLLIN)
    try:
        client.socket.send(protocol.encode(
            protocol.request("reload", msg_id, by=protocol.this_client(),
                             **{**props, "waiting": True})))
        quiet_since = time.monotonic()
        ping: tuple[str, float] | None = None
        while True:
            ready = dict(poller.poll(100))
            now = time.monotonic()
            while (event := sub.recv(0)) is not None:
                topic, payload = event
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
    wid, stream, line; ``partial: true`` on a live piece whose line goes on
    in the next one of its pid and stream); else ``TIME watcher.wid | line``
    like docker compose (the time local, ``2026-11-27 10:00:00.123``, blank
    for a line whose file does not say), colored per watcher and stderr in
    red on a terminal (not with NO_COLOR), a live piece on a line of its own
    as it comes."""
    sub = None
    if ns.follow:  # subscribed first: no line falls between the last lines and the live ones
        sub = open_subscriber(session, pubsub_endpoint(session), live_topics(ns.names, ns.only))
    try:
        reply = session.call("logs", **props)
        if reply.get("status") == "error":
            return report(reply)
        show = LogPrinter(session.json)
        history = log_entries(reply)
        for entry in history:
            show(entry)
        if sub is None:
            if not history:
                show.nothing()
            show.flush()
            return 0
        show.flush()
        shown = Shown(history)
        while True:
            _, entry = sub.recv()
            if ns.only and entry.get("stream") != ns.only:
                continue
            if not (shown.again(entry) if session.json else shown.hide(entry)):
                show(entry)
                show.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        if sub is not None:
            sub.close()


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
            record = {key: entry.get(key) for key in LOG_KEYS}
            if entry.get("partial"):
                record["partial"] = True
            sys.stdout.write(json.dumps(record) + "\n")
            return
        from .display import log_line

        self.out.print(log_line(str(entry.get("watcher") or "?"), entry, stamped=True),
                       soft_wrap=True)

    def nothing(self) -> None:
        if self.out is not None:
            from rich.text import Text

            self.out.print(Text("no output yet", style="dim"))

    def flush(self) -> None:
        import sys

        (sys.stdout if self.out is None else self.out.file).flush()


