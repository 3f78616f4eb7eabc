"""Circus's own tools against bigtopd: the real ``circusctl`` and
``circus.client.CircusClient`` (circus 0.19.0, installed by ``make test`` into
``.venv-circus``) must work unchanged, printing what they print for circusd.

Every circusctl command except ``ipython`` is run as a user would run it,
and its output, its exit status and the daemon's effect on real processes
are checked.

Also here: commands on one watcher are queued, never refused as Circus's
"arbiter is already running ... command", and a slow command on one watcher
never delays another watcher.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import zmq

from bigtop.client import CallError, Client

from .conftest import ROOT, free_port, wait_for

CIRCUS_BIN = ROOT / ".venv-circus" / "bin"
CIRCUSCTL = CIRCUS_BIN / "circusctl"
CIRCUS_PYTHON = CIRCUS_BIN / "python"

pytestmark = pytest.mark.skipif(
    not (CIRCUSCTL.exists() and CIRCUS_PYTHON.exists()),
    reason="the real Circus is missing: `make test` installs circus==0.19.0 into "
           f"{ROOT / '.venv-circus'}")

USER = psutil.Process().username()

APP = """
    [circus]
    check_delay = 5

    [watcher:myapp]
    cmd = sleep 1000
    numprocesses = 2

    [watcher:other]
    cmd = sleep 1000
"""

# circusctl's INFOLINE ("%(pid)s  %(cmdline)s %(username)s %(nice)s
# %(mem_info1)s %(mem_info2)s %(cpu)s %(mem)s %(ctime)s"): nine fields, two
# spaces after the pid.
MEM = r"(?:\d+(?:\.\d+)?[KMGTPEZY]|\d+B|N/A)"
INFOLINE = re.compile(
    r"(?P<pid>\d+)  (?P<cmdline>\S+) (?P<username>\S+) (?P<nice>-?\d+|N/A|Zombie) "
    rf"(?P<mem_info1>{MEM}) (?P<mem_info2>{MEM}) (?P<cpu>\d+(?:\.\d+)?|N/A) "
    r"(?P<mem>\d+(?:\.\d+)?|N/A) (?P<ctime>\d+:\d\d\.\d+|N/A)")
INFO_KEYS = {"pid", "cmdline", "username", "nice", "mem_info1", "mem_info2", "cpu", "mem",
             "ctime"}


# -- running circusctl ------------------------------------------------------

def circusctl(endpoint: str, *args: str, timeout: int = 20,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``circusctl --endpoint E --timeout N ARGS...``: global options go
    before the command word, as circusctl requires."""
    env = {k: v for k, v in os.environ.items() if k != "CIRCUSCTL_ENDPOINT"}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run([str(CIRCUSCTL), "--endpoint", endpoint, "--timeout", str(timeout),
                           *args], capture_output=True, text=True, env=env, input=stdin,
                          timeout=timeout + 30)


def ctl_ok(d, *args: str, timeout: int = 20) -> str:
    """Run circusctl, expect exit status 0 and nothing on stderr; its stdout."""
    result = circusctl(d.endpoint, *args, timeout=timeout)
    assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
    assert result.stderr == "", (args, result.stderr)
    return result.stdout


def ctl_error(d, *args: str, rc: int = 3) -> str:
    """Run circusctl, expect it to fail with ``rc`` and print nothing on stdout;
    its stderr."""
    result = circusctl(d.endpoint, *args)
    assert result.returncode == rc, (args, result.returncode, result.stdout, result.stderr)
    assert result.stdout == "", (args, result.stdout)
    return result.stderr


def pid_list(text: str) -> list[int]:
    """circusctl list NAME: pids joined by commas."""
    text = text.strip()
    return [int(p) for p in text.split(",")] if text else []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ignores_sigterm(pid: int) -> bool:
    """Has the process set SIGTERM to SIG_IGN yet (/proc/PID/status SigIgn)?"""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return False
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def new_pids(d, name: str, count: int, old: set[int], timeout: float = 15.0) -> set[int]:
    """Wait until ``name`` runs ``count`` processes, none of them in ``old``."""
    def check() -> set[int] | None:
        now = d.pids(name)
        return now if len(now) == count and not now & old else None
    return wait_for(check, timeout, message=f"{count} new processes of {name}")  # type: ignore[return-value]


def info_line(text: str) -> dict[str, str]:
    match = INFOLINE.fullmatch(text)
    assert match, f"not a circusctl INFOLINE: {text!r}"
    return match.groupdict()


# -- read-only commands -----------------------------------------------------

def test_status_list_and_counts(daemon):
    d = daemon(APP)
    myapp, other = d.wait_pids("myapp", 2), d.wait_pids("other", 1)

    assert ctl_ok(d, "status") == "myapp: active\nother: active\n"
    assert ctl_ok(d, "status", "myapp") == "active\n"
    assert ctl_ok(d, "list") == "myapp,other\n"
    assert set(pid_list(ctl_ok(d, "list", "myapp"))) == myapp
    assert pid_list(ctl_ok(d, "list", "other")) == list(other)
    assert ctl_ok(d, "numwatchers") == "2\n"
    assert ctl_ok(d, "numprocesses") == "3\n"
    assert ctl_ok(d, "numprocesses", "myapp") == "2\n"
    assert ctl_ok(d, "numprocesses", "other") == "1\n"

    # --json prints the reply itself, with Circus's fields.
    reply = json.loads(ctl_ok(d, "--json", "status", "myapp"))
    assert reply["status"] == "active" and isinstance(reply["time"], float)
    assert isinstance(reply["id"], str) and len(reply["id"]) == 32
    reply = json.loads(ctl_ok(d, "--json", "numprocesses", "myapp"))
    assert reply["numprocesses"] == 2 and reply["watcher_name"] == "myapp"


def test_names_are_case_insensitive_like_circus(daemon):
    d = daemon("""
        [watcher:MyApp]
        cmd = sleep 1000
    """)
    d.wait_pids("MyApp", 1)
    assert ctl_ok(d, "list") == "myapp\n", "list gives the lower-cased names"
    assert ctl_ok(d, "status") == "MyApp: active\n", "status keeps the case"
    assert ctl_ok(d, "status", "MYAPP") == "active\n"
    assert ctl_ok(d, "numprocesses", "myapp") == "1\n"


