"""Cluster benchmark: real bigtopd nodes on a real 3-member etcd cluster
(Debian's etcd-server, on loopback ports, its default election settings).

  failover  SIGKILL of the node that runs a cluster watcher (nodes = 1,
            three eligible nodes), until its process runs on another node;
            with the default settings (ttl 5, grace 2) and fast ones
            (ttl 1, grace 0). The floor is what the settings allow: the
            lease cannot end sooner than ttl after the last keepalive, so
            the figures are shown against ttl + grace.
  fanout    ``bigtopctl --nodes all status`` over --nodes nodes (default
            20) with one just killed (still listed: it costs the per-node
            timeout) and once its lease ended (listed as down); against the
            floor of one ``bigtopctl status`` to one node (the CLI's start
            and one round trip).
  traffic   what etcd receives from idle nodes over --idle seconds, read
            from the members' own /metrics (gRPC messages by method), per
            node and minute.
  consoles  CPU of bigtop-web (a page open on it, its WebSocket read) and
            of bigtop-top (on a pseudo-terminal) following --nodes nodes of
            --processes processes each through ``--cluster``, over --seconds.

Figures are medians (and p95 for failover) over --rounds rounds.
Every daemon and etcd member is stopped at the end, and no child may
outlive them.

Run from the repo root:  .venv/bin/python bench/cluster.py [--only failover]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

# This directory holds http.py, which would shadow the standard library's
# that urllib imports: off the path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
import urllib.request  # noqa: E402

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
from tests.etcd import ETCD, EtcdCluster  # noqa: E402  (the tests' 3-member cluster)

PYTHON = REPO_DIR / ".venv" / "bin" / "python"
SETTLED = "every watcher started or waiting"
MARK = "4242.5"  # the cluster watcher's argument: how its processes are found


class Node:
    def __init__(self, base: Path, name: str, etcd: str, ttl: int, grace: float,
                 labels: str = "role=web", extra: str = ""):
        self.name = name
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "bigtop.ini"
        self.config.write_text(textwrap.dedent(f"""\
            [circus]
            [cluster]
            name = bench
            node = {name}
            etcd = {etcd}
            labels = {labels}
            ttl = {ttl}
            grace = {grace}
            """) + extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = f"ipc://{self.dir}/run/control.sock"

    def start(self) -> None:
        log = self.dir / "daemon.log"
        before = log.read_text(errors="replace").count(SETTLED) if log.exists() else 0
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [str(PYTHON), "-m", "bigtop.cli.bigtopd", str(self.config)], cwd=self.dir,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                env={**os.environ, "BIGTOP_RUNTIME_DIR": str(self.dir / "run")})
        wait(lambda: log.read_text(errors="replace").count(SETTLED) > before, 30, "a node")

    def runs(self) -> bool:
        """Whether the cluster watcher's process runs under this node."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            return any(MARK in c.cmdline() for c in psutil.Process(self.proc.pid).children())
        except psutil.Error:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash; its orphans are ended too."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def wait(predicate, timeout: float, what: str, every: float = 0.005) -> float:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return time.monotonic() - began


def ctl(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PYTHON), "-m", "bigtop.cli.bigtopctl", "--endpoint", endpoint,
                           *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


def apply(node: Node, text: str) -> None:
    path = node.dir / "cluster.ini"
    path.write_text(text)
    result = ctl(node.endpoint, "cluster", "apply", str(path))
    if result.returncode != 0:
        raise RuntimeError(result.stderr)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- failover ------------------------------------------------------------

def failover(base: Path, etcd: EtcdCluster, ttl: int, grace: float, rounds: int) -> list[float]:
    nodes = [Node(base / f"fo-{ttl}", f"n{i}", etcd.endpoints, ttl, grace) for i in range(3)]
    try:
        for node in nodes:
            node.start()
        apply(nodes[0], f"[watcher:web]\ncmd = sleep {MARK}\nnodes = 1\n"
                        "constraints = role=web\n")
        wait(lambda: sum(n.runs() for n in nodes) == 1, 30, "the watcher placed")
        times = []
        for _ in range(rounds):
            (where,) = [n for n in nodes if n.runs()]
            others = [n for n in nodes if n is not where]
            where.kill()
            took = wait(lambda others=others: any(n.runs() for n in others), 60,
                        "the watcher elsewhere")
            times.append(took)
            print(f"    ttl {ttl} grace {grace:g}: {took:.2f} s", flush=True)
            where.start()
            time.sleep(ttl)  # its old lease ended: the next kill starts clean
        return times
    finally:
        for node in nodes:
            node.stop()


