"""The history the console's charts draw: CPU and memory of each node's
daemon, of its watchers and of their process slots, kept by bigtop-web
whether a page is open or not.

**Samples.** A node hands :meth:`History.add` one *sample* at a time: the
processes the daemon sampled at one instant (one ``stats`` reply, or one
round of the stats endpoint), each with its slot (``wid``), CPU and
resident memory, and the daemon's own figures. bigtop-web samples a node
once a second while a page is open, and every ``idle`` seconds (10) while
none is (see nodes.py); the points are stamped with bigtop-web's clock.

**What a point says.**

- A watcher's memory is the sum over the processes in its slots *at that
  instant*, and its CPU the sum of theirs: the figures of one sample,
  never a mix of two moments. During a rolling reload the daemon keeps
  the replacement beside the old process, outside the slot, until it is
  ready, and samples only the slots' processes: the old process is
  counted until its replacement takes the slot, the new one from then on
  (a replacement still starting up is not counted; nothing is counted
  twice, nothing drops to zero).
- A process the daemon reads for the first time has no CPU figure yet (its
  CPU is usage since the previous reading, and there is none: the daemon
  says 0.0). When a slot's process is new to bigtop-web and says 0.0, the
  slot carries its previous process's figure for that one sample (a
  reload's replacement takes over its load), or has none at all when the
  slot is new.
- Per-process charts are kept by *slot*, so a replaced process's
  successor (a reload, a restart after a crash) continues its line; a
  point remembers the pid in its slot then.

**Tiers.** Each tier is a ring of points, at most one per ``step`` (the
mean of the samples in it): *fine*, one a second for the last 10
minutes; *coarse*, one every 10 seconds for 24 hours. A range of the page
reads one tier: 10 min the fine one, 1 h and 24 h the coarse one.

**Gaps, never zeros.** A point is marked *after a gap* when data is
missing before it: the node was unreachable (:meth:`History.missing`),
bigtop-web itself did not read (stopped, overloaded: more than
``GAP_FACTOR`` sampling intervals plus ``GAP_SLACK`` seconds went by
since the previous sample), or it is the first point since bigtop-web
started. Readers get a row of nulls there, and the charts break the line;
a figure the daemon could not give is null, never 0.

**Bounds.** Values are 32-bit floats in arrays: a series (one daemon,
watcher or slot) costs 10 bytes a point in each tier (CPU and memory, and
a count of the samples merged in each), a slot 4 more in the fine tier
(its pid): with the default tiers 92.4 KB a watcher and 94.8 KB a slot,
allocated as the rings fill. A node keeps at most ``MAX_WATCHERS``
watchers and ``MAX_SLOTS`` slots (:func:`memory_bound`: 33.6 MB, against
3.0 MB for 10 watchers of 2 processes); past that a watcher or slot that
is no longer sampled gives its place (the one sampled longest ago first),
else the newcomer is not kept, counted in ``not_kept``. A series with no
value left in either ring is dropped.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAN = float("nan")
MAX_WATCHERS = 100  # watchers with a history, per node (bounds.MAX_WATCHERS a daemon may run)
MAX_SLOTS = 256  # process slots with a history, per node, over all its watchers
GAP_FACTOR = 2.5  # sampling intervals that may pass between two samples without a gap
GAP_SLACK = 2.0  # seconds more (a slow reply, a busy machine), at any scale
IDLE_SAMPLE = 10.0  # seconds between two samples while no page is open
NOT_KEPT_NAMES = 1000  # names of series not kept remembered (for not_kept), at most
COUNT_MAX = 255  # samples merged into a point counted at most (then a moving mean)
DAEMON = ("d", "", "")  # the key of the daemon's series

Key = tuple[str, str, str]  # ("d", "", ""), ("w", watcher, ""), ("s", watcher, slot)


@dataclass(frozen=True)
class Tier:
    name: str
    step: float  # seconds one point stands for, at most
    span: float  # seconds kept

    @property
    def capacity(self) -> int:
        return int(math.ceil(self.span / self.step)) + 1


@dataclass(frozen=True)
class Range:
    name: str  # as the API takes it: 10m, 1h, 24h
    label: str  # as the page shows it
    seconds: float
    tier: str  # the tier it reads


@dataclass(frozen=True)
class Layout:
    """The tiers, the ranges the page offers, and the idle sampling interval."""

    tiers: tuple[Tier, ...]
    ranges: tuple[Range, ...]
    idle: float  # seconds between samples while no page is open (0: none)

    def range(self, name: str) -> Range | None:
        return next((r for r in self.ranges if r.name == name), None)

    def tier(self, name: str) -> Tier:
        return next(t for t in self.tiers if t.name == name)

    def info(self) -> dict[str, Any]:
        """What the page is told (``/api/session``)."""
        return {"ranges": [{"name": r.name, "label": r.label, "seconds": r.seconds,
                            "step": self.tier(r.tier).step} for r in self.ranges],
                "idle": self.idle}


def layout(scale: float = 1.0, idle: float | None = None) -> Layout:
    """The default tiers and ranges, every duration multiplied by ``scale``
    (tests use small ones); ``idle``: the idle sampling interval (default
    IDLE_SAMPLE, scaled)."""
    fine, coarse = Tier("fine", 1.0 * scale, 600.0 * scale), \
        Tier("coarse", 10.0 * scale, 86400.0 * scale)
    ranges = (Range("10m", "10 min", fine.span, "fine"),
              Range("1h", "1 h", 3600.0 * scale, "coarse"),
              Range("24h", "24 h", coarse.span, "coarse"))
    return Layout((fine, coarse), ranges, IDLE_SAMPLE * scale if idle is None else idle)


DEFAULT = layout()


def series_bytes(tier: Tier, slot: bool = False) -> int:
    """What one series costs in a full ring: CPU and memory (float32) and
    their counts (a byte each), and in the fine tier a slot's pid (int32)."""
    per_point = 4 + 4 + 1 + 1 + (4 if slot and tier.name == "fine" else 0)
    return tier.capacity * per_point


