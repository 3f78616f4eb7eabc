"""Control-plane benchmark: bigtop against Circus 0.19, in the same run.

Each system runs its daemon from the same Circus INI file (ipc:// endpoints
in a private temp dir, no stats_endpoint so Circus starts no circusd-stats),
with a watcher ``sleepers`` of N ``sleep`` children (default 100) and a
watcher ``scaler`` of one. Once every child runs, one persistent client,
in the system's own interpreter and client library (bigtop's ``Client`` in
the repo venv, Circus's ``CircusClient`` in the anchor venv), times:

  status    ``status`` of all watchers, back to back, for --seconds;
  list      ``list`` of all watchers, for --seconds;
  incr+decr ``incr`` then ``decr`` of ``scaler`` with ``waiting``, in pairs,
            for --seconds (each call counts);
  stats     ``stats`` of ``sleepers`` (N processes), --stats-calls calls.

Each loop follows a short warm-up. Besides calls/s and latency, the client
reads the daemon's CPU time around each loop, which tells time spent in the
daemon from time spent in the client or in between.

The status loop runs a second time with Circus's client against every
daemon, and once per run against the transport floor: a bare pyzmq ROUTER
that sends each request straight back, timed with that same client. The
share of the floor that bigtop reaches says how small the daemon's own
part of a round trip is (target: 90%).

Then the one-shot CLI: wall time of ``bigtopctl --endpoint E status`` (or
``python -m bigtop ...`` when the console script does not work yet) against
``circusctl --endpoint E status``, median of --cli-runs runs.

Systems are interleaved per run; figures are medians over --runs runs.
Daemons are always stopped (SIGTERM, then SIGKILL) and no child may outlive
them.

Run from the repo root:  .venv/bin/python bench/control.py [--runs 3]
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
    SleepChildren,
    _terminate,
    become_subreaper,
    environ,
    fmt,
    print_targets,
    psutil,
    ratio,
    wait_for_sleepers,
)

REPO_DIR = _anchors.REPO_DIR
REPO_BIN = REPO_DIR / ".venv" / "bin"
SLEEP_ARG = "100000"
START_TIMEOUT_S = 60.0
SETTLE_S = 0.5           # pause after the children are up, before measuring
CALL_TIMEOUT_S = 30.0    # a single call; Circus's stats takes ~0.35 s
CHILDREN_BACK_S = 10.0   # after the loops, time for the scaler to settle

# --------------------------------------------------------------------------
# The client loop. It runs in the interpreter of the system under test, so
# it may use only the standard library and that system's client.

CLIENT_SCRIPT = r'''
import json, os, statistics, sys, time

import zmq


def connect(kind, endpoint, timeout):
    """A function (command, props) -> reply dict, over one connection."""
    if kind == "bigtop":
        from bigtop.client import Client
        client = Client(endpoint, timeout=timeout)
        return lambda command, props: client.call(command, raise_on_error=False, **props)
    from circus.client import CircusClient, make_message
    client = CircusClient(endpoint=endpoint, timeout=timeout)
    return lambda command, props: client.call(make_message(command, **props))


def daemon_cpu(pid):
    """User + system CPU seconds of ``pid``, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checked(reply, command):
    if not isinstance(reply, dict) or reply.get("status") != "ok":
        raise RuntimeError(f"{command}: {reply!r}"[:500])
    return reply


