"""Soak: does the daemon's memory grow under an hour of mixed load?

One bigtopd (ipc:// endpoints in a private temp dir) runs:

  chatty   20 processes, each writing a numbered line every 20 ms (1,000
           lines a second in all) into a size-rotated FileStream;
  flappy   a process that exits with 1 after 0.3 s, restarted with backoff
           for ever (a crash loop);

and, for --minutes (default 60), this bench drives it as operators and
their tools would:

  - a graceful rolling ``reload`` of chatty every 30 s;
  - ``stats`` on everything every second;
  - two live tails (``bigtopctl logs -f chatty``, real processes);
  - a web console (a real ``bigtop-web`` on a free port) polled every
    second for the node, a watcher and its last lines.

Every --sample seconds (default 10) it records the daemon's RSS, open
file descriptors, threads and asyncio tasks (``dstats``), and, after a
warm-up of --warmup minutes (default 5), fits a least-squares slope to
each. Target: RSS grows by less than 1 MB an hour. At the end, the
numbered lines of every chatty process are checked: none lost, none
repeated.

Run from the repo root:
  .venv/bin/python bench/soak.py                       # an hour
  .venv/bin/python bench/soak.py --short      # 3 minutes (tests/test_soak.py)

The short form is too brief for a slope of RSS to mean much (it is
printed, not judged); it checks that no line is lost, no client fails and
descriptors, threads and tasks come back to where they were.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# bench/http.py is named like the standard library's http package, and the
# script's directory comes first on sys.path: this script needs none of its
# siblings, so that directory leaves the path before anything is imported.
_BENCH_DIR = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _BENCH_DIR]

import argparse  # noqa: E402
import http.cookiejar  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

import psutil  # noqa: E402

from bigtop.client import Client  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_MB_PER_HOUR = 1.0
BACK_TO = {"fds": 8, "threads": 2, "tasks": 8}  # at the end: at most this above the warm-up's
RELOAD_EVERY_S = 30.0
POLL_EVERY_S = 1.0
TOKEN = "soak-token-" + os.urandom(8).hex()

CHATTY = r'''
import os, sys, time
wid = os.environ["BIGTOP_WID"]
n = 0
while True:
    sys.stdout.write(f"{wid} {os.getpid()} {n:09d} {'x' * 40}\n")
    sys.stdout.flush()
    n += 1
    time.sleep(0.02)
'''


# With --trace-memory, the daemon runs under tracemalloc: a first SIGUSR2
# (at the end of the warm-up) takes a snapshot, a second (at the end) writes
# what grew since, by line, to memory.txt in the work dir.
TRACED_DAEMON = r'''
import signal, sys, tracemalloc
from bigtop.cli.bigtopd import main
snapshots = []
def compare(signum, frame):
    snapshots.append(tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]))
    if len(snapshots) == 2:
        with open(sys.argv[2], "w") as out:
            for stat in snapshots[1].compare_to(snapshots[0], "traceback")[:15]:
                out.write(f"{stat}\n" + "\n".join(stat.traceback.format()[-12:]) + "\n\n")
signal.signal(signal.SIGUSR2, compare)
sys.exit(main([sys.argv[1]]))
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_text(work: Path) -> str:
    return textwrap.dedent(f"""\
        [circus]
        endpoint = ipc://{work}/control.sock
        pubsub_endpoint = ipc://{work}/events.sock
        stats_endpoint = ipc://{work}/stats.sock

        [watcher:chatty]
        cmd = {sys.executable} {work}/chatty.py
        numprocesses = 20
        rolling_reload = true
        stdout_stream.class = FileStream
        stdout_stream.filename = {work}/chatty.log
        stdout_stream.max_bytes = 1000000
        stdout_stream.backup_count = 1000

        [watcher:flappy]
        cmd = sh -c 'sleep 0.3; exit 1'
        max_retry = -1
        backoff_initial = 0.1
        backoff_max = 1
        """)


class Load:
    """The clients: reloads, stats, a web console, each in a thread."""

    def __init__(self, work: Path, web_port: int):
        self.endpoint = f"ipc://{work}/control.sock"
        self.web = f"http://127.0.0.1:{web_port}"
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.counts = {"reload": 0, "stats": 0, "web": 0, "web_failed": 0}

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._guarded, args=(job,), daemon=True)
                   for job in (self._reloads, self._stats, self._console)]
        for thread in threads:
            thread.start()
        return threads

    def _guarded(self, job) -> None:
        try:
            job()
        except Exception as exc:  # reported, and the soak fails
            self.errors.append(f"{job.__name__}: {exc!r}")

    def _reloads(self) -> None:
        with Client(self.endpoint, timeout=60) as client:
            while not self.stop.wait(RELOAD_EVERY_S):
                client.call("reload", name="chatty", graceful=True, waiting=True)
                self.counts["reload"] += 1

    def _stats(self) -> None:
        with Client(self.endpoint, timeout=30) as client:
            while not self.stop.wait(POLL_EVERY_S):
                client.call("stats")
                self.counts["stats"] += 1

    def _console(self) -> None:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        deadline = time.monotonic() + 30
        while True:
            try:
                opener.open(urllib.request.Request(
                    f"{self.web}/login", data=urllib.parse.urlencode({"token": TOKEN}).encode(),
                    headers={"Origin": self.web}), timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        nodes = json.load(opener.open(f"{self.web}/api/nodes", timeout=10))
        node = urllib.parse.quote(nodes["nodes"][0]["name"], safe="")
        paths = [f"/api/nodes/{node}", f"/api/nodes/{node}/watchers/chatty",
                 f"/api/nodes/{node}/watchers/chatty/logs?lines=50"]
        while not self.stop.wait(POLL_EVERY_S):
            try:
                for path in paths:
                    opener.open(f"{self.web}{path}", timeout=30).read()
                self.counts["web"] += 1
            except urllib.error.HTTPError as err:  # the console could not reach the daemon
                self.counts["web_failed"] += 1
                if self.counts["web_failed"] == 1:
                    print(f"console: {err}", flush=True)


def sample(daemon: psutil.Process, client: Client) -> dict[str, float]:
    memory = daemon.memory_info()
    return {"t": time.monotonic(), "rss_mb": memory.rss / 1e6, "fds": daemon.num_fds(),
            "threads": daemon.num_threads(), "tasks": client.call("dstats")["tasks"]}


def slope_per_hour(points: list[dict[str, float]], key: str) -> float | None:
    if len(points) < 3:
        return None
    hours = [(p["t"] - points[0]["t"]) / 3600 for p in points]
    return statistics.linear_regression(hours, [p[key] for p in points]).slope


def check_lines(work: Path) -> tuple[int, list[str]]:
    """Every chatty process's numbers, from 0, each once and in order."""
    files = sorted(work.glob("chatty.log.*"), key=lambda p: -int(p.suffix[1:]))
    seen: dict[str, int] = {}
    problems = []
    total = 0
    for path in [*files, work / "chatty.log"]:
        for line in path.read_bytes().splitlines():
            total += 1
            _, pid, number, _ = line.split(b" ", 3)
            key, n = pid.decode(), int(number)
            if n == 0:  # a new process, or one whose pid came round again
                seen[key] = -1
            if n != seen.get(key, -1) + 1 and len(problems) < 10:
                problems.append(f"pid {key}: line {n} after {seen.get(key, -1)}")
            seen[key] = n
    return total, problems


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--short", action="store_true",
                        help="3 minutes, 1 of warm-up, RSS slope not judged (for CI)")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of the fit")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--json", type=Path, help="also write the samples and slopes here")
    parser.add_argument("--trace-memory", action="store_true",
                        help="run the daemon under tracemalloc and keep what grew after the "
                             "warm-up, by line, in the work dir's memory.txt (slows it down)")
    args = parser.parse_args(argv)
    if args.short:
        args.minutes, args.warmup, args.sample = 3.0, 1.0, 5.0
    if args.warmup >= args.minutes:
        parser.error("--warmup must be shorter than --minutes")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bigtop-soak-"))
    (work / "chatty.py").write_text(CHATTY)
    (work / "soak.ini").write_text(config_text(work))
    env = {**os.environ, "BIGTOP_WEB_TOKEN": TOKEN}
    procs: list[subprocess.Popen] = []
    print(f"command: {' '.join(sys.orig_argv)}\nwork dir: {work}", flush=True)
    try:
        def start(argv: list[str], log: str, **options) -> subprocess.Popen:
            with open(work / log, "ab") as errors:
                procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors,
                                              **options))
            return procs[-1]

        argv = [str(BIN / "bigtopd"), str(work / "soak.ini")]
        if args.trace_memory:
            argv = [sys.executable, "-X", "tracemalloc=25", "-c", TRACED_DAEMON,
                    str(work / "soak.ini"), str(work / "memory.txt")]
        daemon_proc = start(argv, "daemon.log", start_new_session=True)
        endpoint = f"ipc://{work}/control.sock"
        client = Client(endpoint, timeout=30)
        deadline = time.monotonic() + 30
        while not (work / "control.sock").exists():
            if time.monotonic() > deadline or daemon_proc.poll() is not None:
                raise SystemExit("the daemon did not start:\n" + (work / "daemon.log").read_text())
            time.sleep(0.1)
        web_port = free_port()
        start([str(BIN / "bigtop-web"), "--endpoint", endpoint, "--port", str(web_port)],
              "web.log", env=env)
        for _ in range(2):
            start([str(BIN / "bigtopctl"), "--endpoint", endpoint, "logs", "-f", "chatty"],
                  "tail.log")
        load = Load(work, web_port)
        load.run()
        daemon = psutil.Process(daemon_proc.pid)
        points = []
        started = time.monotonic()
        end = started + args.minutes * 60
        traced = False
        while time.monotonic() < end and not load.errors:
            if args.trace_memory and not traced and time.monotonic() - started >= args.warmup * 60:
                daemon.send_signal(signal.SIGUSR2)
                traced = True
            points.append(sample(daemon, client))
            p = points[-1]
            print(f"{(p['t'] - started) / 60:6.1f} min  rss {p['rss_mb']:6.2f} MB  "
                  f"fds {p['fds']:4d}  threads {p['threads']:3d}  tasks {p['tasks']:4d}  "
                  f"reloads {load.counts['reload']}", flush=True)
            time.sleep(max(0.0, min(args.sample, end - time.monotonic())))
        load.stop.set()
        points.append(sample(daemon, client))
        if traced:
            daemon.send_signal(signal.SIGUSR2)
            time.sleep(5)
        client.close()
        fitted = [p for p in points if p["t"] - started >= args.warmup * 60]
        slopes = {key: slope_per_hour(fitted, key) for key in ("rss_mb", "fds", "threads",
                                                                 "tasks")}
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    total, problems = check_lines(work)
    print(f"\nafter {args.minutes:g} min ({args.warmup:g} of warm-up left out), "
          f"{len(fitted)} samples fitted:")
    for key, value in slopes.items():
        print(f"  {key:8s} {'n/a' if value is None else f'{value:+.2f}'} per hour")
    # Growth that levels off (a working set filling) and a leak (the same
    # rate to the end) have the same slope over the whole run: told apart here.
    halves = [slope_per_hour(fitted[:len(fitted) // 2], "rss_mb"),
              slope_per_hour(fitted[len(fitted) // 2:], "rss_mb")]
    print("  rss_mb by half of the fit: "
          + ", ".join("n/a" if h is None else f"{h:+.2f}" for h in halves) + " per hour")
    print(f"  load: {load.counts['reload']} reloads, {load.counts['stats']} stats, "
          f"{load.counts['web']} console polls ({load.counts['web_failed']} failed); "
          f"errors: {load.errors or 'none'}")
    print(f"  output: {total:,} lines, {problems or 'none lost or repeated'}")
    rss = slopes["rss_mb"]
    growth = rss is not None and rss < TARGET_MB_PER_HOUR
    back = bool(fitted) and all(points[-1][key] <= fitted[0][key] + slack
                                for key, slack in BACK_TO.items())
    ok = ((growth or args.short) and back and not problems
          and not load.errors and load.counts["web_failed"] <= load.counts["web"] // 100)
    print(f"{'PASS' if growth else 'FAIL'}  RSS slope < {TARGET_MB_PER_HOUR:g} MB/hour after "
          f"warm-up{' (not judged in the short form)' if args.short else ''}")
    print(f"{'PASS' if back else 'FAIL'}  descriptors, threads, tasks back to their "
          f"level after warm-up (within {BACK_TO})")
    if args.json:
        args.json.write_text(json.dumps({"points": points, "slopes": slopes, "ok": ok,
                                         "lines": total, "problems": problems}, indent=2))
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept for a look: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