# -- fan-out -------------------------------------------------------------

def fanout(base: Path, etcd: EtcdCluster, count: int, rounds: int) -> dict[str, float]:
    nodes = [Node(base / "fanout", f"n{i:02d}", etcd.endpoints, 5, 2.0) for i in range(count)]
    try:
        for node in nodes:
            node.start()
        first = nodes[0]
        wait(lambda: ctl(first.endpoint, "--json", "cluster", "nodes").stdout.count(
            '"up": true') == count, 60, "every node registered")

        def timed(*args: str) -> float:
            began = time.monotonic()
            result = ctl(first.endpoint, *args)
            took = time.monotonic() - began
            if not result.stdout:
                raise RuntimeError(result.stderr)
            return took

        floor = statistics.median(timed("status") for _ in range(rounds))
        healthy = statistics.median(timed("--nodes", "all", "status") for _ in range(rounds))
        nodes[-1].kill()
        listed = statistics.median(timed("--nodes", "all", "status") for _ in range(3))
        wait(lambda: '"up": false' in ctl(first.endpoint, "--json", "cluster", "nodes").stdout,
             30, "the dead node listed down", every=0.2)
        down = statistics.median(timed("--nodes", "all", "status") for _ in range(rounds))
        return {"floor": floor, "healthy": healthy, "dead_listed": listed, "dead_down": down}
    finally:
        for node in nodes:
            node.stop()


# -- etcd traffic --------------------------------------------------------