def test_listsockets_tcp_and_unix(daemon, tmp_path):
    path = tmp_path / "app.sock"
    d = daemon(f"""
        [socket:web]
        host = 127.0.0.1
        port = 0

        [socket:local]
        path = {path}

        [watcher:web]
        cmd = sleep 1000
        use_sockets = true
    """)
    d.wait_pids("web", 1)
    lines = ctl_ok(d, "listsockets").splitlines()
    assert len(lines) == 2
    parsed = {}
    for line in lines:
        match = re.fullmatch(r"(\d+):socket '(\w+)' at (.+)", line)
        assert match, line
        parsed[match[2]] = (int(match[1]), match[3])
    fds = [int(line.split(":")[0]) for line in lines]
    assert fds == sorted(fds), "sorted by fd"
    web_fd, web_at = parsed["web"]
    local_fd, local_at = parsed["local"]
    assert local_at == str(path)
    host, port = web_at.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    # The numbers are the daemon's own listening sockets.
    for fd in (web_fd, local_fd):
        assert os.readlink(f"/proc/{d.pid}/fd/{fd}").startswith("socket:")
    addresses = {c.laddr for c in psutil.Process(d.pid).net_connections("all")}
    assert ("127.0.0.1", int(port)) in addresses
    assert str(path) in addresses

    reply = json.loads(ctl_ok(d, "--json", "listsockets"))
    by_name = {s["name"]: s for s in reply["sockets"]}
    assert by_name["web"]["host"] == "127.0.0.1" and by_name["web"]["port"] == int(port)
    assert by_name["local"]["path"] == str(path)
    assert all(isinstance(s["fd"], int) and isinstance(s["backlog"], int)
               for s in reply["sockets"])


def test_options_and_get(daemon):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    lines = ctl_ok(d, "options", "myapp").splitlines()
    options = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                   for line in lines)
    keys = [line.split(":", 1)[0] for line in lines]
    assert keys == sorted(keys), "options come sorted by key"
    assert options["numprocesses"] == "2"
    assert options["cmd"] == "sleep 1000"
    assert options["shell"] == "False"
    assert options["stop_signal"] == "15"
    assert options["env"] == ""
    for key in ("graceful_timeout", "warmup_delay", "max_retry", "respawn", "send_hup",
                "singleton", "copy_env", "priority", "uid", "gid", "max_age"):
        assert key in options, key

    # get: in request order.
    assert ctl_ok(d, "get", "myapp", "numprocesses", "cmd") == \
        "numprocesses: 2\ncmd: sleep 1000\n"
    assert ctl_ok(d, "get", "myapp", "cmd", "numprocesses") == \
        "cmd: sleep 1000\nnumprocesses: 2\n"
    assert ctl_error(d, "get", "myapp", "nosuchkey") == \
        "error: 'nosuchkey' option not found\n"


# Watcher.optnames in Circus 0.19 (the fixed part; config-loaded watchers
# add "__name__", which is a Circus artefact).
CIRCUS_OPTNAMES = [
    "args", "close_child_stderr", "close_child_stdin", "close_child_stdout", "cmd",
    "copy_env", "env", "executable", "gid", "graceful_timeout", "max_age",
    "max_age_variance", "max_retry", "numprocesses", "on_demand", "priority", "respawn",
    "send_hup", "shell", "shell_args", "singleton", "stderr_stream_conf",
    "stdout_stream_conf", "stop_children", "stop_signal", "uid", "use_sockets",
    "warmup_delay", "working_dir",
]


def test_options_has_every_circus_option_name(daemon):
    d = daemon(APP)
    reply = json.loads(ctl_ok(d, "--json", "options", "myapp"))
    missing = [k for k in CIRCUS_OPTNAMES if k not in reply["options"]]
    assert not missing, f"options lacks {missing}"
    got = ctl_ok(d, "get", "myapp", "stdout_stream_conf", "stderr_stream_conf")
    assert got == "stdout_stream_conf: {}\nstderr_stream_conf: {}\n"


def test_working_dir_is_the_effective_directory(daemon):
    d = daemon(APP)
    pid = next(iter(d.wait_pids("myapp", 2)))
    assert psutil.Process(pid).cwd() == str(d.path)
    assert ctl_ok(d, "get", "myapp", "working_dir") == f"working_dir: {d.path}\n"


def test_globaloptions(daemon):
    d = daemon(APP)
    lines = ctl_ok(d, "globaloptions").splitlines()
    keys = [line.split(":", 1)[0] for line in lines]
    # Circus's five, in Circus's order (bigtop may add its own after them).
    assert keys[:5] == ["endpoint", "stats_endpoint", "pubsub_endpoint", "check_delay",
                        "multicast_endpoint"]
    assert f"endpoint: {d.endpoint}" in lines
    assert f"pubsub_endpoint: {d.pubsub_endpoint}" in lines
    assert "check_delay: 5.0" in lines
    assert ctl_ok(d, "globaloptions", "endpoint") == f"endpoint: {d.endpoint}\n"
    assert ctl_ok(d, "globaloptions", "check_delay") == "check_delay: 5.0\n"
    # circusctl prints a globaloptions error as the bare reason.
    assert ctl_error(d, "globaloptions", "nope") == "'nope' not an existing option\n"


def test_stats_and_dstats(daemon):
    d = daemon(APP)
    myapp, other = d.wait_pids("myapp", 2), d.wait_pids("other", 1)

    def check_lines(lines: list[str], pids: set[int]) -> None:
        seen = set()
        for line in lines:
            pid, rest = line.split(": ", 1)
            info = info_line(rest)
            assert info["pid"] == pid
            assert info["cmdline"] == "sleep" and info["username"] == USER
            seen.add(int(pid))
        assert seen == pids

    # All watchers: "name:" then one line per process.
    lines = ctl_ok(d, "stats").splitlines()
    assert lines[0] == "myapp:" and lines[3] == "other:" and len(lines) == 5
    check_lines(lines[1:3], myapp)
    check_lines(lines[4:], other)

    lines = ctl_ok(d, "stats", "myapp").splitlines()
    assert lines[0] == "myapp:" and len(lines) == 3
    check_lines(lines[1:], myapp)

    # One process: "pid: INFOLINE" and a blank line.
    pid = min(myapp)
    out = ctl_ok(d, "stats", "myapp", str(pid))
    assert out.endswith("\n\n")
    check_lines([out.rstrip("\n")], {pid})
    ctl_ok(d, "stats", "--extended", "myapp", str(pid))

    reply = json.loads(ctl_ok(d, "--json", "stats"))
    for watcher, pids in (("myapp", myapp), ("other", other)):
        infos = reply["infos"][watcher]
        assert set(infos) == {str(p) for p in pids}
        for info in infos.values():
            assert set(info) >= INFO_KEYS
            assert isinstance(info["children"], list)

    assert ctl_error(d, "stats", "myapp", "1") == "error: process 1 not found in 'myapp'\n"

    # dstats: the daemon itself.
    lines = ctl_ok(d, "dstats").splitlines()
    assert lines[0] == "Main Process:"
    assert lines[1].startswith("    ")
    info = info_line(lines[1][4:])
    assert int(info["pid"]) == d.pid and info["username"] == USER
    reply = json.loads(ctl_ok(d, "--json", "dstats"))
    assert reply["info"]["pid"] == d.pid and reply["info"]["children"] == []
    assert set(reply["info"]) >= INFO_KEYS


