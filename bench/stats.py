"""Statistics benchmark: bigtop's sampler against Circus 0.19's circusd-stats.

Each system runs its daemon from the same Circus INI file (ipc:// endpoints
in a private temp dir, ``stats_endpoint`` set, so Circus starts
circusd-stats) with one watcher of N ``sleep`` children, for N in --sizes
(default 100 and 1,000). Once every child runs:

  idle      CPU (user+system) of the daemon and its helper processes
            (Circus: circusd + circusd-stats; bigtop: bigtopd, whose
            sampler is a thread) over --idle seconds, nobody subscribed;
  latency   (bigtop) a cheap command (``numwatchers``) every 20 ms for
            --latency seconds, nobody subscribed: the loop's baseline;
  stats     a subscriber on the stats endpoint (``stat.``, as circus-top),
            in this process, reading everything; after a warm-up, the same
            CPU figure over --seconds, and the rounds it received;
  latency   (bigtop) the same paced commands while rounds run: does
            sampling on the thread delay the loop?

CPU figures are per minute. For bigtop, each round's own timing (wall and
thread CPU) is read from ``stat.circus`` (``sampler.last_round``).

Systems are interleaved per run; figures are medians over --runs runs.
Daemons are always stopped (SIGTERM, then SIGKILL) and no child may outlive
them.

Run from the repo root:  .venv/bin/python bench/stats.py [--runs 3] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _anchors  # noqa: E402  (sibling modules; path set just above)
import lifecycle  # noqa: E402
from lifecycle import (  # noqa: E402
    Daemon,
    MeasurementError,
    SleepChildren,
    _terminate,
    become_subreaper,
    environ,
    fmt,
    helper_processes,
    print_markdown,
    print_targets,
    psutil,
    ratio,
    wait_for_sleepers,
)

REPO_DIR = _anchors.REPO_DIR
REPO_BIN = REPO_DIR / ".venv" / "bin"
SLEEP_ARG = "100000"
START_TIMEOUT_S = 120.0
FIRST_ROUND_TIMEOUT_S = 60.0
WARMUP_S = 3.0  # after the first complete round, before the CPU window
PACE_S = 0.02  # between two latency probes


@dataclass(frozen=True)
class System:
    key: str
    label: str
    daemon: Path
    private_runtime_dir: bool = False

    def unavailable(self) -> str | None:
        if not os.access(self.daemon, os.X_OK):
            return f"not available ({self.daemon} does not exist)"
        return None


SYSTEMS = {
    "bigtop": System("bigtop", "bigtop", REPO_BIN / "bigtopd", private_runtime_dir=True),
    "circus": System("circus", "Circus 0.19", _anchors.anchor_bin("circusd")),
}


def write_config(workdir: Path, children: int) -> Path:
    config = workdir / "circus.ini"
    config.write_text(textwrap.dedent(f"""\
        [circus]
        endpoint = ipc://{workdir}/ctl.sock
        pubsub_endpoint = ipc://{workdir}/pub.sock
        stats_endpoint = ipc://{workdir}/stats.sock

        [watcher:sleepers]
        cmd = sleep {SLEEP_ARG}
        numprocesses = {children}
        """))
    return config


# --------------------------------------------------------------------------
# The subscriber: reads every stat.* message, counts rounds.


class Subscriber(threading.Thread):
    """A SUB socket on the stats endpoint, read on a thread of this process
    (its CPU is not counted: it is the client's)."""

    def __init__(self, endpoint: str):
        super().__init__(daemon=True)
        import zmq

        self.zmq = zmq
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.rcvhwm = 100_000
        self.sock.connect(endpoint)
        self.sock.subscribe(b"stat.")
        self.running = True
        self.lock = threading.Lock()
        self.messages = 0
        self.process_messages = 0  # stat.sleepers.<pid>
        self.rounds = 0  # stat.sleepers (each round's last message for the watcher)
        self.samplers: list[dict] = []  # bigtop: stat.circus's sampler.last_round
        self.skipped = 0

    def run(self) -> None:
        while self.running:
            if not self.sock.poll(100):
                continue
            topic, payload = self.sock.recv_multipart()
            with self.lock:
                self.messages += 1
                if topic.startswith(b"stat.sleepers."):
                    self.process_messages += 1
                elif topic == b"stat.sleepers":
                    self.rounds += 1
                elif topic == b"stat.circus":
                    sampler = json.loads(payload).get("sampler")
                    if sampler:
                        self.samplers.append(sampler["last_round"])
                        self.skipped = sampler["skipped"]
        self.sock.close(linger=0)

    def counts(self) -> tuple[int, int, int, int]:
        with self.lock:
            return self.messages, self.process_messages, self.rounds, len(self.samplers)

    def stop(self) -> None:
        self.running = False
        self.join(5)


# --------------------------------------------------------------------------
# One run of one system at one size.


@dataclass
class RunResult:
    system: str
    children: int
    run: int
    idle_cpu_min: float | None = None      # CPU s per minute, nobody subscribed
    stats_cpu_min: float | None = None     # CPU s per minute, one subscriber
    daemon_cpu_min: float | None = None    # the daemon alone, subscribed
    rounds_per_s: float | None = None      # complete rounds received
    process_msgs_per_s: float | None = None
    round_ms: list[float] = field(default_factory=list)      # bigtop: wall, per round
    round_cpu_ms: list[float] = field(default_factory=list)  # bigtop: thread CPU
    skipped: int | None = None             # bigtop: ticks skipped (round still running)
    latency_idle_ms: list[float] = field(default_factory=list)
    latency_stats_ms: list[float] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    stop_killed: bool = False
    survivors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = list(self.errors)
        if self.stop_killed:
            found.append("daemon ignored SIGTERM and was killed")
        if self.survivors:
            found.append(f"{len(self.survivors)} processes survived the daemon: "
                         + "; ".join(self.survivors[:3]))
        return found


def measure_once(system: System, children: int, run: int, args) -> RunResult:
    result = RunResult(system=system.key, children=children, run=run)
    workdir = Path(tempfile.mkdtemp(prefix=f"bigtop-stats-{system.key}-"))
    env = {}
    if system.private_runtime_dir:
        runtime = workdir / "runtime"
        runtime.mkdir(mode=0o700)
        env["BIGTOP_RUNTIME_DIR"] = str(runtime)
    try:
        config = write_config(workdir, children)
        with environ(env), Daemon([str(system.daemon), str(config)], workdir) as daemon:
            try:
                measure(system, daemon, workdir, children, args, result)
            except MeasurementError as exc:
                result.errors.append(str(exc))
            except psutil.NoSuchProcess:
                result.errors.append("daemon vanished:\n" + daemon.log_tail())
            stop = daemon.stop()
            result.stop_killed, result.survivors = stop.killed, stop.survivors
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def measure(system: System, daemon: Daemon, workdir: Path, children: int, args,
            result: RunResult) -> None:
    tracker = SleepChildren(daemon.pid)
    if wait_for_sleepers(daemon, tracker, children, time.monotonic() + START_TIMEOUT_S,
                         0.05) is None:
        raise MeasurementError(f"only {len(tracker.scan())} of {children} sleep children "
                               f"after {START_TIMEOUT_S:g} s")
    main = psutil.Process(daemon.pid)
    # Circus starts circusd-stats as a watcher of circusd, with the others.
    deadline = time.monotonic() + 30
    helpers = helper_processes(main)
    while system.key == "circus" and not helpers and time.monotonic() < deadline:
        time.sleep(0.1)
        helpers = helper_processes(main)
    result.helpers = [lifecycle._describe(p) for p in helpers]
    procs = [main, *helpers]
    endpoint = f"ipc://{workdir}/ctl.sock"
    time.sleep(1.0)  # let the start settle

    def cpu() -> tuple[float, float]:
        times = [p.cpu_times() for p in procs]
        return sum(t.user + t.system for t in times), times[0].user + times[0].system

    before, _ = cpu()
    time.sleep(args.idle)
    daemon.check_alive()
    result.idle_cpu_min = (cpu()[0] - before) * 60 / args.idle
    if system.key == "bigtop":
        result.latency_idle_ms = probe_latency(endpoint, args.latency)

    subscriber = Subscriber(f"ipc://{workdir}/stats.sock")
    subscriber.start()
    try:
        deadline = time.monotonic() + FIRST_ROUND_TIMEOUT_S
        while subscriber.counts()[2] < 1:
            daemon.check_alive()
            if time.monotonic() > deadline:
                raise MeasurementError(f"no complete round in {FIRST_ROUND_TIMEOUT_S:g} s")
            time.sleep(0.05)
        time.sleep(WARMUP_S)
        (_, procs0, rounds0, samplers0), (total0, own0) = subscriber.counts(), cpu()
        started = time.monotonic()
        time.sleep(args.seconds)
        (_, procs1, rounds1, samplers1), (total1, own1) = subscriber.counts(), cpu()
        elapsed = time.monotonic() - started
        daemon.check_alive()
        result.stats_cpu_min = (total1 - total0) * 60 / elapsed
        result.daemon_cpu_min = (own1 - own0) * 60 / elapsed
        result.rounds_per_s = (rounds1 - rounds0) / elapsed
        result.process_msgs_per_s = (procs1 - procs0) / elapsed
        with subscriber.lock:
            window = subscriber.samplers[samplers0:samplers1]
            result.skipped = subscriber.skipped if window else None
        result.round_ms = [r["ms"] for r in window]
        result.round_cpu_ms = [r["cpu_ms"] for r in window]
        if system.key == "bigtop":
            result.latency_stats_ms = probe_latency(endpoint, args.latency)
    finally:
        subscriber.stop()


def probe_latency(endpoint: str, seconds: float) -> list[float]:
    """Round trips of ``numwatchers``, one every PACE_S, for ``seconds``."""
    sys.path.insert(0, str(REPO_DIR))
    from bigtop.client import Client

    out = []
    with Client(endpoint, timeout=10) as client:
        client.call("numwatchers")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            client.call("numwatchers")
            out.append((time.perf_counter() - started) * 1000)
            time.sleep(PACE_S)
    return out


# --------------------------------------------------------------------------
# Reporting.


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def median_of(runs: list[RunResult], get) -> float | None:
    values = [v for r in runs if (v := get(r)) is not None]
    return statistics.median(values) if values else None


# (key, label, format, getter over one run); only for sizes measured
FIGURES = [
    ("stats_cpu_min", "CPU per minute, one subscriber [s]", "{:.2f}",
     lambda r: r.stats_cpu_min),
    ("idle_cpu_min", "CPU per minute, nobody subscribed [s]", "{:.2f}",
     lambda r: r.idle_cpu_min),
    ("daemon_cpu_min", "  of which the daemon alone, subscribed [s]", "{:.2f}",
     lambda r: r.daemon_cpu_min),
    ("rounds_per_s", "complete rounds received per second", "{:.2f}",
     lambda r: r.rounds_per_s),
    ("process_msgs_per_s", "per-process messages per second", "{:,.0f}",
     lambda r: r.process_msgs_per_s),
    ("round_ms_median", "sampling round, wall, median [ms]", "{:.1f}",
     lambda r: statistics.median(r.round_ms) if r.round_ms else None),
    ("round_ms_max", "sampling round, wall, max [ms]", "{:.1f}",
     lambda r: max(r.round_ms) if r.round_ms else None),
    ("round_cpu_ms_median", "sampling round, thread CPU, median [ms]", "{:.1f}",
     lambda r: statistics.median(r.round_cpu_ms) if r.round_cpu_ms else None),
    ("latency_idle_p50", "command round trip, no rounds, median [ms]", "{:.2f}",
     lambda r: pct(r.latency_idle_ms, 50)),
    ("latency_idle_p99", "command round trip, no rounds, p99 [ms]", "{:.2f}",
     lambda r: pct(r.latency_idle_ms, 99)),
    ("latency_stats_p50", "command round trip, rounds running, median [ms]", "{:.2f}",
     lambda r: pct(r.latency_stats_ms, 50)),
    ("latency_stats_p99", "command round trip, rounds running, p99 [ms]", "{:.2f}",
     lambda r: pct(r.latency_stats_ms, 99)),
    ("latency_stats_max", "command round trip, rounds running, max [ms]", "{:.2f}",
     lambda r: max(r.latency_stats_ms) if r.latency_stats_ms else None),
]


def medians(results: dict[tuple[str, int], list[RunResult]]) -> dict[tuple[str, int], dict]:
    return {key: {name: median_of(runs, get) for name, _, _, get in FIGURES}
            for key, runs in results.items()}


def print_table(columns: list[str], sizes: list[int], med: dict) -> None:
    header = ["figure", *(SYSTEMS[c].label for c in columns), "bigtop / Circus"]
    rows = []
    for size in sizes:
        for name, label, pattern, _ in FIGURES:
            values = {c: med.get((c, size), {}).get(name) for c in columns}
            if all(v is None for v in values.values()):
                continue
            rows.append([f"{size:,} processes: {label.strip()}",
                         *(fmt(values[c], pattern) for c in columns),
                         ratio(values.get("bigtop"), values.get("circus"))])
    print_markdown(header, rows)


def evaluate_targets(med: dict, args) -> list[dict]:
    targets = []

    def add(name: str, passed: bool | None, detail: str) -> None:
        targets.append({"target": name, "pass": passed, "detail": detail})

    name = "CPU at 100 processes at most a third of Circus's (daemon + sampler, subscribed)"
    big = med.get(("bigtop", 100), {}).get("stats_cpu_min")
    circus = med.get(("circus", 100), {}).get("stats_cpu_min")
    if big is None or circus is None:
        add(name, None, "not measured for both systems at 100 processes")
    else:
        add(name, big <= circus / 3,
            f"{big:.2f} s/min vs Circus {circus:.2f} s/min: {ratio(big, circus)}, "
            f"limit 0.33x")

    name = "1,000 processes sampled within the 1 s interval"
    figures = med.get(("bigtop", 1000))
    if figures is None or figures.get("round_ms_max") is None:
        add(name, None, "bigtop not measured at 1,000 processes")
    else:
        worst = max(r for run in RESULTS.get(("bigtop", 1000), []) for r in run.round_ms)
        skipped = sum(run.skipped or 0 for run in RESULTS.get(("bigtop", 1000), []))
        add(name, worst < 1000 and skipped == 0,
            f"round median {figures['round_ms_median']:.1f} ms, slowest of all runs "
            f"{worst:.1f} ms, {skipped} ticks skipped; {figures['rounds_per_s']:.2f} rounds/s "
            f"received")
    return targets


RESULTS: dict[tuple[str, int], list[RunResult]] = {}


def print_notes(args, columns: list[str]) -> None:
    print("\nNotes:")
    print(f"  - medians over {args.runs} runs; CPU = user+system of the daemon and its "
          f"helpers over {args.seconds:g} s (subscribed) and {args.idle:g} s (nobody "
          "subscribed), scaled to a minute; clock tick 10 ms.")
    print("  - the subscriber reads every stat.* message in the benchmark's process (not "
          "counted); a round counts when its stat.sleepers aggregate arrives.")
    print(f"  - latency: `numwatchers` every {PACE_S * 1000:.0f} ms for {args.latency:g} s "
          "with bigtop's Client, before subscribing and while rounds run.")
    for key in columns:
        runs = [r for (k, _), rs in RESULTS.items() if k == key for r in rs]
        clean = sum(1 for r in runs if not r.problems())
        helpers = sorted({lifecycle._helper_name(h) for r in runs for h in r.helpers})
        extra = f"; helpers counted: {', '.join(helpers)}" if helpers else \
            "; no helper process (bigtop's sampler is a thread of bigtopd)"
        print(f"  - {SYSTEMS[key].label}: {clean}/{len(runs)} runs clean{extra}.")


# --------------------------------------------------------------------------
# Main.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Statistics benchmark: bigtop's sampler vs Circus 0.19's circusd-stats.")
    parser.add_argument("--only", default=",".join(SYSTEMS),
                        help="comma-separated subset of: %(default)s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000",
                        help="numbers of sleep processes, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="CPU window with a subscriber")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="CPU window with nobody subscribed")
    parser.add_argument("--latency", type=float, default=5.0,
                        help="seconds of paced command round trips (bigtop)")
    parser.add_argument("--json", metavar="FILE", type=Path,
                        help="also write raw and median figures as JSON")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if not args.only or any(s not in SYSTEMS for s in args.only):
        parser.error(f"--only takes a subset of {','.join(SYSTEMS)}")
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes integers")
    if min([args.runs, *args.sizes]) < 1 or min(args.seconds, args.idle, args.latency) <= 0:
        parser.error("--runs, --sizes, --seconds, --idle and --latency must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = os.environ.get(lifecycle.ORIG_COMMAND_ENV) or shlex.join(sys.orig_argv)
    if psutil is None:
        sys.exit(f"psutil is not importable by {sys.executable}; run with {REPO_BIN}/python")
    versions = _anchors.ensure_anchor_venv()
    print(f"command: {command}")
    print(f"host: {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
          f"{platform.python_version()} (bench), load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("anchors: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"params: sizes={args.sizes} seconds={args.seconds:g} idle={args.idle:g} "
          f"latency={args.latency:g} runs={args.runs}")
    if not become_subreaper():
        print("warning: could not become a child subreaper")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    unavailable = {k: why for k in args.only if (why := SYSTEMS[k].unavailable())}
    for key, why in unavailable.items():
        print(f"{SYSTEMS[key].label}: {why}")
    columns = [k for k in SYSTEMS if k in args.only and k not in unavailable]
    interrupted = False
    try:
        for run in range(args.runs):
            for size in args.sizes:
                order = columns[run % len(columns):] + columns[:run % len(columns)]
                for key in order:
                    print(f"[run {run + 1}/{args.runs}] {SYSTEMS[key].label}, {size:,} "
                          "processes", flush=True)
                    result = measure_once(SYSTEMS[key], size, run, args)
                    RESULTS.setdefault((key, size), []).append(result)
                    print(f"    {summary_line(result)}", flush=True)
                    for problem in result.problems():
                        print(f"    PROBLEM: {problem}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: daemons stopped, reporting what was measured")
        interrupted = True

    med = medians(RESULTS)
    targets = evaluate_targets(med, args)
    print(f"\ncommand: {command}\n")
    if columns:
        print_table(columns, args.sizes, med)
    print_targets(targets)
    print_notes(args, columns)
    if args.json:
        document = {
            "command": command,
            "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                     "python": platform.python_version(), "loadavg": os.getloadavg()},
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "anchor_versions": versions,
            "runs": [{**asdict(r), "problems": r.problems()}
                     for runs in RESULTS.values() for r in runs],
            "median": {f"{k}/{n}": v for (k, n), v in med.items()},
            "targets": targets,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    problems = any(r.problems() for runs in RESULTS.values() for r in runs)
    return 130 if interrupted else (1 if problems else 0)


def summary_line(r: RunResult) -> str:
    parts = []
    if r.stats_cpu_min is not None:
        parts.append(f"CPU {r.stats_cpu_min:.2f} s/min subscribed, "
                     f"{r.idle_cpu_min:.2f} s/min idle")
    if r.rounds_per_s is not None:
        parts.append(f"{r.rounds_per_s:.2f} rounds/s")
    if r.round_ms:
        parts.append(f"round {statistics.median(r.round_ms):.1f} ms "
                     f"(max {max(r.round_ms):.1f}, CPU {statistics.median(r.round_cpu_ms):.1f})")
    if r.latency_stats_ms:
        parts.append(f"command p99 {pct(r.latency_idle_ms, 99):.2f} -> "
                     f"{pct(r.latency_stats_ms, 99):.2f} ms")
    return "; ".join(parts) or "no figures"


if __name__ == "__main__":
    sys.exit(main())
