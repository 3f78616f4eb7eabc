"""Child-output capture benchmark: bigtop against Circus 0.19 and supervisord 4.3.

One child writes --megabytes (default 1000, 1 MB = 10^6 bytes) of numbered
lines of --line-bytes (default 100) to its stdout in write(2) calls of --write-bytes (default 8192,
what Python's print() flushes into a pipe; the figures depend strongly on it:
with 100-byte writes the child itself becomes the limit), then sleeps (so it
is never restarted). The
daemon under test captures that output to a plain log file:

  Circus, bigtop  ``stdout_stream.class = FileStream`` (the same Circus INI
                  file for both), and in the "timestamps" variant
                  ``stdout_stream.time_format = %Y-%m-%d %H:%M:%S``;
  supervisord     ``stdout_logfile`` with no rotation; it has no per-line
                  timestamp option, so that variant is n/a for it.

The child waits for a "go" file, so the daemon has started and settled
before anything is written. Elapsed time runs from the child's first write
(it records ``time.monotonic()``, a system-wide clock on Linux) until the log
file holds all the bytes: exactly the child's output for a plain sink; for
timestamps (a bigger file), until the child has finished writing and the
file has stopped growing for 1 s, counted up to its last growth.

  MB/s        child output MB / elapsed;
  CPU s/GB    user+system CPU seconds of the daemon (all its threads) and of
              any helper process it runs (not the writer) over the transfer,
              per GB of child output.

The floors are the same writer piped into a bare copy, in the same run: a
Python loop (1 MiB reads, unbuffered writes to a file), and splice(2)
from the pipe to the file, where the kernel moves the bytes and the
process never touches them (the machine's limit; ``bigtop / splice``).

Systems are interleaved per run; figures are medians over --runs runs.
Daemons and children are always stopped and the big files deleted.

Run from the repo root:  .venv/bin/python bench/logs.py [--only circus,supervisord]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _anchors  # noqa: E402  (sibling modules; path set just above)
import lifecycle  # noqa: E402
from lifecycle import (  # noqa: E402
    Daemon,
    MeasurementError,
    _terminate,
    become_subreaper,
    environ,
    fmt,
    print_targets,
    psutil,
    ratio,
    supervisord_header,
)

REPO_DIR = _anchors.REPO_DIR
MB = 1_000_000
GB = 1_000_000_000
MIN_LINE_BYTES = 12      # the writer's line: a space, 9 digits, a newline, and 'x's
START_TIMEOUT_S = 60.0   # daemon launch -> writer child running
SETTLE_S = 0.5           # writer running -> "go" (daemon start-up CPU excluded)
STALL_S = 10.0           # no growth of the log for this long: give up
QUIET_S = 1.0            # timestamps: no growth for this long after the child is done
MIN_RATE_MB_S = 2.0      # overall budget: 30 s + megabytes / this
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
VARIANTS = {"plain": "plain file", "timestamps": "per-line timestamps"}
TARGET_SPEED = 2.0       # bigtop MB/s >= 2x supervisord's
TARGET_CPU = 1 / 3       # bigtop CPU/GB < 1/3 of supervisord's
TARGET_FLOOR = 0.8       # bigtop MB/s >= 80% of the faster floor's
BIGTOP_MISSING = "not available (stream classes not implemented)"

# --------------------------------------------------------------------------
# The child. It runs in the bench's interpreter, standard library only.

WRITER_SCRIPT = r'''
import os, sys, time

go, started, done, linger = sys.argv[1:5]
total, chunk, line = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
# 10,000 numbered lines of ``line`` bytes: 'x's, a space, the number, a newline.
block = b"".join(b"x" * (line - 11) + b" %09d\n" % i for i in range(10_000))
while not os.path.exists(go):
    time.sleep(0.005)
with open(started, "w") as f:
    f.write(repr(time.monotonic()))
# One write(2) per ``chunk`` bytes, as a program's stdio buffer would flush.
remaining, whole = total, memoryview(block)
while remaining:
    view = whole[:min(remaining, len(block))]
    remaining -= len(view)
    for offset in range(0, len(view), chunk):
        piece = view[offset:offset + chunk]
        while piece:
            piece = piece[os.write(1, piece):]
with open(done + ".tmp", "w") as f:
    f.write(repr(time.monotonic()))
os.rename(done + ".tmp", done)
if linger == "sleep":
    time.sleep(10**6)
'''

# The floor: a bare Python loop copying its stdin to a file, large reads.
FLOOR_READER = r'''
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
while True:
    data = os.read(0, 1 << 20)
    if not data:
        break
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
os.close(fd)
print(repr(time.monotonic()))
'''

# The machine's floor: the kernel moves the bytes from the pipe to the file
# (splice(2)), no copy through the process.
FLOOR_SPLICE = r'''
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
while os.splice(0, fd, 1 << 20):
    pass
os.close(fd)
print(repr(time.monotonic()))
'''
FLOORS = {"floor": FLOOR_READER, "splice": FLOOR_SPLICE}


class Paths:
    """The files of one measurement, in a private temp dir."""

    def __init__(self, workdir: Path, line_bytes: int):
        self.workdir = workdir
        self.line_bytes = line_bytes
        self.writer = workdir / "writer.py"
        self.go = workdir / "go"
        self.started = workdir / "started"
        self.done = workdir / "done"
        self.log = workdir / "out.log"
        self.writer.write_text(WRITER_SCRIPT)

    def writer_argv(self, total: int, chunk: int, linger: str) -> list[str]:
        return [sys.executable, str(self.writer), str(self.go), str(self.started),
                str(self.done), linger, str(total), str(chunk), str(self.line_bytes)]


# --------------------------------------------------------------------------
# The systems under test (executables and labels from lifecycle.py).


def circus_ini(paths: Paths, total: int, chunk: int, variant: str) -> Path:
    # No stats_endpoint: with it Circus 0.19 starts circusd-stats.
    stamp = f"stdout_stream.time_format = {TIME_FORMAT}\n" if variant == "timestamps" else ""
    config = paths.workdir / "circus.ini"
    config.write_text(textwrap.dedent(f"""\
        [circus]
        endpoint = ipc://{paths.workdir}/endpoint.sock
        pubsub_endpoint = ipc://{paths.workdir}/pubsub.sock

        [watcher:writer]
        cmd = {shlex.join(paths.writer_argv(total, chunk, "sleep"))}
        numprocesses = 1
        stdout_stream.class = FileStream
        stdout_stream.filename = {paths.log}
        """) + stamp)
    return config


def supervisord_conf(paths: Paths, total: int, chunk: int, variant: str) -> Path:
    if variant != "plain":
        raise ValueError("supervisord has no per-line timestamps")
    workdir = paths.workdir
    config = workdir / "supervisord.conf"
    config.write_text(supervisord_header(workdir) + "\n" + textwrap.dedent(f"""\
        [program:writer]
        command = {shlex.join(paths.writer_argv(total, chunk, "sleep"))}
        startsecs = 0
        autorestart = false
        redirect_stderr = false
        stdout_logfile = {paths.log}
        stdout_logfile_maxbytes = 0
        stderr_logfile = {workdir}/err.log
        """))
    return config


def daemon_argv(key: str, config: Path) -> list[str]:
    return lifecycle.SYSTEMS[key].argv(config)


def daemon_env(key: str, workdir: Path) -> dict[str, str]:
    if key != "bigtop":
        return {}
    runtime = workdir / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {"BIGTOP_RUNTIME_DIR": str(runtime)}


def supports(key: str, variant: str) -> bool:
    return not (key == "supervisord" and variant == "timestamps")


@dataclass
class Result:
    system: str
    variant: str
    run: int
    mb_s: float | None = None
    cpu_s_per_gb: float | None = None
    elapsed_s: float | None = None
    log_bytes: int | None = None
    daemon_cpu_s: float | None = None
    helpers: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = list(self.errors)
        if self.survivors:
            found.append(f"{len(self.survivors)} processes survived the daemon: "
                         + "; ".join(self.survivors[:3]))
        return found


def find_writer(daemon: Daemon, paths: Paths, timeout: float):
    """The writer child (psutil.Process), once it runs the script."""
    deadline = time.monotonic() + timeout
    want = str(paths.writer)
    while True:
        daemon.check_alive()
        for proc in psutil.Process(daemon.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if want in proc.cmdline():
                    return proc
        if time.monotonic() > deadline:
            raise MeasurementError(f"no writer child after {timeout:g} s:\n"
                                   + daemon.log_tail())
        time.sleep(0.02)


def daemon_processes(daemon: Daemon, writer_pid: int) -> list:
    """The daemon and its helpers: every descendant but the writer."""
    main = psutil.Process(daemon.pid)
    procs = [main]
    for proc in main.children(recursive=True):
        if proc.pid != writer_pid:
            procs.append(proc)
    return procs


def cpu_seconds(proc) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def read_time(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def wait_for_log(paths: Paths, total: int, variant: str, daemon: Daemon,
                 go_at: float, budget: float) -> tuple[float, int]:
    """Poll the log until complete; return (monotonic time complete, size)."""
    last_size, last_growth = file_size(paths.log), go_at
    deadline = go_at + budget
    while True:
        time.sleep(0.002 if variant == "plain" else 0.01)
        now = time.monotonic()
        size = file_size(paths.log)
        if size != last_size:
            last_size, last_growth = size, now
        if variant == "plain" and size >= total:
            return now, size
        if variant != "plain" and size >= total and paths.done.exists() \
                and now - last_growth >= QUIET_S:
            return last_growth, size
        daemon.check_alive()
        if now - last_growth > STALL_S:
            where = "no log file" if size < 0 else f"log stuck at {size:,} bytes"
            raise MeasurementError(f"{where} after {now - go_at:.1f} s (child wrote "
                                   f"{'all' if paths.done.exists() else 'part'} of "
                                   f"{total:,} bytes)")
        if now > deadline:
            raise MeasurementError(f"log at {size:,} of {total:,} bytes after {budget:g} s")


def measure_once(key: str, variant: str, run: int, args) -> Result:
    result = Result(system=key, variant=variant, run=run)
    total = args.megabytes * MB
    workdir = Path(tempfile.mkdtemp(prefix=f"bigtop-logs-{key}-"))
    try:
        paths = Paths(workdir, args.line_bytes)
        if key == "supervisord":
            config = supervisord_conf(paths, total, args.write_bytes, variant)
        else:
            config = circus_ini(paths, total, args.write_bytes, variant)
        with environ(daemon_env(key, workdir)), \
                Daemon(daemon_argv(key, config), workdir) as daemon:
            try:
                measure_transfer(daemon, paths, total, variant, args, result)
            except MeasurementError as exc:
                result.errors.append(str(exc))
            except psutil.NoSuchProcess:
                result.errors.append("daemon vanished:\n" + daemon.log_tail())
            stop = daemon.stop()
            result.survivors = stop.survivors
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def measure_transfer(daemon: Daemon, paths: Paths, total: int, variant: str, args,
                     result: Result) -> None:
    writer = find_writer(daemon, paths, START_TIMEOUT_S)
    time.sleep(SETTLE_S)
    procs = daemon_processes(daemon, writer.pid)
    before = {p.pid: cpu_seconds(p) for p in procs}
    go_at = time.monotonic()
    paths.go.touch()
    budget = 30 + args.megabytes / MIN_RATE_MB_S
    complete_at, size = wait_for_log(paths, total, variant, daemon, go_at, budget)
    after = daemon_processes(daemon, writer.pid)
    cpu = sum(cpu_seconds(p) - before.get(p.pid, 0.0) for p in after)
    started = read_time(paths.started)
    if started is None:
        raise MeasurementError("the writer did not record its start")
    elapsed = complete_at - started
    result.elapsed_s, result.log_bytes, result.daemon_cpu_s = elapsed, size, cpu
    result.mb_s = total / MB / elapsed
    result.cpu_s_per_gb = cpu / (total / GB)
    result.helpers = [lifecycle._describe(p) for p in after[1:]]


def measure_floor(run: int, args, key: str = "floor") -> Result:
    """The writer piped into a bare copy: a Python read/write loop
    (``floor``), or splice(2) from the pipe to the file (``splice``)."""
    result = Result(system=key, variant="plain", run=run)
    total = args.megabytes * MB
    workdir = Path(tempfile.mkdtemp(prefix="bigtop-logs-floor-"))
    procs: list[subprocess.Popen] = []
    try:
        paths = Paths(workdir, args.line_bytes)
        reader = subprocess.Popen([sys.executable, "-c", FLOORS[key], str(paths.log)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(reader)
        writer = subprocess.Popen(paths.writer_argv(total, args.write_bytes, "exit"),
                                  stdout=reader.stdin)
        procs.append(writer)
        reader.stdin.close()
        time.sleep(SETTLE_S)
        paths.go.touch()
        budget = 30 + args.megabytes / MIN_RATE_MB_S
        writer.wait(budget)
        out = reader.stdout.read()
        _, status, usage = os.wait4(reader.pid, 0)
        reader.returncode = os.waitstatus_to_exitcode(status)
        started, finished = read_time(paths.started), float(out)
        size = file_size(paths.log)
        if started is None or size != total:
            raise MeasurementError(f"{key}: {size:,} of {total:,} bytes copied")
        elapsed = finished - started
        cpu = usage.ru_utime + usage.ru_stime  # whole reader life, start-up included
        result.elapsed_s, result.log_bytes, result.daemon_cpu_s = elapsed, size, cpu
        result.mb_s = total / MB / elapsed
        result.cpu_s_per_gb = cpu / (total / GB)
    except (MeasurementError, subprocess.TimeoutExpired, ValueError, OSError) as exc:
        result.errors.append(f"{key}: {exc}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------
# Reporting.

LABELS = {"bigtop": "bigtop", "circus": "Circus 0.19", "supervisord": "supervisord 4.3",
          "floor": "Python loop (floor)", "splice": "splice (floor)"}
METRICS = [  # attribute, label, format, higher is better
    ("mb_s", "MB/s", "{:,.1f}", True),
    ("cpu_s_per_gb", "daemon CPU s/GB", "{:.2f}", False),
]


def median(runs: list[Result], attr: str) -> float | None:
    values = [v for r in runs if (v := getattr(r, attr)) is not None]
    return statistics.median(values) if values else None


def medians_of(results: dict) -> dict:
    return {key: {variant: {attr: median(runs, attr) for attr, *_ in METRICS}
                  for variant, runs in by_variant.items()}
            for key, by_variant in results.items()}


def cell(key: str, variant: str, attr: str, pattern: str, medians: dict,
         notes: dict) -> str:
    if not supports(key, variant) or (key in FLOORS and variant != "plain"):
        return "n/a"
    if key in notes:
        return "n/a*"
    return fmt(medians.get(key, {}).get(variant, {}).get(attr), pattern)


def print_table(columns: list[str], medians: dict, notes: dict) -> None:
    others = [k for k in ("bigtop", "circus") if k in columns]
    header = ["figure", *(LABELS[k] for k in columns),
              *(f"{LABELS[k]} / supervisord" for k in others),
              *(["bigtop / splice"] if "bigtop" in others else [])]
    rows = []
    for variant, vlabel in VARIANTS.items():
        for attr, label, pattern, _ in METRICS:
            sup = medians.get("supervisord", {}).get("plain", {}).get(attr)
            sup = sup if variant == "plain" else None
            row = [f"{vlabel}: {label}",
                   *(cell(k, variant, attr, pattern, medians, notes) for k in columns)]
            for key in others:
                mine = None if key in notes else medians.get(key, {}).get(variant, {}).get(attr)
                row.append(ratio(mine, sup))
            if "bigtop" in others:
                mine = None if "bigtop" in notes else \
                    medians.get("bigtop", {}).get(variant, {}).get(attr)
                floor = medians.get("splice", {}).get("plain", {}).get(attr)
                row.append(ratio(mine, floor if variant == "plain" else None))
            rows.append(row)
    lifecycle.print_markdown(header, rows)


def best_floor(medians: dict, attr: str, higher: bool) -> tuple[str, float] | None:
    """The floor that did best on attr in this run: (its key, its figure)."""
    figures = [(key, value) for key in FLOORS
               if (value := medians.get(key, {}).get("plain", {}).get(attr))]
    if not figures:
        return None
    return (max if higher else min)(figures, key=lambda item: item[1])


def evaluate_targets(medians: dict, notes: dict) -> list[dict]:
    """Each target with its verdict, and where its bar lies beyond what
    the floors (a bare copy, the kernel's splice) reach in the same run,
    that fact: no reader could pass it on this machine."""
    big = medians.get("bigtop", {}).get("plain", {})
    sup = medians.get("supervisord", {}).get("plain", {}).get
    floor = best_floor(medians, "mb_s", True)
    targets = []
    for name, attr, other, factor, higher in (
        (f"plain file MB/s >= {TARGET_SPEED:g}x supervisord's", "mb_s",
         ("supervisord", sup("mb_s")), TARGET_SPEED, True),
        ("plain file CPU/GB < 1/3 of supervisord's", "cpu_s_per_gb",
         ("supervisord", sup("cpu_s_per_gb")), TARGET_CPU, False),
        (f"plain file MB/s >= {TARGET_FLOOR:.0%} of the faster floor", "mb_s",
         floor or ("floor", None), TARGET_FLOOR, True),
    ):
        mine, (whose, theirs) = big.get(attr), other
        if "bigtop" in notes or mine is None or not theirs:
            # theirs == 0: a run too short for the CPU clock's 10 ms tick
            why = notes.get("bigtop") or (f"{whose} not measured" if not theirs
                                          else "bigtop not measured")
            targets.append({"target": name, "pass": None, "detail": why})
            continue
        bar = factor * theirs
        ok = mine >= bar if higher else mine < bar
        detail = (f"bigtop {mine:.2f}, {LABELS[whose]} {theirs:.2f} ({mine / theirs:.2f}x, "
                  f"need {'>=' if higher else '<'} {factor:.2f}x)")
        reach = best_floor(medians, attr, higher) if whose == "supervisord" else None
        if not ok and reach and (bar > reach[1] if higher else bar < reach[1]):
            detail += (f"; the bar, {bar:.2f}, is beyond the best floor "
                       f"({LABELS[reach[0]]}: {reach[1]:.2f})")
        targets.append({"target": name, "pass": ok, "bigtop": mine, whose: theirs,
                        "detail": detail})
    return targets


def summary_line(result: Result) -> str:
    if result.mb_s is None:
        return "no figures"
    helpers = f", helpers: {'; '.join(result.helpers)}" if result.helpers else ""
    return (f"{result.mb_s:,.1f} MB/s, {result.cpu_s_per_gb:.2f} CPU s/GB "
            f"({result.elapsed_s:.2f} s, {result.daemon_cpu_s:.2f} CPU s, "
            f"log {result.log_bytes:,} bytes{helpers})")


# --------------------------------------------------------------------------
# Main.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    keys = ("bigtop", "circus", "supervisord")
    parser = argparse.ArgumentParser(
        description="Child-output capture: bigtop vs Circus 0.19 and supervisord 4.3.")
    parser.add_argument("--only", default=",".join(keys),
                        help="comma-separated subset of: %(default)s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=1000,
                        help="child output, in MB of 10^6 bytes")
    parser.add_argument("--line-bytes", type=int, default=100,
                        help="length of the child's lines, newline included")
    parser.add_argument("--write-bytes", type=int, default=8192,
                        help="size of the child's write(2) calls (default: Python's "
                             "stdout buffer when writing to a pipe)")
    parser.add_argument("--json", metavar="FILE", type=Path,
                        help="also write raw and median figures as JSON")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if not args.only or any(s not in keys for s in args.only):
        parser.error(f"--only takes a subset of {','.join(keys)}")
    if min(args.runs, args.megabytes, args.write_bytes) < 1:
        parser.error("--runs, --megabytes and --write-bytes must be positive")
    if args.line_bytes < MIN_LINE_BYTES:
        parser.error(f"--line-bytes must be at least {MIN_LINE_BYTES}")
    return args


def run_all(columns: list[str], args) -> tuple[dict, bool]:
    """Every run of every system and variant, interleaved; and whether interrupted."""
    results: dict = {k: {v: [] for v in VARIANTS if supports(k, v)} for k in columns}
    results.update({key: {"plain": []} for key in FLOORS})
    try:
        for run in range(args.runs):
            shift = run % len(columns)
            order = columns[shift:] + columns[:shift]
            for variant in VARIANTS:
                for key in order:
                    if not supports(key, variant):
                        continue
                    print(f"[run {run + 1}/{args.runs}] {LABELS[key]}, {VARIANTS[variant]}",
                          flush=True)
                    result = measure_once(key, variant, run, args)
                    results[key][variant].append(result)
                    print(f"    {summary_line(result)}", flush=True)
                    for problem in result.problems():
                        print(f"    PROBLEM: {problem}", flush=True)
            for key in FLOORS:
                print(f"[run {run + 1}/{args.runs}] {LABELS[key]}", flush=True)
                result = measure_floor(run, args, key)
                results[key]["plain"].append(result)
                print(f"    {summary_line(result)}", flush=True)
                for problem in result.problems():
                    print(f"    PROBLEM: {problem}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: daemons stopped, reporting what was measured")
        return results, True
    return results, False


def bigtop_note(results: dict) -> str | None:
    """Why bigtop has no figures, when every one of its runs failed."""
    runs = [r for rs in results.get("bigtop", {}).values() for r in rs]
    if runs and all(r.mb_s is None for r in runs):
        return BIGTOP_MISSING
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = os.environ.get(lifecycle.ORIG_COMMAND_ENV) or shlex.join(sys.orig_argv)
    if psutil is None:
        sys.exit(f"psutil is not importable by {sys.executable}; "
                 f"run with {REPO_DIR / '.venv' / 'bin' / 'python'}")
    versions = {}
    if any(k != "bigtop" for k in args.only):
        versions = _anchors.ensure_anchor_venv()
    print(f"command: {command}")
    print(f"host: {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"Python {platform.python_version()} (bench and writer), load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if versions:
        print("anchors: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"params: megabytes={args.megabytes} runs={args.runs} line={args.line_bytes} bytes "
          f"write={args.write_bytes} bytes "
          f"time_format={TIME_FORMAT!r} log dir={tempfile.gettempdir()}")
    if not become_subreaper():
        print("warning: could not become a child subreaper; leftover detection "
              "relies on a snapshot taken before each stop")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    unavailable = {k: why for k in args.only
                   if (why := lifecycle.SYSTEMS[k].unavailable())}
    for key, why in unavailable.items():
        print(f"{LABELS[key]}: {why}")
    columns = [k for k in ("bigtop", "circus", "supervisord")
               if k in args.only and k not in unavailable]
    results, interrupted = run_all(columns, args) if columns else (
        {key: {} for key in FLOORS}, False)

    notes = dict(unavailable)
    if (why := bigtop_note(results)) is not None:
        notes["bigtop"] = why
    medians = medians_of(results)
    targets = evaluate_targets(medians, notes)

    print(f"\ncommand: {command}\n")
    print_table([*columns, *FLOORS], medians, notes)
    print_targets(targets)
    print("\nNotes:")
    print(f"  - medians over {args.runs} runs of {args.megabytes} MB each "
          f"({args.megabytes * MB // args.line_bytes:,} lines of {args.line_bytes} bytes); "
          "n/a: supervisord has no per-line timestamps (#553); the floor is plain only.")
    print(f"  - the child writes {args.write_bytes:,} bytes per write(2); the figures "
          "depend on it (--write-bytes).")
    print("  - daemon CPU: user+system of the daemon (all threads) and its helper "
          "processes, not the writer; floor CPU: the whole reader process.")
    for key, why in notes.items():
        print(f"  - n/a* {LABELS[key]}: {why}")
        if key == "bigtop":
            reasons = sorted({p.splitlines()[0] for rs in results["bigtop"].values()
                              for r in rs for p in r.problems()})
            for reason in reasons[:3]:
                print(f"      {reason}")
    for key in [*columns, *FLOORS]:
        runs = [r for rs in results.get(key, {}).values() for r in rs]
        clean = sum(1 for r in runs if not r.problems())
        print(f"  - {LABELS[key]}: {clean}/{len(runs)} measurements clean.")
    if args.json:
        document = {
            "command": command,
            "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                     "python": platform.python_version()},
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "anchor_versions": versions,
            "unavailable": notes,
            "runs": {key: {variant: [{**asdict(r), "problems": r.problems()} for r in runs]
                           for variant, runs in by_variant.items()}
                     for key, by_variant in results.items()},
            "medians": medians,
            "targets": targets,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")

    problems = any(r.problems() for key, by_variant in results.items() if key not in notes
                   for runs in by_variant.values() for r in runs)
    return 130 if interrupted else (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
