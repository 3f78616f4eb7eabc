"""What several built-in plugins share: option converters, restarting a
watcher, and statsd metrics with Circus's names."""

from __future__ import annotations

import signal as signals
from typing import Any

from .base import Plugin

OFF = ("", "0", "none", "off", "false", "no")


def optional(convert: Any, zero_is_off: bool = True) -> Any:
    """A converter for a limit that may be switched off (none, off, and
    for a maximum 0: Circus ignored max_cpu = 0 and health_threshold = 0)."""

    def run(text: str) -> Any:
        word = text.strip().lower()
        if word in OFF and (zero_is_off or word != "0"):
            return None
        return convert(text)

    return run


def parse_signal(value: str) -> int:
    text = value.strip().upper()
    if text.isdigit():
        number = int(text)
        if number not in {int(s) for s in signals.valid_signals()}:
            raise ValueError(f"no signal {number}")
        return number
    name = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise ValueError(f"{value!r} is not a signal") from None


def tally(failed: int, limit: int, watcher: str) -> str:
    """``2/3`` toward a restart, or ``5 in a row`` when nothing is restarted."""
    return f"{failed}/{limit}" if watcher else f"{failed} in a row"


async def watcher_status(plugin: Plugin, name: str) -> str:
    """The watcher's status (``active``, ``stopped``, ``starting``, ...), or
    why it cannot be had."""
    try:
        return str((await plugin.call("status", name=name)).get("status"))
    except Exception as err:
        return f"unknown ({err})"


async def restart(plugin: Plugin, name: str, why: str) -> bool:
    """Restart a watcher (without waiting: the daemon queues it). Observers
    call it only for an active watcher: a stopped one was stopped on purpose,
    and one starting is not given up on before it is up."""
    plugin.log.warning("%s: restarting %s", why, name)
    try:
        await plugin.call("restart", name=name)
    except Exception as err:
        plugin.log.warning("cannot restart %s: %s", name, err)
        return False
    return True


class Metrics:
    """Counters and gauges for the observer plugins, in the statsd line
    format, with Circus's names (its observers were statsd emitters:
    ``circus.<application_name>.watcher.<bucket>``). Sent only when a
    statsd server is named by ``host`` or ``port`` (or ``statsd = true``:
    localhost:8125); the statsd built-in does the sending."""

    def __init__(self, plugin: Plugin, application_name: str):
        options = plugin.options
        self.enabled = plugin.option("statsd", "host" in options or "port" in options)
        self.emitter: Any = None
        if self.enabled:
            from .statsd import StatsdEmitter

            wanted = {key: options[key] for key in
                      ("host", "port", "prefix", "sample_rate", "application_name")
                      if key in options}
            wanted.setdefault("application_name", application_name)
            self.emitter = StatsdEmitter({**wanted, "events": "false", "stats": "false"},
                                         name=plugin.name)

    async def start(self) -> None:
        if self.emitter is not None:
            await self.emitter.handle_init()

    def increment(self, bucket: str) -> None:
        if self.emitter is not None:
            self.emitter.increment(bucket)

    def gauge(self, bucket: str, value: float) -> None:
        if self.emitter is not None:
            self.emitter.gauge(bucket, value)

    def timing(self, bucket: str, milliseconds: float) -> None:
        if self.emitter is not None:
            self.emitter.send(bucket, f"{milliseconds:.0f}|ms")

    def close(self) -> None:
        if self.emitter is not None:
            self.emitter.handle_stop()
