"""Faults, each with the invariant it must keep: the daemon stays up and
answering, keeps the processes it has, loses no line of their output
(numbered lines are the oracle), and comes back to the wanted counts.

``make test`` runs each scenario briefly; ``make chaos`` (and ``make
test-all``) runs them longer and harder: BIGTOP_CHAOS_SCALE multiplies
their durations and counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import zmq

from bigtop.client import CommandFailed

from .conftest import wait_for

pytestmark = pytest.mark.chaos
SCALE = float(os.environ.get("BIGTOP_CHAOS_SCALE", "1"))
ANSWER_WITHIN_S = 1.0  # a command answers within this while a fault lasts

# A child that writes numbered lines, "PID NUMBER", one write(2) each, a
# pause of argv[1] seconds between them: the oracle of no lost line.
NUMBERED = (
    "import os, sys, time\n"
    "pid, n, pause = os.getpid(), 0, float(sys.argv[1])\n"
    "while True:\n"
    "    os.write(1, b'%d %09d\\n' % (pid, n))\n"
    "    n += 1\n"
    "    if pause: time.sleep(pause)\n"
)


def numbered(tmp_path: Path, name: str, pause: float, **options: object) -> str:
    """A watcher section running NUMBERED into name.log."""
    script = tmp_path / "numbered.py"
    script.write_text(NUMBERED)
    extra = "".join(f"{key} = {value}\n" for key, value in options.items())
    return (f"[watcher:{name}]\ncmd = {sys.executable} {script} {pause}\n"
            f"stdout_stream.class = FileStream\n"
            f"stdout_stream.filename = {tmp_path / (name + '.log')}\n{extra}\n")


def check_numbered(path: Path) -> dict[int, int]:
    """Each process's lines: whole, from 0, none missing or repeated; the
    count of each."""
    seen: dict[int, int] = {}
    for line in path.read_bytes().split(b"\n")[:-1]:
        pid_text, number = line.split(b" ")
        pid = int(pid_text)
        assert int(number) == seen.get(pid, -1) + 1, f"pid {pid}: {line!r} after {seen.get(pid)}"
        seen[pid] = int(number)
    return {pid: last + 1 for pid, last in seen.items()}


def answers(d, within: float = ANSWER_WITHIN_S) -> float:
    """The daemon answers a command, and how fast (it must within ``within``)."""
    started = time.monotonic()
    with d.client(timeout=within) as client:
        client.call("numwatchers")
    took = time.monotonic() - started
    assert took < within, took
    return took


def report(scenario: str, tried: str, outcome: str) -> None:
    """A row of the faults table (docs/benchmarks.md), appended to the file
    BIGTOP_CHAOS_REPORT names, if it names one."""
    path = os.environ.get("BIGTOP_CHAOS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(f"| {scenario} | {tried} | {outcome} |\n")


def no_zombies(d) -> None:
    wait_for(lambda: not [p for p in psutil.Process(d.pid).children()
                          if p.status() == psutil.STATUS_ZOMBIE], message="no zombie")


def test_out_of_descriptors_at_start_keeps_what_it_has_and_fills_the_rest(daemon):
    """Under ``ulimit -n 64``, 40 processes cannot all start: the daemon
    binds its endpoints first, starts what fits, says so once, answers,
    and starts more by itself once descriptors are free again (here: the
    processes of another watcher stopped)."""
    d = daemon("""
        [watcher:hog]
        cmd = sleep 1000
        numprocesses = 4
        priority = 10

        [watcher:many]
        cmd = sleep 1000
        numprocesses = 40
        backoff_initial = 0.05
        backoff_max = 0.2
        """, rlimits={resource.RLIMIT_NOFILE: (64, 64)})
    wait_for(lambda: "out of file descriptors" in d.log_text(), message="the shortage logged")
    wait_for(lambda: d.pids("many"), message="some processes")
    status = d.call("status", name="many", details=True)["details"]
    running = len(d.pids("many"))
    assert 0 < running < 40 and status["status"] == "backoff", status
    assert len(d.pids("hog")) == 4
    d.call("stop", name="hog", waiting=True)
    wait_for(lambda: len(d.pids("many")) > running, timeout=15, message="more processes")
    log = d.log_text()
    # Once when it ran short, once more when it ran short again after
    # spawning again: not once per retry.
    assert log.count("out of file descriptors") <= 2, log
    assert "spawning again, after" in log
    assert "Traceback" not in log and "Exception in callback" not in log, log
    report("out of descriptors at start", "`ulimit -n 64`, 40 processes",
           f"{running} started, more once descriptors were free; 1 log line each way; 0 lost")


def test_check_warns_when_the_limits_cannot_fit_the_configuration(tmp_path):
    config = tmp_path / "big.ini"
    config.write_text("[watcher:many]\ncmd = sleep 1000\nnumprocesses = 400\n")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))

    result = subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopd", "--check", str(config)],
                            capture_output=True, text=True, preexec_fn=limited, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "needs about 1232 file descriptors, more than the limit of 1024" in result.stderr  # the hard one


def test_a_spawn_out_of_descriptors_is_a_shortage_and_leaks_none():
    """The pipes of a spawn cannot be made: a SpawnError marked as a
    shortage (retried with backoff, never counted as the command's
    failure), and every descriptor made so far closed again."""
    from bigtop.config import WatcherSpec
    from bigtop.core.process import Process, SpawnError

    async def spawn() -> tuple[SpawnError, int, int]:
        process = Process(WatcherSpec(name="w", cmd="true"), 1)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))
        fillers = []
        try:
            while True:  # every number below the limit taken...
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        for fd in fillers[-3:]:  # ...but three: a pipe, and one end of the next
            os.close(fd)
        del fillers[-3:]
        before = len(os.listdir("/proc/self/fd"))
        try:
            process.spawn({}, {}, capture_stdout=True, capture_stderr=True)
        except SpawnError as err:
            return err, before, len(os.listdir("/proc/self/fd"))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for fd in fillers:
                os.close(fd)
        raise AssertionError("spawned")

    error, before, after = asyncio.run(spawn())
    assert error.shortage and "out of file descriptors" in str(error), error
    assert after == before


def test_kill_storm_loses_no_line_and_restores_the_count(daemon, tmp_path):
    d = daemon(numbered(tmp_path, "storm", 0.001, numprocesses=5, max_retry=-1,
                        backoff_max=0.5))
    d.wait_pids("storm", 5)
    kills = 0
    end = time.monotonic() + 3 * SCALE
    while time.monotonic() < end:
        pids = list(d.pids("storm"))
        if pids:
            try:
                os.kill(random.choice(pids), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    d.wait_pids("storm", 5)
    answers(d)
    no_zombies(d)
    d.call("stop", name="storm", waiting=True)
    counts = check_numbered(tmp_path / "storm.log")
    # Many died before their first line; those that wrote have every line.
    assert kills >= 10 * SCALE and len(counts) > 5, (kills, counts)
    report("kill -9 storm", f"{kills} SIGKILLs in {3 * SCALE:g} s on 5 writers",
           f"{sum(counts.values()):,} numbered lines of {len(counts)} processes, 0 lost; "
           "count back to 5, no zombie")


def test_a_stopped_daemon_loses_no_line(daemon, tmp_path):
    """SIGSTOP the daemon while its children write: they block on full
    pipes; on SIGCONT it catches up, answering at once, nothing lost."""
    d = daemon(numbered(tmp_path, "busy", 0.0005, numprocesses=3))
    d.wait_pids("busy", 3)
    time.sleep(0.3)
    d.signal(signal.SIGSTOP)
    time.sleep(2 * SCALE)
    d.signal(signal.SIGCONT)
    answers(d)
    time.sleep(0.3)
    d.call("stop", name="busy", waiting=True)
    counts = check_numbered(tmp_path / "busy.log")
    assert len(counts) == 3 and min(counts.values()) > 100, counts
    report("daemon frozen (SIGSTOP)", f"{2 * SCALE:g} s stopped under 3 fast writers",
           f"{sum(counts.values()):,} lines, 0 lost; answered at once after SIGCONT")


def test_children_that_close_or_flood_their_output(daemon, tmp_path):
    d = daemon(f"""
        [watcher:closer]
        cmd = sh -c 'exec 1>&- 2>&-; sleep 1000'

        [watcher:flood]
        cmd = sh -c 'yes 0123456789abcdefghijklmnopqrstuvwxyz'
        numprocesses = 2
        stdout_stream.class = FileStream
        stdout_stream.filename = {tmp_path / "flood.log"}
        stdout_stream.max_bytes = 50000000
        stdout_stream.backup_count = 1
        """)
    d.wait_pids("flood", 2)
    closer = d.pids("closer")
    worst = max(answers(d) for _ in range(int(20 * SCALE)))
    assert d.pids("closer") == closer  # a closed pipe is no exit
    status = d.call("status", name="closer", details=True)["details"]
    assert status["status"] == "active" and status["running"] == 1, status
    assert psutil.Process(d.pid).cpu_percent(interval=0.5) < 150
    assert worst < ANSWER_WITHIN_S
    report("children close or flood stdout", f"2 `yes` floods, 1 closed pipe, "
           f"{int(20 * SCALE)} commands", f"slowest answer {worst * 1000:.0f} ms; the closer "
           "kept running")


def test_a_client_that_never_reads_and_a_tail_that_never_reads(daemon, tmp_path):
    """Thousands of requests from a client that reads no reply, and a live
    tail subscribed to a flood that reads nothing: others are answered, and
    the daemon's memory stays bounded."""
    d = daemon(f"""
        [watcher:flood]
        cmd = sh -c 'yes 0123456789abcdefghijklmnopqrstuvwxyz'
        stdout_stream.class = FileStream
        stdout_stream.filename = {tmp_path / "flood.log"}
        stdout_stream.max_bytes = 50000000
        stdout_stream.backup_count = 1
        """)
    context = zmq.Context()
    try:
        deaf = context.socket(zmq.DEALER)
        deaf.setsockopt(zmq.SNDHWM, 0)
        deaf.connect(d.endpoint)
        tail = context.socket(zmq.SUB)
        tail.setsockopt(zmq.RCVHWM, 10)
        tail.connect(d.pubsub_endpoint)
        tail.subscribe(b"stream.flood.")
        rss = psutil.Process(d.pid).memory_info().rss
        for n in range(int(5000 * SCALE)):
            deaf.send_multipart([b"", json.dumps({"id": str(n), "command": "status",
                                                  "properties": {}}).encode()])
        for _ in range(int(10 * SCALE)):
            answers(d)
            time.sleep(0.2)
        grown = psutil.Process(d.pid).memory_info().rss - rss
        assert grown < 50_000_000, grown
        report("clients that never read", f"{int(5000 * SCALE):,} unread requests, a tail "
               "subscribed to a flood reading nothing", f"others answered; RSS +{grown / 1e6:.1f} MB")
    finally:
        context.destroy(linger=0)


