"""The charts' history in a real browser (Playwright driving Debian's
chromium against a real bigtop-web and a real daemon), on a small time
scale ($BIGTOP_WEB_HISTORY_SCALE=0.05: "10 min" is 30 s, an idle sample
every 0.5 s): the history is kept while no page is open, a rolling reload
meanwhile makes no dip, a pause of bigtop-web's reading is drawn as a gap
(never a zero), and the range buttons switch the charts."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from .browser import chromium, expect, watched_page, web_on_socket  # skips without them
from .conftest import Daemon, wait_for

TOKEN = "history-test-token"
SCALE = "0.05"

APP = """\
import os, time
wid = os.environ.get("BIGTOP_WID", "?")
ballast = bytearray(8 * 1024 * 1024)  # some memory of its own, touched below
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
print(f"wid {wid} up", flush=True)
while True:
    time.sleep(0.2)
"""

CONFIG = """\
[watcher:api]
cmd = {python} -u {script}
numprocesses = 2
graceful_timeout = 5

[watcher:worker]
cmd = {python} -u {script}
graceful_timeout = 5
"""


@pytest.fixture
def console(daemon: Callable[..., Daemon], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Daemon, str, int]]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    d = daemon(CONFIG.format(python=sys.executable, script=script))
    d.wait_pids("api", 2)
    monkeypatch.setenv("BIGTOP_WEB_HISTORY_SCALE", SCALE)
    with web_on_socket(tmp_path, TOKEN, "--endpoint", f"app-1={d.endpoint}") as url:
        yield d, url, web_pid()


def web_pid() -> int:
    """bigtop-web's pid, among this process's children (some of which may
    be zombies, or gone, by the time they are looked at)."""
    for child in psutil.Process().children():
        try:
            if "bigtop.web" in " ".join(child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    raise AssertionError("no bigtop-web among the test's children")


def fetch(page: Any, path: str) -> Any:
    return page.evaluate("async (path) => (await fetch(path)).json()", path)


def dataset(page: Any, selector: str) -> dict[str, str]:
    return json.loads(page.locator(selector).evaluate("(e) => JSON.stringify(e.dataset)"))


def test_history_without_a_browser_gaps_and_ranges(console: tuple[Daemon, str, int]) -> None:
    d, base, web_pid = console
    # No page is open: bigtop-web samples every 0.5 s all the same. A
    # rolling reload meanwhile replaces both processes of api.
    time.sleep(2.5)
    before = d.pids("api")
    d.call("reload", name="api", rolling=True, waiting=True)
    wait_for(lambda: len(d.pids("api")) == 2 and not d.pids("api") & before,
             message="api's processes replaced")
    time.sleep(2.0)
    opened = time.time()

    with chromium() as browser:
        page, errors = watched_page(browser, viewport={"width": 1280, "height": 900})
        page.goto(base + "/")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        expect(page.locator("#conn")).to_have_text("live")
        expect(page.locator('tr[data-watcher="api"] .procs')).to_have_text("2/2")

        # What was kept while nobody looked: a point every 0.5 s or so, no
        # gap, no zero, and api's memory never dipped during the reload.
        history = fetch(page, "/api/history?node=app-1&range=10m")
        assert history["ok"] and history["range"] == "10m" and history["seconds"] == 30
        early = [i for i, t in enumerate(history["t"]) if t < opened]
        assert len(early) >= 6, history["t"]
        for name in ("api", "worker"):
            rss = [history["watchers"][name]["rss"][i] for i in early]
            assert None not in rss and min(rss) > 0, (name, rss)  # no gap, no zero
        api = [history["watchers"]["api"]["rss"][i] for i in early]
        assert min(api) > 0.4 * max(api), api  # both slots counted throughout the reload
        slots = fetch(page, "/api/history?node=app-1&range=10m&watcher=api")["watcher"]["slots"]
        assert set(slots) == {"1", "2"}
        assert {s["pid"] for s in slots.values()} == d.pids("api")  # the successors go on
        for slot in slots.values():
            assert sum(v is not None for v in slot["rss"][:len(early)]) >= 6

        # The page draws it: points from before it opened, none of them 0.
        memory = '.panel:has(h2:text-is("Memory by watcher")) .chart'
        expect(page.locator(memory)).to_have_attribute("data-range", "10m")
        shown = dataset(page, memory)
        assert float(shown["first"]) < opened - 3, (shown, opened)
        assert float(shown["min"]) > 0 and shown["gaps"] == "0", shown

        # bigtop-web stops reading for 6 s: a gap, never a zero.
        os.kill(web_pid, signal.SIGSTOP)
        try:
            time.sleep(6)
        finally:
            os.kill(web_pid, signal.SIGCONT)
        expect(page.locator(memory)).to_have_attribute("data-gaps", re.compile(r"^[1-9]"))
        shown = dataset(page, memory)
        assert float(shown["min"]) > 0, shown
        history = fetch(page, "/api/history?node=app-1&range=10m")
        rows = list(zip(history["t"], history["watchers"]["api"]["rss"], strict=True))
        holes = [i for i, (_, v) in enumerate(rows) if v is None]
        assert holes and all(0 < i < len(rows) - 1 for i in holes), rows
        assert any(rows[i + 1][0] - rows[i - 1][0] > 5 for i in holes), rows
        assert all(v is None or v > 0 for _, v in rows)

        # The range buttons switch every chart of the page.
        for name, label in (("1h", "1 h"), ("24h", "24 h"), ("10m", "10 min")):
            page.click(f'.range-bar button[data-range="{name}"]')
            expect(page.locator(f'.range-bar button[data-range="{name}"]')).to_have_attribute(
                "aria-pressed", "true")
            for chart in page.locator(".chart").all():
                expect(chart).to_have_attribute("data-range", name)
                expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]"))
            expect(page.locator(".panel-head", has_text="Memory by watcher")).to_contain_text(
                f"last {label}")
            if name != "10m":
                assert dataset(page, memory)["gaps"] != "0"  # the pause, in the coarse tier too

        # A watcher's page: a line per slot, named by its current process.
        page.click('tr[data-watcher="api"] a')
        expect(page.locator("h1")).to_have_text("api")
        legend = page.locator('.panel:has(h2:text-is("Memory by process slot")) .legend')
        for wid, pid in sorted((p["wid"], p["pid"]) for w in fetch(page, "/api/nodes")[
                "nodes"][0]["snapshot"]["watchers"] if w["name"] == "api"
                for p in w["processes"]):
            expect(legend).to_contain_text(f"#{wid} pid {pid}")
        bad = fetch(page, "/api/history?node=app-1&range=1w")
        assert bad == {"ok": False, "error": "unknown range '1w': the range is one of "
                                             "10m, 1h, 24h"}
        assert not errors, errors
