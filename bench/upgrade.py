"""Upgrade benchmark: ``bigtopctl upgrade`` (bigtopd re-executing itself,
core/handover.py) with --children processes and a socket served all along.

  upgrade     from sending ``upgrade`` until the new image answers
              ``version``, measured by a client polling every 5 ms;
  unavailable from the reply to ``upgrade`` until that answer: how long
              the control endpoint has nobody behind it;
  requests    a client connecting to the watchers' socket again and again
              (each connection answered by a worker), its latency p50 and
              p99 over --seconds with upgrades every second, against the
              same without, in the same run; failed connections counted.

The floor is what an exec of the interpreter costs on this machine: a
``python -c pass`` run to its end, and ``python -c 'import bigtop.cli.bigtopd'``
(the imports a new image needs before it can answer).

Medians over --runs upgrades. Run from the repo root:
    .venv/bin/python bench/upgrade.py
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
PYTHON = REPO_DIR / ".venv" / "bin" / "python"
sys.path.insert(0, str(REPO_DIR))
from tests.conftest import free_port  # noqa: E402
from tests.test_upgrade import SERVER  # noqa: E402  (a worker answering on fd 3)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Requests:
    """Connections to the socket from a thread: latency of each, failures."""

    def __init__(self, port: int):
        self.port = port
        self.times: list[float] = []
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
                    if c.recv(2) != b"hi":
                        raise OSError("no answer")
                self.times.append(time.perf_counter() - began)
            except OSError:
                self.failed += 1

    def take(self) -> tuple[list[float], int]:
        times, failed = self.times, self.failed
        self.times, self.failed = [], 0
        return times, failed

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def floor(runs: int) -> dict[str, float]:
    def timed(*args: str) -> float:
        began = time.perf_counter()
        subprocess.run([str(PYTHON), *args], check=True)
        return time.perf_counter() - began

    return {"python -c pass": statistics.median(timed("-c", "pass") for _ in range(runs)),
            "import bigtopd": statistics.median(
                timed("-c", "import bigtop.cli.bigtopd") for _ in range(runs))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    from bigtop.client import CallError, Client, CommandFailed

    # Bytecode up to date, as a package installation leaves it: a stale
    # .pyc (PYTHONDONTWRITEBYTECODE in a working tree) would time compiles.
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", str(REPO_DIR / "bigtop")],
                   check=True, env={k: v for k, v in os.environ.items()
                                    if k != "PYTHONDONTWRITEBYTECODE"})

    work = Path(tempfile.mkdtemp(prefix="bigtop-bench-upgrade-"))
    port = free_port()
    (work / "server.py").write_text(SERVER)
    config = work / "bigtop.ini"
    config.write_text(textwrap.dedent(f"""\
        [watcher:sleepers]
        cmd = sleep 100000
        numprocesses = {args.children}

        [watcher:web]
        cmd = {PYTHON} {work / "server.py"}
        use_sockets = true
        numprocesses = 2

        [socket:web]
        host = 127.0.0.1
        port = {port}
        """))
    env = {**os.environ, "BIGTOP_RUNTIME_DIR": str(work / "run")}
    endpoint = f"ipc://{work}/run/control.sock"
    with open(work / "daemon.log", "wb") as log:
        daemon = subprocess.Popen([str(PYTHON), "-m", "bigtop.cli.bigtopd", str(config)],
                                  cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=log)
    requests = None
    try:
        while True:
            try:
                with Client(endpoint, timeout=1) as c:
                    if len(c.call("list", name="sleepers")["pids"]) == args.children:
                        break
            except (CallError, CommandFailed):  # not up yet, or its watchers not made yet
                pass
            time.sleep(0.05)
        pids = None

        def answering() -> float:
            while True:
                try:
                    with Client(endpoint, timeout=0.05) as c:
                        c.call("version")
                    return time.perf_counter()
                except CallError:
                    time.sleep(0.005)

        def upgrade() -> tuple[float, float]:
            with Client(endpoint, timeout=30) as c:
                began = time.perf_counter()
                c.call("upgrade")
                replied = time.perf_counter()
            back = answering()
            return back - began, back - replied

        with Client(endpoint) as c:
            pids = c.call("list", name="sleepers")["pids"]
        requests = Requests(port)
        time.sleep(args.seconds)
        quiet, quiet_failed = requests.take()
        totals, gaps = [], []
        deadline = time.monotonic() + args.seconds
        while len(totals) < args.runs or time.monotonic() < deadline:
            total, gap = upgrade()
            totals.append(total)
            gaps.append(gap)
            time.sleep(max(0.0, 1.0 - total))
        during, during_failed = requests.take()
        with Client(endpoint) as c:
            assert c.call("list", name="sleepers")["pids"] == pids, "children replaced"
        base = floor(5)
        print(f"{args.children} children, {len(totals)} upgrades")
        print(f"  upgrade      median {statistics.median(totals) * 1000:6.0f} ms  "
              f"p95 {percentile(totals, 95) * 1000:6.0f} ms  "
              f"({statistics.median(totals) / base['import bigtopd']:.2f}x importing bigtopd)")
        print(f"  unavailable  median {statistics.median(gaps) * 1000:6.0f} ms  "
              f"p95 {percentile(gaps, 95) * 1000:6.0f} ms")
        print(f"  requests     p50 {percentile(quiet, 50) * 1e3:.2f} / "
              f"{percentile(during, 50) * 1e3:.2f} ms, p99 {percentile(quiet, 99) * 1e3:.2f} / "
              f"{percentile(during, 99) * 1e3:.2f} ms (without / with upgrades); "
              f"failed {quiet_failed} / {during_failed}; {len(quiet)} / {len(during)} requests")
        print(f"  floor        python -c pass {base['python -c pass'] * 1000:.0f} ms, "
              f"import bigtop.cli.bigtopd {base['import bigtopd'] * 1000:.0f} ms")
    finally:
        if requests is not None:
            requests.close()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
