"""resource_watcher: restart, or signal, a process that uses too much (or
too little) CPU or memory for too long (Circus's ResourceWatcher).

Every ``loop_rate`` seconds the plugin asks the daemon for the resource use
of one watcher's processes (the ``stats`` command; a process's figures
include its descendants). A process that is over ``max_cpu``, over
``max_mem``, under ``min_cpu``, under ``min_mem``, or whose mean of CPU and
memory percent is over ``health_threshold``, in more than ``max_count``
samples in a row is stopped gracefully and replaced (the ``kill`` command
with its pid: its own ``stop_signal`` and ``graceful_timeout``), or sent
``signal`` and left running. Circus restarted the whole watcher; that is
``per_process = false`` here.

With a statsd server named (``host``/``port``), Circus's counters are sent:
``_resource_watcher.<watcher>.over_cpu``, ``over_memory``, ``under_cpu``,
``under_memory``, ``over_health``, ``restarting``, ``error``.
"""

from __future__ import annotations

import re
import signal as signals
from dataclasses import dataclass, field
from typing import Any

from .base import Plugin, PluginError
from .common import Metrics, optional, parse_signal

# Circus's human2bytes: powers of 1024; K, M, G... (k too), with or without B.
_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|[kmgtpezy]?i?b?)\s*$")
_POWERS = {letter: 1024 ** n for n, letter in enumerate("_kmgtpezy") if n}


@dataclass(frozen=True)
class Memory:
    """A memory limit: a percent of the machine's memory, or bytes."""

    value: float
    percent: bool

    def of(self, mem_percent: float | None, rss: float | None) -> float | None:
        """The figure of a sample this limit compares with."""
        return mem_percent if self.percent else rss

    def show(self, value: float) -> str:
        return f"{value:g}%" if self.percent else human(value)

    def __str__(self) -> str:
        return self.show(self.value)


def human(n: float) -> str:
    for power, letter in reversed(list(enumerate("KMGTPEZY", start=1))):
        if n >= 1024 ** power:
            return f"{n / 1024 ** power:.4g}{letter}"
    return f"{int(n)}B"


