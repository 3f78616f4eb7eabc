"""bigtopctl end to end: ``python -m bigtop`` run as a user runs it, against
real daemons, with its output, its exit status and the daemon's effect on
real processes checked."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from bigtop.cli.ctlcommands import COMMANDS, UsageError, convert_value, key_values

from .conftest import ROOT, Daemon, free_port, wait_for

PY = sys.executable
CTL = [PY, "-m", "bigtop"]
Factory = Callable[..., Daemon]

CONFIG = """
    [watcher:web]
    cmd = sleep 1000
    numprocesses = 2

    [watcher:worker]
    cmd = {py} -c "print('hello from worker', flush=True); import time; time.sleep(1000)"
    depends_on = web

    [watcher:crashy]
    cmd = sh -c "echo boom; exit 3"
    max_retry = 1

    [socket:web]
    host = 127.0.0.1
    port = {port}
"""


def env() -> dict[str, str]:
    """The test's environment (its private runtime dir), without a terminal
    width, so that output is laid out as for a pipe."""
    out = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out.pop("BIGTOPCTL_ENDPOINT", None)
    out.pop("CIRCUSCTL_ENDPOINT", None)
    return out


def ctl(d: Daemon | None, *args: str, stdin: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    endpoint = ["--endpoint", d.endpoint] if d is not None else []
    return subprocess.run([*CTL, *endpoint, *args], capture_output=True, text=True,
                          input=stdin, timeout=timeout, env=env(), cwd=ROOT)


def ok(d: Daemon | None, *args: str) -> str:
    done = ctl(d, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def start(daemon: Factory) -> Daemon:
    d = daemon(CONFIG.format(py=PY, port=free_port()))
    d.wait_pids("web", 2)
    d.wait_pids("worker", 1)
    # At the daemon's start, before any subscriber: its state says it.
    wait_for(lambda: d.call("status", name="crashy")["status"] == "failed",
             message="crashy to fail")
    return d


def rows(text: str) -> dict[str, list[str]]:
    """A plain table's rows by their first cell (the first row of each)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            found.setdefault(line.split()[0], line.split())
    return found


# -- reading commands ------------------------------------------------------------------

def test_reading_commands(daemon: Factory) -> None:
    d = start(daemon)
    web = d.pids("web")

    status = rows(ok(d, "status"))
    assert status["WATCHER"][:3] == ["WATCHER", "STATE", "PROCESSES"]
    assert status["web"][1:3] == ["active", "2/2"]
    assert status["worker"][1:3] == ["active", "1/1"]
    assert status["crashy"][1:3] == ["failed", "0/1"]  # still wanted
    assert "code 3" in " ".join(status["crashy"]), "the last exit: its code and how long ago"
    out = ok(d, "status")
    assert re.search(r"crashy failed: process 1 failed .* status 3", out)
    assert re.search(r"web\s+active\s+2/2\s+\d+(\.\d)?s\s+0\s+-", out), out

    one = ok(d, "status", "web")
    assert rows(one)["web"][1] == "active"
    assert all(str(pid) in one for pid in web), "status NAME lists the pids"

    assert ok(d, "list").split() == ["crashy", "web", "worker"]
    assert {int(p) for p in ok(d, "list", "web").split()} == web
    assert ok(d, "numwatchers").strip() == "3"
    assert ok(d, "numprocesses").strip() == "3"
    assert ok(d, "numprocesses", "web").strip() == "2"

    stats = ok(d, "stats")
    header = stats.splitlines()[0].split()
    assert header[:3] == ["WATCHER", "PID", "WID"] and "CMD" in header and "CHILDREN" in header
    for pid in web:
        assert re.search(rf"web\s+{pid}\s+[12]\s+\d+\.\d\s+\S+ \S+%\s+\S+\s+sleep\s+0", stats)
    pid = min(web)
    assert str(pid) in ok(d, "stats", "web", str(pid))
    assert "THREADS" in ok(d, "stats", "--extended", "web")
    dstats = ok(d, "dstats")
    assert f"pid: {d.pid}" in dstats and "memory:" in dstats

    sockets = ok(d, "listsockets")
    assert re.search(r"\d+\s+web\s+127\.0\.0\.1:\d+\s+\d+", sockets)

    options = ok(d, "options", "web")
    assert "numprocesses: 2" in options.splitlines()
    assert "cmd: sleep 1000" in options.splitlines()
    assert ok(d, "get", "web", "numprocesses", "cmd").splitlines() == [
        "numprocesses: 2", "cmd: sleep 1000"]
    assert f"pubsub_endpoint: {d.pubsub_endpoint}" in ok(d, "globaloptions").splitlines()
    assert ok(d, "globaloptions", "pubsub_endpoint").strip() == (
        f"pubsub_endpoint: {d.pubsub_endpoint}")

    tree = ok(d, "depends")
    assert re.search(r"worker\n\s*\W+ web", tree), tree
    one = ok(d, "depends", "worker")
    assert "depends on: web" in one and "needed by: nothing" in one
    assert "needed by: worker" in ok(d, "depends", "web")

    logs = ok(d, "logs")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "  # each line's time first
    assert re.search(rf"^{stamp}worker\.1 \| hello from worker$", logs, re.M), logs
    assert re.search(rf"^{stamp}crashy\.1 \| boom$", logs, re.M)
    assert "hello" not in ok(d, "logs", "crashy", "-n", "1")

    version = ok(d, "version")
    assert re.match(r"bigtopd \d+\.\d+\.\d+ \(Circus protocol 0\.19\)\nbigtopctl ", version)