# -- changing watchers ------------------------------------------------------

def test_add_and_rm(daemon):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    assert ctl_ok(d, "add", "--start", "new", "sleep", "500") == "ok\n"
    pid = next(iter(d.wait_pids("new", 1)))
    assert psutil.Process(pid).cmdline() == ["sleep", "500"]
    assert ctl_ok(d, "status", "new") == "active\n"
    assert ctl_ok(d, "list") == "myapp,new,other\n"
    assert ctl_ok(d, "list", "new") == f"{pid}\n"

    # Without --start the watcher exists, stopped.
    assert ctl_ok(d, "add", "idle", "sleep 500") == "ok\n"
    assert ctl_ok(d, "status", "idle") == "stopped\n"
    assert ctl_ok(d, "list", "idle") == "\n"
    assert ctl_ok(d, "numwatchers") == "4\n"

    # The same name again is an error reply.
    assert ctl_error(d, "add", "new", "sleep", "1").startswith("error: ")
    # Too few arguments: circusctl refuses before sending anything.
    assert ctl_error(d, "add", "lonely", rc=1) == "Invalid number of arguments\n"

    assert ctl_ok(d, "rm", "new") == "ok\n"
    wait_for(lambda: not alive(pid), message="the removed watcher's process to stop")
    assert ctl_ok(d, "rm", "idle") == "ok\n"
    assert ctl_ok(d, "list") == "myapp,other\n"
    assert ctl_error(d, "rm", "new") == "error: program new not found\n"
    assert ctl_error(d, "status", "new") == "error\n"


def test_start_stop_restart(daemon):
    d = daemon(APP)
    myapp, other = d.wait_pids("myapp", 2), d.wait_pids("other", 1)

    # One watcher.
    assert ctl_ok(d, "stop", "myapp") == "ok\n"
    wait_for(lambda: not any(alive(p) for p in myapp), message="myapp stopped")
    assert ctl_ok(d, "status", "myapp") == "stopped\n"
    assert ctl_ok(d, "list", "myapp") == "\n"
    assert d.pids("other") == other, "other untouched"
    assert ctl_ok(d, "start", "myapp") == "ok\n"
    myapp = new_pids(d, "myapp", 2, myapp)
    assert ctl_ok(d, "status", "myapp") == "active\n"
    assert ctl_ok(d, "restart", "myapp") == "ok\n"
    myapp = new_pids(d, "myapp", 2, myapp)
    assert ctl_ok(d, "restart", "--waiting", "myapp") == "ok\n"
    now = set(pid_list(ctl_ok(d, "list", "myapp")))
    assert len(now) == 2 and not now & myapp, "--waiting: replaced before the reply"
    myapp = now
    assert d.pids("other") == other

    # A glob matches by name.
    assert ctl_ok(d, "stop", "--waiting", "my*") == "ok\n"
    assert ctl_ok(d, "status") == "myapp: stopped\nother: active\n"
    assert not any(alive(p) for p in myapp)
    assert ctl_ok(d, "start", "--waiting", "m?app") == "ok\n"
    myapp = set(pid_list(ctl_ok(d, "list", "myapp")))
    assert len(myapp) == 2
    assert ctl_ok(d, "restart", "--waiting", "*app") == "ok\n"
    myapp = new_pids(d, "myapp", 2, myapp)
    assert d.pids("other") == other, "the glob left other alone"

    # Every watcher.
    assert ctl_ok(d, "restart") == "ok\n"
    myapp, other = new_pids(d, "myapp", 2, myapp), new_pids(d, "other", 1, other)
    assert ctl_ok(d, "stop", "--waiting") == "ok\n"
    assert ctl_ok(d, "status") == "myapp: stopped\nother: stopped\n"
    assert not any(alive(p) for p in myapp | other)
    assert ctl_ok(d, "numprocesses") == "0\n"
    assert ctl_ok(d, "start", "--waiting") == "ok\n"
    assert ctl_ok(d, "status") == "myapp: active\nother: active\n"
    assert ctl_ok(d, "numprocesses") == "3\n"

    # With --json, the waiting replies carry Circus's "info".
    before = d.pids("other")
    reply = json.loads(ctl_ok(d, "--json", "restart", "--waiting", "other"))
    after = d.pids("other")
    assert reply["status"] == "ok"
    assert set(reply["info"]["stopped"]) == before
    assert set(reply["info"]["started"]) == after and reply["info"]["kept"] == []
    reply = json.loads(ctl_ok(d, "--json", "start", "--waiting", "other"))
    assert reply["info"] == {"started": [], "kept": sorted(after)}
    reply = json.loads(ctl_ok(d, "--json", "stop", "--waiting", "other"))
    assert reply["status"] == "ok" and reply["info"] is None


def test_reload(daemon):
    d = daemon(APP)
    myapp, other = d.wait_pids("myapp", 2), d.wait_pids("other", 1)

    assert ctl_ok(d, "reload", "myapp") == "ok\n"
    myapp = new_pids(d, "myapp", 2, myapp)
    assert ctl_ok(d, "reload", "--sequential", "--waiting", "myapp") == "ok\n"
    now = set(pid_list(ctl_ok(d, "list", "myapp")))
    assert len(now) == 2 and not now & myapp
    myapp = now
    assert ctl_ok(d, "reload", "--terminate", "--waiting", "myapp") == "ok\n"
    now = set(pid_list(ctl_ok(d, "list", "myapp")))
    assert len(now) == 2 and not now & myapp
    myapp = now
    assert d.pids("other") == other

    # All watchers, graceful and sequential.
    assert ctl_ok(d, "reload", "--waiting") == "ok\n"
    myapp, other = new_pids(d, "myapp", 2, myapp), new_pids(d, "other", 1, other)
    assert ctl_ok(d, "reload") == "ok\n"
    myapp, other = new_pids(d, "myapp", 2, myapp), new_pids(d, "other", 1, other)
    assert ctl_ok(d, "reload", "--sequential", "--waiting") == "ok\n"
    myapp, other = new_pids(d, "myapp", 2, myapp), new_pids(d, "other", 1, other)

    reply = json.loads(ctl_ok(d, "--json", "reload", "--waiting", "myapp"))
    info = reply["info"]
    assert set(info["stopped"]) == myapp and info["kept"] == []
    assert set(info["started"]) == d.pids("myapp")
    assert ctl_error(d, "reload", "nope") == "error: program nope not found\n"
    assert ctl_error(d, "reload", "a", "b", rc=1) == "invalid number of arguments\n"