def memory_bound(lay: Layout = DEFAULT, watchers: int = MAX_WATCHERS,
                 slots: int = MAX_SLOTS) -> int:
    """Bytes a node's history holds at most with that many watchers and
    slots (and the daemon): every ring full, plus the rings' own times,
    marks and counts."""
    total = 0
    for tier in lay.tiers:
        total += (1 + watchers) * series_bytes(tier) + slots * series_bytes(tier, slot=True)
        total += tier.capacity * (8 + 1 + 2)  # times, gap marks, samples merged
    return total


# -- samples --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proc:
    """One process of a sample: its pid, CPU (percent of one CPU, None:
    not known) and resident memory (bytes, None: not known)."""

    pid: int
    cpu: float | None
    rss: float | None


@dataclass
class Sample:
    daemon: Proc | None = None
    # watcher (as configured) -> slot (its wid, as a string) -> process
    watchers: dict[str, dict[str, Proc]] = field(default_factory=dict)


# -- one tier ------------------------------------------------------------------------------

class Series:
    """One line of values in a ring, aligned with the ring's positions."""

    __slots__ = ("cpu", "cpu_n", "last", "pid", "rss", "rss_n")

    def __init__(self, length: int, with_pid: bool):
        self.cpu = array("f", [NAN]) * length
        self.rss = array("f", [NAN]) * length
        self.cpu_n = bytearray(length)
        self.rss_n = bytearray(length)
        self.pid = array("i", [0]) * length if with_pid else None
        self.last = -1  # the ring's index of its last value

    def grow(self) -> None:
        self.cpu.append(NAN)
        self.rss.append(NAN)
        self.cpu_n.append(0)
        self.rss_n.append(0)
        if self.pid is not None:
            self.pid.append(0)

    def clear(self, pos: int) -> None:
        self.cpu[pos] = self.rss[pos] = NAN
        self.cpu_n[pos] = self.rss_n[pos] = 0
        if self.pid is not None:
            self.pid[pos] = 0

    def merge(self, pos: int, cpu: float | None, rss: float | None, pid: int) -> None:
        """Add one sample's figures to the point at pos (a running mean)."""
        if cpu is not None:
            n = self.cpu_n[pos]
            self.cpu[pos] = cpu if n == 0 else (self.cpu[pos] * n + cpu) / (n + 1)
            self.cpu_n[pos] = min(n + 1, COUNT_MAX)
        if rss is not None:
            n = self.rss_n[pos]
            self.rss[pos] = rss if n == 0 else (self.rss[pos] * n + rss) / (n + 1)
            self.rss_n[pos] = min(n + 1, COUNT_MAX)
        if self.pid is not None and pid:
            self.pid[pos] = pid

    def nbytes(self) -> int:
        size = self.cpu.itemsize * len(self.cpu) * 2 + len(self.cpu_n) * 2
        return size + (self.pid.itemsize * len(self.pid) if self.pid is not None else 0)