def test_json_output_and_exit_statuses(daemon: Factory) -> None:
    d = start(daemon)
    reply = json.loads(ok(d, "--json", "status"))
    assert reply["status"] == "ok" and reply["statuses"]["web"] == "active"
    reply = json.loads(ok(d, "status", "web", "--json"))  # global option after the command
    assert reply["status"] == "active"
    assert json.loads(ok(d, "list", "--json"))["watchers"] == ["crashy", "web", "worker"]

    failed = ctl(d, "status", "nope")
    assert failed.returncode == 3
    assert failed.stderr.strip() == ("error: no watcher named 'nope'; the watchers are: "
                                     "crashy, web, worker")
    near = ctl(d, "status", "wbe")
    assert near.stderr.strip() == "error: no watcher named 'wbe' (did you mean 'web'?)"
    assert failed.stdout == ""
    failed = ctl(d, "--json", "incr", "nope")
    assert failed.returncode == 3, "an error reply is 3 with --json too"
    assert json.loads(failed.stdout)["errno"] == 3

    for args in (["incr"], ["bogus"], ["--timeout", "abc", "status"], ["signal", "web"],
                 ["set", "web", "numprocesses"], ["start", "--match", "fuzzy", "web"],
                 ["incr", "web", "two"]):
        usage = ctl(d, *args)
        assert usage.returncode == 2, (args, usage.stderr)
        assert "usage:" in usage.stderr and "Traceback" not in usage.stderr
    assert "'status'" in ctl(d, "stauts").stderr.split("did you mean")[1]


def test_unreachable_daemon_is_status_1_quickly(tmp_path: Path) -> None:
    missing = f"ipc://{tmp_path}/nothing.sock"
    began = time.monotonic()
    done = ctl(None, "--endpoint", missing, "status")
    assert done.returncode == 1
    assert missing in done.stderr and "--endpoint" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) <= 3

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    done = ctl(None, "--endpoint", endpoint, "--timeout", "0.3", "status")
    assert done.returncode == 1
    assert f"no reply from the daemon at {endpoint} within 0.3s" in done.stderr
    assert "--timeout" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - began < 10

    done = subprocess.run([*CTL, "list"], capture_output=True, text=True, timeout=30,
                          env={**env(), "BIGTOPCTL_ENDPOINT": missing})
    assert done.returncode == 1 and missing in done.stderr, "BIGTOPCTL_ENDPOINT is honoured"