def test_reloadconfig(daemon):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    other = d.wait_pids("other", 1)
    d.config.write_text(textwrap.dedent("""
        [circus]
        check_delay = 5

        [watcher:myapp]
        cmd = sleep 1000
        numprocesses = 3

        [watcher:third]
        cmd = sleep 1000
    """))
    assert ctl_ok(d, "reloadconfig") == "ok\n"
    wait_for(lambda: ctl_ok(d, "status") == "myapp: active\nthird: active\n",
             message="the new configuration")
    d.wait_pids("myapp", 3)
    d.wait_pids("third", 1)
    wait_for(lambda: not any(alive(p) for p in other), message="the removed watcher to stop")

    d.config.write_text(d.config.read_text().replace("numprocesses = 3", "numprocesses = 1"))
    assert ctl_ok(d, "reloadconfig", "--waiting") == "ok\n"
    assert ctl_ok(d, "get", "myapp", "numprocesses") == "numprocesses: 1\n"
    d.wait_pids("myapp", 1)

    # A broken file is refused and changes nothing.
    d.config.write_text(d.config.read_text() + "\n[watcher:broken]\nnumprocesses = 2\n")
    assert ctl_error(d, "reloadconfig", "--waiting").startswith("error: ")
    assert ctl_ok(d, "list") == "myapp,third\n"


def test_incr_decr(daemon):
    d = daemon(APP + """
    [watcher:single]
    cmd = sleep 1000
    singleton = true
    """)
    d.wait_pids("myapp", 2)
    assert ctl_ok(d, "incr", "--waiting", "myapp") == "3\n"
    d.wait_pids("myapp", 3)
    assert ctl_ok(d, "incr", "--waiting", "myapp", "2") == "5\n"
    d.wait_pids("myapp", 5)
    assert ctl_ok(d, "decr", "--waiting", "myapp", "3") == "2\n"
    d.wait_pids("myapp", 2)
    assert ctl_ok(d, "decr", "--waiting", "myapp") == "1\n"
    assert set(pid_list(ctl_ok(d, "list", "myapp"))) == d.wait_pids("myapp", 1)
    # Without --waiting the reply comes at once, and the change still happens.
    assert ctl_ok(d, "incr", "myapp", "2").strip() in ("ok", "3")
    d.wait_pids("myapp", 3)
    assert ctl_ok(d, "decr", "myapp").strip() in ("ok", "2")
    d.wait_pids("myapp", 2)
    # A count never goes below zero.
    assert ctl_ok(d, "decr", "--waiting", "myapp", "10") == "0\n"
    d.wait_pids("myapp", 0)
    assert ctl_ok(d, "status", "myapp").strip() in ("active", "stopped")
    assert ctl_ok(d, "incr", "--waiting", "myapp", "2") == "2\n"
    d.wait_pids("myapp", 2)
    # Singletons do not change.
    single = "This watcher is a Singleton - not changing the number of processes\n"
    assert ctl_ok(d, "incr", "single") == single
    assert ctl_ok(d, "incr", "--waiting", "single", "3") == single
    assert ctl_ok(d, "decr", "single") == single
    d.wait_pids("single", 1)
    # A non-integer count: circusctl's own int() fails (traceback, rc 1).
    result = circusctl(d.endpoint, "incr", "myapp", "x")
    assert result.returncode == 1 and "ValueError" in result.stderr
    assert ctl_error(d, "incr", rc=1) == "Invalid number of arguments\n"


def test_incr_decr_without_waiting_print_ok(daemon):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    assert ctl_ok(d, "incr", "myapp") == "ok\n"
    d.wait_pids("myapp", 3)
    assert ctl_ok(d, "decr", "myapp", "2") == "ok\n"
    d.wait_pids("myapp", 1)


def test_set_changes_options_and_processes(daemon):
    d = daemon(APP)
    myapp = d.wait_pids("myapp", 2)
    assert ctl_ok(d, "set", "myapp", "numprocesses", "3") == "ok\n"
    d.wait_pids("myapp", 3)
    assert ctl_ok(d, "get", "myapp", "numprocesses") == "numprocesses: 3\n"
    assert ctl_ok(d, "numprocesses", "myapp") == "3\n"

    # A new command replaces the processes.
    myapp = d.pids("myapp")
    assert ctl_ok(d, "set", "--waiting", "myapp", "cmd", "sleep 900") == "ok\n"
    fresh = new_pids(d, "myapp", 3, myapp)
    assert all(psutil.Process(p).cmdline() == ["sleep", "900"] for p in fresh)
    assert ctl_ok(d, "get", "myapp", "cmd") == "cmd: sleep 900\n"

    # Several keys at once, converted by circusctl (float, bool, signal).
    assert ctl_ok(d, "set", "myapp", "graceful_timeout", "7", "send_hup", "no",
                  "stop_signal", "INT") == "ok\n"
    assert ctl_ok(d, "get", "myapp", "graceful_timeout", "send_hup", "stop_signal") == \
        "graceful_timeout: 7.0\nsend_hup: False\nstop_signal: 2\n"
    assert d.pids("myapp") == fresh, "these keys do not replace processes"

    # Errors: the daemon's, and circusctl's own.
    assert ctl_error(d, "set", "nope", "numprocesses", "1") == "error: program nope not found\n"
    assert ctl_error(d, "set", "myapp", "foo", "1", rc=1) == "unknown key 'foo'\n"
    assert ctl_error(d, "set", "myapp", "numprocesses", rc=1) == "Invalid number of arguments\n"
    assert ctl_error(d, "set", "myapp", "numprocesses", "1", "cmd", rc=1) == \
        "List of key/values is invalid\n"
    assert ctl_ok(d, "get", "myapp", "numprocesses") == "numprocesses: 3\n"


