"""HTTP benchmark: a hello-world WSGI app under bigtop, gunicorn and Circus.

Two parts, each system in a fresh temporary directory, on a free port of
127.0.0.1, with 2 worker processes accepting on one listening socket:

  throughput  ``wrk -t2 -c64`` for --seconds after a 2 s warm-up, against:
                bigtop + bigtop-wsgi, one configuration per backend
                  (waitress, gevent, bjoern when importable, uvicorn with
                  the same app in ASGI): bigtopd owns ``[socket:web]``, the
                  watcher runs ``bigtop-wsgi --fd $(circus.sockets.web)``
                  with ``numprocesses = 2`` and ``ready = notify``;
                gunicorn ``-w 2 -k sync`` and ``-k gevent``;
                Circus 0.19 + Chaussette (wsgiref, the backend that still
                  serves), with the same kind of Circus INI file;
                the serving floor: each of bigtop-wsgi's backends that the
                  repo venv can import, bare (bench/_floors.py http): a
                  parent binds the port (backlog 2048, as bigtopd), forks 2
                  workers that inherit the socket, and each serves the same
                  app with the library's own server API and the settings
                  bigtop-wsgi gives it (waitress 4 threads with its queue
                  warnings off, gevent pywsgi with TCP_NODELAY and no access
                  log, uvicorn without access log, on uvloop and httptools
                  when installed, bjoern's server_run); no bigtop code runs.
              Figures: requests/s, and the ratios to gunicorn's best worker
              class, to the serving floor (the fastest bare backend) and to
              the same backend bare, all measured in the same run.

              Why that floor: bigtop-wsgi is a thin layer over those servers,
              so what bigtop can cost is the difference between a backend
              under bigtopd + bigtop-wsgi and the same backend alone, with
              the same app, the same worker count and the same pre-forked
              shared socket. A bare asyncio (or uvloop) responder would not
              run the WSGI/ASGI test app at all, so it would measure a
              different program; the fastest of the bare backends is the
              best this app can be served with what the repo installs, and
              that is what "best bigtop backend within 10% of the serving
              floor" compares with.

  reload      the workers are replaced --reloads times under each of two
              loads (--reload-load):
                new        a load client in Python, --connections requests
                           in flight, a new connection for each, so that
                           every failure is one request with one cause;
                keepalive  the throughput load, wrk -c64 on kept-alive
                           connections, whose error counts are the failures;
              and the reload is, per system:
                bigtop      ``reload web`` rolling, waiting, through the
                            client library (what ``bigtopctl reload web
                            --rolling`` sends);
                gunicorn    ``kill -HUP`` of the master (sync workers, and gevent
                            workers, which keep connections alive);
                supervisord ``supervisorctl restart web`` of a program that
                            owns its socket (gunicorn, 2 sync workers);
                Circus      ``circusctl reload web --waiting`` (Chaussette).
              Figures: requests, failed requests (and, with the Python
              client, those in flight while a reload ran), causes, reload
              time, worst latency.

Systems are interleaved per run; figures are medians over --runs runs,
failure counts are sums. Daemons and their children are always stopped.

wrk must be installed (``apt-get install -y wrk``; the bench does it itself
when it runs as root). gunicorn, gevent and Chaussette are installed into
bench/.venv-anchors next to Circus and supervisord.

Run from the repo root:  .venv/bin/python bench/http.py [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

# This file is named like the standard library's ``http`` package, and
# Python puts the directory of the script it runs first on sys.path. Load
# the real package with bench/ off the path: any later ``import http...``
# in this process then finds it in sys.modules, not this file.
_BENCH_DIR = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _BENCH_DIR]
import http.client  # noqa: E402  (the standard library's, see above)

sys.path.insert(0, _BENCH_DIR)
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
REPO_BIN = REPO_DIR / ".venv" / "bin"
HOST = "127.0.0.1"
WORKERS = 2
WARMUP_S = 2              # wrk warm-up before each timed wrk run
START_TIMEOUT_S = 60.0    # daemon launch -> serving with all workers
RELOAD_TIMEOUT_S = 120.0  # trigger -> every worker replaced
LOAD_BEFORE_S = 2.0       # load alone before the first reload
LOAD_GAP_S = 1.0          # load alone after each reload
REQUEST_TIMEOUT_S = 10.0  # the load client gives up on a request after this
TARGET_SPEED = 1.2        # best bigtop req/s >= this x gunicorn's best
TARGET_FLOOR = 0.9        # best bigtop req/s >= this x the serving floor
WAITRESS_THREADS = 4      # bigtop-wsgi's default --threads, given to the bare floor too
FLOORS_PY = Path(_BENCH_DIR) / "_floors.py"
BODY = b"Hello, World!"

APP = '''\
"""The same hello world as WSGI (application) and ASGI (asgi)."""

BODY = b"Hello, World!"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
'''

# --------------------------------------------------------------------------
# The load client of the reload part. It runs in its own interpreter
# (standard library only), --connections / LOAD_PROCESSES tasks in each of
# LOAD_PROCESSES processes, until SIGTERM; then prints one JSON line.

LOAD_PROCESSES = 2

LOAD_SCRIPT = r'''
import asyncio, errno, json, signal, sys, time

HOST, PORT, TASKS, TIMEOUT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
REQUEST = b"GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (HOST.encode(), PORT)
BODY = b"Hello, World!"


def cause(stage, exc):
    if isinstance(exc, TimeoutError):
        return f"{stage}: timeout after {TIMEOUT:g} s"
    if isinstance(exc, asyncio.IncompleteReadError):
        return f"{stage}: closed " + ("mid-response" if exc.partial else "before any byte")
    if isinstance(exc, OSError) and exc.errno:
        return f"{stage}: {errno.errorcode.get(exc.errno, exc.errno)}"
    return f"{stage}: {type(exc).__name__}"


async def one():
    """None when the response is a 200 with the body, else the cause."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), TIMEOUT)
    except Exception as exc:
        return cause("connect", exc)
    try:
        writer.write(REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status = head.split(b" ", 2)[1]
        if status != b"200":
            return f"status {status.decode(errors='replace')}"
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            body = await asyncio.wait_for(reader.read(), TIMEOUT)
        else:
            body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
        return None if body == BODY else "wrong body"
    except Exception as exc:
        return cause("response", exc)
    finally:
        writer.close()


async def worker(stop, out):
    while not stop.is_set():
        started = time.monotonic()
        failure = await one()
        ended = time.monotonic()
        if failure is None:
            out["latencies_ms"].append(round(1000 * (ended - started), 2))
        else:
            out["failures"].append([started, ended, failure])


async def main():
    stop = asyncio.Event()
    # Only the bench stops the load (SIGTERM): a Ctrl-C reaches the bench,
    # which then kills us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    out = {"latencies_ms": [], "failures": []}
    started = time.monotonic()
    await asyncio.gather(*(worker(stop, out) for _ in range(TASKS)))
    out["started"], out["ended"] = started, time.monotonic()
    print(json.dumps(out), flush=True)


asyncio.run(main())
'''


class LoadClient:
    """The load client's processes, for a ``with`` block."""

    def __init__(self, port: int, connections: int):
        self.port = port
        self.tasks = [connections // LOAD_PROCESSES + (i < connections % LOAD_PROCESSES)
                      for i in range(LOAD_PROCESSES)]
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> LoadClient:
        for tasks in self.tasks:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", LOAD_SCRIPT, HOST, str(self.port), str(tasks),
                 str(REQUEST_TIMEOUT_S)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def finish(self) -> dict:
        """Stop the load (requests in flight complete) and merge the figures."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        merged: dict = {"latencies_ms": [], "failures": [], "started": None, "ended": None}
        for proc in self.procs:
            try:
                out, err = proc.communicate(timeout=REQUEST_TIMEOUT_S + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            try:
                part = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise MeasurementError(
                    f"load client failed (status {proc.returncode}, {len(out):,} bytes of "
                    f"output ending {out[-200:]!r}):\n{err[-1500:]}") from None
            merged["latencies_ms"] += part["latencies_ms"]
            merged["failures"] += part["failures"]
            merged["started"] = max(merged["started"] or 0.0, part["started"])
            merged["ended"] = min(merged["ended"] or float("inf"), part["ended"])
        return merged


# --------------------------------------------------------------------------
# The configurations: how to write their config files and launch them.


@dataclass(frozen=True)
class Setup:
    key: str
    label: str
    system: str            # bigtop, gunicorn, circus, supervisord or floor
    option: str            # bigtop-wsgi backend, gunicorn worker class, ...
    app: str = "hello:application"

    @property
    def workers_tree(self) -> int:
        """Descendants of the daemon when it serves: supervisord runs a
        gunicorn master and its workers, the others the workers alone."""
        return WORKERS + 1 if self.system == "supervisord" else WORKERS


THROUGHPUT = [
    Setup("bigtop-waitress", "bigtop + bigtop-wsgi waitress", "bigtop", "waitress"),
    Setup("bigtop-gevent", "bigtop + bigtop-wsgi gevent", "bigtop", "gevent"),
    Setup("bigtop-bjoern", "bigtop + bigtop-wsgi bjoern", "bigtop", "bjoern"),
    Setup("bigtop-uvicorn", "bigtop + bigtop-wsgi uvicorn (ASGI app)", "bigtop", "uvicorn",
          "hello:asgi"),
    Setup("gunicorn-sync", "gunicorn sync", "gunicorn", "sync"),
    Setup("gunicorn-gevent", "gunicorn gevent", "gunicorn", "gevent"),
    Setup("circus-chaussette", "Circus 0.19 + Chaussette wsgiref", "circus", "wsgiref",
          "hello.application"),
    Setup("floor-waitress", "floor: waitress bare (no bigtop)", "floor", "waitress"),
    Setup("floor-gevent", "floor: gevent pywsgi bare (no bigtop)", "floor", "gevent"),
    Setup("floor-bjoern", "floor: bjoern bare (no bigtop)", "floor", "bjoern"),
    Setup("floor-uvicorn", "floor: uvicorn bare (ASGI app, no bigtop)", "floor", "uvicorn",
          "hello:asgi"),
]
RELOADS = [
    Setup("reload-bigtop", "bigtop + waitress: reload web --rolling", "bigtop", "waitress"),
    Setup("reload-gunicorn", "gunicorn sync: kill -HUP master", "gunicorn", "sync"),
    Setup("reload-gunicorn-gevent", "gunicorn gevent: kill -HUP master", "gunicorn", "gevent"),
    Setup("reload-supervisord", "supervisord: restart web (gunicorn sync)", "supervisord",
          "sync"),
    Setup("reload-circus", "Circus + Chaussette: reload web --waiting", "circus", "wsgiref",
          "hello.application"),
]
SETUPS = {s.key: s for s in THROUGHPUT + RELOADS}
GROUPS = {"throughput": [s.key for s in THROUGHPUT], "reload": [s.key for s in RELOADS]}
BIGTOP_LIBRARIES = {"waitress": "waitress", "gevent": "gevent", "bjoern": "bjoern",
                    "uvicorn": "uvicorn"}


def free_port() -> int:
    """A port nothing listens on now (the daemon binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def launch(setup: Setup, workdir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """Write the config files; return the daemon's argv and extra environment."""
    (workdir / "hello.py").write_text(APP)
    if setup.system == "bigtop":
        runtime = workdir / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        cmd = (f"{REPO_BIN / 'bigtop-wsgi'} --fd $(circus.sockets.web) --backend "
               f"{setup.option} --log-level warning --graceful-timeout 5 {setup.app}")
        config = circus_ini(workdir, port, cmd, "ready = notify\ngraceful_timeout = 10\n")
        return [str(REPO_BIN / "bigtopd"), str(config)], {"BIGTOP_RUNTIME_DIR": str(runtime)}
    if setup.system == "floor":
        return [str(REPO_BIN / "python"), str(FLOORS_PY), "http", setup.option, HOST,
                str(port), str(WORKERS), str(WAITRESS_THREADS), str(workdir), setup.app], {}
    if setup.system == "circus":
        cmd = (f"{_anchors.anchor_bin('chaussette')} --fd $(circus.sockets.web) --backend "
               f"{setup.option} {setup.app}")
        config = circus_ini(workdir, port, cmd, "use_sockets = True\n")
        return [str(_anchors.anchor_bin("circusd")), str(config)], {}
    if setup.system == "gunicorn":
        return gunicorn_argv(setup.option, port, setup.app), {}
    if setup.system == "supervisord":
        config = workdir / "supervisord.conf"
        config.write_text(supervisord_header(workdir) + "\n" + textwrap.dedent(f"""\
            [program:web]
            command = {shlex.join(gunicorn_argv(setup.option, port, setup.app))}
            directory = {workdir}
            startsecs = 1
            stopwaitsecs = 30
            """))
        return [str(_anchors.anchor_bin("supervisord")), "-n", "-c", str(config)], {}
    raise ValueError(setup.system)


def circus_ini(workdir: Path, port: int, cmd: str, extra: str) -> Path:
    """The Circus INI file bigtopd and circusd both read (no stats_endpoint:
    with it Circus 0.19 starts circusd-stats)."""
    config = workdir / "circus.ini"
    config.write_text(textwrap.dedent(f"""\
        [circus]
        endpoint = ipc://{workdir}/ctl.sock
        pubsub_endpoint = ipc://{workdir}/pub.sock

        [socket:web]
        host = {HOST}
        port = {port}

        [watcher:web]
        cmd = {cmd}
        working_dir = {workdir}
        numprocesses = {WORKERS}
        """) + extra)
    return config


def gunicorn_argv(worker_class: str, port: int, app: str) -> list[str]:
    return [str(_anchors.anchor_bin("gunicorn")), "-w", str(WORKERS), "-k", worker_class,
            "-b", f"{HOST}:{port}", "--log-level", "warning", app]


def endpoint(workdir: Path) -> str:
    return f"ipc://{workdir}/ctl.sock"


# --------------------------------------------------------------------------
# Serving processes.


def serving_pids(daemon: Daemon) -> set[int]:
    """The daemon's live descendants (workers, and a gunicorn master)."""
    found = set()
    try:
        children = psutil.Process(daemon.pid).children(recursive=True)
    except psutil.Error:
        return found
    for proc in children:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.add(proc.pid)
    return found


def answers(port: int) -> bool:
    """Does GET / answer 200 with the hello body?"""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status == 200 and response.read() == BODY
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_serving(daemon: Daemon, setup: Setup, port: int, old: set[int] = frozenset(),
                 timeout: float = START_TIMEOUT_S) -> set[int]:
    """Until every serving process is new (not in ``old``), there are as many
    as the setup runs, and the port answers; return their pids."""
    deadline = time.monotonic() + timeout
    while True:
        daemon.check_alive()
        pids = serving_pids(daemon)
        if len(pids) == setup.workers_tree and not pids & old and answers(port):
            return pids
        if time.monotonic() > deadline:
            raise MeasurementError(
                f"not serving after {timeout:g} s: {len(pids)} processes "
                f"({len(pids & old)} old), wanted {setup.workers_tree} new:\n"
                + daemon.log_tail())
        time.sleep(0.05)


# --------------------------------------------------------------------------
# Throughput.


class Outcome:
    """What went wrong in a measurement: its errors, and processes left
    running after the daemon stopped."""

    errors: list[str]
    survivors: list[str]

    def problems(self) -> list[str]:
        found = list(self.errors)
        if self.survivors:
            found.append(f"{len(self.survivors)} processes survived the daemon: "
                         + "; ".join(self.survivors[:3]))
        return found


@dataclass
class ThroughputResult(Outcome):
    key: str
    run: int
    rps: float | None = None
    requests: int | None = None
    wrk_errors: dict[str, int] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class WrkFigures:
    rps: float
    requests: int
    errors: dict[str, int]      # wrk's socket errors by kind, and non-2xx responses
    max_ms: float | None


def wrk_argv(port: int, seconds: int, connections: int) -> list[str]:
    return ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout",
            f"{REQUEST_TIMEOUT_S:g}s", f"http://{HOST}:{port}/"]


def parse_wrk(returncode: int, out: str, err: str) -> WrkFigures:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if returncode != 0 or not rate or not count:
        raise MeasurementError(f"wrk failed ({returncode}): " + (err or out).strip()[-500:])
    errors = {}
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                        r"timeout (\d+)", out)
    if sockets:
        for name, value in zip(("connect", "read", "write", "timeout"), sockets.groups(),
                               strict=True):
            if int(value):
                errors[f"wrk {name} error" if name != "timeout" else "wrk timeout"] = int(value)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors["non-2xx"] = int(non2xx.group(1))
    latency = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m|h)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
    max_ms = float(latency.group(1)) * scale[latency.group(2)] if latency else None
    return WrkFigures(float(rate.group(1)), int(count.group(1)), errors, max_ms)


def run_wrk(port: int, seconds: int, connections: int) -> WrkFigures:
    try:
        proc = subprocess.run(wrk_argv(port, seconds, connections), capture_output=True,
                              text=True, check=False, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise MeasurementError(f"wrk ran over {seconds + 60} s") from None
    return parse_wrk(proc.returncode, proc.stdout, proc.stderr)


class WrkLoad:
    """wrk as the load of a reload, for a ``with`` block: it runs until
    finish() interrupts it (SIGINT: wrk stops and prints its figures)."""

    def __init__(self, port: int, connections: int):
        self.argv = wrk_argv(port, 3600, connections)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> WrkLoad:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self) -> WrkFigures:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=REQUEST_TIMEOUT_S + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return parse_wrk(self.proc.returncode, out, err)


def measure_throughput(setup: Setup, run: int, args) -> ThroughputResult:
    result = ThroughputResult(key=setup.key, run=run)
    workdir = Path(tempfile.mkdtemp(prefix=f"bigtop-http-{setup.key}-"))
    try:
        port = free_port()
        argv, env = launch(setup, workdir, port)
        with environ(env), Daemon(argv, workdir) as daemon:
            try:
                wait_serving(daemon, setup, port)
                run_wrk(port, WARMUP_S, args.connections)
                figures = run_wrk(port, args.seconds, args.connections)
                daemon.check_alive()
                result.rps, result.requests = figures.rps, figures.requests
                result.wrk_errors = figures.errors
            except MeasurementError as exc:
                result.errors.append(str(exc))
            except psutil.NoSuchProcess:
                result.errors.append("daemon vanished:\n" + daemon.log_tail())
            result.survivors = daemon.stop().survivors
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------
# Reload under load.


LOADS = {  # kind of load during reloads -> label
    "new": "new connection per request",
    "keepalive": "wrk, keep-alive",
}


@dataclass
class ReloadResult(Outcome):
    key: str
    load: str                          # a key of LOADS
    run: int
    requests: int = 0                  # completed, failed or not
    failed: int = 0
    failed_in_reload: int | None = 0   # in flight while a reload ran (None: unknown)
    causes: dict[str, int] = field(default_factory=dict)
    reload_s: list[float] = field(default_factory=list)
    load_rps: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    survivors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def trigger_reload(setup: Setup, daemon: Daemon, workdir: Path) -> None:
    """Ask the system to replace its workers, the way its users do."""
    if setup.system == "bigtop":
        from bigtop.client import CallError, Client, CommandFailed

        try:
            with Client(endpoint(workdir), timeout=RELOAD_TIMEOUT_S) as client:
                client.call("reload", name="web", rolling=True, waiting=True)
        except (CallError, CommandFailed) as exc:
            raise MeasurementError(f"bigtop reload: {exc}") from None
        return
    if setup.system == "gunicorn":
        os.kill(daemon.pid, signal.SIGHUP)
        return
    if setup.system == "supervisord":
        argv = [str(_anchors.anchor_bin("supervisorctl")), "-c",
                str(workdir / "supervisord.conf"), "restart", "web"]
    else:
        argv = [str(_anchors.anchor_bin("circusctl")), "--endpoint", endpoint(workdir),
                "--timeout", str(int(RELOAD_TIMEOUT_S)), "reload", "web", "--waiting"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=RELOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MeasurementError(f"{Path(argv[0]).name} took over {RELOAD_TIMEOUT_S:g} s"
                               ) from None
    # supervisorctl exits 0 even when a start failed: its output says so.
    said = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "ERROR" in said:
        raise MeasurementError(f"{Path(argv[0]).name} {' '.join(argv[-2:])} failed "
                               f"({proc.returncode}): {said[-500:]}")


def measure_reload(setup: Setup, load: str, run: int, args) -> ReloadResult:
    result = ReloadResult(key=setup.key, load=load, run=run)
    workdir = Path(tempfile.mkdtemp(prefix=f"bigtop-http-{setup.key}-{load}-"))
    try:
        port = free_port()
        argv, env = launch(setup, workdir, port)
        with environ(env), Daemon(argv, workdir) as daemon:
            try:
                pids = wait_serving(daemon, setup, port)
                reload_under_load(setup, daemon, workdir, port, pids, args, result)
            except MeasurementError as exc:
                result.errors.append(str(exc))
            except psutil.NoSuchProcess:
                result.errors.append("daemon vanished:\n" + daemon.log_tail())
            result.survivors = daemon.stop().survivors
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def reload_under_load(setup: Setup, daemon: Daemon, workdir: Path, port: int,
                      pids: set[int], args, result: ReloadResult) -> None:
    windows: list[tuple[float, float]] = []
    client = LoadClient if result.load == "new" else WrkLoad
    with client(port, args.connections) as load:
        time.sleep(LOAD_BEFORE_S)
        for _ in range(args.reloads):
            started = time.monotonic()
            trigger_reload(setup, daemon, workdir)
            pids = wait_serving(daemon, setup, port, old=pids, timeout=RELOAD_TIMEOUT_S)
            ended = time.monotonic()
            windows.append((started, ended))
            result.reload_s.append(ended - started)
            time.sleep(LOAD_GAP_S)
        out = load.finish()
    daemon.check_alive()
    if isinstance(out, WrkFigures):
        # wrk counts errors but does not say when: the notes compare with
        # its counts without reloads, in the throughput part.
        result.failed = sum(out.errors.values())
        result.requests = out.requests + result.failed  # wrk counts responses
        result.load_rps, result.max_ms = out.rps, out.max_ms
        result.failed_in_reload = None
        result.causes = dict(sorted(out.errors.items(), key=lambda item: -item[1]))
        return
    latencies = sorted(out["latencies_ms"])
    failures = out["failures"]
    result.requests = len(latencies) + len(failures)
    result.failed = len(failures)
    result.failed_in_reload = sum(
        1 for begun, done, _ in failures
        if any(begun <= end and done >= start for start, end in windows))
    result.causes = dict(Counter(f[2] for f in failures).most_common())
    if latencies:
        result.load_rps = result.requests / (out["ended"] - out["started"])
        result.p99_ms = lifecycle.percentile(latencies, 99)
        result.max_ms = latencies[-1]


# --------------------------------------------------------------------------
# Availability of each configuration here.


def bigtop_libraries() -> dict[str, str | None]:
    """Version of each backend's library in the repo venv (None: missing)."""
    probe = textwrap.dedent("""\
        import importlib, importlib.metadata as md, json, sys
        out = {}
        for name in sys.argv[1:]:
            try:
                importlib.import_module(name)
                out[name] = md.version(name)
            except Exception:
                out[name] = None
        print(json.dumps(out))
        """)
    names = [*BIGTOP_LIBRARIES.values(), "uvloop", "httptools"]
    proc = subprocess.run([str(REPO_BIN / "python"), "-c", probe, *names],
                          capture_output=True, text=True, check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return dict.fromkeys(names)


def ensure_wrk() -> str | None:
    """None when wrk can run, else why not; installs it with apt-get as root."""
    if shutil.which("wrk"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "wrk is not installed: run `apt-get install -y wrk` (as root) and try again"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("wrk: not installed; running apt-get install -y wrk", flush=True)
    for argv in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"],
                 ["apt-get", "install", "-y", "wrk"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        if argv[1] == "install" and done.returncode == 0 and shutil.which("wrk"):
            return None
    return "wrk is not installed and `apt-get install -y wrk` failed: install it and try again"


def wrk_version() -> str:
    if not shutil.which("wrk"):
        return "none"
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    words = (done.stdout or done.stderr).split()
    return words[1] if len(words) > 1 else "unknown"


def unavailable(keys: list[str], versions: dict, chaussette_reason: str | None,
                wrk_reason: str | None) -> dict[str, str]:
    why = {}
    for key in keys:
        setup = SETUPS[key]
        if setup in THROUGHPUT and wrk_reason:
            why[key] = wrk_reason
        elif setup.system in ("bigtop", "floor") and not versions["bigtop"].get(
                BIGTOP_LIBRARIES[setup.option]):
            hint = ("apt-get install -y libev-dev && .venv/bin/pip install bjoern"
                    if setup.option == "bjoern" else ".venv/bin/pip install 'bigtop[wsgi]'")
            why[key] = (f"n/a: {BIGTOP_LIBRARIES[setup.option]} is not importable by "
                        f"{REPO_BIN / 'python'} ({hint})")
        elif setup.system == "circus" and chaussette_reason:
            why[key] = f"n/a: Chaussette does not run on this Python: {chaussette_reason}"
    return why


# --------------------------------------------------------------------------
# Reporting.


def median_of(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def throughput_medians(results: dict[str, list[ThroughputResult]]) -> dict[str, float | None]:
    return {key: median_of([r.rps for r in runs]) for key, runs in results.items()}


def best_of(medians: dict[str, float | None], system: str) -> tuple[str, float] | None:
    found = [(value, key) for key, value in medians.items()
             if value is not None and SETUPS[key].system == system]
    if not found:
        return None
    value, key = max(found)
    return key, value


def print_throughput(results: dict[str, list[ThroughputResult]], why: dict[str, str],
                     args) -> None:
    medians = throughput_medians(results)
    gunicorn = best_of(medians, "gunicorn")
    floor = best_of(medians, "floor")
    circus = medians.get("circus-chaussette")
    header = ["configuration (2 workers)", "req/s", "/ serving floor", "/ same backend bare",
              "/ gunicorn's best", "/ Circus+Chaussette", "wrk errors (all runs)",
              "runs [req/s]"]
    rows = []
    for setup in THROUGHPUT:
        if setup.key not in results and setup.key not in why:
            continue
        if setup.key in why:
            rows.append([setup.label, "n/a", *["—"] * 6])
            continue
        runs = results[setup.key]
        errors = Counter()
        for r in runs:
            errors.update(r.wrk_errors)
        value = medians[setup.key]
        bare = (medians.get(f"floor-{setup.option}") if setup.system == "bigtop" else None)
        rows.append([setup.label, fmt(value, "{:,.0f}"),
                     ratio(value, floor[1] if floor else None), ratio(value, bare),
                     ratio(value, gunicorn[1] if gunicorn else None), ratio(value, circus),
                     ", ".join(f"{k} {v:,}" for k, v in errors.items()) or "0",
                     ", ".join(fmt(r.rps, "{:,.0f}") for r in runs)])
    print(f"\nThroughput: wrk -t2 -c{args.connections} -d{args.seconds}s, median of "
          f"{args.runs} runs\n")
    lifecycle.print_markdown(header, rows)
    if floor:
        print(f"\nserving floor: {SETUPS[floor[0]].label}, {floor[1]:,.0f} req/s (the "
              "fastest bare backend of this run)")


def print_reloads(results: dict[tuple[str, str], list[ReloadResult]], why: dict[str, str],
                  args) -> None:
    header = ["system: reload", "load", "reloads", "requests", "failed",
              "failed in a reload", "causes", "reload [s]", "p99 / max latency [ms]",
              "load [req/s]"]
    rows = []
    for setup in RELOADS:
        for load in args.loads:
            if (setup.key, load) not in results and setup.key not in why:
                continue
            if setup.key in why:
                rows.append([setup.label, LOADS[load], "n/a", *["—"] * 7])
                continue
            rows.append([setup.label, LOADS[load], *reload_cells(results[setup.key, load])])
    print(f"\nReload under load: {args.connections} connections; {args.reloads} reloads per "
          f"run, {args.runs} runs (counts are sums; reload time and p99 medians, max the "
          "worst)\n")
    lifecycle.print_markdown(header, rows)


def reload_cells(runs: list[ReloadResult]) -> list[str]:
    causes: Counter = Counter()
    for r in runs:
        causes.update(r.causes)
    reloads = [s for r in runs for s in r.reload_s]
    in_reload = [r.failed_in_reload for r in runs]
    p99 = fmt(median_of([r.p99_ms for r in runs]), "{:,.0f}")
    worst = fmt(max((r.max_ms for r in runs if r.max_ms is not None), default=None),
                "{:,.0f}")
    return [str(len(reloads)), f"{sum(r.requests for r in runs):,}",
            f"{sum(r.failed for r in runs):,}",
            "—" if None in in_reload else f"{sum(in_reload):,}",
            "; ".join(f"{k} {v:,}" for k, v in causes.most_common()) or "—",
            fmt(median_of(reloads), "{:.2f}"), f"{p99} / {worst}",
            fmt(median_of([r.load_rps for r in runs]), "{:,.0f}")]


def evaluate_targets(throughput: dict[str, list[ThroughputResult]],
                     reloads: dict[tuple[str, str], list[ReloadResult]], why: dict[str, str],
                     keys: list[str], loads: list[str]) -> list[dict]:
    targets = []
    name = f"best bigtop configuration >= {TARGET_SPEED:g}x gunicorn's best req/s"
    medians = throughput_medians(throughput)
    big, gunicorn = best_of(medians, "bigtop"), best_of(medians, "gunicorn")
    if big and gunicorn:
        times = big[1] / gunicorn[1]
        detail = (f"{times:.2f}x, need {TARGET_SPEED:g}x ({SETUPS[big[0]].label} "
                  f"{big[1]:,.0f} req/s, {SETUPS[gunicorn[0]].label} {gunicorn[1]:,.0f} req/s)")
        default = medians.get("bigtop-waitress")
        if big[0] != "bigtop-waitress" and default:
            detail += f"; the WSGI default, waitress: {default / gunicorn[1]:.2f}x"
        targets.append({"target": name, "pass": times >= TARGET_SPEED, "bigtop": big[1],
                        "gunicorn": gunicorn[1], "ratio": times, "detail": detail})
    elif any(k in keys for k in GROUPS["throughput"]):
        reason = next((why[k] for k in GROUPS["throughput"]
                       if k in why and "wrk" in why[k]),
                      "not measured for both bigtop and gunicorn")
        targets.append({"target": name, "pass": None, "detail": reason})

    name = (f"best bigtop backend within {1 - TARGET_FLOOR:.0%} of the serving floor "
            "(fastest bare backend)")
    floor = best_of(medians, "floor")
    if big and floor:
        times = big[1] / floor[1]
        detail = (f"{times:.2f}x, need {TARGET_FLOOR:g}x ({SETUPS[big[0]].label} "
                  f"{big[1]:,.0f} req/s, {SETUPS[floor[0]].label} {floor[1]:,.0f} req/s)")
        bare = medians.get(f"floor-{SETUPS[big[0]].option}")
        if bare and f"floor-{SETUPS[big[0]].option}" != floor[0]:
            detail += f"; against the same backend bare: {big[1] / bare:.2f}x"
        targets.append({"target": name, "pass": times >= TARGET_FLOOR, "bigtop": big[1],
                        "floor": floor[1], "floor_key": floor[0], "ratio": times,
                        "detail": detail})
    elif any(k in keys for k in GROUPS["throughput"]):
        reason = next((why[k] for k in GROUPS["throughput"]
                       if k in why and "wrk" in why[k]),
                      "not measured for both bigtop and a bare backend")
        targets.append({"target": name, "pass": None, "detail": reason})

    for load in loads:
        name = f"0 failed requests during bigtop rolling reloads ({LOADS[load]})"
        runs = reloads.get(("reload-bigtop", load), [])
        if any(r.reload_s for r in runs):
            failed = sum(r.failed for r in runs)
            requests = sum(r.requests for r in runs)
            count = sum(len(r.reload_s) for r in runs)
            incomplete = [r for r in runs if r.errors]
            detail = f"{failed:,} failed of {requests:,} requests over {count} reloads"
            if incomplete:
                detail += f" ({len(incomplete)} runs incomplete)"
            targets.append({"target": name, "pass": failed == 0 and not incomplete,
                            "load": load, "failed": failed, "requests": requests,
                            "detail": detail})
        elif "reload-bigtop" in keys:
            targets.append({"target": name, "pass": None, "load": load,
                            "detail": why.get("reload-bigtop", "not measured")})
    return targets


def print_notes(args, throughput, reloads, why) -> None:
    print("\nNotes:")
    print(f"  - every server runs {WORKERS} worker processes accepting on one listening "
          "socket (bigtopd's and circusd's are bound by the daemon and inherited by the "
          "workers; gunicorn binds its own); the app answers a 13-byte body.")
    if any(SETUPS[k].system == "floor" for k in throughput):
        print("  - serving floor: the same app on each bigtop-wsgi backend bare (bench/"
              "_floors.py http: a parent binds the port and forks the workers, which "
              "serve with the library's own server and bigtop-wsgi's settings), no bigtop "
              "code; the floor is the fastest of them in this run.")
    print(f"  - wrk runs on the same {os.cpu_count()} cores as the servers and takes a "
          "share of them; the machine is shared, so runs vary: compare within one run.")
    print("  - Chaussette's wsgiref (HTTP/1.0) and gunicorn's sync worker (`Connection: "
          "close`) close every connection after one response, so wrk opens a connection "
          "per request with them; the others keep connections alive.")
    print(f"  - reload load 'new connection per request': {args.connections} requests in "
          f"flight from {LOAD_PROCESSES} Python processes (asyncio), each on a new "
          "connection with `Connection: close`, so every failure is one request with one "
          "cause: a connect error, a reset or early close, a timeout "
          f"({REQUEST_TIMEOUT_S:g} s), a status other than 200 or a wrong body. 'failed in "
          "a reload' counts those in flight between a trigger and the last old worker's "
          f"exit. The load runs {LOAD_BEFORE_S:g} s before the first reload and "
          f"{LOAD_GAP_S:g} s after each.")
    if "keepalive" in args.loads:
        quiet: Counter = Counter()
        for runs in throughput.values():
            for r in runs:
                quiet.update(r.wrk_errors)
        baseline = (f" Without reloads (the throughput part) wrk counted "
                    f"{sum(quiet.values()):,} errors." if throughput else "")
        print(f"  - reload load 'wrk, keep-alive': the throughput load (wrk -t2 "
              f"-c{args.connections}), stopped by SIGINT after the last reload; its socket "
              "errors and non-2xx responses are the failures, requests are its responses "
              "plus its errors. wrk does not say when they "
              "happened, hence no 'failed in a reload'. A read error is a request written "
              "on a kept-alive connection that the server closed without answering it: "
              "browsers and proxies retry such a GET, many HTTP libraries do not. While "
              "nothing listens, wrk counts each reconnection attempt as a connect or write "
              "error, so those counts are attempts rather than requests." + baseline)
    print("  - reload time: from the trigger until every old process has exited and as "
          "many new ones serve (bigtop: the reload call returns once the old are stopped; "
          "gunicorn: HUP returns at once; supervisorctl restart: stop, then start and "
          "startsecs = 1).")
    print(f"  - bigtop reload: backend {SETUPS['reload-bigtop'].option}, ready = notify, "
          "one process at a time, each old one stopped once its replacement is ready.")
    for key, reason in why.items():
        print(f"  - {SETUPS[key].label if key in SETUPS else key}: {reason}")
    for key, runs in throughput.items():
        clean = sum(1 for r in runs if not r.problems())
        if clean < len(runs):
            print(f"  - {SETUPS[key].label}: {clean}/{len(runs)} runs clean.")
    for (key, load), runs in reloads.items():
        clean = sum(1 for r in runs if not r.problems())
        if clean < len(runs):
            print(f"  - {SETUPS[key].label}, {LOADS[load]}: {clean}/{len(runs)} runs clean.")


def summary_throughput(result: ThroughputResult) -> str:
    if result.rps is None:
        return "no figures"
    errors = ", ".join(f"{k} {v:,}" for k, v in result.wrk_errors.items()) or "none"
    return f"{result.rps:,.0f} req/s ({result.requests:,} requests; wrk errors: {errors})"


def summary_reload(result: ReloadResult) -> str:
    if not result.requests:
        return "no figures"
    causes = "; ".join(f"{k} {v:,}" for k, v in result.causes.items())
    during = ("" if result.failed_in_reload is None
              else f" ({result.failed_in_reload:,} in a reload)")
    return (f"{result.failed:,} failed of {result.requests:,} requests"
            f"{during}{': ' + causes if causes else ''}; "
            f"reloads {', '.join(f'{s:.2f}' for s in result.reload_s)} s; "
            f"load {fmt(result.load_rps, '{:,.0f}')} req/s, max latency "
            f"{fmt(result.max_ms, '{:,.0f}')} ms")


# --------------------------------------------------------------------------
# Main.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="HTTP benchmark: bigtop + bigtop-wsgi vs gunicorn vs Circus + "
                    "Chaussette, beside the serving floor (the same backends bare); "
                    "failed requests during reloads.")
    parser.add_argument("--only", default="throughput,reload",
                        help="comma-separated configurations or groups (throughput, "
                             "reload): " + ",".join(SETUPS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--connections", type=int, default=64,
                        help="wrk connections, and requests in flight during reloads")
    parser.add_argument("--reloads", type=int, default=3, help="reloads per run")
    parser.add_argument("--reload-load", default=",".join(LOADS),
                        help="loads during reloads, comma-separated: %(default)s")
    parser.add_argument("--reload-backend", default="waitress",
                        choices=sorted(BIGTOP_LIBRARIES),
                        help="bigtop-wsgi backend for the bigtop reload (default: "
                             "%(default)s, the WSGI default)")
    parser.add_argument("--json", metavar="FILE", type=Path,
                        help="also write raw and median figures as JSON")
    args = parser.parse_args(argv)
    keys: list[str] = []
    for word in (w.strip() for w in args.only.split(",")):
        for key in GROUPS.get(word, [word] if word else []):
            if key not in SETUPS:
                parser.error(f"--only: unknown {key!r}; use throughput, reload or "
                             + ",".join(SETUPS))
            if key not in keys:
                keys.append(key)
    if not keys:
        parser.error("--only names nothing")
    args.only = keys
    args.loads = [w.strip() for w in args.reload_load.split(",") if w.strip()]
    if not args.loads or any(w not in LOADS for w in args.loads):
        parser.error(f"--reload-load takes a subset of {','.join(LOADS)}")
    if min(args.runs, args.seconds, args.connections, args.reloads) < 1:
        parser.error("--runs, --seconds, --connections and --reloads must be positive")
    if args.connections < LOAD_PROCESSES:
        parser.error(f"--connections must be at least {LOAD_PROCESSES}")
    return args


def prepare(keys: list[str]) -> tuple[dict, dict[str, str]]:
    """Install what the selected configurations need; versions, and why some
    cannot run (with the key "wrk" when wrk is missing)."""
    versions: dict = {"anchors": _anchors.ensure_anchor_venv(_anchors.HTTP_PINS)}
    chaussette, chaussette_reason = (None, None)
    if any(SETUPS[k].system == "circus" for k in keys):
        chaussette, chaussette_reason = _anchors.ensure_chaussette()
        chaussette_reason = chaussette_reason or None
    wrk_reason = ensure_wrk()
    versions["bigtop"] = bigtop_libraries()
    versions["wrk"] = wrk_version()
    anchors = dict(versions["anchors"])
    if chaussette:
        name, version = chaussette.split()
        anchors[name] = version
    versions["servers"] = {
        "bigtop venv": {k: v for k, v in versions["bigtop"].items() if v},
        "anchor venv": anchors}
    why = unavailable(keys, versions, chaussette_reason, wrk_reason)
    if wrk_reason:
        why["wrk"] = wrk_reason
    return versions, why


def print_header(command: str, versions: dict, args) -> None:
    print(f"command: {command}")
    print(f"host: {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
          f"{platform.python_version()} (bench), wrk {versions['wrk']}, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("servers: " + "; ".join(
        f"{venv}: " + ", ".join(f"{k} {v}" for k, v in found.items())
        for venv, found in versions["servers"].items()))
    print(f"params: runs={args.runs} seconds={args.seconds} connections={args.connections} "
          f"reloads={args.reloads} reload_load={','.join(args.loads)} "
          f"reload_backend={args.reload_backend} workers={WORKERS}")


def run_all(keys: list[str], args) -> tuple[dict, dict, bool]:
    """Every run of every configuration, interleaved; and whether interrupted."""
    throughput: dict[str, list] = {k: [] for k in keys if SETUPS[k] in THROUGHPUT}
    reloads: dict[tuple[str, str], list] = {
        (k, load): [] for k in keys if SETUPS[k] in RELOADS for load in args.loads}
    jobs = [
        [(SETUPS[k].label, throughput[k], summary_throughput,
          lambda run, k=k: measure_throughput(SETUPS[k], run, args)) for k in throughput],
        [(f"{SETUPS[k].label}, {LOADS[load]}", reloads[k, load], summary_reload,
          lambda run, k=k, load=load: measure_reload(SETUPS[k], load, run, args))
         for k, load in reloads],
    ]
    try:
        for run in range(args.runs):
            for columns in jobs:
                if not columns:
                    continue
                shift = run % len(columns)
                for label, results, summary, measure in columns[shift:] + columns[:shift]:
                    print(f"[run {run + 1}/{args.runs}] {label}", flush=True)
                    result = measure(run)
                    results.append(result)
                    print(f"    {summary(result)}", flush=True)
                    for problem in result.problems():
                        print(f"    PROBLEM: {problem}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: daemons stopped, reporting what was measured")
        return throughput, reloads, True
    return throughput, reloads, False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = os.environ.get(lifecycle.ORIG_COMMAND_ENV) or shlex.join(sys.orig_argv)
    if psutil is None:
        sys.exit(f"psutil is not importable by {sys.executable}; run with {REPO_BIN}/python")
    # Our own readiness socket, if any, is not the workers'.
    os.environ.pop("NOTIFY_SOCKET", None)
    SETUPS["reload-bigtop"] = RELOADS[0] = Setup(
        "reload-bigtop", f"bigtop + {args.reload_backend}: reload web --rolling", "bigtop",
        args.reload_backend,
        "hello:asgi" if args.reload_backend == "uvicorn" else "hello:application")
    versions, why = prepare(args.only)
    print_header(command, versions, args)
    if not become_subreaper():
        print("warning: could not become a child subreaper; leftover detection relies "
              "on a snapshot taken before each stop")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    if "wrk" in why and "keepalive" in args.loads:
        args.loads.remove("keepalive")
        print(f"reload load '{LOADS['keepalive']}': {why['wrk']}")
    for key, reason in why.items():
        if key != "wrk":
            print(f"{SETUPS[key].label}: {reason}")

    keys = [k for k in args.only if k not in why]
    throughput, reloads, interrupted = run_all(keys, args)

    print(f"\ncommand: {command}")
    shown = [k for k in args.only if SETUPS[k] in THROUGHPUT]
    if shown:
        print_throughput(throughput, {k: why[k] for k in shown if k in why}, args)
    shown = [k for k in args.only if SETUPS[k] in RELOADS]
    if shown:
        print_reloads(reloads, {k: why[k] for k in shown if k in why}, args)
    targets = evaluate_targets(throughput, reloads, why, args.only, args.loads)
    print_targets(targets)
    print_notes(args, throughput, reloads, why)
    if args.json:
        write_json(args.json, command, args, versions, why, throughput, reloads, targets)
        print(f"\nwrote {args.json}")

    problems = any(r.problems() for group in (throughput, reloads)
                   for runs in group.values() for r in runs)
    return 130 if interrupted else (1 if problems else 0)


def write_json(path: Path, command: str, args, versions, why, throughput, reloads,
               targets) -> None:
    medians = throughput_medians(throughput)
    document = {
        "command": command,
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "wrk": versions["wrk"]},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": versions["servers"],
        "unavailable": why,
        "serving_floor": dict(zip(("key", "median_rps"), best_of(medians, "floor") or (),
                                  strict=False)),
        "throughput": {key: {"label": SETUPS[key].label, "median_rps": medians[key],
                             "runs": [{**asdict(r), "problems": r.problems()} for r in runs]}
                       for key, runs in throughput.items()},
        "reload": {f"{key}/{load}": {
                       "label": SETUPS[key].label, "load": LOADS[load],
                       "runs": [{**asdict(r), "problems": r.problems()} for r in runs]}
                   for (key, load), runs in reloads.items()},
        "targets": targets,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