# -- changing things ---------------------------------------------------------------------

def test_changing_commands(daemon: Factory) -> None:
    d = start(daemon)
    out = ok(d, "add", "--start", "--waiting", "-o", "numprocesses=1", "extra", "--",
             "sh", "-c", "echo added; exec sleep 1000")
    first = d.wait_pids("extra", 1)
    assert out.strip() == f"extra: started {min(first)}"
    assert ok(d, "get", "extra", "cmd").strip() == "cmd: sh -c 'echo added; exec sleep 1000'"

    assert ok(d, "incr", "extra", "2", "--waiting").strip() == "extra: 1 -> 3 processes"
    d.wait_pids("extra", 3)
    assert ok(d, "decr", "extra", "--waiting").strip() == "extra: 3 -> 2 processes"
    two = d.wait_pids("extra", 2)

    assert ok(d, "set", "extra", "graceful_timeout", "2.5", "max_retry", "4",
              "--waiting").strip() == "ok"
    assert ok(d, "get", "extra", "graceful_timeout", "max_retry").splitlines() == [
        "graceful_timeout: 2.5", "max_retry: 4"]
    assert d.pids("extra") == two, "options that do not change how processes start"

    sent = ok(d, "signal", "extra", "CONT").strip()
    assert sent.startswith("sent SIGCONT to ")
    assert {int(p) for p in sent.removeprefix("sent SIGCONT to ").split(", ")} == two
    victim = min(two)
    assert ok(d, "signal", "extra", str(victim), "18").strip() == f"sent SIGCONT to {victim}"

    assert ok(d, "kill", "extra", str(victim), "--waiting").strip() == "ok"
    after = d.wait_pids("extra", 2)
    assert victim not in after, "the killed process was replaced"

    assert ok(d, "stop", "extra", "--waiting").strip() == "extra: stopped"
    assert d.pids("extra") == set()
    assert rows(ok(d, "status", "extra"))["extra"][1] == "stopped"
    out = ok(d, "start", "extra", "--waiting").strip()
    assert out.startswith("extra: started ")
    started = d.wait_pids("extra", 2)
    out = ok(d, "restart", "extra", "--waiting").strip()
    assert re.match(r"extra: stopped \d+, \d+; started \d+, \d+$", out), out
    assert d.wait_pids("extra", 2).isdisjoint(started)
    assert ok(d, "reload", "extra", "--waiting").startswith("extra: stopped ")
    assert ok(d, "reload", "extra", "--terminate").strip() == "ok"
    assert ok(d, "restart", "ext*", "--match", "glob").strip() == "ok"
    assert ok(d, "stop", "^ex", "--match", "regex", "--waiting").strip() == "stopped"

    assert ok(d, "rm", "extra", "--waiting").strip() == "ok"
    assert "extra" not in ok(d, "list").split()
    out = ok(d, "reloadconfig")
    assert "restarted: crashy" in out or "nothing changed" in out, out

    assert ok(d, "quit").strip() == "the daemon is stopping"
    assert d.proc is not None
    assert d.proc.wait(30) == 0


def test_set_values_are_typed_like_circusctl() -> None:
    assert convert_value("numprocesses", "3") == 3
    assert convert_value("graceful_timeout", "2.5") == 2.5
    assert convert_value("respawn", "False") is False
    assert convert_value("respawn", "on") is True
    assert convert_value("env", '{"A": "1"}') == {"A": "1"}
    assert convert_value("env", "A=1,B=2") == "A=1,B=2"
    assert convert_value("cmd", "123") == "123", "cmd stays text"
    assert convert_value("umask", "022") == "022"
    assert convert_value("hooks", "before_start:mod.fn,after_stop:mod.g") == {
        "before_start": "mod.fn", "after_stop": "mod.g"}
    with pytest.raises(ValueError):
        convert_value("hooks", "nonsense:mod.fn")
    spec = COMMANDS["set"]
    ns = spec.parse(["web", "NumProcesses", "4", "warmup_delay", "0.5"])
    assert spec.props(ns) == {"name": "web", "options": {"numprocesses": 4,
                                                         "warmup_delay": 0.5}}
    with pytest.raises(UsageError):
        key_values(spec.parser(), ["numprocesses"])
    signal = COMMANDS["signal"]
    assert signal.props(signal.parse(["web", "--children", "12", "HUP", "--recursive"])) == {
        "name": "web", "signum": "HUP", "pid": 12, "children": True, "recursive": True}


