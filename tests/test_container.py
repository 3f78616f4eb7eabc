"""The container example (examples/docker/) with bigtopd as PID 1.

Docker is not needed: bigtopd runs as Docker would run the image (the
Dockerfile's ENTRYPOINT and CMD, the image's control-socket directory), as
PID 1 of a PID namespace of its own with its own /proc (``unshare --pid
--fork --mount-proc``), on the shipped bigtop.ini with only what holds in
the image alone changed (a free loopback port, the test's directory for
/app). ``docker exec`` is ``nsenter`` into that namespace, ``docker stop``
a SIGTERM from outside to the namespace's init. This extends
tests/test_daemon.py's test_runs_as_pid_1 (orphans made by a watcher,
reaped): zombies handed to PID 1, commands run inside, the real app's
stop, the exit statuses. The Dockerfile and compose.yaml are checked as
text, without Docker.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from bigtop.config import load

from .conftest import ROOT, SETTLED, Events, free_port, processes_under, wait_for
from .test_daemon import write

DOCKER = ROOT / "examples" / "docker"
VENV_BIN = Path(sys.executable).parent  # bigtopd, bigtopctl, bigtop-wsgi, python3


# -- the Dockerfile, read as Docker reads it ------------------------------------

def instructions(path: Path = DOCKER / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) in order: comments and blank lines
    left out, lines ending in a backslash joined with the next (comment
    lines between them dropped, as Docker does)."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        word, _, rest = text.partition(" ")
        found.append((word.upper(), " ".join(rest.split())))
    assert not pending, f"{path}: the last instruction ends in a backslash"
    return found


def arguments(name: str) -> list[str]:
    return [args for word, args in instructions() if word == name]


def exec_form(name: str) -> list[str]:
    """The last NAME instruction, which must be in exec (JSON) form."""
    found = arguments(name)
    assert found, f"the Dockerfile has no {name}"
    try:
        argv = json.loads(found[-1])
    except ValueError:
        pytest.fail(f"{name} {found[-1]} is in shell form: a shell would be PID 1")
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), argv
    return argv


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options (--interval=30s ...) and its command."""
    (text,) = arguments("HEALTHCHECK")
    options, sep, command = text.partition(" CMD ")
    assert sep, f"HEALTHCHECK {text}: no CMD"
    parsed = dict(option.removeprefix("--").split("=", 1) for option in options.split())
    argv = json.loads(command)
    assert isinstance(argv, list), f"HEALTHCHECK CMD {command} is in shell form"
    return parsed, argv


def copies() -> list[tuple[list[str], str]]:
    """Each COPY (without --from): its sources in the build context, its destination."""
    out = []
    for args in arguments("COPY"):
        words = [w for w in args.split() if not w.startswith("--")]
        assert "--from" not in args, args
        out.append((words[:-1], words[-1]))
    return out


def app_files() -> list[str]:
    """What the image has in /app, as paths in the repository."""
    return [source for sources, dest in copies() if dest.rstrip("/") == "/app"
            for source in sources]


def seconds(text: str) -> float:
    """A Docker or compose duration: 30s, 1m30s, 500ms."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(a + u for a, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(amount) * units[unit] for amount, unit in parts)


def web_port() -> int:
    """The port of the example's socket (0.0.0.0:8000 in the image)."""
    (web,) = load(str(DOCKER / "bigtop.ini")).sockets
    return int(web.port)


def test_dockerfile():
    (base,) = arguments("FROM")
    image, _, tag = base.partition(":")
    assert image == "python" and tag, f"FROM {base}: a python image with a tag"
    assert tag != "latest" and "slim" in tag, f"FROM {base}: a pinned slim tag, not latest"
    # bigtopd itself is PID 1: exec form, no shell, no other init.
    entrypoint = exec_form("ENTRYPOINT")
    assert entrypoint[0] == "bigtopd", entrypoint
    assert not {"tini", "dumb-init", "sh", "bash", "/bin/sh"} & set(entrypoint), entrypoint
    config = exec_form("CMD")
    assert len(config) == 1, config
    assert (["examples/docker/bigtop.ini"], config[0]) in copies(), (
        "CMD names the configuration the image copies")
    (stop,) = arguments("STOPSIGNAL")
    assert stop == "SIGTERM", "bigtopd stops everything on SIGTERM"
    user = arguments("USER")[-1].split(":")[0]
    assert user not in ("root", "0"), "runs as an unprivileged user"
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in arguments("RUN")), (
        "bigtop installed from the build context")
    # The control sockets' directory exists, made for that user.
    env = " ".join(arguments("ENV"))
    runtime = re.search(r"\bBIGTOP_RUNTIME_DIR=(\S+)", env)
    assert runtime, "BIGTOP_RUNTIME_DIR set for bigtopd, docker exec and the healthcheck"
    assert any(runtime[1] in run and "install -d" in run for run in arguments("RUN"))
    # Every COPY source is in the repository and in the (allow-list) build context.
    allowed = {line[1:] for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for sources, _ in copies():
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source}: not in Dockerfile.dockerignore's !"
    options, command = healthcheck()
    assert command[0] == "bigtopctl", command
    client_timeout = float(command[command.index("--timeout") + 1])
    assert seconds(options["timeout"]) > client_timeout, (
        "bigtopctl gives up, and says so, before Docker kills it")
    assert arguments("EXPOSE") == [str(web_port())]