def _value(values: array[float], pos: int, digits: int) -> float | None:
    value = values[pos]
    if math.isnan(value):
        return None
    return round(value, digits) if digits else float(round(value))


class Ring:
    """One tier: at most one point per step (samples in the same step are
    merged), the oldest overwritten once ``capacity`` points are held."""

    def __init__(self, tier: Tier):
        self.tier = tier
        self.capacity = tier.capacity
        self.times = array("d")
        self.gaps = bytearray()  # 1: data is missing before this point
        self.counts = array("H")  # samples merged into each point
        self.n = 0  # points ever added; point i is at i % capacity
        self.series: dict[Key, Series] = {}
        self._bucket: int | None = None

    def add(self, t: float, values: Mapping[Key, tuple[float | None, float | None, int]],
            gap: bool) -> None:
        bucket = math.floor(t / self.tier.step)
        if self.n and not gap and bucket == self._bucket:
            pos = (self.n - 1) % self.capacity
            count = self.counts[pos]
            self.times[pos] = (self.times[pos] * count + t) / (count + 1)
            self.counts[pos] = min(count + 1, 65535)
            index = self.n - 1
        else:
            pos = self.n % self.capacity
            if len(self.times) < self.capacity:
                self.times.append(t)
                self.gaps.append(1 if gap else 0)
                self.counts.append(1)
                for series in self.series.values():
                    series.grow()
            else:
                self.times[pos], self.gaps[pos], self.counts[pos] = t, 1 if gap else 0, 1
                for series in self.series.values():
                    series.clear(pos)
            index = self.n
            self.n += 1
            self._bucket = bucket
        for key, (cpu, rss, pid) in values.items():
            found = self.series.get(key)
            if found is None:
                found = self.series[key] = Series(len(self.times), key[0] == "s"
                                                  and self.tier.name == "fine")
            found.merge(pos, cpu, rss, pid)
            if cpu is not None or rss is not None:
                found.last = index

    def alive(self, key: Key) -> bool:
        """Has the series a value still held?"""
        series = self.series.get(key)
        return series is not None and series.last >= self.n - self.capacity

    def positions(self, since: float) -> list[int]:
        """The positions of the points taken at ``since`` or later, oldest first."""
        first = max(0, self.n - self.capacity)
        out = []
        for index in range(first, self.n):
            pos = index % self.capacity
            if self.times[pos] >= since:
                out.append(pos)
        return out

    def nbytes(self) -> int:
        own = len(self.times) * 8 + len(self.gaps) + len(self.counts) * 2
        return own + sum(s.nbytes() for s in self.series.values())


# -- a node's history ---------------------------------------------------------------------

