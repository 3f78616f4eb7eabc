"""The examples run side by side (`make run` and `make django`): no port
and no control endpoint in common, nor with the web console; and a daemon
that finds its endpoints taken says how to run a second one."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bigtop.config import load
from bigtop.control import endpoints
from bigtop.web import cli as web_cli

from .conftest import ROOT, Daemon

Factory = Callable[..., Daemon]
EXAMPLES = {"run": ROOT / "examples" / "quickstart.ini",
            "django": ROOT / "examples" / "django" / "bigtop.ini"}


def recipe_env(target: str) -> dict[str, str]:
    """The variables `make TARGET` sets on its bigtopd command line (what
    make would run, not run: make -n, the stamps taken as up to date)."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    printed = subprocess.run(
        ["make", "-n", "-s", "-o", ".venv/.installed", "-o", ".venv/.installed-test", target],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    [line] = [line for line in printed.splitlines() if "bigtopd" in line]
    found: dict[str, str] = {}
    for word in shlex.split(line):
        name, equals, value = word.partition("=")
        if not equals or not re.fullmatch(r"[A-Z_]+", name):
            break
        found[name] = value
    return found


def daemon_endpoints(target: str) -> set[str]:
    """Where the daemon of `make TARGET` listens: its [circus] endpoints,
    else the defaults in the runtime directory it is started with."""
    settings = load(str(EXAMPLES[target])).settings
    runtime = recipe_env(target).get("BIGTOP_RUNTIME_DIR")
    saved = os.environ.get("BIGTOP_RUNTIME_DIR")
    try:
        if runtime:
            os.environ["BIGTOP_RUNTIME_DIR"] = runtime
        else:  # as make runs it: the user's own default
            os.environ.pop("BIGTOP_RUNTIME_DIR", None)
        return {settings.endpoint or endpoints.default_endpoint(),
                settings.pubsub_endpoint or endpoints.default_pubsub_endpoint(),
                settings.stats_endpoint or endpoints.default_stats_endpoint()}
    finally:
        if saved is None:
            os.environ.pop("BIGTOP_RUNTIME_DIR", None)
        else:
            os.environ["BIGTOP_RUNTIME_DIR"] = saved


def ports(target: str) -> set[int]:
    config = load(str(EXAMPLES[target]))
    found = {s.port for s in config.sockets if s.port}
    if config.settings.httpd:
        found.add(config.settings.httpd_port)
    return found


def test_the_examples_share_no_port() -> None:
    run, django = ports("run"), ports("django")
    assert run and django and not run & django, (run, django)
    ns = web_cli.parser().parse_args([])
    web_cli.merged(ns, None)
    assert ns.port not in run | django, "bigtop-web's default port is free beside them"
    # The quickstart's ticker asks its own app, and hello's default too.
    [ticker] = [w for w in load(str(EXAMPLES["run"])).watchers if w.name == "ticker"]
    [port] = run
    assert f"http://127.0.0.1:{port}/" in ticker.cmd
    assert f'"http://127.0.0.1:{port}/"' in (ROOT / "examples" / "apps" / "ticker.py").read_text()


def test_the_examples_share_no_endpoint() -> None:
    run, django = daemon_endpoints("run"), daemon_endpoints("django")
    assert not run & django, (run, django)
    runtime = recipe_env("django")["BIGTOP_RUNTIME_DIR"]
    assert runtime.startswith(str(ROOT)) and "examples/django/var" in runtime, (
        "under the example's own state directory, ignored by git")


def test_in_use_says_how_to_run_a_second_daemon(tmp_path: Path) -> None:
    own = os.environ["BIGTOP_RUNTIME_DIR"]  # the test's (conftest)
    text = endpoints.in_use(endpoints.default_endpoint())
    assert text.startswith(f"ipc://{own}/control.sock is in use: is another bigtopd running? ")
    assert f"BIGTOP_RUNTIME_DIR={own}-2 bigtopd CONFIG" in text
    assert "[circus] endpoint, pubsub_endpoint, stats_endpoint" in text

    configured = endpoints.in_use(f"ipc://{tmp_path}/elsewhere.sock")
    assert "BIGTOP_RUNTIME_DIR" not in configured, "set in the file: the file changes"
    assert "other endpoints ([circus] endpoint, pubsub_endpoint, stats_endpoint)" in configured
    assert "BIGTOP_RUNTIME_DIR" not in endpoints.in_use("tcp://127.0.0.1:5555")


def test_check_free_refuses_a_served_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    endpoints.check_free(f"ipc://{path}")  # no file
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        endpoints.check_free(f"ipc://{path}")  # a file, nobody accepting
        server.listen(1)
        with pytest.raises(OSError) as raised:
            endpoints.check_free("tcp://127.0.0.1:1", f"ipc://{path}")
    assert str(raised.value) == endpoints.in_use(f"ipc://{path}")


def test_a_second_daemon_is_told_then_runs_beside(daemon: Factory) -> None:
    config = """
        [watcher:idle]
        cmd = sleep 1000
    """
    first = daemon(config)
    first.wait_pids("idle", 1)
    log_before = first.log_text()
    # The same runtime directory: refused, with the way out.
    second = daemon(config, name="second.ini")
    assert second.proc is not None and second.proc.wait(10) == 1
    said = second.log_text()[len(log_before):]
    hint = f"BIGTOP_RUNTIME_DIR={first.run_dir}-2 bigtopd CONFIG"
    assert "is in use: is another bigtopd running?" in said and hint in said, said
    assert said.rstrip().endswith("; nothing started"), said
    assert len(first.pids("idle")) == 1, "nothing of the second started"
    # A runtime directory of its own: both run.
    beside = daemon(config, where="beside")
    assert beside.run_dir != first.run_dir
    beside.wait_pids("idle", 1)
    assert first.call("status", name="idle")["status"] == "active"
    assert beside.call("status", name="idle")["status"] == "active"