def test_a_hook_that_hangs_is_timed_out_and_the_daemon_answers(daemon, tmp_path):
    (tmp_path / "slowhooks.py").write_text(
        "import time\n"
        "def hang(watcher, arbiter, hook_name, **kw):\n"
        "    time.sleep(30)\n"
        "    return True\n")
    d = daemon("""
        [watcher:hooked]
        cmd = sleep 1000
        hooks.before_spawn = slowhooks.hang
        hook_timeout = 0.5
        copy_path = true
        """)
    answers(d)
    wait_for(lambda: "before_spawn" in d.log_text() and "timed out" in d.log_text(), timeout=10,
             message="the hook timed out")
    answers(d)
    report("a hook that hangs", "`before_spawn` sleeping 30 s, `hook_timeout = 0.5`",
           "timed out; the daemon answered throughout")


def test_commands_from_many_clients_at_once_leave_a_consistent_state(daemon, tmp_path):
    d = daemon(numbered(tmp_path, "web", 0.01, numprocesses=2, graceful_timeout=1))
    d.wait_pids("web", 2)
    errors: list[str] = []

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with d.client(timeout=30) as client:
                for _ in range(int(15 * SCALE)):
                    command = rng.choice(["incr", "decr", "reload", "set", "status", "stats"])
                    try:
                        if command in ("incr", "decr"):
                            client.call(command, name="web", nb=rng.randint(1, 3))
                        elif command == "set":
                            client.call("set", name="web", options={"numprocesses":
                                                                    rng.randint(0, 6)})
                        else:
                            client.call(command, name="web")
                    except CommandFailed as err:
                        errors.append(f"{command}: {err}")
        except Exception as err:  # noqa: BLE001 -- reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=client_loop, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    d.call("set", name="web", options={"numprocesses": 3}, waiting=True)
    d.wait_pids("web", 3, timeout=20)
    status = d.call("status", name="web", details=True)["details"]
    assert status["wanted"] == status["running"] == 3, status
    d.call("stop", name="web", waiting=True)
    counts = check_numbered(tmp_path / "web.log")
    report("commands from 4 clients at once", f"{4 * int(15 * SCALE)} random incr, decr, reload, "
           "set, status, stats", f"consistent counts; {sum(counts.values()):,} lines of "
           f"{len(counts)} processes, 0 lost")