def run_phase(call, phase, pid):
    steps = phase["steps"]
    check = checked if phase["check"] else (lambda reply, command: reply)
    for _ in range(phase["warmup_rounds"]):
        for command, props in steps:
            check(call(command, props), command)
    latencies, reply = [], None
    cpu_before, client_before = daemon_cpu(pid), time.process_time()
    start = time.perf_counter()
    deadline, wanted = start + phase["seconds"], phase["rounds"] * len(steps)

    def more():
        return len(latencies) < wanted if wanted else time.perf_counter() < deadline

    while more():
        for command, props in steps:  # whole rounds only: incr+decr stay paired
            sent = time.perf_counter()
            reply = call(command, props)
            latencies.append(time.perf_counter() - sent)
            check(reply, command)
    elapsed = time.perf_counter() - start
    calls = len(latencies)
    result = {
        "calls": calls,
        "seconds": elapsed,
        "rate": calls / elapsed,
        "mean_ms": 1000 * statistics.fmean(latencies),
        "median_ms": 1000 * statistics.median(latencies),
        "max_ms": 1000 * max(latencies),
        "daemon_cpu_ms": 1000 * (daemon_cpu(pid) - cpu_before) / calls,
        "client_cpu_ms": 1000 * (time.process_time() - client_before) / calls,
    }
    result["reply_bytes"] = len(json.dumps(reply))
    if isinstance(reply.get("info"), dict):
        result["entries"] = len(reply["info"])
    return result


def main():
    spec = json.loads(sys.argv[1])
    out = {"python": sys.version.split()[0], "pyzmq": zmq.__version__,
           "libzmq": zmq.zmq_version(), "phases": {}}
    try:
        call = connect(spec["kind"], spec["endpoint"], spec["timeout"])
        for phase in spec["phases"]:
            out["phases"][phase["key"]] = run_phase(call, phase, spec["daemon_pid"])
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    os._exit(0)  # skip zmq context teardown; the sockets have linger 0


main()
'''


# The transport's own limit: a do-nothing pyzmq ROUTER that sends each
# request straight back (the reply carries the request's id, which is all
# Circus's client checks), timed with Circus's own client like the daemons.
# No control server written on pyzmq answers that client faster.
FLOOR_SERVER = r'''
import sys
import zmq
server = zmq.Context().socket(zmq.ROUTER)
server.bind(sys.argv[1])
print("ready", flush=True)
while True:
    server.send_multipart(server.recv_multipart())