def test_compose_file():
    yaml = pytest.importorskip("yaml", reason="no YAML parser installed: compose.yaml not read")
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    (app,) = compose["services"].values()
    context = (DOCKER / app["build"]["context"]).resolve()
    assert context == ROOT, "built from the repository root"
    assert (context / app["build"]["dockerfile"]) == DOCKER / "Dockerfile"
    assert not app.get("init"), "bigtopd is the init"
    assert app.get("stop_signal", "SIGTERM") == arguments("STOPSIGNAL")[0]
    # Docker waits longer than the stop can take: the watchers, one after
    # the other at worst, each its graceful_timeout; bigtop-wsgi's own
    # --graceful-timeout within its watcher's.
    watchers = load(str(DOCKER / "bigtop.ini")).watchers
    assert seconds(app["stop_grace_period"]) > sum(w.graceful_timeout for w in watchers)
    for watcher in watchers:
        own = re.search(r"--graceful-timeout (\S+)", watcher.cmd)
        if own:
            assert float(own[1]) < watcher.graceful_timeout, watcher.name
    published = {str(port).rsplit(":", 1)[-1] for port in app["ports"]}
    assert published == {str(web_port())}


# -- bigtopd as PID 1 ----------------------------------------------------------

@functools.cache
def no_pid_namespace() -> str | None:
    """Why bigtopd cannot be PID 1 of a namespace here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root for a PID namespace (unshare --pid --mount-proc)"
    for tool in ("unshare", "nsenter"):
        if not shutil.which(tool):
            return f"needs {tool} (util-linux)"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"unshare --pid --fork --mount-proc fails here: {probe.stderr.strip()}"
    return None


@pytest.fixture
def namespace() -> None:
    """Skips the test where there can be no PID namespace."""
    reason = no_pid_namespace()
    if reason is not None:
        pytest.skip(reason)


def image_env(tmp_path: Path) -> dict[str, str]:
    """The image's environment, as far as bigtop goes: its programs on
    PATH, the control sockets' directory (the test's, not /run/bigtop)."""
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "BIGTOP_RUNTIME_DIR": str(tmp_path / "run")}


def container_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    """examples/docker/bigtop.ini as the test runs it: the socket on a
    free loopback port instead of 0.0.0.0:8000, the test's app directory
    (the files the Dockerfile copies to /app) instead of /app; ``extra``
    sections added at the end."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    for source in app_files():
        shutil.copy(ROOT / source, app)
    text = (DOCKER / "bigtop.ini").read_text()
    for old, new in (("host = 0.0.0.0", "host = 127.0.0.1"), ("port = 8000", f"port = {port}"),
                     ("http://127.0.0.1:8000/", f"http://127.0.0.1:{port}/"),
                     ("working_dir = /app", f"working_dir = {app}")):
        assert old in text, f"examples/docker/bigtop.ini has no {old!r} any more: adapt the test"
        text = text.replace(old, new)
    return write(tmp_path / "bigtop.ini", text + extra)


