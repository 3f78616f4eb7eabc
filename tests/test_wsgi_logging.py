"""bigtop-wsgi's own log: INFO and DEBUG on stdout, WARNING and above on
stderr; the time and the pid at the start of each line when standalone,
left to bigtopd (which stamps every line it collects) under it."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bigtop.wsgi import cli

from .conftest import Daemon, free_port, wait_for
from .test_wsgi import BIGTOP_WSGI

Factory = Callable[..., Daemon]

APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]
'''
STAMPED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[(\d+)\] (\w+) ([\w.]+): (.*)")
BARE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): (.*)")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text(APP)
    return tmp_path


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger as it was, after a test that set it up."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def standalone_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BIGTOP_WATCHER", "BIGTOP_WID", "NOTIFY_SOCKET", "LISTEN_FDS",
                        "LISTEN_PID", "LISTEN_FDNAMES")}
    return {**env, **extra}


def serve_and_stop(site: Path, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """bigtop-wsgi on a port of its own until it serves, then SIGTERM:
    its exit status, stdout and stderr."""
    out, err = site / "out.log", site / "err.log"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen([str(BIGTOP_WSGI), "--port", str(free_port()), *args,
                                 "hello:app"], cwd=site, env=env, stdout=stdout, stderr=stderr)
    try:
        wait_for(lambda: "serving" in out.read_text() or proc.poll() is not None,
                 timeout=30, message="bigtop-wsgi serving")
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, out.read_text(), err.read_text()


def test_under_bigtopd_takes_both_variables() -> None:
    assert cli.under_bigtopd({"BIGTOP_WATCHER": "web", "BIGTOP_WID": "1"})
    assert not cli.under_bigtopd({"BIGTOP_WATCHER": "web"})
    assert not cli.under_bigtopd({"BIGTOP_WID": "1"})
    assert not cli.under_bigtopd({"BIGTOP_WATCHER": "", "BIGTOP_WID": ""})
    assert not cli.under_bigtopd({})


@pytest.mark.parametrize("managed", [False, True])
def test_levels_split_between_stdout_and_stderr(capsys: pytest.CaptureFixture[str],
                                                root_logging: None, managed: bool) -> None:
    env = {"BIGTOP_WATCHER": "web", "BIGTOP_WID": "2"} if managed else {}
    cli._setup_logging("debug", env)
    log = logging.getLogger("bigtop.wsgi")
    log.debug("a detail")
    log.info("serving")
    log.warning("slow down")
    log.error("broken")
    logging.getLogger("bigtop.wsgi.access").info('127.0.0.1 "GET / HTTP/1.1" 200')
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    pattern = BARE if managed else STAMPED
    assert all(pattern.fullmatch(line) for line in out + err), (out, err)
    assert [line.split(": ", 1)[1] for line in out] == [
        "a detail", "serving", '127.0.0.1 "GET / HTTP/1.1" 200']
    assert [line.split(": ", 1)[1] for line in err] == ["slow down", "broken"]
    if managed:
        assert out[1] == "INFO bigtop.wsgi: serving"
        assert err[0] == "WARNING bigtop.wsgi: slow down"
    else:
        match = STAMPED.fullmatch(out[1])
        assert match and match.group(1) == str(os.getpid()) and match.group(2) == "INFO"


def test_the_log_level_still_applies(capsys: pytest.CaptureFixture[str],
                                     root_logging: None) -> None:
    cli._setup_logging("warning", {})
    log = logging.getLogger("bigtop.wsgi")
    log.info("not shown")
    log.warning("shown")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.rstrip().endswith("WARNING bigtop.wsgi: shown")


def test_standalone_process_stamps_time_and_pid(site: Path) -> None:
    status, out, err = serve_and_stop(site, ["--backend", "gevent", "--threads", "2"],
                                      standalone_env())
    assert status == 0, err
    lines = out.splitlines()
    serving = [STAMPED.fullmatch(line) for line in lines if "serving" in line]
    assert serving and serving[0], out
    assert serving[0].group(2) == "INFO" and serving[0].group(3) == "bigtop.wsgi"
    assert any("SIGTERM: finishing requests in progress" in line for line in lines), out
    assert lines[-1].endswith("INFO bigtop.wsgi: stopped"), out
    assert all(STAMPED.fullmatch(line) for line in lines), out
    # The one warning, and nothing else, on stderr.
    problems = err.splitlines()
    assert len(problems) == 1, err
    match = STAMPED.fullmatch(problems[0])
    assert match and match.group(2) == "WARNING" and "--threads applies" in match.group(4)


def test_process_of_bigtopd_leaves_time_and_pid_out(site: Path) -> None:
    env = standalone_env(BIGTOP_WATCHER="web", BIGTOP_WID="1")
    status, out, err = serve_and_stop(site, [], env)
    assert status == 0, err
    assert err == ""
    lines = out.splitlines()
    assert all(BARE.fullmatch(line) for line in lines), out
    assert any(line.startswith("INFO bigtop.wsgi: waitress serving hello:app (WSGI) on ")
               for line in lines), out
    assert lines[-1] == "INFO bigtop.wsgi: stopped"


def test_under_a_real_bigtopd(daemon: Factory, site: Path) -> None:
    """What the daemon collects: the INFO lines from stdout (not red, not
    errors), with its own prefix and no second time or pid."""
    port = free_port()
    d = daemon(f"""
        [socket:web]
        host = 127.0.0.1
        port = {port}

        [watcher:web]
        cmd = {BIGTOP_WSGI} --fd $(circus.sockets.web) --chdir {site} hello:app
        ready = notify
    """)
    d.wait_ready("web", timeout=30)
    pid = d.wait_pids("web", 1).pop()

    def serving() -> list[dict[str, object]]:
        lines = d.call("logs", name="web")["lines"]["web"]
        return [e for e in lines if "serving" in str(e["line"])]

    found = wait_for(serving, message="the serving line in the logs")
    assert [(e["stream"], e["pid"]) for e in found] == [("stdout", pid)]
    assert str(found[0]["line"]).startswith("INFO bigtop.wsgi: waitress serving hello:app")
    assert not d.call("logs", name="web", stream="stderr")["lines"]["web"]
    console = [line for line in d.out_text().splitlines() if "serving" in line]
    assert len(console) == 1
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} web\.1 \| INFO bigtop\.wsgi: waitress serving "
                        r"hello:app \(WSGI\) on fd 3 \(127\.0\.0\.1:\d+\)", console[0]), (
        "one time on the line, the daemon's")


def test_setup_logging_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str],
                                                     root_logging: None) -> None:
    monkeypatch.setenv("BIGTOP_WATCHER", "web")
    monkeypatch.setenv("BIGTOP_WID", "3")
    cli._setup_logging("info")
    logging.getLogger("bigtop.wsgi").info("hello")
    assert capsys.readouterr().out == "INFO bigtop.wsgi: hello\n"