'''
FLOOR_TARGET = 0.9  # bigtop's status rate, as a share of the floor's


def measure_floor(args) -> dict | None:
    """The floor's status loop (rate, latency, server CPU per call), or
    None if Circus's client is not there to time it."""
    with tempfile.TemporaryDirectory(prefix="bigtop-bench-floor-") as tmp:
        endpoint = f"ipc://{tmp}/floor.sock"
        server = subprocess.Popen([str(REPO_BIN / "python"), "-c", FLOOR_SERVER, endpoint],
                                  stdout=subprocess.PIPE, text=True)
        try:
            if server.stdout is None or server.stdout.readline().strip() != "ready":
                return None
            return status_with_circus_client(endpoint, server.pid, args, check=False)
        finally:
            server.kill()
            server.wait()


@dataclass(frozen=True)
class Phase:
    key: str
    label: str
    steps: list[tuple[str, dict]]
    warmup_rounds: int
    seconds: float = 0.0  # run for this long ...
    rounds: int = 0       # ... or for this many rounds of ``steps``
    check: bool = True    # replies must say "ok" (not the floor's echoes)


def phases(args) -> list[Phase]:
    scale = {"name": "scaler", "waiting": True}
    return [
        Phase("status", "status", [("status", {})], 200, seconds=args.seconds),
        Phase("list", "list", [("list", {})], 200, seconds=args.seconds),
        Phase("incrdecr", "incr+decr", [("incr", scale), ("decr", scale)], 10,
              seconds=args.seconds),
        Phase("stats", f"stats of {args.children}", [("stats", {"name": "sleepers"})], 2,
              rounds=args.stats_calls),
    ]


# --------------------------------------------------------------------------
# The systems under test.


@dataclass(frozen=True)
class System:
    key: str
    label: str
    daemon: Path
    python: Path                   # interpreter that has the client library
    ctl: list[tuple[str, list[str]]]  # (name, argv prefix) to try, in order
    private_runtime_dir: bool = False

    def unavailable(self) -> str | None:
        for path in (self.daemon, self.python):
            if not os.access(path, os.X_OK):
                return f"not available ({path} does not exist)"
        return None

    def extra_env(self, workdir: Path) -> dict[str, str]:
        if not self.private_runtime_dir:
            return {}
        runtime = workdir / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        return {"BIGTOP_RUNTIME_DIR": str(runtime)}


SYSTEMS = {
    "bigtop": System(
        "bigtop", "bigtop", REPO_BIN / "bigtopd", REPO_BIN / "python",
        ctl=[("bigtopctl", [str(REPO_BIN / "bigtopctl")]),
             ("python -m bigtop", [str(REPO_BIN / "python"), "-m", "bigtop"])],
        private_runtime_dir=True),
    "circus": System(
        "circus", "Circus 0.19", _anchors.anchor_bin("circusd"), _anchors.anchor_bin("python"),
        ctl=[("circusctl", [str(_anchors.anchor_bin("circusctl"))])]),
}


def write_config(workdir: Path, children: int) -> Path:
    # No stats_endpoint: with it Circus 0.19 starts circusd-stats.
    config = workdir / "circus.ini"
    config.write_text(textwrap.dedent(f"""\
        [circus]
        endpoint = ipc://{workdir}/ctl.sock
        pubsub_endpoint = ipc://{workdir}/pub.sock

        [watcher:sleepers]
        cmd = sleep {SLEEP_ARG}
        numprocesses = {children}

        [watcher:scaler]
        cmd = sleep {SLEEP_ARG}
        numprocesses = 1
        """))
    return config


@dataclass
class RunResult:
    system: str
    run: int
    phases: dict[str, dict] = field(default_factory=dict)
    client: dict[str, str] = field(default_factory=dict)  # versions
    ctl: str | None = None            # which CLI command was timed
    ctl_unavailable: str | None = None
    ctl_ms: list[float] = field(default_factory=list)
    stop_s: float | None = None
    stop_killed: bool = False
    survivors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for phase_key, metric, _, _, _ in FIGURES:
            if phase_key == "ctl":
                out["ctl.median_ms"] = statistics.median(self.ctl_ms) if self.ctl_ms else None
            else:
                out[f"{phase_key}.{metric}"] = self.phases.get(phase_key, {}).get(metric)
        return out

    def problems(self) -> list[str]:
        found = list(self.errors)
        if self.stop_killed:
            found.append("daemon ignored SIGTERM and was killed")
        if self.survivors:
            found.append(f"{len(self.survivors)} processes survived the daemon: "
                         + "; ".join(self.survivors[:3]))
        return found


def measure_once(system: System, run: int, args) -> RunResult:
    result = RunResult(system=system.key, run=run)
    workdir = Path(tempfile.mkdtemp(prefix=f"bigtop-control-{system.key}-"))
    try:
        config = write_config(workdir, args.children)
        env = system.extra_env(workdir)
        endpoint = f"ipc://{workdir}/ctl.sock"
        with environ(env), Daemon([str(system.daemon), str(config)], workdir) as daemon:
            try:
                wait_for_children(daemon, args.children + 1, START_TIMEOUT_S)
                time.sleep(SETTLE_S)
                run_client(system, daemon, endpoint, args, result)
                circus_client_status(system, daemon, endpoint, args, result)
                wait_for_children(daemon, args.children + 1, CHILDREN_BACK_S, exact=True)
                time_ctl(system, endpoint, args.cli_runs, result)
            except MeasurementError as exc:
                result.errors.append(str(exc))
            except psutil.NoSuchProcess:
                result.errors.append("daemon vanished:\n" + daemon.log_tail())
            stop = daemon.stop()
            result.stop_s, result.stop_killed = stop.seconds, stop.killed
            result.survivors = stop.survivors
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def wait_for_children(daemon: Daemon, want: int, timeout: float, exact: bool = False) -> None:
    """Until ``want`` sleep children run (exactly ``want`` if ``exact``)."""
    tracker = SleepChildren(daemon.pid)
    deadline = time.monotonic() + timeout
    while True:
        if wait_for_sleepers(daemon, tracker, want, deadline, 0.01) is None:
            break
        if not exact or len(tracker.scan()) == want:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    raise MeasurementError(f"{len(tracker.scan())} sleep children, wanted {want}, "
                           f"after {timeout:g} s")


def run_client(system: System, daemon: Daemon, endpoint: str, args,
               result: RunResult) -> None:
    """The timed loops, in a subprocess of the system's interpreter."""
    spec = {
        "kind": system.key, "endpoint": endpoint, "timeout": CALL_TIMEOUT_S,
        "daemon_pid": daemon.pid,
        "phases": [asdict(p) for p in phases(args)],
    }
    budget = 60 + 4 * args.seconds + args.stats_calls * CALL_TIMEOUT_S
    try:
        proc = subprocess.run(
            [str(system.python), "-c", CLIENT_SCRIPT, json.dumps(spec)],
            capture_output=True, text=True, timeout=budget, check=False)
    except subprocess.TimeoutExpired:
        raise MeasurementError(f"client loop took over {budget:g} s") from None
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise MeasurementError(f"client failed ({proc.returncode}):\n"
                               + proc.stderr[-2000:]) from None
    result.phases = out["phases"]
    result.client = {k: out[k] for k in ("python", "pyzmq", "libzmq")}
    if "error" in out:
        result.errors.append(f"client: {out['error']}")
    stats = result.phases.get("stats", {})
    if stats and stats.get("entries") != args.children:
        result.errors.append(f"stats returned {stats.get('entries')} processes, "
                             f"not {args.children}")
    daemon.check_alive()


def status_with_circus_client(endpoint: str, pid: int, args,
                              check: bool = True) -> dict | None:
    """The status loop, timed with Circus's client against ``endpoint``
    (whose server runs as ``pid``); None without the anchor venv."""
    python = SYSTEMS["circus"].python
    if not os.access(python, os.X_OK):
        return None
    status = Phase("status", "status", [("status", {})], 200, seconds=args.seconds,
                   check=check)
    spec = {"kind": "circus", "endpoint": endpoint, "timeout": CALL_TIMEOUT_S,
            "daemon_pid": pid, "phases": [asdict(status)]}
    try:
        done = subprocess.run([str(python), "-c", CLIENT_SCRIPT, json.dumps(spec)],
                              capture_output=True, text=True, timeout=60 + 4 * args.seconds,
                              check=False)
        phase: dict = json.loads(done.stdout.strip().splitlines()[-1])["phases"]["status"]
        return phase
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def circus_client_status(system: System, daemon: Daemon, endpoint: str, args,
                         result: RunResult) -> None:
    """The same status loop with Circus's client for every system, to set
    against the transport floor (timed with that client too)."""
    if system.key == "circus":
        result.phases["circus_status"] = result.phases.get("status", {})
        return
    phase = status_with_circus_client(endpoint, daemon.pid, args)
    if phase is None:
        result.errors.append("status with Circus's client: not measured")
    else:
        result.phases["circus_status"] = phase


def time_ctl(system: System, endpoint: str, runs: int, result: RunResult) -> None:
    """Median wall time of the one-shot ``status``; the first working CLI wins.

    The probe run of each candidate doubles as the warm-up (page cache).
    """
    reasons = []
    for name, prefix in system.ctl:
        argv = [*prefix, "--endpoint", endpoint, "status"]
        ok, why = ctl_works(argv)
        if not ok:
            reasons.append(f"{name}: {why}")
            continue
        result.ctl = name
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=False)
            result.ctl_ms.append(1000 * (time.perf_counter() - started))
        return
    result.ctl_unavailable = "; ".join(reasons)


def ctl_works(argv: list[str]) -> tuple[bool, str]:
    """Does ``argv`` exit 0 and name the ``sleepers`` watcher?"""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if proc.returncode == 0 and "sleepers" in proc.stdout:
        return True, ""
    said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return False, f"exit {proc.returncode}" + (f", {said[-1][:120]!r}" if said else "")


# --------------------------------------------------------------------------
# Reporting.

# (phase, metric, row label, format, higher is better)
FIGURES = [
    *[row for key, name in (("status", "status"), ("list", "list"),
                            ("incrdecr", "incr+decr scaler, waiting"),
                            ("stats", "stats sleepers ({children} procs)"))
      for row in (
          (key, "rate", f"{name}: calls/s", "{:,.0f}", True),
          (key, "mean_ms", f"{name}: mean latency [ms]", "{:.3f}", False),
          (key, "median_ms", f"{name}: median latency [ms]", "{:.3f}", False),
          (key, "daemon_cpu_ms", f"{name}: daemon CPU per call [ms]", "{:.3f}", False),
      )],
    ("circus_status", "rate", "status with Circus's client: calls/s", "{:,.0f}", True),
    ("circus_status", "daemon_cpu_ms", "status with Circus's client: daemon CPU per call [ms]",
     "{:.3f}", False),
    ("ctl", "median_ms", "CLI `status` one-shot, median wall [ms]", "{:.1f}", False),
]

# (name, figure, factor): bigtop must be ``factor`` times better than Circus.
TARGETS = [
    ("status round trips/s >= 3x Circus", "status.rate", 3.0),
    ("list round trips/s >= 3x Circus", "list.rate", 3.0),
    ("incr+decr round trips/s >= 3x Circus", "incrdecr.rate", 3.0),
    ("stats of {children} processes >= 10x faster than Circus", "stats.mean_ms", 10.0),
    ("bigtopctl status no slower than circusctl status", "ctl.median_ms", 1.0),
]


def figure_key(phase: str, metric: str) -> str:
    return f"{phase}.{metric}"


def higher_is_better(key: str) -> bool:
    return next(better for phase, metric, _, _, better in FIGURES
                if figure_key(phase, metric) == key)


def median_figures(runs: list[RunResult]) -> dict[str, float | None]:
    medians = {}
    for phase, metric, _, _, _ in FIGURES:
        key = figure_key(phase, metric)
        values = [v for r in runs if (v := r.figures()[key]) is not None]
        medians[key] = statistics.median(values) if values else None
    return medians


def advantage(big: float | None, circus: float | None, key: str) -> float | None:
    """How many times better bigtop is (>1: better), or None."""
    if big is None or circus is None or big == 0 or circus == 0:
        return None
    return big / circus if higher_is_better(key) else circus / big


def print_table(columns: list[str], medians: dict[str, dict], args) -> None:
    header = ["figure", *(SYSTEMS[c].label for c in columns), "ratio (>1: bigtop better)"]
    rows = []
    for phase, metric, label, pattern, better in FIGURES:
        key = figure_key(phase, metric)
        big, circus = medians.get("bigtop", {}).get(key), medians.get("circus", {}).get(key)
        rows.append([label.format(children=args.children),
                     *(fmt(medians[c][key], pattern) for c in columns),
                     ratio(big, circus) if better else ratio(circus, big)])
    lifecycle.print_markdown(header, rows)


def evaluate_targets(medians: dict[str, dict], ctl_notes: dict[str, str],
                     args) -> list[dict]:
    targets = []
    for name, key, factor in TARGETS:
        name = name.format(children=args.children)
        big, circus = medians.get("bigtop", {}).get(key), medians.get("circus", {}).get(key)
        times = advantage(big, circus, key)
        if times is None:
            why = ctl_notes.get("bigtop") if key.startswith("ctl") else None
            detail = why or "not measured for both systems"
            targets.append({"target": name, "pass": None, "detail": detail})
            continue
        unit = "calls/s" if higher_is_better(key) else "ms"
        detail = (f"{times:.2f}x, need {factor:g}x (bigtop {big:,.3f} {unit}, "
                  f"Circus {circus:,.3f} {unit})")
        targets.append({"target": name, "pass": times >= factor, "detail": detail,
                        "bigtop": big, "circus": circus, "advantage": times,
                        "factor": factor})
    return targets


def ctl_summary(runs: list[RunResult]) -> str:
    """Which CLI command was timed, over the runs."""
    used = sorted({r.ctl for r in runs if r.ctl})
    missing = sorted({r.ctl_unavailable for r in runs if r.ctl_unavailable})
    text = ", ".join(used) if used else "not available"
    if missing:
        text += f" (failed: {' | '.join(missing)})"
    return text


def print_notes(args, columns: list[str], results: dict[str, list[RunResult]]) -> None:
    print("\nNotes:")
    print(f"  - medians over {args.runs} runs; status, list, incr+decr loops run "
          f"{args.seconds:g} s each, stats {args.stats_calls} calls, after a warm-up; "
          "one persistent client per system.")
    print("  - daemon CPU per call: daemon user+system CPU over the loop / calls "
          "(clock tick 10 ms).")
    sizes = {key: ", ".join(f"{phase} {p['reply_bytes']:,}"
                            for phase, p in results[key][0].phases.items())
             for key in columns if results[key] and results[key][0].phases}
    for key, text in sizes.items():
        print(f"  - {SYSTEMS[key].label} reply sizes [bytes of JSON]: {text}.")
    for key in columns:
        runs = results[key]
        clean = sum(1 for r in runs if not r.problems())
        client = runs[0].client if runs and runs[0].client else {}
        versions = ", ".join(f"{k} {v}" for k, v in client.items()) or "unknown"
        print(f"  - {SYSTEMS[key].label}: {clean}/{len(runs)} runs clean; client "
              f"{versions}; CLI: {ctl_summary(runs)}.")


def summary_line(result: RunResult) -> str:
    parts = [f"{key} {p['rate']:,.0f}/s ({p['mean_ms']:.2f} ms)"
             for key, p in result.phases.items()]
    if result.ctl_ms:
        parts.append(f"{result.ctl} {statistics.median(result.ctl_ms):.0f} ms")
    elif result.ctl_unavailable:
        parts.append("CLI not available")
    return "; ".join(parts) or "no figures"


# --------------------------------------------------------------------------
# Main.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Control-plane benchmark: bigtop vs Circus 0.19.")
    parser.add_argument("--only", default=",".join(SYSTEMS),
                        help="comma-separated subset of: %(default)s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--children", type=int, default=100,
                        help="processes of the 'sleepers' watcher")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="length of the status, list and incr+decr loops")
    parser.add_argument("--stats-calls", type=int, default=30)
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--json", metavar="FILE", type=Path,
                        help="also write raw and median figures as JSON")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if not args.only or any(s not in SYSTEMS for s in args.only):
        parser.error(f"--only takes a subset of {','.join(SYSTEMS)}")
    if min(args.runs, args.children, args.stats_calls, args.cli_runs) < 1 or args.seconds <= 0:
        parser.error("--runs, --children, --seconds, --stats-calls, --cli-runs must be positive")
    return args


def print_header(command: str, versions: dict[str, str], args) -> None:
    print(f"command: {command}")
    print(f"host: {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"Python {platform.python_version()} (bench), load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("anchors: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"params: children={args.children} seconds={args.seconds:g} "
          f"stats_calls={args.stats_calls} cli_runs={args.cli_runs} runs={args.runs}")


def floor_shares(runs: list[RunResult], floors: list[dict | None]) -> list[float]:
    """Each run's status rate (Circus's client) over the floor measured in
    the same run, just before: the machine drifts less within a run."""
    return [rate / floor["rate"] for run, floor in zip(runs, floors, strict=False)
            if floor and (rate := run.phases.get("circus_status", {}).get("rate"))]


def run_all(columns: list[str], args, floors: list[dict | None]
            ) -> tuple[dict[str, list[RunResult]], bool]:
    """Every run of every system, each run after the transport floor
    (appended to ``floors``); and whether interrupted."""
    results: dict[str, list[RunResult]] = {k: [] for k in columns}

    def floor_first(run: int) -> None:
        floor = measure_floor(args)
        floors.append(floor)  # None where it could not be measured: runs stay paired
        if floor is not None:
            print(f"[run {run + 1}/{args.runs}] transport floor: {floor['rate']:,.0f} "
                  f"status/s, server CPU {floor['daemon_cpu_ms']:.3f} ms/call", flush=True)

    interrupted = lifecycle.run_all(
        args.runs, lambda run: lifecycle.rotated(columns, run), lambda key: SYSTEMS[key].label,
        lambda key, run: measure_once(SYSTEMS[key], run, args), summary_line, results, None,
        before_run=floor_first)
    return results, interrupted


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = os.environ.get(lifecycle.ORIG_COMMAND_ENV) or shlex.join(sys.orig_argv)
    if psutil is None:
        sys.exit(f"psutil is not importable by {sys.executable}; run with {REPO_BIN}/python")
    versions = _anchors.ensure_anchor_venv()
    print_header(command, versions, args)
    if not become_subreaper():
        print("warning: could not become a child subreaper; leftover detection "
              "relies on a snapshot taken before each stop")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    unavailable = {k: why for k in args.only if (why := SYSTEMS[k].unavailable())}
    for key, why in unavailable.items():
        print(f"{SYSTEMS[key].label}: {why}")
    columns = [k for k in SYSTEMS if k in args.only and k not in unavailable]
    floors: list[dict | None] = []
    results, interrupted = run_all(columns, args, floors)
    measured = [f for f in floors if f]
    floor = statistics.median(f["rate"] for f in measured) if measured else None

    medians = {k: median_figures(results[k]) for k in columns}
    ctl_notes = {k: f"CLI {ctl_summary(results[k])}" for k in columns}
    targets = evaluate_targets(medians, ctl_notes, args)
    shares = floor_shares(results.get("bigtop", []), floors)
    if shares:
        share = statistics.median(shares)
        targets.append({"target": f"status round trips (Circus's client) >= {FLOOR_TARGET:.0%} "
                                  "of the transport floor", "pass": share >= FLOOR_TARGET,
                        "detail": f"{share:.0%}, median of the runs' "
                                  f"{', '.join(f'{s:.0%}' for s in shares)}", "share": share})
    print(f"\ncommand: {command}\n")
    if columns:
        print_table(columns, medians, args)
    print_targets(targets)
    if floor:
        shares = [f"{SYSTEMS[k].label} {statistics.median(found):.0%}" for k in columns
                  if (found := floor_shares(results[k], floors))]
        server_cpu = statistics.median(f["daemon_cpu_ms"] for f in measured)
        print(f"\nTransport floor (Circus's client against a bare pyzmq ROUTER that sends "
              f"each request back, over ipc): {floor:,.0f} status round trips/s, server CPU "
              f"{server_cpu:.3f} ms per call; status with that client as a share of it (median of "
              "the runs): "
              + ", ".join(shares) + ".")
    print_notes(args, columns, results)
    if args.json:
        write_json(args.json, command, args, versions, unavailable, results, medians, targets,
                   floor, floors)
        print(f"\nwrote {args.json}")

    problems = any(r.problems() for runs in results.values() for r in runs)
    return 130 if interrupted else (1 if problems else 0)


def write_json(path: Path, command: str, args, versions, unavailable, results,
               medians, targets, floor: float | None, floors: list[dict | None]) -> None:
    systems = {}
    for key in args.only:
        entry: dict = {"label": SYSTEMS[key].label, "available": key not in unavailable}
        if key in unavailable:
            entry["reason"] = unavailable[key]
        else:
            entry["runs"] = [{**asdict(r), "problems": r.problems()} for r in results[key]]
            entry["median"] = medians[key]
        systems[key] = entry
    document = {
        "command": command,
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version()},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "anchor_versions": versions,
        "systems": systems,
        "targets": targets,
        "transport_floor_calls_per_s": floor,
        "transport_floor_runs": floors,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