def grpc_counts(etcd: EtcdCluster) -> dict[str, float]:
    """gRPC messages the members received, by method, summed over members."""
    counts: dict[str, float] = {}
    pattern = re.compile(r'^grpc_server_msg_received_total\{[^}]*grpc_method="(\w+)"[^}]*\} '
                         r'([0-9.e+]+)$')
    for member in etcd.members:
        with urllib.request.urlopen(member.client_url + "/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                found = pattern.match(line)
                if found:
                    counts[found[1]] = counts.get(found[1], 0.0) + float(found[2])
    return counts


def traffic(base: Path, etcd: EtcdCluster, count: int, idle: float) -> dict[str, float]:
    nodes = [Node(base / "traffic", f"t{i}", etcd.endpoints, 5, 2.0) for i in range(count)]
    try:
        for node in nodes:
            node.start()
        time.sleep(5)  # registered, leader elected, assignments read
        before = grpc_counts(etcd)
        time.sleep(idle)
        after = grpc_counts(etcd)
        minutes = idle / 60
        return {method: (after[method] - before.get(method, 0.0)) / count / minutes
                for method in sorted(after) if after[method] > before.get(method, 0.0)}
    finally:
        for node in nodes:
            node.stop()


# -- consoles ------------------------------------------------------------

def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


async def _web_page(port: int, token: str, seconds: float) -> int:
    """A page open on the console for ``seconds``, as a browser keeps it:
    logged in, its WebSocket read; the messages it got."""
    import aiohttp

    origin = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(origin, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post("/login", data={"token": token}, headers={"Origin": origin},
                                allow_redirects=False) as reply:
            if reply.status != 303:
                raise RuntimeError(f"login: {reply.status}")
        received = 0
        async with session.ws_connect("/ws", headers={"Origin": origin}) as ws:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    await ws.receive(timeout=left)
                    received += 1
                except TimeoutError:
                    break
        return received


def console_web(base: Path, nodes: list[Node], warmup: float, seconds: float) -> dict[str, float]:
    import asyncio

    port = free_tcp_port()
    token_file = base / "web.token"
    token_file.write_text("bench-token-" + "x" * 32 + "\n")
    token_file.chmod(0o600)
    web = subprocess.Popen(
        [str(REPO_DIR / ".venv" / "bin" / "bigtop-web"), "--cluster", nodes[0].endpoint,
         "--port", str(port), "--token-file", str(token_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        token = token_file.read_text().strip()
        wait(lambda: _listening(port), 30, "bigtop-web")
        asyncio.run(_web_page(port, token, warmup))
        proc = psutil.Process(web.pid)
        before = cpu_seconds(proc)
        messages = asyncio.run(_web_page(port, token, seconds))
        used = cpu_seconds(proc) - before
        return {"cpu_percent": 100 * used / seconds, "messages_per_s": messages / seconds,
                "rss_mb": proc.memory_info().rss / 2**20}
    finally:
        web.terminate()
        web.wait(30)


def console_top(nodes: list[Node], warmup: float, seconds: float) -> dict[str, float]:
    """bigtop-top on a pseudo-terminal (160x50), its screen read and thrown away."""
    import pty
    import select

    pid, master = pty.fork()
    if pid == 0:
        os.environ.update(TERM="xterm-256color", COLUMNS="160", LINES="50")
        os.execv(str(REPO_DIR / ".venv" / "bin" / "bigtop-top"),
                 ["bigtop-top", "--cluster", nodes[0].endpoint])
    try:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))

        def drain(until: float) -> int:
            read = 0
            while (left := until - time.monotonic()) > 0:
                ready, _, _ = select.select([master], [], [], left)
                if ready:
                    try:
                        read += len(os.read(master, 65536))
                    except OSError:
                        break
            return read

        drain(time.monotonic() + warmup)
        proc = psutil.Process(pid)
        before = cpu_seconds(proc)
        screen = drain(time.monotonic() + seconds)
        used = cpu_seconds(proc) - before
        return {"cpu_percent": 100 * used / seconds, "screen_kb_per_s": screen / 1024 / seconds,
                "rss_mb": proc.memory_info().rss / 2**20}
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(master)


def consoles(base: Path, etcd: EtcdCluster, count: int, processes: int, seconds: float
             ) -> dict[str, dict[str, float]]:
    extra = f"\n[watcher:sleepers]\ncmd = sleep {MARK}\nnumprocesses = {processes}\n"
    nodes = [Node(base / "consoles", f"c{i:02d}", etcd.endpoints, 5, 2.0, extra=extra)
             for i in range(count)]
    try:
        for node in nodes:
            node.start()
        wait(lambda: ctl(nodes[0].endpoint, "--json", "cluster", "nodes").stdout.count(
            '"up": true') == count, 60, "every node registered")
        return {"bigtop-web": console_web(base, nodes, 10, seconds),
                "bigtop-top": console_top(nodes, 10, seconds)}
    finally:
        for node in nodes:
            node.stop()


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="failover,fanout,traffic,consoles")
    parser.add_argument("--processes", type=int, default=50,
                        help="processes per node for the consoles (default 50)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="how long the consoles are measured (default 30)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    if ETCD is None:
        print("no etcd: apt-get install etcd-server", file=sys.stderr)
        return 2
    only = set(args.only.split(","))
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bigtop-bench-cluster-") as tmp:
        base = Path(tmp)
        etcd = EtcdCluster(base / "etcd", fast=False).start()
        try:
            if "failover" in only:
                for ttl, grace in ((5, 2.0), (1, 0.0)):
                    print(f"failover, ttl {ttl}, grace {grace:g}:", flush=True)
                    times = failover(base, etcd, ttl, grace, args.rounds)
                    summary = {"median": statistics.median(times),
                               "p95": percentile(times, 95), "max": max(times),
                               "ttl+grace": ttl + grace}
                    results[f"failover ttl={ttl} grace={grace:g}"] = summary
                    print(f"  median {summary['median']:.2f} s, p95 {summary['p95']:.2f} s, "
                          f"max {summary['max']:.2f} s; "
                          f"{summary['median'] / (ttl + grace):.2f}x ttl+grace", flush=True)
            if "fanout" in only:
                print(f"fan-out over {args.nodes} nodes:", flush=True)
                found = fanout(base, etcd, args.nodes, args.rounds)
                results["fanout"] = found
                for key, value in found.items():
                    print(f"  {key:12} {value * 1000:7.0f} ms  "
                          f"{value / found['floor']:5.2f}x one node", flush=True)
            if "traffic" in only:
                print(f"etcd traffic per idle node ({args.nodes} nodes, {args.idle:g} s):",
                      flush=True)
                found = traffic(base, etcd, args.nodes, args.idle)
                results["traffic per node per minute"] = found
                for method, value in found.items():
                    print(f"  {method:16} {value:7.1f} messages/min", flush=True)
            if "consoles" in only:
                print(f"consoles following {args.nodes} nodes x {args.processes} processes:",
                      flush=True)
                found = consoles(base, etcd, args.nodes, args.processes, args.seconds)
                results["consoles"] = found
                for console, figures in found.items():
                    print(f"  {console:11} " + ", ".join(f"{k} {v:.1f}"
                                                         for k, v in figures.items()), flush=True)
        finally:
            etcd.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
