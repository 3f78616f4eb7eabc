"""A failed watcher is counted as it is: what it was asked to run stays
wanted, every summary (bigtopctl, bigtop-top, the web console) counts it
and says failed, and its restarts agree with its reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import ROOT, Daemon, wait_for
from .test_top import app_for, drive, until

CONFIG = """\
[watcher:broken]
cmd = sh -c 'exit 3'
numprocesses = 2
max_retry = 2

[watcher:fine]
cmd = sleep 1000
"""


def failed_daemon(daemon: Callable[..., Daemon]) -> Daemon:
    d = daemon(CONFIG)
    d.wait_pids("fine", 1)
    wait_for(lambda: d.call("status", name="broken")["status"] == "failed",
             message="broken to fail")
    return d


def test_status_counts_what_a_failed_watcher_was_asked_to_run(
        daemon: Callable[..., Daemon]) -> None:
    d = failed_daemon(daemon)
    info = d.call("status", name="broken", details=True)["details"]
    assert (info["running"], info["wanted"]) == (0, 2)
    assert info["failure"].endswith(f"({info['restarts']} restarts in all)")
    assert info["last_exit"]["exit_code"] == 3  # the failure, not the stops that followed
    out = subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopctl", "--endpoint",
                          d.endpoint, "status"], capture_output=True, text=True,
                         cwd=ROOT, timeout=30).stdout
    row = next(line for line in out.splitlines() if line.startswith("broken")).split()
    assert row[1:4] == ["failed", "0/2", "-"] and row[4] == str(info["restarts"]), out
    assert f"status 3 ({info['restarts']} restarts in all)" in " ".join(out.split())


def test_top_counts_a_failed_watcher(daemon: Callable[..., Daemon]) -> None:
    d = failed_daemon(daemon)
    app = app_for(d.endpoint)

    async def script(pilot: Any) -> None:
        await until(pilot, lambda: "1 failed" in pilot.app.screen_text(), "the failed count")
        assert "2 watchers (1 failed), 1/3 processes" in pilot.app.screen_text()
        await until(pilot, lambda: "0/2" in pilot.app.screen_text(), "the failed row")

    drive(app, script)


def test_the_console_counts_a_failed_watcher(daemon: Callable[..., Daemon],
                                             tmp_path: Path) -> None:
    from .browser import chromium, expect, web_on_socket  # skips without them

    d = failed_daemon(daemon)
    with web_on_socket(tmp_path, "counts-token", "--endpoint", f"box={d.endpoint}") as url, \
            chromium() as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.set_default_timeout(15_000)
        page.goto(url + "/login")
        page.fill("#token", "counts-token")
        page.click("button[type=submit]")
        row = page.locator('tr[data-watcher="broken"]')
        expect(row.locator(".badge")).to_have_text("failed")
        expect(row.locator(".procs")).to_have_text("0/2")
        cards = page.locator(".panel.card")
        expect(cards.filter(has_text="running / wanted")).to_contain_text("1/3")
        expect(cards.filter(has_text="active / all")).to_contain_text("1 failed")
