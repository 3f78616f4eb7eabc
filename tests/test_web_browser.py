"""The web console in a real browser: Playwright drives Debian's chromium
(headless, /usr/bin/chromium) against a real bigtop-web process serving a
real daemon. Logs in, sees the watchers, scales one, follows its live
output, restarts it; takes the screenshots on the way (into docs/img/ with
BIGTOP_SCREENSHOTS=1, as `make screenshots` sets; else into the test's
directory, so a test run leaves the checkout as it was)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .browser import chromium, expect, playwright, web_on_socket  # skips without them
from .conftest import ROOT, Daemon

TOKEN = "browser-test-token"
DOCS_IMAGES = ROOT / "docs" / "img"

GREETER = """\
import os, random, sys, time
wid = os.environ.get("BIGTOP_WID", "?")
print(f"hello from wid {wid}", flush=True)
print(f"wid {wid} listening", file=sys.stderr, flush=True)
n = 0
while True:
    n += 1
    time.sleep(0.5)
    x = sum(random.random() for _ in range(20000 * int(wid)))  # a little CPU for the charts
    print(f"wid {wid} served request {n} in {x % 40:.1f} ms", flush=True)
"""

CONFIG = """\
[watcher:api]
cmd = {python} -u {script}
numprocesses = 2
graceful_timeout = 5

[watcher:worker]
cmd = {python} -u {script}
graceful_timeout = 5

[watcher:cron]
cmd = sleep 300
graceful_timeout = 5

[socket:api]
host = 127.0.0.1
port = 0
"""


@pytest.fixture
def console(daemon: Callable[..., Daemon], tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    """A daemon, and bigtop-web serving it on a socket it inherits (--fd)."""
    script = tmp_path / "app.py"
    script.write_text(GREETER)
    d = daemon(CONFIG.format(python=sys.executable, script=script))
    d.wait_pids("api", 2)
    with web_on_socket(tmp_path, TOKEN, "--endpoint", f"app-1={d.endpoint}") as url:
        yield d, url


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as found:
        yield found


def pids_shown(page: object) -> set[int]:
    cells = page.locator("table.processes tbody td.pid").all_inner_texts()  # type: ignore
    return {int(text) for text in cells if text.strip().isdigit()}


def close_toasts(page: object) -> None:
    toasts = page.locator(".toast")  # type: ignore
    while toasts.count():
        try:
            toasts.first.locator('button[aria-label="Close"]').click(timeout=1000)
        except playwright.Error:
            pass  # gone by itself meanwhile


def test_console_in_a_browser(console: tuple[Daemon, str], browser: object,
                              tmp_path: Path) -> None:
    d, base = console
    images = DOCS_IMAGES if os.environ.get("BIGTOP_SCREENSHOTS") == "1" else tmp_path
    context = browser.new_context(viewport={"width": 1440, "height": 900},  # type: ignore
                                  color_scheme="light")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))

    # Log in: the console sends us to the login page first.
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".login-error")).to_contain_text("not right")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")

    # The overview: every watcher of the daemon, live.
    expect(page.locator("#conn")).to_have_text("live")
    rows = page.locator("table.watchers tbody tr[data-watcher]")
    expect(rows).to_have_count(3)
    api_row = page.locator('tr[data-watcher="api"]')
    expect(api_row.locator(".badge")).to_have_text("active")
    expect(api_row.locator(".procs")).to_have_text("2/2")
    expect(page.locator("table.watchers")).to_contain_text("worker")
    expect(page.locator("table.watchers")).to_contain_text("cron")
    expect(page.locator(".panel", has_text="Sockets")).to_contain_text("127.0.0.1:")

    # incr: the process count changes, on the page and in the daemon.
    api_row.locator('[data-action="incr"]').click()
    expect(api_row.locator(".procs")).to_have_text("3/3")
    expect(page.locator(".toast").first).to_contain_text("incr api: done")
    d.wait_pids("api", 3)

    # The watcher page: its processes, and its output as it is printed.
    api_row.locator("a", has_text="api").click()
    expect(page.locator("h1")).to_have_text("api")
    expect(page.locator("table.processes tbody tr[data-pid]")).to_have_count(3)
    log = page.locator(".log")
    expect(log).to_contain_text("hello from wid 3")  # from the last lines
    page.click('[data-action="incr"]')
    expect(page.locator("table.processes tbody tr[data-pid]")).to_have_count(4)
    expect(log).to_contain_text("hello from wid 4")  # printed after the page opened
    expect(log.locator(".log-line.stderr").first).to_contain_text("listening")

    # Pause keeps what is shown; the filter narrows it.
    page.click("text=Pause")
    expect(page.locator(".log-status")).to_contain_text("paused")
    page.click("text=Resume")
    page.fill('input[type="search"]', "hello from")
    expect(log.locator(".log-line").first).to_contain_text("hello from")
    for text in log.locator(".log-line").all_inner_texts():
        assert "hello from" in text
    page.fill('input[type="search"]', "")

    # Restart: it asks first, then every pid changes.
    before = pids_shown(page)
    assert before == d.pids("api")
    page.click('[data-action="restart"]')
    dialog = page.locator("dialog#dialog")
    expect(dialog).to_contain_text("Restart api?")
    dialog.locator("button", has_text="Cancel").click()
    expect(dialog).to_be_hidden()
    assert d.pids("api") == before
    page.click('[data-action="restart"]')
    dialog.locator("button[type=submit]").click()
    expect(page.locator(".toast", has_text="restart api: done")).to_be_visible()
    for pid in before:
        expect(page.locator("table.processes")).not_to_contain_text(str(pid))
    expect(page.locator("table.processes tbody tr[data-pid]")).to_have_count(4)
    after = pids_shown(page)
    assert after and not after & before
    assert after == d.wait_pids("api", 4)

    # An option edited in place, with the daemon's validation error inline.
    page.click("text=Options")
    row = page.locator('tr[data-option="graceful_timeout"]')
    row.locator("button", has_text="Edit").click()
    row.locator("input").fill("soon")
    row.locator("button", has_text="Save").click()
    expect(row.locator(".field-error")).to_contain_text("graceful_timeout")
    row.locator("input").fill("7")
    row.locator("button", has_text="Save").click()
    expect(page.locator('tr[data-option="graceful_timeout"] .val')).to_have_text("7")
    page.click("text=Live log")
    expect(log).to_contain_text("served request")

    # Screenshots for the README, once the charts have some history
    # (a point a second while a page is open).
    images.mkdir(parents=True, exist_ok=True)
    page.click(".crumbs a")
    expect(page.locator("h1")).to_have_text("app-1")
    expect(page.locator(".chart").first).to_have_attribute(
        "data-points", re.compile(r"^(1[5-9]|[2-9]\d|\d{3,})$"), timeout=30_000)
    close_toasts(page)
    page.screenshot(path=str(images / "overview.png"), full_page=True)
    api_row.locator("a", has_text="api").click()
    expect(log).to_contain_text("served request")
    close_toasts(page)
    page.screenshot(path=str(images / "watcher.png"), full_page=True)

    # The same page fits a phone, in the dark theme.
    phone = browser.new_context(viewport={"width": 390, "height": 844},  # type: ignore
                                device_scale_factor=2, is_mobile=True, has_touch=True,
                                color_scheme="dark")
    phone.add_cookies(context.cookies())
    small = phone.new_page()
    small.goto(base + "/")
    expect(small.locator('tr[data-watcher="api"] .procs')).to_have_text("4/4")
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    small.locator("table.watchers").scroll_into_view_if_needed()
    small.screenshot(path=str(images / "phone.png"))
    phone.close()
    assert not errors, errors