class Container:
    """bigtopd run as the image runs it, PID 1 of a new PID namespace."""

    def __init__(self, tmp_path: Path, extra: str = ""):
        self.dir = tmp_path
        self.port = free_port()
        config = container_config(tmp_path, self.port, extra)
        self.argv = [*exec_form("ENTRYPOINT"), str(config)]  # CMD, the test's file
        self.env = image_env(tmp_path)
        self.out = tmp_path / "stdout"
        self.err = tmp_path / "stderr"
        self.outer: subprocess.Popen[bytes] | None = None
        self.init: psutil.Process | None = None  # PID 1, as seen from outside

    def start(self, wait: bool = True) -> Container:
        """``wait``: until bigtopd's start has settled."""
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.outer = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *self.argv],
                cwd=self.dir / "app", env=self.env, stdout=out, stderr=err)
        outer = psutil.Process(self.outer.pid)
        self.init = wait_for(outer.children, message="the namespace's PID 1")[0]
        if not wait:
            return self
        wait_for(lambda: SETTLED in self.stdout() or self.outer.poll() is not None,
                 message="bigtopd started")
        assert self.outer.poll() is None, self.stdout() + self.stderr()
        return self

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def exec(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``docker exec``: a command in the namespace (its /proc, its pids)."""
        assert self.init is not None
        return subprocess.run(["nsenter", f"--target={self.init.pid}", "--pid", "--mount",
                               "--", *argv], env=self.env, cwd=self.dir / "app",
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict[str, Any]:
        done = self.exec("bigtopctl", "--json", "status")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def wait_ready(self) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            details = self.status()["details"]
            if all(d["status"] == "active" and d["ready"] == d["wanted"] > 0
                   for d in details.values()):
                return details
            return None

        return wait_for(ready, timeout=20, message="every watcher ready")  # type: ignore[return-value]

    def wait(self, timeout: float = 30) -> int:
        assert self.outer is not None
        return self.outer.wait(timeout)

    def kill(self) -> None:
        """SIGKILL to PID 1, which the kernel follows with every process of
        the namespace (as ``docker kill``)."""
        if self.outer is not None and self.outer.poll() is None:
            assert self.init is not None
            try:
                self.init.kill()
            except psutil.NoSuchProcess:
                pass
            self.outer.wait(10)


@pytest.fixture
def container(tmp_path, namespace):
    """``container(extra_ini)``: the example, started as PID 1; killed
    after the test if still running."""
    started: list[Container] = []

    def make(extra: str = "", wait: bool = True) -> Container:
        box = Container(tmp_path, extra)
        started.append(box)
        return box.start(wait)

    yield make
    for box in started:
        box.kill()
    # The kernel ends the namespace's processes as its init exits, not at once.
    wait_for(lambda: not processes_under(tmp_path), message="nothing left of the namespace")


def test_serves_and_answers_docker_exec(container):
    box = container()
    assert " starting (pid 1) with " in box.stdout()
    details = box.wait_ready()
    assert details["web"]["running"] == 2 and details["worker"]["running"] == 1
    # Every process is the namespace's init's child, as in the container.
    assert len(box.init.children()) == 3
    with urllib.request.urlopen(f"http://127.0.0.1:{box.port}/", timeout=5) as response:
        assert response.read().decode().startswith("Hello from bigtop worker")
    # Logs on stdout: the daemon's and the processes' (worker.py's rounds).
    wait_for(lambda: "worker.1 | round 1: Hello from bigtop worker" in box.stdout(),
             message="the worker's output on stdout")
    assert "web: ready" in box.stdout()
    # The image's healthcheck, run inside as Docker runs it.
    options, command = healthcheck()
    done = box.exec(*command)
    assert done.returncode == 0, done.stderr
    assert "web" in done.stdout and "worker" in done.stdout
    # A daemon that does not answer (frozen here) fails it: exit status 1.
    quick = list(command)
    quick[quick.index("--timeout") + 1] = "1"
    box.init.suspend()
    try:
        hung = box.exec(*quick)
    finally:
        box.init.resume()
    assert hung.returncode == 1, (hung.returncode, hung.stdout, hung.stderr)
    assert box.exec(*command).returncode == 0


def test_reaps_zombies_handed_to_pid_1(container):
    # The watcher's grandchild becomes a zombie under its parent (a sleep,
    # which never waits); when that parent exits the zombie is orphaned,
    # handed to PID 1, which must reap it.
    box = container("""
[watcher:zombies]
cmd = sh -c 'sh -c "sleep 0.2 & exec sleep 2"; exec sleep 1000'
""")
    box.wait_ready()

    def zombie() -> psutil.Process | None:
        for proc in box.init.children(recursive=True):
            try:
                if proc.cmdline() == ["sleep", "2"]:
                    dead = [c for c in proc.children() if c.status() == psutil.STATUS_ZOMBIE]
                    return dead[0] if dead else None
            except psutil.Error:
                continue
        return None

    orphan = wait_for(zombie, message="a zombie grandchild")
    wait_for(lambda: not psutil.pid_exists(orphan.pid), message="the orphaned zombie reaped")
    # docker exec: a process whose parent leaves it behind is orphaned to
    # the namespace's init (no subreaper inside is its ancestor).
    done = box.exec("sh", "-c", "sleep 0.7 >/dev/null 2>&1 &")
    assert done.returncode == 0, done.stderr

    def handed_over() -> psutil.Process | None:
        for proc in box.init.children():
            try:
                if proc.cmdline() == ["sleep", "0.7"]:
                    return proc
            except psutil.Error:
                continue
        return None

    left = wait_for(handed_over, message="docker exec's orphan re-parented to PID 1")
    wait_for(lambda: not psutil.pid_exists(left.pid), message="docker exec's orphan reaped")

    def no_zombie() -> bool:
        for proc in box.init.children(recursive=True):
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return False
            except psutil.Error:
                continue
        return True

    wait_for(no_zombie, message="no zombie left in the namespace")
    # What the namespace itself shows (docker exec ps): nothing defunct.
    if shutil.which("ps"):
        shown = box.exec("ps", "-eo", "stat=,args=")
        assert shown.returncode == 0, shown.stderr
        assert not [line for line in shown.stdout.splitlines() if line.lstrip()[:1] == "Z"]
    assert box.status()["details"]["zombies"]["restarts"] == 0


@pytest.mark.parametrize("how", ["docker stop", "bigtopctl quit"])
def test_stop_ends_every_child_then_exit_0(container, how):
    box = container()
    details = box.wait_ready()
    pids = {pid for d in details.values() for pid in d["pids"].values()}  # the namespace's
    assert len(pids) == 3
    # worker.py has set its SIGTERM handler once it has done a round.
    wait_for(lambda: "worker.1 | round 1:" in box.stdout(), message="the worker's first round")
    with Events(f"ipc://{box.dir}/run/events.sock", ("watcher.",)) as events:
        if how == "docker stop":  # SIGTERM from outside to the namespace's init
            box.init.send_signal(signal.SIGTERM)
        else:
            done = box.exec("bigtopctl", "quit")
            # It has the reply; the kernel may end it before it exits, with
            # the whole namespace once PID 1 has (docker exec: status 137).
            assert done.returncode in (0, -signal.SIGKILL), done.stderr
            assert "the daemon is stopping" in done.stdout
        reaped = {}
        while set(reaped) != pids:
            _, payload = events.wait(lambda topic, _: topic.endswith(".reap"), timeout=20)
            reaped[payload["process_pid"]] = payload
    assert box.wait() == 0, box.stdout()[-3000:]
    out = box.stdout()
    # Each one stopped by bigtopd (not by the kernel as PID 1 exits), and
    # gracefully: bigtop-wsgi after its requests, worker.py after its
    # round, none SIGKILLed. Their status is 0, or -15 when the stop
    # signal came twice and the second found the process exiting, its
    # handler gone (bigtopd signals the process group, then the process).
    assert all(r["requested"] for r in reaped.values()), reaped
    assert all(r["exit_code"] in (0, -signal.SIGTERM) for r in reaped.values()), reaped
    assert "still alive after" not in out
    assert out.count("INFO bigtop.wsgi: stopped") == 2
    assert "worker.1 | stopping after" in out
    if how == "docker stop":
        assert "got SIGTERM: stopping every watcher" in out
    assert out.index("worker: stopped") < out.index("web: stopped")  # its dependency last
    assert out.rstrip().endswith("INFO    stopped")
    assert box.stderr() == ""


def test_stop_as_soon_as_it_starts_exits_0(container):
    """docker stop right after docker run: the SIGTERM comes once bigtopd
    has its handlers (it logs that it is starting), before its watchers
    have started."""
    box = container(wait=False)
    wait_for(lambda: " starting (pid 1) " in box.stdout(), interval=0.001,
             message="bigtopd's handlers set")
    box.init.send_signal(signal.SIGTERM)
    assert box.wait(timeout=5) == 0
    assert "got SIGTERM" in box.stdout()


@pytest.mark.parametrize("case", ["configuration", "fatal", "takeover"])
def test_exit_status_of_a_start_that_fails(tmp_path, namespace, case):
    port = free_port()
    config = container_config(tmp_path, port)
    env = image_env(tmp_path)
    blocker = None
    if case == "configuration":
        config.write_text(config.read_text().replace("numprocesses = 2", "numprocesses = two"))
        expected, said = 2, "[watcher:web] numprocesses: 'two' is not an integer"
    elif case == "fatal":  # the daemon's socket cannot be bound: nothing is started
        blocker = socket.create_server(("127.0.0.1", port))
        expected, said = 1, f"socket 'web' cannot bind 127.0.0.1:{port}"
    else:  # the image after `bigtopctl upgrade` cannot take over (here: no state at all)
        from bigtop.core.handover import ENV

        env[ENV] = "99"
        expected, said = 70, "cannot take over"
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                               *exec_form("ENTRYPOINT"), str(config)], cwd=tmp_path / "app",
                              env=env, capture_output=True, text=True, timeout=30)
    finally:
        if blocker is not None:
            blocker.close()
    assert done.returncode == expected, (done.stdout, done.stderr)
    # Before the log is set up the message is on stderr; after, in the log (stdout).
    assert said in (done.stderr if case != "fatal" else done.stdout), (done.stdout, done.stderr)
    if case == "configuration":
        assert "invalid configuration, nothing started" in done.stderr
    if case == "fatal":
        assert "nothing started" in done.stdout
    assert not processes_under(tmp_path)
