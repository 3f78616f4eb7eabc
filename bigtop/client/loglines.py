"""Output lines as the ``logs`` command and the ``stream.*`` topics give
them, for every front end that shows them (bigtopctl, bigtop-top,
bigtop-web): the reply as one list by time, and the live lines that repeat
what was just shown."""

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
    pid, stream and text are those of a shown line, within LIVE_SLACK."""

    def __init__(self, history: list[dict[str, Any]]):
        self.times: dict[tuple[Any, ...], list[float]] = {}
        self.until = float("-inf")
        for entry in history:
            when = entry.get("time")
            if isinstance(when, int | float) and entry.get("pid") is not None:
                self.times.setdefault(self.key(entry), []).append(when)
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
            return False
        times = self.times.get(self.key(entry), [])
        for index, shown in enumerate(times):
            if abs(when - shown) <= LIVE_SLACK:
                del times[index]
                return True
        return False
