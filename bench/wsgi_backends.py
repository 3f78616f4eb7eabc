"""bigtop-wsgi's backends against gunicorn on a hello-world WSGI app.

Each server runs 2 worker processes accepting on one shared listening
socket; wrk drives it with 64 connections (``wrk -t2 -c64``) after a warm
up. bigtop-wsgi workers get the socket as ``--fd N`` from this script, as
they would from bigtopd; gunicorn binds its own. Prints requests per second
and the ratio to gunicorn's best worker class.

    apt-get install wrk
    python3 -m venv /tmp/gunicorn-venv
    /tmp/gunicorn-venv/bin/pip install gunicorn gevent packaging
    .venv/bin/python bench/wsgi_backends.py --gunicorn /tmp/gunicorn-venv/bin/gunicorn

Standard library only; wrk must be on PATH. Tests never run this.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKERS = 2
APP = '''
def application(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"Hello, World!"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''
BIGTOP = {  # label -> (backend, app)
    "bigtop waitress": ("waitress", "hello:application"),
    "bigtop gevent": ("gevent", "hello:application"),
    "bigtop bjoern": ("bjoern", "hello:application"),
    "bigtop uvicorn (ASGI app)": ("uvicorn", "hello:asgi"),
}


def wrk(port: int, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx.*|Socket errors.*", out)
    if errors:
        print(f"    wrk: {errors.group(0)}", file=sys.stderr)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_bigtop(workdir: Path, backend: str, app: str, seconds: int) -> float:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port, fd = sock.getsockname()[1], sock.fileno()
    exe = Path(sys.executable).with_name("bigtop-wsgi")
    cmd = [str(exe), "--fd", str(fd), "--backend", backend, "--log-level", "warning", app]
    procs = [subprocess.Popen(cmd, cwd=workdir, pass_fds=[fd]) for _ in range(WORKERS)]
    try:
        wait_port(port)
        wrk(port, 2)  # warm up
        return wrk(port, seconds)
    finally:
        stop(procs)
        sock.close()


def run_gunicorn(workdir: Path, gunicorn: str, worker_class: str, seconds: int) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [gunicorn, "-w", str(WORKERS), "-k", worker_class, "-b", f"127.0.0.1:{port}",
           "--log-level", "warning", "hello:application"]
    procs = [subprocess.Popen(cmd, cwd=workdir)]
    try:
        wait_port(port)
        wrk(port, 2)
        return wrk(port, seconds)
    finally:
        stop(procs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gunicorn", help="gunicorn executable (in its own venv, with gevent)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--runs", type=int, default=1, help="runs per server; the median is kept")
    parser.add_argument("--only", nargs="*", help="labels to run (default: all)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk is not on PATH (apt-get install wrk)")

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "hello.py").write_text(APP)
        jobs: list[tuple[str, str, str, str]] = []  # label, kind, backend/class, app
        if args.gunicorn:
            jobs += [(f"gunicorn {k}", "gunicorn", k, "") for k in ("sync", "gevent")]
        jobs += [(label, "bigtop", backend, app) for label, (backend, app) in BIGTOP.items()]
        jobs = [job for job in jobs if not args.only or job[0] in args.only]
        samples: dict[str, list[float]] = {label: [] for label, *_ in jobs}
        # Round-robin, so that a noisy moment of the machine hits every server.
        for _ in range(args.runs):
            for label, kind, name, app in jobs:
                if kind == "gunicorn":
                    value = run_gunicorn(workdir, args.gunicorn, name, args.seconds)
                else:
                    value = run_bigtop(workdir, name, app, args.seconds)
                samples[label].append(value)
                print(f"  {label:28} {value:10.0f} req/s", flush=True)
    print()
    for label, values in samples.items():
        results[label] = statistics.median(values)
        print(f"{label:28} {results[label]:10.0f} req/s  "
              f"(median of {', '.join(f'{v:.0f}' for v in values)})")

    anchors = [v for k, v in results.items() if k.startswith("gunicorn")]
    if anchors:
        best = max(anchors)
        print(f"\nratio to gunicorn's best ({best:.0f} req/s):")
        for label, value in results.items():
            if label.startswith("bigtop"):
                print(f"  {label:28} {value / best:5.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.pop("NOTIFY_SOCKET", None)
    sys.exit(main())
