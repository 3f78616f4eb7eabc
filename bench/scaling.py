"""Scaling benchmark: how bigtop's costs grow with the number of children.

It measures start, respawn under a kill storm, idle CPU, RSS and the
``status`` and ``stats`` round trips of one bigtopd at N = 10, 100, 1,000
and 5,000 children, and plots them against N (docs/img/scaling.svg).

Per N (--children) and run (--runs), bigtopd runs a fresh Circus INI file
written by bench/lifecycle.py (a watcher ``sleepers`` of N ``sleep 100000``
children, ipc:// endpoints in a private temp dir), and we measure:

  start     launch of bigtopd until N children have exec'd sleep;
  storm     SIGKILL of 10% of the children at once (1 to 500), each
            replacement timed from the exit of its slot's victim to its own
            exec by the kernel (proc connector), or by polling without root:
            median, p99 (nearest rank), and kill(2) to the last one back.
            Distinct slots of a fresh daemon: each is refilled at once
            (bigtop's 0.1 s backoff is for a slot's second quick death);
  idle CPU  the daemon's user+system CPU per second over --idle seconds
            after the storm settled; RSS after that;
  status,   median of --calls round trips each, bigtop.client.Client on one
  stats     connection; a call over --call-timeout is recorded as a timeout.

Figures are medians over runs; no daemon or child outlives the bench.

Run from the repo root:  .venv/bin/python bench/scaling.py [--children 10,100]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from html import escape  # not xml.sax: it imports http, which bench/http.py shadows
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _floors  # noqa: E402  (sibling modules; path set just above)
import lifecycle  # noqa: E402
from lifecycle import Daemon, MeasurementError, SleepChildren, percentile, psutil  # noqa: E402

from bigtop.core.tree import WID_ENV, environ  # noqa: E402

BIGTOP = lifecycle.SYSTEMS["bigtop"]  # a CircusIni: writes the config, gives argv
DEFAULT_CHILDREN = "10,100,1000,5000"
DEFAULT_SVG = lifecycle.REPO_DIR / "docs" / "img" / "scaling.svg"
STORM_SHARE, STORM_MIN, STORM_MAX = 0.10, 1, 500
INF = math.inf  # a median that falls on a timed-out call


@dataclass
class RunResult:
    children: int
    run: int
    start_s: float | None = None
    killed: int = 0
    respawn_ms: list[float] = field(default_factory=list)  # per replacement, run's clock
    respawn_poll_ms: list[float] = field(default_factory=list)  # kill(2) to seen, always
    respawn_kernel_missing: int = 0  # kernel clock, events missing: polled time kept
    events_lost: bool = False        # the connector's socket overflowed
    all_back_ms: float | None = None
    # filled by lifecycle.measure_idle:
    idle_cpu_s: float | None = None
    rss_mb: float | None = None
    daemon_cpu_s: float | None = None
    daemon_rss_mb: float | None = None
    helpers: list[str] = field(default_factory=list)
    children_after_idle: int | None = None
    idle_window_s: float = 0.0
    status_ms: list[float] = field(default_factory=list)
    status_timeouts: int = 0
    stats_ms: list[float] = field(default_factory=list)
    stats_timeouts: int = 0
    stop_s: float | None = None
    stop_killed: bool = False
    survivors: list[str] = field(default_factory=list)
    error: str | None = None

    def figures(self) -> dict[str, float | None]:
        cpu = self.idle_cpu_s / self.idle_window_s if self.idle_cpu_s is not None else None
        return {
            "start_s": self.start_s,
            "respawn_median_ms": statistics.median(self.respawn_ms) if self.respawn_ms else None,
            "respawn_p99_ms": percentile(self.respawn_ms, 99),
            "all_back_ms": self.all_back_ms,
            "idle_cpu": cpu,
            "rss_mb": self.rss_mb,
            "status_ms": calls_median(self.status_ms, self.status_timeouts),
            "stats_ms": calls_median(self.stats_ms, self.stats_timeouts),
        }

    def problems(self) -> list[str]:
        found = [self.error] if self.error else []
        if self.stop_killed:
            found.append("daemon ignored SIGTERM and was killed")
        if self.survivors:
            found.append(f"{len(self.survivors)} processes survived the daemon: "
                         + "; ".join(self.survivors[:3]))
        if self.children_after_idle not in (None, self.children):
            found.append(f"{self.children_after_idle} children after idle, not {self.children}")
        return found


def calls_median(samples: list[float], timeouts: int) -> float | None:
    """Median of the calls, a timed-out one counting as slower than all."""
    values = samples + [INF] * timeouts
    return statistics.median(values) if values else None


# (figure, label for table and panel, table format)
FIGURES = [
    ("start_s", "start [s]", "{:.3f}"),
    ("respawn_median_ms", "respawn median [ms]", "{:.2f}"),
    ("respawn_p99_ms", "respawn p99 [ms]", "{:.2f}"),
    ("all_back_ms", "storm: all back [ms]", "{:,.1f}"),
    ("idle_cpu", "idle CPU [s/s]", "{:.4f}"),
    ("rss_mb", "RSS [MB]", "{:.1f}"),
    ("status_ms", "status [ms]", "{:.2f}"),
    ("stats_ms", "stats [ms]", "{:,.1f}"),
]


# --------------------------------------------------------------------------
# The measurements.


def storm_size(children: int) -> int:
    return max(STORM_MIN, min(STORM_MAX, round(STORM_SHARE * children)))


def wait_quiet(daemon: Daemon, limit_s: float) -> None:
    """SETTLE_S, then until the daemon uses under 5% of a CPU over 0.5 s (at
    most ``limit_s``): the storm must meet a daemon done with its start,
    which with thousands of children may go on after the last exec."""
    time.sleep(lifecycle.SETTLE_S)
    proc, deadline = psutil.Process(daemon.pid), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = sum(proc.cpu_times()[:2])
        time.sleep(0.5)
        if sum(proc.cpu_times()[:2]) - before < 0.025:
            return
    daemon.check_alive()


def kill_storm(daemon: Daemon, tracker: SleepChildren, args, rng: random.Random,
               result: RunResult, connector: _floors.ProcConnector | None) -> None:
    """SIGKILL a tenth of the children at once and time every replacement.

    Each replacement is matched to its victim by slot (BIGTOP_WID in the
    environment), so the kernel figure is that slot's own exit -> exec;
    all_back is from the first kill(2) to the last replacement's exec (the
    connector's timestamps are CLOCK_MONOTONIC, as time.monotonic()).
    """
    before = tracker.scan()
    victims = rng.sample(sorted(before), min(len(before), storm_size(result.children)))
    victim_of_slot = {environ(pid).get(WID_ENV): pid for pid in victims}
    if connector is not None:
        connector.clear()
    tracker.dead.update(victims)
    killed_at = time.monotonic()
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    seen = watch_replacements(daemon, tracker, before, len(victims),
                              killed_at + args.respawn_timeout, args.poll_ms / 1000)
    if len(seen) < len(victims):
        raise MeasurementError(f"only {len(seen)} of {len(victims)} killed children "
                               f"replaced after {args.respawn_timeout:g} s")
    result.killed = len(victims)
    kernel = kernel_times(connector, victim_of_slot, seen) if connector else {}
    backs = []
    for pid, seen_at in sorted(seen.items()):
        polled_ms = (seen_at - killed_at) * 1000
        result.respawn_poll_ms.append(polled_ms)
        if pid in kernel:
            exited, execed = kernel[pid]
            result.respawn_ms.append((execed - exited) * 1000)
            backs.append((execed - killed_at) * 1000)
        else:
            result.respawn_kernel_missing += connector is not None  # else: polling is the clock
            result.respawn_ms.append(polled_ms)
            backs.append(polled_ms)
    result.all_back_ms = max(backs)
    result.events_lost = bool(connector and connector.lost)


def watch_replacements(daemon: Daemon, tracker: SleepChildren, before: set[int], want: int,
                       deadline: float, poll_s: float) -> dict[int, float]:
    """New sleep children (not in ``before``) -> when polling first saw them,
    until ``want`` of them or the deadline."""
    seen: dict[int, float] = {}
    while True:
        running = tracker.scan()
        now = time.monotonic()
        for pid in running - before:
            seen.setdefault(pid, now)
        if len(seen) >= want or now > deadline:
            return seen
        daemon.check_alive()
        time.sleep(poll_s)


def kernel_times(connector: _floors.ProcConnector, victim_of_slot: dict[str | None, int],
                 seen: dict[int, float]) -> dict[int, tuple[float, float]]:
    """Replacement -> (its victim's exit, its own exec), monotonic seconds,
    for those whose events arrived within lifecycle.KERNEL_EVENT_WAIT_S."""
    slots = {pid: environ(pid).get(WID_ENV) for pid in seen}
    pairs = {pid: victim_of_slot[s] for pid, s in slots.items() if s and s in victim_of_slot}
    deadline = time.monotonic() + lifecycle.KERNEL_EVENT_WAIT_S
    while True:
        connector.drain()
        found = {new: (connector.exit_ns[old] / 1e9, connector.exec_ns[new] / 1e9)
                 for new, old in pairs.items()
                 if old in connector.exit_ns and new in connector.exec_ns}
        if len(found) == len(pairs) or time.monotonic() > deadline:
            return {pid: (ex, ec) for pid, (ex, ec) in found.items() if ec >= ex}
        time.sleep(0.005)


def time_command(client, command: str, props: dict, calls: int,
                 entries: int | None = None) -> tuple[list[float], int]:
    """ms of ``calls`` round trips after one warm-up call, and how many timed out.

    The first timeout ends the loop: the daemon is still busy with that
    call and the next would queue behind it. The calls not made count as
    timeouts, which only the median sees.
    """
    from bigtop.client import CallError

    samples: list[float] = []
    for i in range(calls + 1):
        sent = time.perf_counter()
        try:
            reply = client.call(command, raise_on_error=False, **props)
        except CallError as exc:
            if "timed out" not in str(exc):
                raise MeasurementError(f"{command}: {exc}") from None
            return samples, calls - len(samples)
        elapsed_ms = (time.perf_counter() - sent) * 1000
        if reply.get("status") != "ok":
            raise MeasurementError(f"{command}: {reply!r}"[:300])
        if entries is not None and len(reply.get("info", ())) != entries:
            raise MeasurementError(f"{command} gave {len(reply.get('info', ()))} "
                                   f"processes, not {entries}")
        if i:  # call 0 is the warm-up
            samples.append(elapsed_ms)
    return samples, 0


def time_calls(endpoint: str, args, result: RunResult) -> None:
    """status, then stats of the watcher, over one persistent connection."""
    from bigtop.client import Client

    with Client(endpoint, timeout=args.call_timeout) as client:
        result.status_ms, result.status_timeouts = time_command(client, "status", {}, args.calls)
        result.stats_ms, result.stats_timeouts = time_command(
            client, "stats", {"name": "sleepers"}, args.calls, result.children)


def measure_once(children: int, run: int, args, rng: random.Random,
                 connector: _floors.ProcConnector | None) -> RunResult:
    result = RunResult(children=children, run=run, idle_window_s=args.idle)
    workdir = Path(tempfile.mkdtemp(prefix=f"bigtop-scaling-{children}-"))
    try:
        config = BIGTOP.write_config(workdir, children)
        endpoint = f"ipc://{workdir}/endpoint.sock"  # as CircusIni.write_config names it
        with Daemon(BIGTOP.argv(config), workdir) as daemon:
            tracker = SleepChildren(daemon.pid)
            try:
                result.start_s = lifecycle.measure_start(daemon, tracker, args, children)
                lifecycle._progress(f"{children:,} running in {result.start_s:.3f} s; "
                                    f"killing {storm_size(children)} at once")
                wait_quiet(daemon, args.start_timeout)
                kill_storm(daemon, tracker, args, rng, result, connector)
                lifecycle._progress(f"idle {args.idle:g} s, then {args.calls} status, stats calls")
                lifecycle.measure_idle(daemon, tracker, args, result)
                time_calls(endpoint, args, result)
                daemon.check_alive()
            except MeasurementError as exc:
                result.error = str(exc)
            except psutil.NoSuchProcess:
                result.error = "daemon vanished:\n" + daemon.log_tail()
            stop = daemon.stop()
            result.stop_s, result.stop_killed = stop.seconds, stop.killed
            result.survivors = stop.survivors
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------
# Reporting.


def median_figures(runs: list[RunResult]) -> dict[str, float | None]:
    medians = {}
    for key, _, _ in FIGURES:
        values = [v for r in runs if (v := r.figures()[key]) is not None]
        medians[key] = statistics.median(values) if values else None
    return medians


def fmt(value: float | None, pattern: str, timeout: float) -> str:
    if value is None:
        return "—"
    return f"timeout (> {timeout:g} s)" if value == INF else pattern.format(value)


def print_table(medians: dict[int, dict], args) -> None:
    header = ["children", "killed", *(label for _, label, _ in FIGURES)]
    rows = [[f"{n:,}", str(storm_size(n)),
             *(fmt(medians[n][key], pattern, args.call_timeout) for key, _, pattern in FIGURES)]
            for n in medians]
    lifecycle.print_markdown(header, rows)


def print_notes(args, results: dict[int, list[RunResult]]) -> None:
    runs = [r for rs in results.values() for r in rs]
    missing = sum(r.respawn_kernel_missing for r in runs)
    lost = sum(r.events_lost for r in runs)
    timeouts = sum(r.stats_timeouts + r.status_timeouts for r in runs)
    helpers = sorted({h for r in runs for h in r.helpers})
    clean = sum(not r.problems() for r in runs)
    clock = ("by the kernel (proc connector): the victim's exit to the exec of the replacement in "
             "its slot; all back: kill(2) to the last exec" if args.clock == "kernel" else
             f"by polling every {args.poll_ms:g} ms from kill(2){args.clock_why}")
    print("\nNotes:")
    print(f"  - medians over {max(map(len, results.values()))} runs; {clean}/{len(runs)} runs "
          "clean. Storm: 10% of the children (1 to 500) killed at once, distinct slots of a "
          "fresh daemon; p99 is nearest-rank: "
          + ", ".join(f"{lifecycle._rank_word(storm_size(n))} at {n:,}" for n in results) + ".")
    print(f"  - respawn timed {clock}"
          + (f"; {missing} replacements without events keep the polled time" if missing else "")
          + (f"; events lost in {lost} runs" if lost else "") + ".")
    print(f"  - idle CPU: user+system over {args.idle:g} s after the storm, per second (clock "
          "tick 0.01 s); RSS after that window; "
          + (f"both include helpers: {'; '.join(helpers)}." if helpers else "no helpers."))
    print(f"  - status and stats (of 'sleepers'): bigtop.client.Client on one connection, median "
          f"of {args.calls} calls after a warm-up, timeout {args.call_timeout:g} s"
          + (f"; {timeouts} calls timed out or not made after one" if timeouts else "") + ".")


def summary_line(result: RunResult, args) -> str:
    figures = result.figures()
    parts = [f"{label.split(' [')[0]} {fmt(figures[key], pattern, args.call_timeout)}"
             for key, label, pattern in FIGURES if figures[key] is not None]
    return "; ".join(parts) or "no figures"


def plain(figures: dict[str, float | None]) -> dict:
    """JSON has no infinity: a timed-out median is written as "timeout"."""
    return {k: ("timeout" if v == INF else v) for k, v in figures.items()}


def write_json(path: Path, command: str, args, results, medians) -> None:
    document = {
        "command": command,
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version()},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "p99_method": "nearest rank",
        "respawn_clock": ("kernel: proc connector, victim exit -> replacement exec"
                          if args.clock == "kernel" else "poll" + args.clock_why),
        "children": {str(n): {"runs": [{**asdict(r), "figures": plain(r.figures()),
                                        "problems": r.problems()} for r in results[n]],
                              "median": plain(medians[n])} for n in medians},
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# --------------------------------------------------------------------------
# The plot: small multiples, hand-written SVG (no plotting library needed).

PANEL_W, PANEL_H, PANEL_COLUMNS, HEADER_H = 300, 190, 3, 48
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def nice_axis(vmax: float) -> tuple[float, float]:
    """(step, top) of a linear axis from 0: 1, 2, 2.5 or 5 times a power of 10,
    three to five ticks, some room above the highest point for its label."""
    if not vmax > 0:
        return 0.25, 1.0
    magnitude = 10 ** math.floor(math.log10(vmax / 4))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude * 4 >= vmax)
    return step, step * math.ceil(vmax * 1.1 / step)


def short(value: float) -> str:
    """Three significant digits or so, for a value written beside its point."""
    for limit, pattern in ((100, "{:,.0f}"), (10, "{:.1f}"), (1, "{:.2f}"), (0.01, "{:.3f}")):
        if value >= limit:
            return pattern.format(value)
    return f"{value:.2g}"


def svg_text(x: float, y: float, text: str, anchor: str = "middle", size: int = 10,
             extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"'
            f'{extra}>{escape(text)}</text>')


Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


def place_label(x: float, y: float, text: str, taken: list[Box], line: list[tuple[float, float]],
                plot: Box) -> tuple[float, float]:
    """Where a point's value is written (start and baseline): the first
    place beside it, right then left, above then below then higher, that
    stays in the plot and clears the line and what is already written."""
    width = 6 * len(text)  # font-size 10, about 6 px a character
    for dx, dy in itertools.product((4, -4 - width), (-6, 14, -20)):
        box = (x + dx, y + dy - 9, x + dx + width, y + dy + 1)
        inside = plot[0] <= box[0] and box[2] <= plot[2] and plot[1] <= box[1] and box[3] <= plot[3]
        crossed = any(box[0] <= x1 + (x2 - x1) * t / 50 <= box[2]
                      and box[1] <= y1 + (y2 - y1) * t / 50 <= box[3]
                      for (x1, y1), (x2, y2) in itertools.pairwise(line) for t in range(51))
        clash = any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                    for b in taken)
        if inside and not crossed and not clash:
            taken.append(box)
            return box[0], y + dy
    return x + 4, y - 6


def svg_panel(x0: float, y0: float, title: str, points: list[tuple[int, float | None]],
              span: tuple[float, float]) -> list[str]:
    """One figure against log10(children): axes, ticks, polyline, values."""
    left, right, top, bottom = x0 + 50, x0 + PANEL_W - 20, y0 + 30, y0 + PANEL_H - 28
    (lo, hi), grey = span, ' fill="#555"'
    shown = [(n, v) for n, v in points if v is not None and v != INF]
    step, ymax = nice_axis(max((v for _, v in shown), default=0.0))

    def sx(n: int) -> float:
        return left + 12 + (math.log10(n) - lo) / (hi - lo) * (right - left - 48)

    def sy(v: float) -> float:
        return bottom - v / ymax * (bottom - top)

    out = [svg_text(x0 + PANEL_W / 2, y0 + 18, title, size=13, extra=' font-weight="bold"')]
    for k in range(round(ymax / step) + 1):
        y = sy(k * step)
        out.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" '
                   'stroke="#e5e5e5"/>')
        out.append(svg_text(left - 5, y + 4, f"{k * step:g}", "end", extra=grey))
    out.append(f'<polyline points="{left:.1f},{top:.1f} {left:.1f},{bottom:.1f} '
               f'{right:.1f},{bottom:.1f}" fill="none" stroke="#333"/>')
    for n, _ in points:
        out.append(f'<line x1="{sx(n):.1f}" y1="{bottom:.1f}" x2="{sx(n):.1f}" '
                   f'y2="{bottom + 4:.1f}" stroke="#333"/>')
        label = f"{n / 1000:g}k" if n >= 1000 else str(n)
        out.append(svg_text(sx(n), bottom + 16, label, extra=grey))
    if len(shown) > 1:
        line = " ".join(f"{sx(n):.1f},{sy(v):.1f}" for n, v in shown)
        out.append(f'<polyline points="{line}" fill="none" stroke="#1f6feb" '
                   'stroke-width="1.5"/>')
    pixels = [(sx(n), sy(v)) for n, v in shown]
    taken: list[Box] = [(x - 3, y - 3, x + 3, y + 3) for x, y in pixels]
    for n in (n for n, v in points if v == INF):  # written at the top, right-aligned
        taken.append((sx(n) - 42, top, sx(n), top + 11))
        out.append(svg_text(sx(n), top + 10, "timeout", "end", extra=' fill="#cf222e"'))
    for (x, y), (_, v) in zip(pixels, shown, strict=True):
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f6feb"/>')
        tx, ty = place_label(x, y, short(v), taken, pixels, (left + 2, top - 14, x0 + PANEL_W - 2,
                                                            bottom - 2))
        out.append(svg_text(tx, ty, short(v), "start"))
    return out


def write_svg(path: Path, medians: dict[int, dict], args, runs: int) -> None:
    """One panel per figure, PANEL_COLUMNS a row, 900 px wide: white
    background, plain fonts, no date, so the same figures give the same file."""
    ns = sorted(medians)
    lo, hi = math.log10(ns[0]), math.log10(ns[-1])
    if hi - lo < 0.1:
        lo, hi = lo - 0.5, hi + 0.5
    rows = math.ceil(len(FIGURES) / PANEL_COLUMNS)
    width, height = PANEL_COLUMNS * PANEL_W, HEADER_H + rows * PANEL_H
    subtitle = (f"x: children of one watcher (log scale); medians of {runs} run"
                f"{'s' if runs > 1 else ''}; respawn: 10% of the children (1 to 500) killed "
                f"at once; idle CPU over {args.idle:g} s")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" {FONT}>',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           svg_text(12, 20, "bigtop: costs by number of children", "start", 15,
                    ' font-weight="bold"'),
           svg_text(12, 38, subtitle, "start", 11, ' fill="#555"')]
    for i, (key, label, _) in enumerate(FIGURES):
        x0, y0 = (i % PANEL_COLUMNS) * PANEL_W, HEADER_H + (i // PANEL_COLUMNS) * PANEL_H
        out += svg_panel(x0, y0, label, [(n, medians[n][key]) for n in ns], (lo, hi))
    out.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


# --------------------------------------------------------------------------
# Main.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Scaling benchmark: bigtop's start, kill-storm respawn, idle CPU, RSS "
                    "and status/stats latency against the number of children.")
    add, default = parser.add_argument, " (default: %(default)s)"
    add("--children", default=DEFAULT_CHILDREN, metavar="N,N,...",
        help="children counts to measure, comma-separated" + default)
    add("--runs", type=int, default=3, help="runs per count; figures are medians" + default)
    add("--idle", type=float, default=5.0, metavar="S",
        help="idle window for the CPU figure, seconds" + default)
    add("--calls", type=int, default=20, metavar="K",
        help="timed status and stats calls each" + default)
    add("--call-timeout", type=float, default=10.0, metavar="S",
        help="a status or stats call slower than this is a timeout" + default)
    add("--respawn-clock", dest="clock", default="auto", choices=("auto", "kernel", "poll"),
        help="time replacements by the proc connector's exit and exec events (kernel: needs "
             "root), by polling (poll), or the first that works (auto, the default)")
    add("--poll-ms", type=float, default=5.0, metavar="MS",
        help="scan the children every MS milliseconds" + default)
    add("--start-timeout", type=float, default=120.0, metavar="S",
        help="longest wait for N children to run" + default)
    add("--respawn-timeout", type=float, default=60.0, metavar="S",
        help="longest wait for a storm's replacements" + default)
    add("--seed", type=int, default=None, help="seed for choosing the victims")
    add("--json", metavar="FILE", type=Path, help="also write raw and median figures as JSON")
    add("--svg", metavar="PATH", type=Path, default=DEFAULT_SVG,
        help="where to write the plot (default: docs/img/scaling.svg)")
    add("--no-svg", dest="svg", action="store_const", const=None, help="write no plot")
    args = parser.parse_args(argv)
    try:
        args.children = sorted({int(n) for n in args.children.split(",") if n.strip()})
    except ValueError:
        parser.error("--children takes comma-separated whole numbers")
    if not args.children or min(args.children) < 1:
        parser.error("--children must name positive counts")
    if min(args.runs, args.calls) < 1 or min(args.idle, args.call_timeout, args.poll_ms) <= 0:
        parser.error("--runs, --calls, --idle, --call-timeout and --poll-ms must be positive")
    if args.seed is None:
        args.seed = random.randrange(2**32)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(sys.orig_argv)
    if psutil is None:
        sys.exit(f"psutil is not importable by {sys.executable}; run with .venv/bin/python")
    if why := BIGTOP.unavailable():
        sys.exit(f"bigtop: {why}")
    print(f"command: {command}")
    print(f"host: {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
          f"{platform.python_version()}, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    connector = lifecycle.open_connector(args)
    print(f"params: children={','.join(map(str, args.children))} runs={args.runs} "
          f"idle={args.idle:g}s calls={args.calls} call_timeout={args.call_timeout:g}s "
          f"respawn_clock={args.clock}{args.clock_why} seed={args.seed}")
    if not lifecycle.become_subreaper():
        print("warning: could not become a child subreaper; leftover detection relies "
              "on a snapshot taken before each stop")
    signal.signal(signal.SIGTERM, lifecycle._terminate)
    signal.signal(signal.SIGHUP, lifecycle._terminate)

    rng = random.Random(args.seed)
    results: dict[int, list[RunResult]] = {n: [] for n in args.children}
    interrupted = lifecycle.run_all(
        args.runs, lambda run: args.children, lambda n: f"{n:,} children",
        lambda n, run: measure_once(n, run, args, rng, connector),
        lambda result: summary_line(result, args), results, connector)

    results = {n: rs for n, rs in results.items() if rs}
    medians = {n: median_figures(rs) for n, rs in results.items()}
    print(f"\ncommand: {command}\n")
    if medians:
        print_table(medians, args)
        print_notes(args, results)
    if args.json:
        write_json(args.json, command, args, results, medians)
        print(f"\nwrote {args.json}")
    if args.svg and medians:
        write_svg(args.svg, medians, args, max(len(rs) for rs in results.values()))
        print(f"wrote {args.svg}")
    problems = any(r.problems() for rs in results.values() for r in rs)
    return 130 if interrupted else (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