# -- events ---------------------------------------------------------------------------------

def test_listen_prints_a_spawn_event(daemon: Factory) -> None:
    d = start(daemon)
    listener = subprocess.Popen([*CTL, "--endpoint", d.endpoint, "listen", "web", "-n", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env(), cwd=ROOT)
    try:
        # The subscription takes a moment to reach the daemon: add a process
        # until the listener has seen a spawn and stopped.
        deadline = time.monotonic() + 15
        while listener.poll() is None and time.monotonic() < deadline:
            ok(d, "incr", "web")
            try:
                listener.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
        out, err = listener.communicate(timeout=5)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    match = re.match(r"\d\d:\d\d:\d\d\.\d{3} watcher\.web\.spawn process_pid=(\d+)$", out.strip())
    assert match, out
    assert int(match.group(1)) in d.pids("web")

    listener = subprocess.Popen([*CTL, "--endpoint", d.endpoint, "--json", "listen",
                                 "watcher.web.", "-n", "1"], stdout=subprocess.PIPE,
                                text=True, env=env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while listener.poll() is None and time.monotonic() < deadline:
            ok(d, "decr", "web")
            try:
                listener.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
        out, _ = listener.communicate(timeout=5)
    finally:
        listener.kill()
    event = json.loads(out)
    assert event["topic"].startswith("watcher.web.") and "time" in event["payload"]


def test_rolling_reload_shows_progress_and_ends_with_new_pids(daemon: Factory) -> None:
    d = start(daemon)
    old = d.pids("web")
    out = ok(d, "reload", "web", "--rolling")
    new = d.wait_pids("web", 2)
    assert new.isdisjoint(old)
    assert re.search(r"web .*2/2 processes", out), out
    assert f"web: stopped {', '.join(map(str, sorted(old)))}; started " in out
    assert {int(p) for p in out.rsplit("started ", 1)[1].split(", ")} == new

    reply = json.loads(ok(d, "--json", "reload", "web", "--sequential"))
    assert set(reply["info"]["started"]) == d.wait_pids("web", 2)
    failed = ctl(d, "reload", "nope", "--rolling")
    assert failed.returncode == 3 and "no watcher named 'nope'" in failed.stderr


# -- the shell ------------------------------------------------------------------------------

def test_shell_reads_commands_from_stdin(daemon: Factory) -> None:
    d = start(daemon)
    script = "\n".join([
        "help",
        "status",
        "incr nope",          # an error: reported, the shell goes on
        "# a comment",
        "",
        "numwatchers",
        "help incr",
        "rm web",             # destructive: needs --yes from a pipe
        "stop",               # every watcher: the same
        "list --json",
        "exit",
        "numprocesses",       # not run
    ]) + "\n"
    done = ctl(d, stdin=script)
    out, err = done.stdout, done.stderr
    assert "Traceback" not in err
    assert "reloadconfig" in out and "exit            leave the shell" in out
    assert re.search(r"web\s+active\s+2/2", out)
    assert "error: no watcher named 'nope'" in err
    assert "\n3\n" in out, "the command after the error ran"
    assert "usage: bigtopctl incr" in out
    assert "rm asks for confirmation: add --yes" in err
    assert "stop asks for confirmation" in err
    assert '"watchers": ["crashy", "web", "worker"]' in out
    assert out.rstrip().endswith("}"), "nothing ran after exit"
    assert done.returncode == 2, "the status of the last command that failed"
    assert d.pids("web"), "nothing was stopped"

    done = ctl(d, "shell", stdin="rm crashy --yes --waiting\nlist\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "web", "worker"]


def test_shell_completion_candidates(daemon: Factory) -> None:
    from bigtop.cli.shell import ShellState
    from bigtop.client import Session

    d = start(daemon)
    state = ShellState(Session(d.endpoint))
    state.refresh_watchers()
    assert state.watchers == ["crashy", "web", "worker"]
    assert {"start", "stop", "status", "stats"} <= set(state.candidates([], "st"))
    assert state.candidates(["start"], "") == ["crashy", "web", "worker"]
    assert "--match" in state.candidates(["start"], "--")
    assert state.candidates(["start", "--match"], "") == ["simple", "glob", "regex"]
    keys = state.candidates(["set", "web"], "")
    assert "numprocesses" in keys and "cmd" in keys
    assert state.candidates(["set", "web", "numprocesses"], "") == []
    assert "graceful_timeout" in state.candidates(["get", "web", "cmd"], "")
    assert "status" in state.candidates(["help"], "")
    state.session.close()


# -- completion scripts, keys, help -----------------------------------------------------

def test_completion_scripts(tmp_path: Path, daemon: Factory) -> None:
    for shell, saved in (("bash", "bigtopctl.bash"), ("zsh", "_bigtopctl"),
                         ("fish", "bigtopctl.fish")):
        script = ok(None, "completion", shell)
        assert "bigtopctl" in script and "reloadconfig" in script
        assert (ROOT / "completions" / saved).read_text() == script, (
            f"completions/{saved} is out of date: bigtopctl completion {shell} > it")
    bash = ROOT / "completions" / "bigtopctl.bash"
    assert subprocess.run(["bash", "-n", str(bash)]).returncode == 0

    # Complete as bash would, with `bigtopctl` on PATH for the watcher names.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "bigtopctl"
    wrapper.write_text(f'#!/bin/sh\nexec {PY} -m bigtop "$@"\n')
    wrapper.chmod(0o755)
    d = start(daemon)

    def complete(line: str) -> list[str]:
        probe = (f'source {bash}; COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; '
                 '_bigtopctl; printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True,
                              env={**env(), "PATH": f"{bindir}:{os.environ['PATH']}"},
                              cwd=ROOT, timeout=30)
        return done.stdout.split()

    assert complete("bigtopctl st") == ["start", "stop", "status", "stats", "startup"]
    assert complete("bigtopctl start --ma") == ["--match"]
    assert complete("bigtopctl completion ") == ["bash", "zsh", "fish"]
    assert complete(f"bigtopctl --endpoint {d.endpoint} restart w") == ["web", "worker"]
    assert "numprocesses" in complete(f"bigtopctl --endpoint {d.endpoint} get web n")


def test_keygen_writes_a_private_secret(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    out = ok(None, "keygen", "ops", "--dir", str(keys))
    public, secret = keys / "ops.key", keys / "ops.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert public.exists()
    assert f"server_key = {secret}" in out and "authorized_keys" in out
    assert f"--key {secret}" in out
    again = ctl(None, "keygen", "ops", "--dir", str(keys))
    assert again.returncode == 1 and "exists" in again.stderr
    import zmq.auth

    pub, sec = zmq.auth.load_certificate(str(secret))
    assert sec is not None and pub == zmq.auth.load_certificate(str(public))[0]


def test_keys_on_a_tcp_endpoint(daemon: Factory, tmp_path: Path) -> None:
    keys, clients = tmp_path / "keys", tmp_path / "clients"
    ok(None, "keygen", "server", "--dir", str(keys))
    ok(None, "keygen", "ops", "--dir", str(keys))
    clients.mkdir()
    (clients / "ops.key").write_text((keys / "ops.key").read_text())
    port, pubport = free_port(), free_port()
    d = daemon(f"""
        [circus]
        endpoint = tcp://127.0.0.1:{port}
        pubsub_endpoint = tcp://127.0.0.1:{pubport}
        server_key = {keys / "server.key_secret"}
        authorized_keys = {clients}

        [watcher:web]
        cmd = sleep 1000
    """)
    d.wait_pids("web", 1)
    endpoint = f"tcp://127.0.0.1:{port}"
    auth = ["--endpoint", endpoint, "--key", str(keys / "ops.key_secret"),
            "--server-key", str(keys / "server.key")]
    assert ok(None, *auth, "list").split() == ["web"]
    assert ok(None, *auth, "globaloptions", "pubsub_endpoint").strip() == (
        f"pubsub_endpoint: tcp://127.0.0.1:{pubport}")
    refused = ctl(None, "--endpoint", endpoint, "--timeout", "0.5", "list")
    assert refused.returncode == 1 and "no reply" in refused.stderr


def test_help_and_version() -> None:
    out = ok(None, "--help")
    assert "usage: bigtopctl [global options]" in out
    assert "Exit status" in out and "circusctl returns 0" in out
    for name in COMMANDS:
        assert re.search(rf"^  {name} ", out, re.M), name
    assert ok(None, "--version").startswith("bigtopctl ")
    assert ok(None, "help", "reload").startswith("usage: bigtopctl reload")
    assert ok(None, "reload", "--help").startswith("usage: bigtopctl reload")
    assert ok(None, "--help", "reload").startswith("usage: bigtopctl reload")
    assert "--rolling" in ok(None, "help", "reload")


def test_console_script_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["bigtopctl"] == "bigtop.cli.bigtopctl:main"
    from bigtop.cli import bigtopctl

    assert callable(bigtopctl.main)
    installed = Path(sys.executable).parent / "bigtopctl"
    if not installed.exists() or "bigtop.cli.bigtopctl" not in installed.read_text():
        pytest.skip("the installed bigtopctl script predates this entry point: "
                    "pip install -e . to refresh it")
    done = subprocess.run([str(installed), "--version"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("bigtopctl ")


def on_a_terminal(d: Daemon, answer: str, *args: str) -> str:
    """bigtopctl ARGS on a pseudo-terminal, answering its question; what it
    printed there."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([*CTL, "--endpoint", d.endpoint, *args], stdin=slave,
                            stdout=slave, stderr=slave, env=env(), cwd=ROOT)
    os.close(slave)
    seen = b""
    try:
        while b"[y/N]" not in seen:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, f"no question: {seen!r}"
            seen += os.read(master, 4096)
        os.write(master, answer.encode() + b"\n")
        assert proc.wait(30) == 0
        while select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:  # the terminal's other end closed
                break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return seen.decode(errors="replace")


def test_acting_on_every_watcher_is_said_or_confirmed(daemon: Factory) -> None:
    d = start(daemon)
    refused = ctl(d, "stop")  # no terminal: it must be said
    assert refused.returncode == 2
    assert "without NAME this acts on every watcher: say 'bigtopctl stop all'" in refused.stderr
    assert d.call("status")["statuses"]["web"] == "active"
    said = on_a_terminal(d, "n", "stop")
    assert "Stop every watcher (crashy, web, worker)? [y/N]" in said and "cancelled" in said
    assert d.call("status")["statuses"]["web"] == "active"
    on_a_terminal(d, "y", "restart", "--waiting")
    ok(d, "stop", "all", "--waiting")
    stopped = {"web": "stopped", "worker": "stopped"}  # crashy stays failed
    assert d.call("status")["statuses"].items() >= stopped.items()
    ok(d, "start", "all", "--waiting")
    assert d.call("status")["statuses"]["web"] == "active"
    ok(d, "stop", "--yes", "--waiting")
    assert d.call("status")["statuses"].items() >= stopped.items()