SIGNALLED = """
import os, signal, subprocess, sys, time

def record(signum, frame):
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()} {signal.Signals(signum).name}\\n")

signal.signal(signal.SIGHUP, record)
signal.signal(signal.SIGUSR1, record)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped at once
kids = [subprocess.Popen(["sleep", "1000"]) for _ in range(2)]
while True:
    time.sleep(1)
"""


def test_signal(daemon, tmp_path):
    (tmp_path / "signalled.py").write_text(SIGNALLED)
    log = tmp_path / "signals"
    d = daemon(f"""
        [watcher:tree]
        cmd = {sys.executable} signalled.py {log}

        [watcher:other]
        cmd = sleep 1000
    """)
    parent = next(iter(d.wait_pids("tree", 1)))

    def children() -> list[int] | None:
        kids = [c.pid for c in psutil.Process(parent).children() if alive(c.pid)]
        return kids if len(kids) == 2 else None

    kids = wait_for(children, message="the children of the tree process")

    def recorded(name: str) -> bool:
        return log.exists() and f"{parent} {name}" in log.read_text()

    # To one pid, by name or number.
    assert ctl_ok(d, "signal", "tree", str(parent), "USR1") == "ok\n"
    wait_for(lambda: recorded("SIGUSR1"), message="SIGUSR1 received")
    assert ctl_ok(d, "signal", "tree", str(parent), str(int(signal.SIGHUP))) == "ok\n"
    wait_for(lambda: recorded("SIGHUP"), message="SIGHUP received")
    assert all(alive(k) for k in kids)

    # --children: only the children of the process.
    assert ctl_ok(d, "signal", "--children", "tree", str(parent), "KILL") == "ok\n"
    wait_for(lambda: not any(alive(k) for k in kids), message="the children killed")
    assert alive(parent) and d.pids("tree") == {parent}

    # Without a pid: every process of the watcher (sleep dies of SIGTERM).
    old = d.pids("other")
    assert ctl_ok(d, "signal", "other", "SIGTERM") == "ok\n"
    new_pids(d, "other", 1, old)

    assert ctl_error(d, "signal", "nope", "HUP") == "error: program nope not found\n"
    assert ctl_error(d, "signal", "tree", "NOSUCHSIGNAL").startswith("error: ")
    assert ctl_error(d, "signal", "tree", rc=1) == "Invalid number of arguments\n"
    assert alive(parent)


STUBBORN = (f"{sys.executable} -c 'import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)'")


def test_kill(daemon):
    d = daemon(f"""
        [watcher:other]
        cmd = sleep 1000
        numprocesses = 2

        [watcher:stubborn]
        cmd = {STUBBORN}
        graceful_timeout = 20
    """)
    other = d.wait_pids("other", 2)
    assert ctl_ok(d, "kill", "other") == "ok\n"
    other = new_pids(d, "other", 2, other)

    # One pid, with another signal.
    victim, spared = sorted(other)
    assert ctl_ok(d, "kill", "--signum", "KILL", "other", str(victim)) == "ok\n"
    wait_for(lambda: not alive(victim), message="the killed process gone")
    wait_for(lambda: len(d.pids("other")) == 2, message="its replacement")
    assert spared in d.pids("other")

    # A shorter graceful_timeout than the watcher's: TERM is ignored, KILL follows.
    stubborn = d.wait_pids("stubborn", 1)
    wait_for(lambda: all(ignores_sigterm(p) for p in stubborn), message="SIGTERM ignored")
    assert ctl_ok(d, "kill", "--graceful_timeout", "1", "stubborn") == "ok\n"
    new_pids(d, "stubborn", 1, stubborn, timeout=15)

    assert ctl_error(d, "kill", "nope") == "error: program nope not found\n"
    # So that the daemon's own stop does not wait out the 20 s.
    assert ctl_ok(d, "set", "--waiting", "stubborn", "stop_signal", "KILL") == "ok\n"


def test_quit(daemon):
    d = daemon(APP)
    pids = d.wait_pids("myapp", 2) | d.wait_pids("other", 1)
    assert ctl_ok(d, "quit") == "ok\n"
    assert d.proc.wait(30) == 0
    assert not any(alive(p) for p in pids)

    # quit --waiting replies once every watcher has stopped.
    d = daemon(APP)
    pids = d.wait_pids("myapp", 2) | d.wait_pids("other", 1)
    assert ctl_ok(d, "quit", "--waiting") == "ok\n"
    assert not any(alive(p) for p in pids)
    assert d.proc.wait(30) == 0


# -- events -------------------------------------------------------------------

def parse_listen_line(line: str) -> tuple[str, dict]:
    """circusctl listen prints ``b'TOPIC': b'JSON'`` (reprs of the frames)."""
    topic, body = line.split(": ", 1)
    return ast.literal_eval(topic).decode(), json.loads(ast.literal_eval(body))


