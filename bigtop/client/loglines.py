"""Output lines as the ``logs`` command and the ``stream.*`` topics give
them, for every front end that shows them (bigtopctl, bigtop-top,
bigtop-web): the reply as one list by time, and the live lines that repeat
what was just shown. A live line may be a piece of one the process has not
finished (``partial: true``: the next line of its pid and stream goes on
with it); front ends show each piece as it comes, on a line of its own."""

from __future__ import annotations

from typing import Any

LOG_KEYS = ("time", "watcher", "pid", "wid", "stream", "line")
LIVE_SLACK = 0.5  # seconds from a line kept in the daemon's memory to its live event, at most


def log_entries(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines of every watcher in the reply, as one list by time. A line
    without a time (read from a file that does not say) stays after the line
    before it of its watcher, at the start when none before it has one."""
    keyed = []
    lines = reply.get("lines")
    for index, (name, items) in enumerate((lines if isinstance(lines, dict) else {}).items()):
        latest = float("-inf")
        for position, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                item = {"line": item}
            entry = {key: item.get(key) for key in LOG_KEYS}
            entry["watcher"] = name
            when = entry["time"]
            if isinstance(when, int | float) and not isinstance(when, bool):
                latest = max(latest, when)
            keyed.append(((latest, index, position), entry))
    keyed.sort(key=lambda item: item[0])
    return [entry for _, entry in keyed]




class Shown:
    """The lines just shown that came from the daemon's memory, which a live
    event may repeat: subscribing comes first, so a line written before the
    reply may come both ways. A live line is that repeat when its watcher,
    pid, stream and text are those of a shown line, within LIVE_SLACK; or
    when its time is within those of the lines shown of its pid and stream
    (a line in memory and its event have the same time): so are the pieces
    of a line the reply has whole (with the time of its last piece)."""

    def __init__(self, history: list[dict[str, Any]]):
        self.times: dict[tuple[Any, ...], list[float]] = {}
        self.spans: dict[tuple[Any, ...], tuple[float, float]] = {}  # pipe -> first, last
        self.until = float("-inf")
        self.unfinished: set[tuple[Any, ...]] = set()  # pipes whose last piece was partial
        for entry in history:
            when = entry.get("time")
            if isinstance(when, int | float) and entry.get("pid") is not None:
                key = self.key(entry)
                self.times.setdefault(key, []).append(when)
                first, last = self.spans.get(key[:3], (when, when))
                self.spans[key[:3]] = (min(first, when), max(last, when))
                self.until = max(self.until, when + LIVE_SLACK)

    @staticmethod
    def key(entry: dict[str, Any]) -> tuple[Any, ...]:
        return (entry.get("watcher"), entry.get("pid"), entry.get("stream"), entry.get("line"))

    def again(self, entry: dict[str, Any]) -> bool:
        when = entry.get("time")
        if not self.times or not isinstance(when, int | float):
            return False
        if when > self.until:
            self.times.clear()  # past what was shown: no more repeats
            self.spans.clear()
            return False
        key = self.key(entry)
        times = self.times.get(key, [])
        first, last = self.spans.get(key[:3], (1.0, 0.0))
        if first <= when <= last:
            if when in times:
                times.remove(when)
            return True
        for index, shown in enumerate(times):
            if abs(when - shown) <= LIVE_SLACK:
                del times[index]
                return True
        return False

    def hide(self, entry: dict[str, Any]) -> bool:
        """Whether a live line is not shown as text: a repeat (``again``), or
        the empty piece that only ends a line shown in pieces (each piece is
        shown as it comes, on a line of its own)."""
        pipe = self.key(entry)[:3]
        ends = False
        if entry.get("partial"):
            self.unfinished.add(pipe)
        elif self.unfinished and pipe in self.unfinished:
            self.unfinished.discard(pipe)
            ends = not entry.get("line")
        return self.again(entry) or ends
