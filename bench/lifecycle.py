"""Process lifecycle benchmark: bigtop against Circus 0.19 and supervisord 4.3.

For each system, in a fresh temporary directory, the daemon is started with
one watcher/program of N ``sleep 100000`` children (default 100) and we
measure:

  start     wall time from launching the daemon until N ``sleep`` processes
            are direct children of the daemon (``sleep`` already exec'd);
  respawn   ``kill -9`` of one random child, time until the daemon again has
            N sleep children; repeated --kills times, one kill at a time;
  idle CPU  user+system CPU seconds of the daemon (not its children) over
            --idle seconds of idleness, after the respawn phase has settled;
  RSS       resident memory of the daemon after the idle period;
  stop      SIGTERM to daemon exit (informative only).

Respawn is timed by the kernel when it can be (root): the proc connector
(netlink, bench/_floors.py) reports the exit of the victim and the exec of
its replacement (the new sleep child of the daemon) with the kernel's own
timestamps, and respawn is exec - exit, free of the bench's polling and of
its scheduling on a busy machine. Without the connector (not root) it falls
back to the time from kill(2) until the poll every --poll-ms sees N sleeps,
and says so. --respawn-clock chooses; the polled figure is kept in the JSON
either way.

Beside the systems, in the same run and interleaved with them, floors
(bench/_floors.py, each run as its own process with the repo venv's python,
as a daemon is) give what the machine does at least:

  start floor    a bare Python program that forks and execs N
                 ``sleep 100000`` children and then holds them; measured
                 exactly like the systems' start, from launch to N sleep
                 children seen, then stopped (it kills and reaps them);
  spawn floor    the same with os.posix_spawn, a tighter floor: glibc's
                 posix_spawn is a vfork-style clone that copies no page
                 table (Popen's vfork is the same clone);
  respawn floor  a bare program that holds one sleep child, waits on its
                 pidfd (os.pidfd_open + poll) and respawns it the moment
                 it exits; measured by the same kill procedure and clock;
  memory floor   asyncio and pyzmq (three bound sockets) holding the N
                 children as the daemon does (two pipes read on the loop
                 and a pidfd each), and nothing else: the least RSS of a
                 Python daemon of this design.

The table gives them as columns, and bigtop's figures as ratios of them
("bigtop / floor"): the issue's targets are a start within 1.5x the start
floor, a respawn median within 2x the respawn floor and under 3 ms, RSS
under 20 MB with 100 children.

CPU and RSS also count helper processes the daemon runs besides the sleeps:
Circus 0.19 runs circusd-stats whenever stats_endpoint is set, as it is here.
The daemon's own share is reported apart.

Then the daemon is stopped and no child may survive it. Systems are
interleaved per run; figures are medians over --runs runs.

Run from the repo root:  python bench/lifecycle.py [--only bigtop,circus]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _anchors  # noqa: E402  (sibling modules; path set just above)
import _floors  # noqa: E402

try:
    import psutil
except ImportError:  # re-exec'd under the anchor venv, which has it
    psutil = None

REPO_DIR = _anchors.REPO_DIR
BIGTOPD = REPO_DIR / ".venv" / "bin" / "bigtopd"
SLEEP_ARG = "100000"
ORIG_COMMAND_ENV = "BIGTOP_BENCH_COMMAND"
REPO_PYTHON = REPO_DIR / ".venv" / "bin" / "python"
FLOORS_PY = Path(__file__).resolve().parent / "_floors.py"
KERNEL_EVENT_WAIT_S = 1.0  # after recovery, how long the connector's events may lag

SETTLE_S = 2.0           # pause between the respawn phase and the idle window
KILL_GAP_S = 0.2         # least pause after a recovery before the next kill
STOP_TIMEOUT_S = 60.0    # SIGTERM -> SIGKILL
ORPHAN_GRACE_S = 1.0     # how long children may outlive their daemon
PR_SET_CHILD_SUBREAPER = 36


class MeasurementError(Exception):
    """A measurement could not be completed (daemon died, timeout, ...)."""


# --------------------------------------------------------------------------
# The systems under test: how to write their config and launch them.


class System:
    key = ""
    label = ""
    needs_anchors = False
    # What measure_once measures: start (to N children), respawn, idle
    # (CPU and RSS). A floor measures only what it is the floor of.
    phases: tuple[str, ...] = ("start", "respawn", "idle")

    def children(self, args) -> int:
        """How many sleep children it runs in the benchmark."""
        return args.children

    def unavailable(self) -> str | None:
        """Why this system cannot run here, or None when it can."""
        return None

    def write_config(self, workdir: Path, children: int) -> Path:
        raise NotImplementedError

    def argv(self, config: Path) -> list[str]:
        raise NotImplementedError


class CircusIni(System):
    """A daemon reading a Circus INI file: circusd itself, or bigtopd."""

    def __init__(self, key: str, label: str, executable: Path, anchors: bool):
        self.key, self.label = key, label
        self.executable = executable
        self.needs_anchors = anchors

    def unavailable(self) -> str | None:
        if not os.access(self.executable, os.X_OK):
            return f"not available ({self.executable} does not exist)"
        return None

    def write_config(self, workdir: Path, children: int) -> Path:
        # ipc:// endpoints in the private temp dir: never the default
        # 5555-5557 ports, so runs cannot collide with anything. (Setting
        # stats_endpoint makes Circus 0.19 start circusd-stats.)
        config = workdir / "circus.ini"
        config.write_text(textwrap.dedent(f"""\
            [circus]
            endpoint = ipc://{workdir}/endpoint.sock
            pubsub_endpoint = ipc://{workdir}/pubsub.sock
            stats_endpoint = ipc://{workdir}/stats.sock
            check_delay = 5

            [watcher:sleepers]
            cmd = sleep {SLEEP_ARG}
            numprocesses = {children}
            """))
        return config

    def argv(self, config: Path) -> list[str]:
        return [str(self.executable), str(config)]


class Supervisord(System):
    key = "supervisord"
    label = "supervisord 4.3"
    needs_anchors = True

    def unavailable(self) -> str | None:
        if not os.access(_anchors.anchor_bin("supervisord"), os.X_OK):
            return "not available (anchor venv has no supervisord)"
        return None

    def write_config(self, workdir: Path, children: int) -> Path:
        # startsecs=0: a child counts as RUNNING as soon as it is spawned.
        # Child output logs keep their default (AUTO), in the temp dir.
        config = workdir / "supervisord.conf"
        config.write_text(supervisord_header(workdir) + "\n" + textwrap.dedent(f"""\
            [program:sleepers]
            command = sleep {SLEEP_ARG}
            numprocs = {children}
            process_name = %(program_name)s_%(process_num)02d
            startsecs = 0
            autorestart = true
            """))
        return config

    def argv(self, config: Path) -> list[str]:
        return [str(_anchors.anchor_bin("supervisord")), "-n", "-c", str(config)]


class Floor(System):
    """A floor program of bench/_floors.py, run by the repo venv's python.

    The sleep executable is resolved once here, so the floor spawns it by
    path without a PATH search: the least a daemon could do.
    """

    def __init__(self, key: str, label: str, mode: str, phases: tuple[str, ...],
                 one_child: bool):
        self.key, self.label, self.mode = key, label, mode
        self.phases = phases
        self.one_child = one_child
        self._children = 0

    def children(self, args) -> int:
        return 1 if self.one_child else args.children

    def unavailable(self) -> str | None:
        if not os.access(REPO_PYTHON, os.X_OK):
            return f"not available ({REPO_PYTHON} does not exist)"
        if not shutil.which("sleep"):
            return "not available (no sleep executable on PATH)"
        if self.mode == "respawn" and not hasattr(os, "pidfd_open"):
            return "not available (os.pidfd_open needs Python 3.9 and Linux 5.3)"
        return None

    def write_config(self, workdir: Path, children: int) -> Path:
        self._children = children  # no file: the count is an argument
        return workdir

    def argv(self, config: Path) -> list[str]:
        sleep = os.path.realpath(shutil.which("sleep"))
        program = [str(REPO_PYTHON), str(FLOORS_PY), self.mode]
        if self.mode == "respawn":
            return [*program, sleep]
        if self.mode == "runtime":  # config: the run's private directory
            return [*program, str(self._children), sleep, str(config)]
        return [*program, str(self._children), sleep]


SYSTEMS: dict[str, System] = {
    "bigtop": CircusIni("bigtop", "bigtop", BIGTOPD, anchors=False),
    "circus": CircusIni("circus", "Circus 0.19", _anchors.anchor_bin("circusd"),
                        anchors=True),
    "supervisord": Supervisord(),
}
ANCHOR_KEYS = ("circus", "supervisord")
# The floors, measured like the systems (other benches use SYSTEMS alone).
FLOORS: dict[str, System] = {
    "start-floor": Floor("start-floor", "start floor (fork+exec)", "start-fork",
                         ("start",), one_child=False),
    "spawn-floor": Floor("spawn-floor", "start floor (posix_spawn)", "start",
                         ("start",), one_child=False),
    "runtime-floor": Floor("runtime-floor", "memory floor (asyncio + pyzmq)", "runtime",
                           ("idle",), one_child=False),
    "respawn-floor": Floor("respawn-floor", "respawn floor (pidfd, 1 child)", "respawn",
                           ("respawn",), one_child=True),
}
MEASURED: dict[str, System] = {**SYSTEMS, **FLOORS}


# --------------------------------------------------------------------------
# Watching the daemon's children.


def direct_children(parent: int) -> set[int]:
    """The direct children of ``parent`` (zombies included: see SleepChildren).

    Read from the kernel's per-thread children lists, a few small reads,
    instead of a pass over every /proc/*/stat (about 1 ms) or psutil's
    children() (about 3 ms for 100 children): the scan is the resolution of
    the respawn measurement.
    """
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{parent}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                found.update(int(pid) for pid in f.read().split())
        except FileNotFoundError:
            return _children_by_scan(parent)  # a kernel without the lists
        except OSError:
            continue
    return found


def _children_by_scan(parent: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        state, ppid = stat[stat.rfind(b")") + 2:].split(b" ", 2)[:2]
        if int(ppid) == parent and state not in (b"Z", b"X"):
            found.add(int(name))
    return found


def is_sleep(pid: int) -> bool:
    """True when ``pid`` has exec'd sleep (argv[0] ends in 'sleep'); a
    zombie's command line is empty."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return argv0.endswith(b"sleep")


class SleepChildren:
    """Tracks which direct children of a daemon are running sleep.

    A pid once seen running sleep stays so until it leaves the child list,
    so cmdline is read only for new children. Pids we killed are listed in
    ``dead`` and never counted: right after kill(2) the victim may not be a
    zombie yet.
    """

    def __init__(self, daemon_pid: int):
        self.daemon_pid = daemon_pid
        self.sleeping: set[int] = set()
        self.dead: set[int] = set()

    def scan(self) -> set[int]:
        children = direct_children(self.daemon_pid)
        self.sleeping &= children
        self.dead &= children
        for pid in children - self.sleeping - self.dead:
            if is_sleep(pid):
                self.sleeping.add(pid)
        return self.sleeping - self.dead


class Daemon:
    """One running daemon under test. Use as a context manager."""

    def __init__(self, argv: list[str], workdir: Path):
        self.argv = argv
        self.log_path = workdir / "daemon-output.log"
        self.proc: subprocess.Popen | None = None
        self.launched_at = 0.0
        self.stopped = False

    def __enter__(self) -> Daemon:
        with self.log_path.open("wb") as log:
            self.launched_at = time.monotonic()
            # Own session: a Ctrl-C at the terminal reaches only us, and we
            # stop the daemon in order.
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.log_path.parent,
            )
        return self

    def __exit__(self, *exc) -> None:
        # Normally stop() has run and reported; this is the path for
        # exceptions and Ctrl-C, which must still leave nothing behind.
        if self.proc is not None and not self.stopped:
            self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise MeasurementError(
                f"daemon exited with status {self.proc.returncode}:\n"
                + self.log_tail())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "  (no output)"
        tail = text.splitlines()[-lines:] or ["(no output)"]
        return "\n".join("  | " + line for line in tail)

    def stop(self) -> StopReport:
        """SIGTERM, wait, SIGKILL if needed; then sweep surviving children.

        Interrupt signals are held back meanwhile so that a second Ctrl-C
        cannot leave half-stopped processes behind.
        """
        self.stopped = True
        report = StopReport()
        held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            try:
                descendants = psutil.Process(self.pid).children(recursive=True)
            except psutil.Error:
                descendants = []
            if self.proc.poll() is None:
                started = time.monotonic()
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    report.killed = True
                report.seconds = time.monotonic() - started
            report.orphans, report.survivors = sweep_leftovers(descendants)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return report


@dataclass
class StopReport:
    seconds: float | None = None   # SIGTERM -> exit; None if it had died
    killed: bool = False           # needed SIGKILL after STOP_TIMEOUT_S
    orphans: int = 0               # children alive when the daemon exited
    survivors: list[str] = field(default_factory=list)  # still alive later


def sweep_leftovers(descendants: list) -> tuple[int, list[str]]:
    """Kill whatever the stopped daemon left running.

    ``descendants`` is a snapshot taken before the stop. We are also a child
    subreaper, so orphans of the daemon are reparented to us and show up as
    our children even if the snapshot missed them.
    """
    me = psutil.Process()
    deadline = time.monotonic() + ORPHAN_GRACE_S
    orphans = None
    while True:
        candidates = {p for p in descendants if p.is_running()}
        candidates.update(me.children(recursive=True))
        alive = []
        for proc in candidates:
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    _reap(proc.pid)
                else:
                    alive.append(proc)
            except psutil.Error:
                pass
        if orphans is None:
            orphans = len(alive)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    survivors = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            survivors.append(f"{proc.pid} {shlex.join(proc.cmdline())}")
            proc.kill()
    psutil.wait_procs(alive, timeout=5)  # reaps those that are our children
    return orphans, survivors


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def become_subreaper() -> bool:
    """Have orphaned descendants reparented to us (Linux), for cleanup."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------
# The measurements.


def wait_for_sleepers(daemon: Daemon, tracker: SleepChildren, want: int,
                      deadline: float, poll_s: float) -> float | None:
    """Poll until ``want`` sleep children run; return when seen, or None."""
    while True:
        running = len(tracker.scan())
        seen_at = time.monotonic()
        if running >= want:
            return seen_at
        daemon.check_alive()
        if seen_at > deadline:
            return None
        time.sleep(poll_s)


def measure_start(daemon: Daemon, tracker: SleepChildren, args,
                  want: int | None = None) -> float:
    """Seconds from launching the daemon to N (``want``) sleep children running."""
    want = args.children if want is None else want
    deadline = daemon.launched_at + args.start_timeout
    seen_at = wait_for_sleepers(daemon, tracker, want, deadline,
                                args.poll_ms / 1000)
    if seen_at is None:
        raise MeasurementError(
            f"only {len(tracker.scan())} of {want} sleep children "
            f"after {args.start_timeout:g} s")
    return seen_at - daemon.launched_at


def measure_respawn(daemon: Daemon, tracker: SleepChildren, args,
                    rng: random.Random, result: RunResult,
                    want: int | None = None,
                    connector: _floors.ProcConnector | None = None) -> None:
    """kill -9 one child at a time; ms until N run again. Fills ``result``.

    Recovery is always seen by polling (N sleep children again); with a
    ``connector`` the figure is then the kernel's: the victim's exit event
    to the replacement's exec event. A kill whose events did not arrive
    (a full socket buffer on a busy machine) keeps its polled figure and is
    counted in ``respawn_kernel_missing``.

    The victim's age is kept too: a daemon may treat the death of a young
    process as a crash loop and delay its replacement on purpose.
    """
    want = args.children if want is None else want
    for _ in range(args.kills):
        before = tracker.scan()
        victim = rng.choice(sorted(before))
        try:
            age = time.time() - psutil.Process(victim).create_time()
        except psutil.Error:
            continue
        if connector is not None:
            connector.clear()
        tracker.dead.add(victim)
        killed_at = time.monotonic()
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue  # vanished on its own; pick another
        seen_at = wait_for_sleepers(daemon, tracker, want,
                                    killed_at + args.respawn_timeout,
                                    args.poll_ms / 1000)
        if seen_at is None:
            # Not recovered: further kills would measure a broken state.
            result.respawn_timeouts = 1
            return
        polled_ms = (seen_at - killed_at) * 1000
        result.respawn_poll_ms.append(polled_ms)
        if connector is not None:
            kernel_ms = kernel_respawn_ms(connector, victim, tracker.scan() - before)
            if kernel_ms is None:
                result.respawn_kernel_missing += 1
            result.respawn_ms.append(polled_ms if kernel_ms is None else kernel_ms)
        else:
            result.respawn_ms.append(polled_ms)
        result.victim_age_s.append(age)
        # A random pause: a daemon that respawns from a periodic check
        # (Circus: every check_delay = 5 s) is then hit at random phase, as a
        # real crash would be. A fixed pause would phase-lock the kills to
        # its timer and always measure check_delay minus the pause.
        time.sleep(KILL_GAP_S + rng.uniform(0, args.gap_spread))


def split_start(connector: _floors.ProcConnector, children: set[int], launched_at: float,
                result: RunResult) -> None:
    """The start, by the kernel's exec timestamps of its children: from the
    launch to the first exec (what the program does before it spawns), and
    from the first to the last (its spawn loop). Left out if any is missing."""
    connector.drain()
    execs = [connector.exec_ns.get(pid) for pid in children]
    if not execs or None in execs:
        return
    first, last = min(execs) / 1e9, max(execs) / 1e9  # type: ignore[type-var]
    result.first_exec_s, result.exec_span_s = first - launched_at, last - first


def kernel_respawn_ms(connector: _floors.ProcConnector, victim: int,
                      replacements: set[int]) -> float | None:
    """exec of the replacement - exit of the victim, in ms, from the kernel's
    timestamps; None when the events are not there within
    KERNEL_EVENT_WAIT_S (lost, or the replacement is not a new child).

    ``replacements`` are the sleep children that were not there before the
    kill (normally one). The last exec of each counts: a daemon that runs
    the command through a shell execs twice in the same process.
    """
    deadline = time.monotonic() + KERNEL_EVENT_WAIT_S
    while True:
        connector.drain()
        exited = connector.exit_ns.get(victim)
        execs = [connector.exec_ns[pid] for pid in replacements
                 if pid in connector.exec_ns]
        if exited is not None and execs:
            after = [stamp for stamp in execs if stamp >= exited]
            return (min(after) - exited) / 1e6 if after else None
        if time.monotonic() > deadline or not replacements:
            return None
        time.sleep(0.005)


def helper_processes(daemon_proc) -> list:
    """Non-sleep descendants of the daemon (e.g. circusd-stats)."""
    helpers = []
    for proc in daemon_proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if not is_sleep(proc.pid):
                helpers.append(proc)
    return helpers


def measure_idle(daemon: Daemon, tracker: SleepChildren, args, result) -> None:
    """CPU over the idle window, then RSS; fills ``result``.

    The figures count the daemon plus its helper processes; the daemon's
    own share is kept apart too.
    """
    time.sleep(SETTLE_S)
    daemon.check_alive()
    main = psutil.Process(daemon.pid)
    helpers = helper_processes(main)
    result.helpers = [_describe(p) for p in helpers]

    def cpu(proc) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    before = {p: cpu(p) for p in (main, *helpers)}
    time.sleep(args.idle)  # nothing of ours runs during the window
    used = {p: cpu(p) - before[p] for p in before}
    rss = {p: p.memory_info().rss / 2**20 for p in before}
    daemon.check_alive()
    result.daemon_cpu_s, result.daemon_rss_mb = used[main], rss[main]
    result.idle_cpu_s, result.rss_mb = sum(used.values()), sum(rss.values())
    result.children_after_idle = len(tracker.scan())


def _describe(proc) -> str:
    try:
        return f"{proc.pid} {shlex.join(proc.cmdline())}"
    except psutil.Error:
        return str(proc.pid)


# --------------------------------------------------------------------------
# One run of one system.


FIGURES = [  # key, row label, format
    ("start_s", "start to {children} running [s]", "{:.3f}"),
    ("first_exec_s", "  launch to the first child's exec [s]", "{:.3f}"),
    ("exec_span_s", "  first to last child's exec [s]", "{:.3f}"),
    ("respawn_median_ms", "respawn median [ms]", "{:,.1f}"),
    ("respawn_p99_ms", "respawn p99 [ms]", "{:,.1f}"),
    ("idle_cpu_s", "idle CPU in {idle:g} s [s]", "{:.2f}"),
    ("rss_mb", "RSS [MB]", "{:.1f}"),
    ("daemon_cpu_s", "idle CPU, daemon alone [s]", "{:.2f}"),
    ("daemon_rss_mb", "RSS, daemon alone [MB]", "{:.1f}"),
    ("stop_s", "stop (SIGTERM to exit) [s]", "{:.3f}"),
]


@dataclass
class RunResult:
    system: str
    run: int
    start_s: float | None = None
    first_exec_s: float | None = None  # kernel clock: the start, split at the first exec
    exec_span_s: float | None = None
    respawn_ms: list[float] = field(default_factory=list)  # by the run's clock
    respawn_poll_ms: list[float] = field(default_factory=list)  # polled, always
    respawn_kernel_missing: int = 0  # kernel clock, but its events missing: polled
    victim_age_s: list[float] = field(default_factory=list)  # per respawn
    respawn_timeouts: int = 0
    idle_cpu_s: float | None = None
    rss_mb: float | None = None
    helpers: list[str] = field(default_factory=list)
    daemon_cpu_s: float | None = None    # idle_cpu_s less helper processes
    daemon_rss_mb: float | None = None   # rss_mb less helper processes
    children_after_idle: int | None = None
    stop_s: float | None = None
    stop_killed: bool = False
    orphans_at_exit: int = 0
    survivors: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def respawn_median_ms(self) -> float | None:
        return statistics.median(self.respawn_ms) if self.respawn_ms else None

    @property
    def respawn_p99_ms(self) -> float | None:
        return percentile(self.respawn_ms, 99)

    def figures(self) -> dict[str, float | None]:
        return {key: getattr(self, key) for key, _, _ in FIGURES}

    def problems(self) -> list[str]:
        found = []
        if self.error:
            found.append(self.error)
        if self.respawn_timeouts:
            found.append("a respawn timed out")
        if self.stop_killed:
            found.append(f"daemon ignored SIGTERM for {STOP_TIMEOUT_S:g} s "
                         "and was killed")
        if self.survivors:
            found.append(f"{len(self.survivors)} processes survived the "
                         "daemon and were killed by the benchmark: "
                         + "; ".join(self.survivors[:3]))
        return found


def percentile(samples: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (with 20 samples, p99 is the maximum)."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def measure_once(system: System, run: int, args, rng: random.Random,
                 connector: _floors.ProcConnector | None = None) -> RunResult:
    result = RunResult(system=system.key, run=run)
    workdir = Path(tempfile.mkdtemp(prefix=f"bigtop-bench-{system.key}-"))
    want = system.children(args)
    phases = system.phases
    try:
        config = system.write_config(workdir, want)
        if connector is not None:
            connector.drain()
            connector.clear()
        with Daemon(system.argv(config), workdir) as daemon:
            tracker = SleepChildren(daemon.pid)
            try:
                started = measure_start(daemon, tracker, args, want)
                if "start" in phases:
                    result.start_s = started
                    if connector is not None:
                        split_start(connector, tracker.scan(), daemon.launched_at, result)
                _progress(f"{want} running in {started:.3f} s"
                          + (f"; {args.kills} kills" if "respawn" in phases else ""))
                if "respawn" in phases:
                    measure_respawn(daemon, tracker, args, rng, result, want,
                                    connector)
                if "idle" in phases:
                    _progress(f"idle {args.idle:g} s")
                    measure_idle(daemon, tracker, args, result)
            except MeasurementError as exc:
                result.error = str(exc)
            except psutil.NoSuchProcess:
                result.error = "daemon vanished:\n" + daemon.log_tail()
            stop = daemon.stop()
            result.stop_s, result.stop_killed = stop.seconds, stop.killed
            result.orphans_at_exit, result.survivors = (stop.orphans,
                                                        stop.survivors)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def rotated(columns: list[str], run: int) -> list[str]:
    """The systems in the order of run ``run``: each one goes first in turn."""
    return columns[run % len(columns):] + columns[:run % len(columns)]


def run_all(runs: int, order: Callable[[int], list[Any]], label: Callable[[Any], str],
            measure: Callable[[Any, int], Any], summary: Callable[[Any], str],
            results: dict[Any, list], connector: _floors.ProcConnector | None,
            before_run: Callable[[int], None] | None = None) -> bool:
    """Each run's measurements in ``order(run)``, said as they come, into
    ``results`` (``before_run(run)`` first, if given); the connector closed
    at the end. True if interrupted (Ctrl-C): what was measured is kept."""
    try:
        for run in range(runs):
            if before_run is not None:
                before_run(run)
            for key in order(run):
                print(f"[run {run + 1}/{runs}] {label(key)}", flush=True)
                result = measure(key, run)
                results[key].append(result)
                print(f"    {summary(result)}", flush=True)
                for problem in result.problems():
                    print(f"    PROBLEM: {problem}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: daemons stopped, reporting what was measured")
        return True
    finally:
        if connector is not None:
            connector.close()
    return False


def _progress(message: str) -> None:
    print(f"    {message}", flush=True)


# --------------------------------------------------------------------------
# Reporting.


def median_figures(runs: list[RunResult]) -> dict[str, float | None]:
    medians = {}
    for key, _, _ in FIGURES:
        values = [r.figures()[key] for r in runs]
        values = [v for v in values if v is not None]
        medians[key] = statistics.median(values) if values else None
    return medians


def fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    if b == 0:
        return "= 0" if a == 0 else "> 0 (÷0)"
    return f"{a / b:.2f}x"


def best_anchor(medians: dict[str, dict], key: str) -> tuple[str, float] | None:
    """The anchor with the lowest (best) median for ``key``."""
    values = [(medians[k][key], k) for k in ANCHOR_KEYS
              if k in medians and medians[k][key] is not None]
    if not values:
        return None
    value, name = min(values)
    return name, value


# figure -> the floor it is compared with ("bigtop / floor")
FLOOR_OF = {"start_s": "start-floor", "respawn_median_ms": "respawn-floor",
            "respawn_p99_ms": "respawn-floor", "rss_mb": "runtime-floor",
            "daemon_rss_mb": "runtime-floor"}


def floor_figure(medians: dict[str, dict], key: str) -> float | None:
    """The median of the floor that figure ``key`` is compared with."""
    floor = FLOOR_OF.get(key)
    return medians[floor][key] if floor in medians else None


def print_table(columns: list[str], medians: dict[str, dict],
                labels: dict[str, str], args) -> None:
    header = ["figure", *(labels[c] for c in columns),
              "bigtop / floor", "bigtop / Circus", "bigtop / best anchor"]
    rows = []
    for key, label, pattern in FIGURES:
        big = medians.get("bigtop", {}).get(key)
        circus = medians.get("circus", {}).get(key)
        best = best_anchor(medians, key)
        row = [label.format(**vars(args)), *(fmt(medians[c][key], pattern) for c in columns),
               ratio(big, floor_figure(medians, key)),
               ratio(big, circus),
               f"{ratio(big, best[1])} ({labels[best[0]]})" if best else "—"]
        rows.append(row)
    print_markdown(header, rows)


def print_markdown(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table: first column left-aligned, the others right."""
    widths = [max(len(str(r[i])) for r in [header, *rows])
              for i in range(len(header))]

    def line(cells):
        first, *rest = (str(c) for c in cells)
        padded = [first.ljust(widths[0])]
        padded += [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    print(line(header))
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in rows:
        print(line(row))


def evaluate_targets(medians: dict[str, dict], labels: dict[str, str],
                     children: int = 100) -> list[dict]:
    """The issue's targets for bigtop, each with a verdict."""
    big = medians.get("bigtop")
    circus = medians.get("circus")
    targets = []

    def add(name, value, limit, passed, detail):
        targets.append({"target": name, "bigtop": value, "limit": limit,
                        "pass": passed, "detail": detail})

    def missing(name, why):
        add(name, None, None, None, why)

    name = "100 children running within 0.5x Circus's time"
    if not big or big["start_s"] is None:
        missing(name, "bigtop not measured")
    elif not circus or circus["start_s"] is None:
        missing(name, "Circus not measured")
    else:
        limit = 0.5 * circus["start_s"]
        add(name, big["start_s"], limit, big["start_s"] <= limit,
            f"{big['start_s']:.3f} s vs limit {limit:.3f} s")

    name = "respawn median under 10 ms"
    if not big or big["respawn_median_ms"] is None:
        missing(name, "bigtop not measured")
    else:
        value = big["respawn_median_ms"]
        add(name, value, 10.0, value < 10.0, f"{value:.1f} ms")

    # Against the machine's floors, measured in the same run.
    name = f"start of {children} children within 1.5x the start floor (fork+exec)"
    floor = floor_figure(medians, "start_s")
    if not big or big["start_s"] is None:
        missing(name, "bigtop not measured")
    elif floor is None:
        missing(name, "start floor not measured")
    else:
        limit = 1.5 * floor
        add(name, big["start_s"], limit, big["start_s"] <= limit,
            f"{big['start_s']:.3f} s = {ratio(big['start_s'], floor)} the floor's "
            f"{floor:.3f} s, limit {limit:.3f} s")

    name = "respawn median within 2x the respawn floor and under 3 ms"
    floor = floor_figure(medians, "respawn_median_ms")
    if not big or big["respawn_median_ms"] is None:
        missing(name, "bigtop not measured")
    elif floor is None:
        missing(name, "respawn floor not measured")
    else:
        value = big["respawn_median_ms"]
        limit = min(2 * floor, 3.0)
        add(name, value, limit, value <= 2 * floor and value < 3.0,
            f"{value:.2f} ms = {ratio(value, floor)} the floor's {floor:.2f} ms "
            f"(limit {2 * floor:.2f} ms and < 3 ms)")

    name = f"RSS with {children} children under 20 MB"
    floor = floor_figure(medians, "rss_mb")
    if not big or big["rss_mb"] is None:
        missing(name, "bigtop not measured")
    else:
        value = big["rss_mb"]
        add(name, value, 20.0, value < 20.0, f"{value:.1f} MB" + (
            f" = {ratio(value, floor)} the memory floor's {floor:.1f} MB" if floor else ""))

    # Judged on the figures with helper processes (as the issue asks), and
    # shown against the daemons alone too: circusd without circusd-stats is
    # a stricter bar. CPU times tick in 10 ms: compare at that resolution.
    for key, alone, name, unit, digits in (
            ("idle_cpu_s", "daemon_cpu_s", "idle CPU no more than the best anchor",
             "s", 2),
            ("rss_mb", "daemon_rss_mb", "RSS no more than the best anchor", "MB", 1)):
        best = best_anchor(medians, key)
        if not big or big[key] is None:
            missing(name, "bigtop not measured")
        elif best is None:
            missing(name, "no anchor measured")
        else:
            passed, detail = _no_more_than(big[key], best, digits, unit, labels)
            passed_alone, detail_alone = _no_more_than(
                big[alone], best_anchor(medians, alone), digits, unit, labels)
            if detail_alone != detail:
                verdict = "pass" if passed_alone else "FAIL"
                detail += f" (daemons alone: {detail_alone}, {verdict})"
            add(name, big[key], best[1], passed, detail)
    return targets


def _no_more_than(value: float, best: tuple[str, float], digits: int,
                  unit: str, labels: dict[str, str]) -> tuple[bool, str]:
    """Is ``value`` <= the best anchor's, at ``digits`` decimals? And why."""
    name, limit = best
    value, limit = round(value, digits), round(limit, digits)
    text = f"{value:.{digits}f} {unit} vs {labels[name]} {limit:.{digits}f} {unit}"
    return value <= limit, text


def print_targets(targets: list[dict]) -> None:
    print("\nTargets (bigtop):")
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        print(f"  {verdict}  {t['target']}: {t['detail']}")


def print_notes(args, columns, results, labels) -> None:
    print("\nNotes:")
    print(f"  - medians over runs; per run, respawn median and p99 are over "
          f"{args.kills} kills. p99 is nearest-rank: with {args.kills} "
          f"samples it is the {_rank_word(args.kills)}.")
    if args.clock == "kernel":
        missing = sum(r.respawn_kernel_missing for runs in results.values() for r in runs)
        print("  - respawn timed by the kernel: proc connector timestamps, exit of the "
              "killed child to exec of its replacement"
              + (f"; {missing} kills whose events were missing keep the polled time"
                 if missing else "") + ".")
    else:
        print(f"  - respawn timed by polling: kill(2) until N sleep children are seen "
              f"again{args.clock_why}.")
    if any(k in columns for k in FLOORS):
        print("  - floors: bench/_floors.py run by the repo venv's python, as its own "
              "process. Start floors: fork + execv, or os.posix_spawn (a vfork-style "
              "clone), of the N sleeps by absolute path, timed from launch to N sleep "
              "children seen, as the systems. Respawn floor: one sleep child, its "
              "pidfd polled, respawned on exit; killed like the systems' children. "
              "Memory floor: asyncio + pyzmq holding the N children with their pipes "
              "and pidfds on the loop.")
    if args.gap_spread:
        print(f"  - after each respawn the next kill waits 0.2 s + uniform(0, "
              f"{args.gap_spread:g}) s, so periodic respawn checks are hit at "
              "random phase.")
    else:
        print("  - fixed 0.2 s between a respawn and the next kill: a daemon "
              "that respawns from a periodic check is phase-locked to it.")
    print(f"  - children polled every {args.poll_ms:g} ms (plus ~1 ms per "
          "scan of /proc); start times include that resolution"
          + (", and so do respawn times." if args.clock != "kernel" else "."))
    print("  - idle CPU: user+system of the daemon, not of its children (the "
          "first rows add helper processes, if any); clock tick 0.01 s.")
    for key in columns:
        runs = results[key]
        ok = sum(1 for r in runs if not r.problems())
        print(f"  - {labels[key]}: {ok}/{len(runs)} runs clean; "
              f"{helper_note(key, runs)}.")
        slow = outliers(runs)
        if slow:
            print(f"    {len(slow)} respawns took over 5x their run's median: "
                  + ", ".join(f"{ms:,.0f} ms (victim {age:.1f} s old)"
                              for ms, age in slow[:8])
                  + (", ..." if len(slow) > 8 else ""))
        orphans = [r.orphans_at_exit for r in runs if r.orphans_at_exit]
        if orphans and not any(r.survivors for r in runs):
            print(f"    children still alive at daemon exit (then died within "
                  f"{ORPHAN_GRACE_S:g} s): {orphans}")


def outliers(runs: list[RunResult]) -> list[tuple[float, float]]:
    """(ms, victim age in s) of respawns slower than 5x their run's median.

    A victim's age tells a slow daemon from a deliberate backoff for a
    process that died young.
    """
    slow = []
    for r in runs:
        if r.respawn_ms:
            limit = 5 * r.respawn_median_ms
            slow += [(ms, age) for ms, age in zip(r.respawn_ms, r.victim_age_s,
                                                  strict=True) if ms > limit]
    return slow


def helper_note(key: str, runs: list[RunResult]) -> str:
    """Which helper processes the CPU and RSS figures include."""
    names = sorted({_helper_name(h) for r in runs for h in r.helpers})
    if not any(r.rss_mb is not None for r in runs):
        return "CPU and RSS not measured"
    if not names:
        if key == "circus":
            return "circusd-stats not running: CPU and RSS are circusd alone"
        return "no helper processes: CPU and RSS are the daemon alone"
    measured = [r for r in runs if r.daemon_rss_mb is not None]
    own = ""
    if measured:
        cpu = statistics.median(r.daemon_cpu_s for r in measured)
        rss = statistics.median(r.daemon_rss_mb for r in measured)
        own = f"; the daemon alone: idle CPU {cpu:.2f} s, RSS {rss:.1f} MB"
    why = ""
    if "circusd-stats" in names:
        why = (" (Circus 0.19 starts circusd-stats whenever stats_endpoint is "
               "set: it forces statsd = true)")
    return f"CPU and RSS include {', '.join(names)}{why}{own}"


def _helper_name(description: str) -> str:
    if "circus import stats" in description or "circusd-stats" in description:
        return "circusd-stats"
    argv = description.split(" ", 2)
    return Path(argv[1]).name if len(argv) > 1 else description


def _rank_word(n: int) -> str:
    rank = max(1, math.ceil(0.99 * n))
    return "maximum" if rank == n else f"{rank}th of {n} sorted"


def summary_line(result: RunResult, args) -> str:
    parts = []
    for key, label, pattern in FIGURES:
        value = result.figures()[key]
        if value is not None:
            name = label.split(" [")[0].format(**vars(args))
            parts.append(f"{name} {pattern.format(value)}")
    text = "; ".join(parts) or "no figures"
    if result.respawn_ms:
        text += f" ({len(result.respawn_ms)} respawns)"
    if result.children_after_idle not in (None, args.children):
        text += f"; only {result.children_after_idle} children after idle"
    return text


# --------------------------------------------------------------------------
# Main.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Lifecycle benchmark: bigtop vs Circus vs supervisord, beside the "
                    "machine's start and respawn floors.")
    parser.add_argument("--only", default=",".join(MEASURED),
                        help="comma-separated subset of: %(default)s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0,
                        help="idle window for the CPU figure, seconds")
    parser.add_argument("--poll-ms", type=float, default=2.0)
    parser.add_argument("--gap-spread", type=float, default=5.0, metavar="S",
                        help="after each respawn wait 0.2 s + uniform(0, S) "
                             "before the next kill; the default spans one "
                             "Circus check_delay so kills land at random phase "
                             "of its timer (0: fixed gap, faster, but Circus "
                             "then always measures ~4.8 s)"),
    parser.add_argument("--respawn-clock", dest="clock", default="auto",
                        choices=("auto", "kernel", "poll"),
                        help="time respawns from the proc connector's exit and exec "
                             "events (kernel: needs root), by polling (poll), or the "
                             "first that works (auto, the default)")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    parser.add_argument("--respawn-timeout", type=float, default=30.0)
    parser.add_argument("--bigtopd", type=Path, default=BIGTOPD,
                        help="bigtop daemon to run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for choosing kill victims")
    parser.add_argument("--json", metavar="FILE", type=Path,
                        help="also write raw and median figures as JSON")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in MEASURED]
    if unknown or not args.only:
        parser.error(f"--only takes a subset of {','.join(MEASURED)}")
    if min(args.runs, args.children, args.kills) < 1 or args.idle <= 0:
        parser.error("--runs, --children, --kills and --idle must be positive")
    if args.gap_spread < 0 or args.poll_ms <= 0:
        parser.error("--gap-spread must be >= 0 and --poll-ms > 0")
    if args.seed is None:
        args.seed = random.randrange(2**32)
    return args


def reexec_with_psutil() -> None:
    """psutil is missing here; the anchor venv has it (a Circus dependency)."""
    python = _anchors.anchor_bin("python")
    env = dict(os.environ)
    env.setdefault(ORIG_COMMAND_ENV, shlex.join(sys.orig_argv))
    print(f"psutil is not importable by {sys.executable}; "
          f"re-running under {python}", flush=True)
    os.execve(python, [str(python), str(Path(__file__).resolve()),
                       *sys.argv[1:]], env)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def environ(extra: dict[str, str]):
    """Set variables in os.environ for the block (Daemon inherits them)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def supervisord_header(workdir: Path) -> str:
    """What every supervisord.conf here starts with: all files in workdir."""
    return textwrap.dedent(f"""\
        [unix_http_server]
        file = {workdir}/supervisor.sock

        [supervisord]
        nodaemon = true
        logfile = {workdir}/supervisord.log
        pidfile = {workdir}/supervisord.pid
        childlogdir = {workdir}

        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

        [supervisorctl]
        serverurl = unix://{workdir}/supervisor.sock
        """)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = os.environ.get(ORIG_COMMAND_ENV) or shlex.join(sys.orig_argv)
    SYSTEMS["bigtop"].executable = args.bigtopd.resolve()
    selected = [MEASURED[k] for k in MEASURED if k in args.only]

    versions = {}
    if psutil is None or any(s.needs_anchors for s in selected):
        versions = _anchors.ensure_anchor_venv()
    if psutil is None:
        reexec_with_psutil()

    print(f"command: {command}")
    print(f"host: {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"Python {platform.python_version()} (bench), psutil "
          f"{psutil.__version__}")
    if versions:
        print("anchors: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    connector = open_connector(args)
    print(f"params: children={args.children} kills={args.kills} "
          f"idle={args.idle:g}s runs={args.runs} poll={args.poll_ms:g}ms "
          f"gap=0.2+U(0,{args.gap_spread:g})s respawn_clock={args.clock} "
          f"seed={args.seed}")
    if args.clock_why:
        print(f"respawn clock: polling{args.clock_why}")

    subreaper = become_subreaper()
    if not subreaper:
        print("warning: could not become a child subreaper; leftover "
              "detection relies on a snapshot taken before each stop")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    labels = {s.key: s.label for s in selected}
    unavailable = {}
    for system in selected:
        reason = system.unavailable()
        if reason:
            unavailable[system.key] = reason
            print(f"{system.label}: {reason}")
    columns = [s.key for s in selected if s.key not in unavailable]
    results: dict[str, list[RunResult]] = {k: [] for k in columns}

    rng = random.Random(args.seed)
    interrupted = run_all(
        args.runs, lambda run: rotated(columns, run), labels.get,
        lambda key, run: measure_once(MEASURED[key], run, args, rng, connector),
        lambda result: summary_line(result, args), results, connector)

    medians = {k: median_figures(results[k]) for k in columns}
    print()
    print(f"command: {command}")
    for key in unavailable:
        print(f"{labels[key]}: {unavailable[key]}")
    if columns:
        print()
        print_table(columns, medians, labels, args)
    targets = evaluate_targets(medians, labels, args.children)
    print_targets(targets)
    print_notes(args, columns, results, labels)

    if args.json:
        write_json(args.json, command, args, versions, labels, unavailable,
                   results, medians, targets)
        print(f"\nwrote {args.json}")

    problems = any(r.problems() for runs in results.values() for r in runs)
    return 130 if interrupted else (1 if problems else 0)


def open_connector(args) -> _floors.ProcConnector | None:
    """The proc connector when the respawn clock is the kernel's; sets
    ``args.clock`` to what is used and ``args.clock_why`` to why not."""
    args.clock_why = ""
    if args.clock == "poll":
        args.clock_why = " (--respawn-clock poll)"
        return None
    try:
        connector = _floors.ProcConnector()
    except _floors.ConnectorError as exc:
        if args.clock == "kernel":
            sys.exit(f"--respawn-clock kernel: {exc}")
        args.clock = "poll"
        args.clock_why = f" (fallback: {exc})"
        return None
    args.clock = "kernel"
    return connector


def write_json(path: Path, command, args, versions, labels, unavailable,
               results, medians, targets) -> None:
    systems = {}
    for key, label in labels.items():
        entry = {"label": label, "available": key not in unavailable}
        if key in unavailable:
            entry["reason"] = unavailable[key]
        else:
            entry["runs"] = [
                {**asdict(r), "respawn_median_ms": r.respawn_median_ms,
                 "respawn_p99_ms": r.respawn_p99_ms, "problems": r.problems()}
                for r in results[key]]
            entry["median"] = medians[key]
        systems[key] = entry
    params = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in vars(args).items()}
    document = {
        "command": command,
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version()},
        "params": params,
        "anchor_versions": versions,
        "p99_method": "nearest rank",
        "respawn_clock": ("kernel: proc connector exit -> exec timestamps"
                          if args.clock == "kernel" else "poll" + args.clock_why),
        "systems": systems,
        "targets": targets,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