def parse_memory(text: str) -> Memory:
    """``50`` or ``50%``: a percent of the machine's memory (a bare number is
    a percent, as in Circus); ``200M``, ``1.5G``, ``512k``, ``4096B``, ``2GiB``:
    bytes, in powers of 1024."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("not a size: use a percent (50, 50%) or bytes (200M, 1.5G, 4096B)")
    number, unit = float(match[1]), match[2].lower()
    if unit in ("", "%"):
        return Memory(number, True)
    letter = unit[0]
    return Memory(number * _POWERS.get(letter, 1), False)


def signame(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:  # a real-time signal
        return f"signal {number}"


@dataclass
class Counts:
    """Samples in a row over (or under) each limit, for one process."""

    over_cpu: int = 0
    under_cpu: int = 0
    over_mem: int = 0
    under_mem: int = 0
    health: int = 0
    reasons: dict[str, str] = field(default_factory=dict)

    def count(self, key: str, hit: bool, reason: str = "") -> None:
        setattr(self, key, getattr(self, key) + 1 if hit else 0)
        if hit:
            self.reasons[key] = reason
        else:
            self.reasons.pop(key, None)


@dataclass(frozen=True)
class Sample:
    cpu: float | None  # None: unknown, or the first sample of the process
    mem: float | None  # percent of the machine's memory
    rss: float | None  # bytes

    @classmethod
    def of(cls, info: dict[str, Any], cpu_known: bool) -> Sample:
        return cls(_number(info.get("cpu")) if cpu_known else None,
                   _number(info.get("mem")), _number(info.get("rss")))


def extreme(pick: Any, samples: list[Sample]) -> Sample:
    """Circus's watcher-wide figures: the highest (or lowest) of each."""
    def of(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return pick(known) if known else None

    return Sample(of([s.cpu for s in samples]), of([s.mem for s in samples]),
                  of([s.rss for s in samples]))


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


class ResourceWatcher(Plugin):
    plugin_name = "resource_watcher"
    topics = ()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.watcher = self.option("watcher", "") or self.option("service", "")
        if not self.watcher:
            raise PluginError("watcher is required: the watcher whose processes to watch")
        self.max_cpu: float | None = self.option("max_cpu", 90.0, optional(float))
        self.min_cpu: float | None = self.option("min_cpu", None, optional(float, False))
        self.max_mem: Memory | None = self.option("max_mem", Memory(90.0, True),
                                                  optional(parse_memory))
        self.min_mem: Memory | None = self.option("min_mem", None,
                                                  optional(parse_memory, False))
        self.health_threshold: float | None = self.option("health_threshold", 75.0,
                                                          optional(float))
        self.max_count = self.option("max_count", 3)
        self.loop_rate = self.option("loop_rate", 60.0)
        self.per_process = self.option("per_process", True)
        self.signal: int | None = self.option("signal", None, optional(parse_signal))
        self.process_children = self.option("process_children", False)
        self.child_signal = self.option("child_signal", int(signals.SIGTERM), parse_signal)
        if self.max_count < 0:
            raise PluginError(f"max_count = {self.max_count}: must be 0 or more")
        self.counts: dict[str, Counts] = {}  # by pid (str), or "watcher" for the whole
        self.seen: set[str] = set()  # pids sampled before: their cpu is meaningful
        self.metrics = Metrics(self, "app")

    async def handle_init(self) -> None:
        await self.metrics.start()
        self.log.info("watching %s every %gs: %s", self.watcher, self.loop_rate, self.describe())
        self.every(self.loop_rate, self.look_after)

    def handle_stop(self) -> None:
        self.metrics.close()

    def describe(self) -> str:
        limits = [f"{name} {value:g}%" if isinstance(value, float) else f"{name} {value}"
                  for name, value in (("max_cpu", self.max_cpu), ("min_cpu", self.min_cpu),
                                      ("max_mem", self.max_mem), ("min_mem", self.min_mem),
                                      ("health_threshold", self.health_threshold))
                  if value is not None]
        action = f"signal {signame(self.signal)}" if self.signal is not None else "restart"
        if not self.per_process:
            action += " the watcher"
        if self.process_children:
            action += f" (a child: {signame(self.child_signal)})"
        return (f"{', '.join(limits) or 'no limit'}; {action} after more than "
                f"{self.max_count} samples in a row")

    # -- one round -------------------------------------------------------------

    async def look_after(self) -> None:
        try:
            infos = (await self.stats(self.watcher)).get(self.watcher, {})
        except Exception as err:
            self.log.warning("cannot read the stats of %s: %s", self.watcher, err)
            self.metrics.increment(f"_resource_watcher.{self.watcher}.error")
            return
        seen = set(infos)
        children: dict[str, tuple[str, dict[str, Any]]] = {}
        if self.process_children:
            for pid, info in infos.items():
                for child in info.get("children") or []:
                    if isinstance(child, dict) and "pid" in child:
                        children[str(child["pid"])] = (pid, child)
        if self.per_process:
            for pid, info in infos.items():
                sample = Sample.of(info, pid in self.seen)
                await self.check(pid, sample, sample, pid)
        elif infos:
            samples = [Sample.of(info, pid in self.seen) for pid, info in infos.items()]
            await self.check("watcher", extreme(max, samples), extreme(min, samples), None)
        for child_pid, (parent, info) in children.items():
            sample = Sample.of(info, child_pid in self.seen)
            await self.check(f"child:{child_pid}", sample, sample, parent, child=child_pid)
        # forget the processes that are gone
        self.seen = seen | set(children)
        for key in list(self.counts):
            pid = key.removeprefix("child:")
            if key != "watcher" and pid not in self.seen:
                del self.counts[key]

    async def check(self, key: str, sample: Sample, low: Sample, pid: str | None,
                    child: str | None = None) -> None:
        """Count a sample against the limits (the max_* and the health
        threshold against sample, the min_* against low), and act once a
        count passes max_count."""
        counts = self.counts.setdefault(key, Counts())
        prefix = f"_resource_watcher.{self.watcher}"
        if sample.cpu is not None:
            if self.max_cpu is not None:
                hit = sample.cpu > self.max_cpu
                counts.count("over_cpu", hit, f"cpu {sample.cpu:g}% > {self.max_cpu:g}%")
                if hit:
                    self.metrics.increment(f"{prefix}.over_cpu")
            if self.min_cpu is not None and low.cpu is not None:
                hit = low.cpu <= self.min_cpu
                counts.count("under_cpu", hit, f"cpu {low.cpu:g}% <= {self.min_cpu:g}%")
                if hit:
                    self.metrics.increment(f"{prefix}.under_cpu")
            if self.health_threshold is not None and sample.mem is not None:
                health = (sample.cpu + sample.mem) / 2
                hit = health > self.health_threshold
                counts.count("health", hit, f"(cpu + mem%) / 2 = {health:.1f} > "
                                            f"{self.health_threshold:g}")
                if hit:
                    self.metrics.increment(f"{prefix}.over_health")
        if self.max_mem is not None:
            used = self.max_mem.of(sample.mem, sample.rss)
            if used is not None:
                hit = used > self.max_mem.value
                counts.count("over_mem", hit, f"memory {self.max_mem.show(used)} > {self.max_mem}")
                if hit:
                    self.metrics.increment(f"{prefix}.over_memory")
        if self.min_mem is not None:
            used = self.min_mem.of(low.mem, low.rss)
            if used is not None:
                hit = used < self.min_mem.value
                counts.count("under_mem", hit, f"memory {self.min_mem.show(used)} < {self.min_mem}")
                if hit:
                    self.metrics.increment(f"{prefix}.under_memory")
        worst = max(counts.over_cpu, counts.under_cpu, counts.over_mem, counts.under_mem,
                    counts.health)
        if worst > self.max_count:
            reasons = "; ".join(counts.reasons.values())
            self.counts[key] = Counts()
            self.metrics.increment(f"{prefix}.restarting")
            await self.act(pid, child, f"{reasons}, for {worst} samples in a row")

    async def act(self, pid: str | None, child: str | None, why: str) -> None:
        name = self.watcher
        try:
            if child is not None:
                self.log.warning("%s: child %s of pid %s: %s: sending %s", name, child, pid,
                                 why, signame(self.child_signal))
                await self.call("signal", name=name, pid=int(pid or 0), childpid=int(child),
                                signum=self.child_signal)
            elif pid is None:
                if self.signal is not None:
                    self.log.warning("%s: %s: sending %s to its processes", name, why,
                                     signame(self.signal))
                    await self.call("signal", name=name, signum=self.signal)
                else:
                    self.log.warning("%s: %s: restarting the watcher", name, why)
                    await self.call("restart", name=name)
            elif self.signal is not None:
                self.log.warning("%s: pid %s: %s: sending %s", name, pid, why,
                                 signame(self.signal))
                await self.call("signal", name=name, pid=int(pid), signum=self.signal)
            else:
                self.log.warning("%s: pid %s: %s: restarting it", name, pid, why)
                await self.call("kill", name=name, pid=int(pid))
        except Exception as err:  # gone meanwhile, or the daemon said no
            self.log.warning("%s: could not act on %s: %s", name, child or pid or "the watcher",
                             err)