@dataclass
class _Slot:
    pid: int
    cpu: float | None
    t: float


class History:
    """The charts' history of one node: every tier, fed sample by sample."""

    def __init__(self, lay: Layout = DEFAULT, max_watchers: int = MAX_WATCHERS,
                 max_slots: int = MAX_SLOTS):
        self.layout = lay
        self.rings = {tier.name: Ring(tier) for tier in lay.tiers}
        self.max_watchers = max_watchers
        self.max_slots = max_slots
        self.last_t: float | None = None
        self.last_expected = 0.0
        self.gap_pending = True  # nothing before the first sample
        self.seen: dict[Key, float] = {}  # the series kept, with their last sample's time
        self.slots: dict[Key, _Slot] = {}  # the last process seen in each slot
        self.not_kept: dict[str, set[str]] = {"watchers": set(), "slots": set()}

    # -- feeding ------------------------------------------------------------------

    def missing(self) -> None:
        """No sample can be had now (the node is unreachable): whatever comes
        next comes after a gap."""
        self.gap_pending = True

    def add(self, t: float, sample: Sample, expected: float) -> list[dict[str, Any]]:
        """One sample, taken at ``t`` while samples come every ``expected``
        seconds. Returns the points for the live feed: a gap row first when
        data is missing before it, then the point (see :meth:`_point`)."""
        gap = self.gap_pending or self.last_t is None or t < self.last_t or \
            t - self.last_t > GAP_FACTOR * max(expected, self.last_expected) + GAP_SLACK
        self.gap_pending = False
        self.last_t, self.last_expected = t, expected
        values: dict[Key, tuple[float | None, float | None, int]] = {}
        if sample.daemon is not None and self._keep(DAEMON, t, ()):
            d = sample.daemon
            values[DAEMON] = (self._cpu(DAEMON, d, t, gap), d.rss, d.pid)
        live = [("w", name, "") for name in sample.watchers]
        live_slots = [("s", name, slot) for name, slots in sample.watchers.items()
                      for slot in slots]
        for name, slots in sample.watchers.items():
            cpus: list[float] = []
            rss: list[float] = []
            for slot, proc in slots.items():
                key = ("s", name, slot)
                cpu = self._cpu(key, proc, t, gap)
                if cpu is not None:
                    cpus.append(cpu)
                if proc.rss is not None:
                    rss.append(proc.rss)
                if self._keep(("w", name, ""), t, live) and self._keep(key, t, live_slots):
                    values[key] = (cpu, proc.rss, proc.pid)
            key = ("w", name, "")
            if key in self.seen or self._keep(key, t, live):
                total_cpu = sum(cpus) if cpus or not slots else None
                total_rss = sum(rss) if rss or not slots else None
                values[key] = (total_cpu, total_rss, 0)
        for ring in self.rings.values():
            ring.add(t, values, gap)
        self._prune(t, expected)
        point = self._point(t, values)
        return [self.gap_row(t), point] if gap and self.rings["fine"].n > 1 else [point]

    def _cpu(self, key: Key, proc: Proc, t: float, gap: bool) -> float | None:
        """The CPU figure of a slot (or the daemon) in this sample: a process
        new to its slot that says 0.0 has had no reading yet; the slot then
        carries its previous process's figure for this sample (none after a
        gap, or for a new slot)."""
        before = self.slots.get(key)
        cpu = proc.cpu
        if cpu == 0.0 and (before is None or before.pid != proc.pid):
            cpu = before.cpu if before is not None and not gap else None
        self.slots[key] = _Slot(proc.pid, cpu, t)
        return cpu

    def _keep(self, key: Key, t: float, live: Iterable[Key]) -> bool:
        """Is the series kept (bounded: MAX_WATCHERS, MAX_SLOTS a node)?"""
        if key in self.seen:
            self.seen[key] = t
            return True
        kind = key[0]
        limit = {"w": self.max_watchers, "s": self.max_slots}.get(kind)
        if limit is not None and sum(1 for k in self.seen if k[0] == kind) >= limit:
            present = set(live)
            gone = [k for k in self.seen if k[0] == kind and k not in present]
            if not gone:
                refused = self.not_kept["watchers" if kind == "w" else "slots"]
                if len(refused) < NOT_KEPT_NAMES:
                    refused.add(key[1] if kind == "w" else f"{key[1]}#{key[2]}")
                return False
            self._forget(min(gone, key=lambda k: self.seen[k]))
        self.seen[key] = t
        return True

    def _forget(self, key: Key) -> None:
        """Drop a series (and, for a watcher, its slots) from every ring."""
        doomed = [key] + ([k for k in self.seen if k[0] == "s" and k[1] == key[1]]
                          if key[0] == "w" else [])
        for k in doomed:
            self.seen.pop(k, None)
            self.slots.pop(k, None)
            for ring in self.rings.values():
                ring.series.pop(k, None)

    def _prune(self, t: float, expected: float) -> None:
        """Drop the series no ring holds a value of any more (a watcher's
        slots go with it: they have no value when it has none), and the
        last process of slots not sampled since a gap's worth of time."""
        for key in [k for k in self.seen if k[0] != "s"
                    and not any(ring.alive(k) for ring in self.rings.values())]:
            self._forget(key)
        for key in [k for k in self.seen if k[0] == "s"
                    and not any(ring.alive(k) for ring in self.rings.values())]:
            self._forget(key)
        stale = t - (GAP_FACTOR * expected + GAP_SLACK)
        for key in [k for k, slot in self.slots.items() if slot.t < stale]:
            del self.slots[key]

    # -- reading ------------------------------------------------------------------

    @staticmethod
    def gap_row(t: float) -> dict[str, Any]:
        """A point without data: the charts break their lines there."""
        return {"t": round(t - 1e-3, 3), "d": None, "w": {}, "p": {}}

    @staticmethod
    def _point(t: float, values: Mapping[Key, tuple[float | None, float | None, int]]
               ) -> dict[str, Any]:
        """A sample as the live feed sends it: ``d`` [cpu, rss] of the
        daemon, ``w`` by watcher [cpu, rss, {slot: [cpu, rss, pid]}], ``p``
        by pid [cpu, rss] (as the fine tier reads back, see :meth:`recent`)."""
        def rounded(cpu: float | None, rss: float | None) -> list[float | None]:
            return [None if cpu is None else round(cpu, 1),
                    None if rss is None else float(round(rss))]

        watchers: dict[str, list[Any]] = {}
        processes: dict[str, list[Any]] = {}
        daemon = None
        slots: dict[str, dict[str, list[Any]]] = {}
        for (kind, name, slot), (cpu, rss, pid) in values.items():
            if kind == "d":
                daemon = rounded(cpu, rss)
            elif kind == "w":
                watchers[name] = [*rounded(cpu, rss), slots.setdefault(name, {})]
            else:
                slots.setdefault(name, {})[slot] = [*rounded(cpu, rss), pid]
                processes[str(pid)] = rounded(cpu, rss)
        return {"t": round(t, 3), "d": daemon, "w": watchers, "p": processes}

    def _row(self, ring: Ring, pos: int, keys: Iterable[Key],
             watcher: str | None = None) -> dict[str, Any]:
        watchers: dict[str, list[Any]] = {}
        processes: dict[str, list[Any]] = {}
        daemon = None
        slots: dict[str, dict[str, list[Any]]] = {}
        for key in keys:
            series = ring.series.get(key)
            if series is None:
                continue
            kind, name, slot = key
            if watcher is not None and kind != "d" and name.lower() != watcher.lower():
                continue
            cpu, rss = _value(series.cpu, pos, 1), _value(series.rss, pos, 0)
            if kind == "d":
                if cpu is not None or rss is not None:
                    daemon = [cpu, rss]
            elif kind == "w":
                if cpu is not None or rss is not None:
                    watchers[name] = [cpu, rss, slots.setdefault(name, {})]
            elif cpu is not None or rss is not None:
                pid = series.pid[pos] if series.pid is not None else 0
                slots.setdefault(name, {})[slot] = [cpu, rss, pid]
                if pid:
                    processes[str(pid)] = [cpu, rss]
        return {"t": round(ring.times[pos], 3), "d": daemon, "w": watchers, "p": processes}

    def recent(self, watcher: str | None = None) -> list[dict[str, Any]]:
        """The fine tier as points (gap rows included), oldest first; with
        ``watcher``, only its figures (``w`` is then its own [cpu, rss,
        slots] or None, ``p`` its processes')."""
        ring = self.rings["fine"]
        now = self.last_t or 0.0
        out: list[dict[str, Any]] = []
        keys = list(ring.series)
        for pos in ring.positions(now - ring.tier.span):
            row = self._row(ring, pos, keys, watcher)
            if ring.gaps[pos] and out:
                out.append(self.gap_row(row["t"]))
            if watcher is not None:
                found = next((v for k, v in row["w"].items() if k.lower() == watcher.lower()),
                             None)
                row = {"t": row["t"], "w": found, "p": row["p"]}
            out.append(row)
        return out

    def read(self, range_name: str, now: float, watcher: str | None = None
             ) -> dict[str, Any] | None:
        """A range as columns (what ``GET /api/history`` answers): ``t``,
        and ``daemon`` and ``watchers`` ({cpu: [...], rss: [...]}), or with
        ``watcher`` that one with its ``slots`` (each with its last
        ``pid``); a gap is a row of nulls. None: no such range."""
        chosen = self.layout.range(range_name)
        if chosen is None:
            return None
        ring = self.rings[chosen.tier]
        positions = ring.positions(now - chosen.seconds)
        rows: list[int | None] = []  # None: a gap row
        for pos in positions:
            if ring.gaps[pos] and rows:
                rows.append(None)
            rows.append(pos)
        times = []
        for i, row in enumerate(rows):
            after = rows[i + 1] if row is None else row
            assert after is not None  # a gap row is never the last
            times.append(round(ring.times[after] - (1e-3 if row is None else 0.0), 3))

        def column(series: Series) -> dict[str, list[float | None]]:
            return {"cpu": [None if p is None else _value(series.cpu, p, 1) for p in rows],
                    "rss": [None if p is None else _value(series.rss, p, 0) for p in rows]}

        out: dict[str, Any] = {"range": chosen.name, "label": chosen.label,
                               "seconds": chosen.seconds, "step": ring.tier.step,
                               "now": now, "t": times,
                               "not_kept": {k: sorted(v)[:20] for k, v in self.not_kept.items()}}
        if watcher is None:
            daemon = ring.series.get(DAEMON)
            out["daemon"] = column(daemon) if daemon is not None else None
            out["watchers"] = {k[1]: column(s) for k, s in sorted(ring.series.items())
                               if k[0] == "w"}
            return out
        name = next((k[1] for k in ring.series if k[0] == "w"
                     and k[1].lower() == watcher.lower()), None)
        if name is None:
            out["watcher"] = None
            return out
        slots = {}
        for key, series in sorted(ring.series.items(), key=lambda item: _slot_order(item[0])):
            if key[0] == "s" and key[1] == name:
                last = self.slots.get(key)
                slots[key[2]] = {**column(series), "pid": last.pid if last else None}
        out["watcher"] = {"name": name, **column(ring.series[("w", name, "")]), "slots": slots}
        return out

    def nbytes(self) -> int:
        return sum(ring.nbytes() for ring in self.rings.values())


def _slot_order(key: Key) -> tuple[int, str]:
    return (int(key[2]), "") if key[2].isdigit() else (1 << 30, key[2])