def test_listen(daemon, tmp_path):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    d.wait_pids("other", 1)
    out_path = tmp_path / "listen.out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(out_path, "w") as out:
        listener = subprocess.Popen([str(CIRCUSCTL), "--endpoint", d.pubsub_endpoint, "listen",
                                     "watcher.myapp."], stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
    try:
        def events() -> list[tuple[str, dict]]:
            return [parse_listen_line(line) for line in out_path.read_text().splitlines()
                    if line.startswith("b'")]

        def spawned(pids: set[int]) -> bool:
            return any(t == "watcher.myapp.spawn" and p["process_pid"] in pids
                       for t, p in events())

        # A SUB socket misses what is published before it has joined: add a
        # process until listen prints its spawn.
        client = d.client()
        deadline = time.monotonic() + 15
        while True:
            before = d.pids("myapp")
            client.call("incr", name="myapp", waiting=True)
            added = d.wait_pids("myapp", len(before) + 1) - before
            try:
                wait_for(lambda added=added: spawned(added), timeout=1,
                         message="a spawn in listen")
                break
            except pytest.fail.Exception:
                assert time.monotonic() < deadline, out_path.read_text()

        # Now subscribed: other's events are filtered out, myapp's come in order.
        client.call("incr", name="other", waiting=True)
        before = d.pids("myapp")
        assert ctl_ok(d, "incr", "--waiting", "myapp").strip().isdigit()
        added = d.wait_pids("myapp", len(before) + 1) - before
        wait_for(lambda: spawned(added), message="the spawn of the new process")
        assert ctl_ok(d, "decr", "--waiting", "myapp").strip().isdigit()
        wait_for(lambda: any(t == "watcher.myapp.kill" for t, _ in events()),
                 message="a kill event")
        client.close()
    finally:
        listener.terminate()
        listener.wait(10)
    seen = events()
    assert seen, out_path.read_text()
    assert all(t.startswith("watcher.myapp.") for t, _ in seen)
    spawn = next(p for t, p in seen if t == "watcher.myapp.spawn" and p["process_pid"] in added)
    assert isinstance(spawn["time"], float) and spawn["time"] > 0
    assert all(isinstance(p["process_pid"], int) for t, p in seen
               if t.rsplit(".", 1)[1] in ("spawn", "kill", "reap"))


def test_events_on_a_circus_sub_socket(daemon):
    """What circusd-stats and Circus plugins read: two frames, [topic, json],
    with Circus's payload fields."""
    d = daemon(APP)
    old = d.wait_pids("other", 1)
    d.wait_pids("myapp", 2)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.connect(d.pubsub_endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"watcher.")
    client = d.client()
    received: list[tuple[str, dict]] = []

    def drain(until, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            assert left > 0, received
            if sub.poll(int(left * 1000)):
                frames = sub.recv_multipart()
                assert len(frames) == 2, frames
                received.append((frames[0].decode(), json.loads(frames[1])))

    try:
        # Join first (slow joiner): add processes to myapp until a spawn arrives.
        for _ in range(50):
            client.call("incr", name="myapp", waiting=True)
            try:
                drain(lambda: any(t == "watcher.myapp.spawn" for t, _ in received), 0.3)
                break
            except AssertionError:
                continue
        received.clear()
        client.call("stop", name="other", waiting=True)
        client.call("start", name="other", waiting=True)
        drain(lambda: any(t == "watcher.other.start" for t, _ in received))
    finally:
        client.close()
        sub.close()
        ctx.term()

    topics = [t for t, _ in received if t.startswith("watcher.other.")]
    # stop: kill, reap, stop; start: spawn, start.
    order = [t.rsplit(".", 1)[1] for t in topics if t.rsplit(".", 1)[1] in
             ("kill", "reap", "stop", "spawn", "start")]
    assert order == ["kill", "reap", "stop", "spawn", "start"], topics
    payloads = {t.rsplit(".", 1)[1]: p for t, p in received if t.startswith("watcher.other.")}
    (old_pid,) = old
    kill, reap, spawn = payloads["kill"], payloads["reap"], payloads["spawn"]
    assert kill["process_pid"] == old_pid and isinstance(kill["time"], float)
    assert reap["process_pid"] == old_pid and isinstance(reap["time"], float)
    assert reap["exit_code"] == -signal.SIGTERM
    assert spawn["process_pid"] in d.pids("other") and isinstance(spawn["time"], float)
    for event in ("stop", "start"):
        assert isinstance(payloads[event]["time"], float)


# -- errors as circusctl shows them -----------------------------------------

def test_errors(daemon):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    not_found = "error: program nope not found\n"
    for args in (["list", "nope"], ["stats", "nope"], ["numprocesses", "nope"],
                 ["options", "nope"], ["get", "nope", "cmd"], ["incr", "nope"],
                 ["decr", "--waiting", "nope"], ["start", "nope"], ["stop", "nope"],
                 ["restart", "--waiting", "nope"], ["reload", "nope"], ["rm", "nope"],
                 ["set", "nope", "numprocesses", "2"], ["signal", "nope", "HUP"],
                 ["kill", "nope"]):
        assert ctl_error(d, *args) == not_found, args
    assert ctl_error(d, "stop", "zz*") == "error: program zz* not found\n"
    # status prints only "error" (circusctl's StatusCommand.console_msg).
    assert ctl_error(d, "status", "nope") == "error\n"

    # --json: rc 0 and the error reply itself.
    result = circusctl(d.endpoint, "--json", "status", "nope")
    assert result.returncode == 0
    reply = json.loads(result.stdout)
    assert {"status", "reason", "tb", "time", "errno", "id"} <= set(reply)
    assert reply["status"] == "error" and reply["errno"] == 3
    assert reply["reason"] == "program nope not found" and reply["tb"] is None

    # An unknown command word is argparse's error; so is a global option after it.
    result = circusctl(d.endpoint, "bogus")
    assert result.returncode == 2
    assert "circusctl: error: unrecognized arguments: bogus" in result.stderr
    result = subprocess.run([str(CIRCUSCTL), "--endpoint", d.endpoint, "status", "--json"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unrecognized arguments: --json" in result.stderr
    assert ctl_ok(d, "status") == "myapp: active\nother: active\n"


def test_interactive_shell(daemon):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    result = subprocess.run([str(CIRCUSCTL), "--endpoint", d.endpoint], input="list\nnumwatchers\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["circusctl 0.19.0", "myapp: active", "other: active"]
    assert "(circusctl) myapp,other" in lines
    assert "(circusctl) 2" in lines


# -- Circus's Python client -----------------------------------------------------

CLIENT_SCRIPT = """
import json, sys
import zmq
from circus.client import CircusClient, cast_message, make_message

client = CircusClient(endpoint=sys.argv[1], timeout=float(sys.argv[2]))
out = []
for step in json.load(sys.stdin):
    kind, arg = step
    if kind == "call":
        out.append(client.call(arg))
    elif kind == "send_message":
        out.append(client.send_message(arg[0], **arg[1]))
    elif kind == "cast":
        # A cast (what plugins send) gets no reply at all.
        client.socket.send(json.dumps(cast_message(arg[0], **arg[1])).encode())
        out.append(client.socket.recv().decode() if client.socket.poll(500) else None)
client.stop()
print(json.dumps(out))
"""


def circus_client(d, tmp_path: Path, steps: list, timeout: float = 10) -> list:
    script = tmp_path / "circus_client.py"
    script.write_text(CLIENT_SCRIPT)
    result = subprocess.run([str(CIRCUS_PYTHON), str(script), d.endpoint, str(timeout)],
                            input=json.dumps(steps), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def call(command: str, **props) -> list:
    return ["call", {"command": command, "properties": props}]


def test_circus_client(daemon, tmp_path):
    d = daemon(APP)
    myapp, other = d.wait_pids("myapp", 2), d.wait_pids("other", 1)
    (pid,) = other
    steps = [
        call("list"), call("list", name="myapp"), call("status"), call("status", name="other"),
        call("stats"), call("stats", name="other"), call("stats", name="other", process=pid),
        call("dstats"), call("numwatchers"), call("numprocesses"),
        call("numprocesses", name="myapp"), call("options", name="other"),
        call("get", name="other", keys=["cmd", "numprocesses"]), call("globaloptions"),
        call("listsockets"),
        call("incr", name="myapp", waiting=True), call("incr", name="myapp", nb=2, waiting=True),
        call("decr", name="myapp", nb=3, waiting=True),
        call("status", name="nope"), call("bogus"), call("incr"),
        call("get", name="other", keys=["nope"]),
        ["send_message", ["numwatchers", {}]],
        ["send_message", ["list", {"name": "other"}]],
        call("restart", name="other", waiting=True),
        call("stop", name="other", waiting=True),
        call("start", name="other", waiting=True),
        call("reload", name="other", waiting=True),
        call("add", name="added", cmd="sleep 500", start=True, waiting=True,
             options={"numprocesses": 2}),
        call("rm", name="added", waiting=True),
        ["cast", ["incr", {"name": "myapp"}]],
        call("numprocesses", name="myapp"),
    ]
    replies = circus_client(d, tmp_path, steps)
    r = dict(enumerate(replies))
    for reply in replies:
        if reply is None:
            continue
        assert isinstance(reply["time"], float), reply
        assert isinstance(reply["id"], str), reply
        assert reply["status"] in ("ok", "error", "active"), reply

    assert r[0]["status"] == "ok" and r[0]["watchers"] == ["myapp", "other"]
    assert set(r[1]["pids"]) == myapp
    assert r[2]["statuses"] == {"myapp": "active", "other": "active"}
    assert r[3]["status"] == "active"
    assert set(r[4]["infos"]) == {"myapp", "other"}
    assert set(r[4]["infos"]["myapp"]) == {str(p) for p in myapp}
    assert r[5]["name"] == "other" and set(r[5]["info"]) == {str(pid)}
    assert set(r[5]["info"][str(pid)]) >= INFO_KEYS
    assert r[6]["process"] == pid and r[6]["info"]["pid"] == pid
    assert set(r[6]["info"]) >= INFO_KEYS
    assert r[7]["info"]["pid"] == d.pid
    assert r[8]["numwatchers"] == 2
    assert r[9]["numprocesses"] == 3
    assert r[10]["numprocesses"] == 2 and r[10]["watcher_name"] == "myapp"
    assert r[11]["options"]["cmd"] == "sleep 1000" and r[11]["options"]["numprocesses"] == 1
    assert list(r[12]["options"].items()) == [("cmd", "sleep 1000"), ("numprocesses", 1)]
    assert r[13]["options"]["endpoint"] == d.endpoint
    assert r[14]["sockets"] == []
    assert r[15]["numprocesses"] == 3
    assert r[16]["numprocesses"] == 5
    assert r[17]["numprocesses"] == 2

    def error(reply: dict, errno: int, reason: str) -> None:
        assert reply["status"] == "error", reply
        assert reply["errno"] == errno and reply["reason"] == reason, reply
        assert "tb" in reply

    error(r[18], 3, "program nope not found")
    error(r[19], 2, "unknown command: 'bogus'")
    error(r[20], 3, "message invalid 'name' is missing")
    error(r[21], 3, "'nope' option not found")
    assert r[22]["numwatchers"] == 2
    assert r[23]["pids"] == [pid]

    info = r[24]["info"]
    assert info["stopped"] == [pid] and len(info["started"]) == 1 and info["kept"] == []
    restarted = info["started"][0]
    assert r[25]["status"] == "ok" and r[25]["info"] is None
    info = r[26]["info"]
    assert len(info["started"]) == 1 and info["kept"] == []
    started = info["started"][0]
    info = r[27]["info"]
    assert info["stopped"] == [started] and len(info["started"]) == 1 and info["kept"] == []
    assert restarted != started
    assert r[28]["status"] == "ok" and len(r[28]["started"]) == 2 and r[28]["kept"] == []
    assert r[29]["status"] == "ok"
    assert r[30] is None, "a cast gets no reply"
    assert r[31]["numprocesses"] in (2, 3)
    d.wait_pids("myapp", 3)
    assert d.pids("other") == set(r[27]["info"]["started"])
    assert not d.pids("added")


# -- commands are queued per watcher, never refused ---------------------------

CONFLICT = re.compile(r"already running|is restarting", re.I)
HAMMER_SECONDS = 3.0


def test_two_clients_hammering_one_watcher(daemon):
    d = daemon("""
        [watcher:busy]
        cmd = sleep 1000
        numprocesses = 2
        graceful_timeout = 5
    """)
    d.wait_pids("busy", 2)
    problems: list[str] = []
    counts = [0, 0]

    def hammer(index: int) -> None:
        rng = random.Random(index)
        last = 2  # the count as last reported: kept between 1 and 6
        with Client(d.endpoint, timeout=30) as client:
            while time.monotonic() < until:
                action = rng.choice(["incr", "decr", "restart", "status", "incr_wait",
                                     "decr_wait", "status_all", "list"])
                if action.startswith("incr") and last >= 6:
                    action = action.replace("incr", "decr")
                elif action.startswith("decr") and last <= 1:
                    action = action.replace("decr", "incr")
                try:
                    if action.startswith(("incr", "decr")):
                        reply = client.call(action[:4], raise_on_error=False, name="busy",
                                            nb=rng.randint(1, 2),
                                            waiting=action.endswith("wait"))
                        last = reply.get("numprocesses", last)
                    elif action == "restart":
                        reply = client.call("restart", raise_on_error=False, name="busy",
                                            waiting=rng.random() < 0.5)
                    elif action == "status_all":
                        reply = client.call("status", raise_on_error=False)
                    else:
                        reply = client.call(action, raise_on_error=False, name="busy")
                except CallError as err:
                    problems.append(f"client {index} {action}: {err}")
                    continue
                counts[index] += 1
                if reply.get("status") == "error" or CONFLICT.search(json.dumps(reply)):
                    problems.append(f"client {index} {action}: {reply}")

    until = time.monotonic() + HAMMER_SECONDS
    threads = [threading.Thread(target=hammer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not problems, problems
    assert min(counts) >= 20, counts

    # Once the queue has drained the watcher is consistent.
    with d.client() as client:
        def settled() -> bool:
            wanted = client.call("get", name="busy", keys=["numprocesses"])["options"]
            listed = client.call("list", name="busy")["pids"]
            n = wanted["numprocesses"]
            state = client.call("status", name="busy")["status"]
            return (state not in ("starting", "stopping") and len(listed) == n
                    and set(listed) == d.pids("busy"))
        wait_for(settled, 30, message="busy to settle")
        assert "Traceback" not in d.log_text()


def test_queued_incr_decr_all_count(daemon):
    d = daemon(APP)
    d.wait_pids("myapp", 2)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(d.endpoint)

    def pipelined(command: str, waiting: bool, count: int = 5) -> list[dict]:
        for i in range(count):
            sock.send_json({"command": command, "id": f"{command}-{i}",
                            "properties": {"name": "myapp", "waiting": waiting}})
        replies = []
        for _ in range(count):
            assert sock.poll(30_000), "no reply"
            replies.append(sock.recv_json())
        assert all(r["status"] == "ok" for r in replies), replies
        return replies

    def wanted() -> int:
        with d.client() as client:
            return client.call("get", name="myapp", keys=["numprocesses"])["options"][
                "numprocesses"]

    try:
        pipelined("incr", waiting=False)
        wait_for(lambda: wanted() == 7, timeout=5, message="all five increments")
        d.wait_pids("myapp", 7)
        replies = pipelined("decr", waiting=True)
        assert [r["numprocesses"] for r in replies] == [6, 5, 4, 3, 2]
        assert wanted() == 2
        d.wait_pids("myapp", 2)
    finally:
        sock.close()
        ctx.term()


def test_slow_stop_of_one_watcher_does_not_delay_another(daemon):
    d = daemon(f"""
        [watcher:slow]
        cmd = {STUBBORN}
        graceful_timeout = 3

        [watcher:quick]
        cmd = sleep 1000
    """)
    slow = d.wait_pids("slow", 1)
    wait_for(lambda: all(ignores_sigterm(p) for p in slow), message="SIGTERM ignored")
    d.wait_pids("quick", 1)
    with d.client(timeout=30) as a, d.client(timeout=30) as b:
        assert a.call("stop", name="slow")["status"] == "ok"
        wait_for(lambda: b.call("status", name="slow")["status"] == "stopping",
                 message="slow stopping")
        # While slow is still stopping (its process ignores SIGTERM for 3 s),
        # quick's commands are answered.
        assert b.call("status", name="quick")["status"] == "active"
        assert b.call("incr", name="quick", waiting=True)["numprocesses"] == 2
        assert len(b.call("list", name="quick")["pids"]) == 2
        assert b.call("decr", name="quick", waiting=True)["numprocesses"] == 1
        assert b.call("restart", name="quick", waiting=True)["status"] == "ok"
        assert b.call("status")["statuses"]["quick"] == "active"
        assert b.call("status", name="slow")["status"] == "stopping", \
            "quick's commands were answered while slow was still stopping"
        assert all(alive(p) for p in slow)
        # A command on the stopping watcher itself is queued, not refused
        # (circusd: "arbiter is already running watcher_stop command").
        reply = a.call("incr", name="slow", raise_on_error=False)
        assert reply["status"] == "ok", reply
        reply = a.call("start", name="slow", waiting=True, raise_on_error=False)
        assert reply["status"] == "ok", reply
        assert not any(alive(p) for p in slow), "the stop finished first"
        assert b.call("status", name="slow")["status"] == "active"
        d.wait_pids("slow", 2)
        # So that the daemon's own stop does not wait out graceful_timeout.
        a.call("set", name="slow", options={"stop_signal": int(signal.SIGKILL)}, waiting=True)


# -- bigtopctl against the real circusd ----------------------------------------

def test_bigtopctl_follows_a_circus_daemon_that_does_not_answer_the_handshake(tmp_path):
    """circusd publishes events but knows nothing of bigtop's subscription
    handshake: `bigtopctl listen` warns and follows it all the same."""
    config = tmp_path / "circus.ini"
    config.write_text(textwrap.dedent(f"""
        [circus]
        endpoint = ipc://{tmp_path}/ctl.sock
        pubsub_endpoint = ipc://{tmp_path}/pub.sock

        [watcher:myapp]
        cmd = sleep 1000
        """))
    circusd = subprocess.Popen([str(CIRCUS_BIN / "circusd"), str(config)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listen = None
    try:
        endpoint = f"ipc://{tmp_path}/ctl.sock"
        with Client(endpoint, timeout=10) as client:
            wait_for(lambda: _answers(client), message="circusd up")
            listen = subprocess.Popen(
                [sys.executable, "-m", "bigtop", "--endpoint", endpoint, "--pubsub-endpoint",
                 f"ipc://{tmp_path}/pub.sock", "--timeout", "1", "listen", "-n", "1"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert listen.stderr is not None
            warning = listen.stderr.readline()  # once the handshake has timed out
            assert "following it anyway" in warning, warning
            client.call("incr", name="myapp")
            out, _ = listen.communicate(timeout=20)
            assert "watcher.myapp.spawn" in out, out
    finally:
        if listen is not None:
            listen.kill()
            listen.wait()
        circusd.send_signal(signal.SIGTERM)
        circusd.wait(30)


def _answers(client: Client) -> bool:
    try:
        client.call("status")
    except CallError:
        return False
    return True


def test_a_circus_file_runs_unchanged_on_its_tcp_endpoint(daemon, tmp_path):
    """The head of most Circus files, as they are: keyless tcp endpoints on
    loopback, an option bigtop does not know, a check_delay that means
    nothing, an include_dir that is not there. bigtopd warns about each,
    with its line, starts, and the real circusctl drives it on that port."""
    port, pub = free_port(), free_port()
    d = daemon(f"""
        [circus]
        check_delay = -1
        endpoint = tcp://127.0.0.1:{port}
        pubsub_endpoint = tcp://127.0.0.1:{pub}
        include_dir = conf.d

        [watcher:myapp]
        cmd = sleep 1000
        numprocesses = 2
        restart_on_error = true
    """)
    d.wait_pids("myapp", 2)
    log = d.log_text()
    config = d.path / "bigtop.ini"
    for line, text in ((3, "check_delay: '-1' must not be negative; ignored"),
                       (4, "served on loopback without CurveZMQ keys"),
                       (6, "include_dir 'conf.d' is not a directory"),
                       (11, "restart_on_error: unknown option")):
        assert f"{config}:{line}: " in log and text in log, (line, log)
    result = circusctl(f"tcp://127.0.0.1:{port}", "status")
    assert (result.returncode, result.stdout) == (0, "myapp: active\n"), result