PIDS_CGROUPS = Path("/sys/fs/cgroup/pids")  # cgroup v1's pids controller


@pytest.fixture
def pids_cgroup(tmp_path):
    """A pids cgroup of its own (cgroup v1), removed afterwards: asked for
    before ``daemon``, it outlives the daemon it holds."""
    group = PIDS_CGROUPS / f"bigtop-test-{os.getpid()}-{tmp_path.name}"
    try:
        group.mkdir()
    except OSError as err:
        pytest.skip(f"no pids cgroup can be made here ({PIDS_CGROUPS}: {err.strerror})")
    yield group
    wait_for(lambda: not (group / "cgroup.procs").read_text().strip(), message="cgroup empty")
    group.rmdir()


def test_out_of_processes_keeps_what_it_has_and_fills_the_rest(pids_cgroup, daemon):
    """A pids cgroup limit reached: fork fails with EAGAIN, the daemon says
    so once, keeps what it has and answers, and starts the rest once the
    limit is raised. (RLIMIT_NPROC gives the same EAGAIN, but never to
    root, which the tests run as.)"""
    d = daemon("""
        [watcher:many]
        cmd = sleep 1000
        numprocesses = 20
        backoff_initial = 0.05
        backoff_max = 0.2
        autostart = false
        """)
    threads = len(psutil.Process(d.pid).threads())
    (pids_cgroup / "pids.max").write_text(str(threads + 8))
    (pids_cgroup / "cgroup.procs").write_text(str(d.pid))
    d.call("start", name="many")
    wait_for(lambda: "out of processes" in d.log_text(), message="the shortage logged")
    running = len(d.pids("many"))
    assert 0 < running < 20, d.log_text()
    answers(d)
    (pids_cgroup / "pids.max").write_text("max")
    d.wait_pids("many", 20, timeout=15)
    log = d.log_text()
    assert log.count("out of processes") == 1, log
    assert "Traceback" not in log and "Exception in callback" not in log, log
    report("out of processes", "a pids cgroup 8 above the daemon's threads, 20 processes",
           f"{running} started, the rest once the limit was raised; 1 log line")


# bigtopd with a bug put in: once every watcher has started, the start raises.
BROKEN_DAEMON = """
import sys
from bigtop.core.arbiter import Arbiter
started = Arbiter.start
async def start(self):
    await started(self)
    raise RuntimeError("a bug put in by the test")
Arbiter.start = start
from bigtop.cli.bigtopd import main
sys.exit(main([sys.argv[1]]))
"""


def test_an_unexpected_error_stops_every_process_before_the_daemon_exits(tmp_path):
    from .conftest import processes_under

    config = tmp_path / "bigtop.ini"
    config.write_text("[watcher:w]\ncmd = sleep 1000\nnumprocesses = 3\n")
    result = subprocess.run([sys.executable, "-c", BROKEN_DAEMON, str(config)], cwd=tmp_path,
                            env={**os.environ, "BIGTOP_RUNTIME_DIR": str(tmp_path / "run")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "exiting on an unexpected error: stopping every process first" in result.stderr
    assert "a bug put in by the test" in result.stderr and "w: stopped" in result.stderr
    assert not processes_under(tmp_path)
