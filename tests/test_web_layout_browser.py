"""The web console's layout and its Options tab in a real browser
(Playwright driving Debian's chromium against a real bigtop-web and a
real daemon): on a 390 px wide phone, Log out is there and works and
every table fits (nothing cut, the page never wider than the screen); the
Options tab explains each option from the option table (its doc line and
default), marks the ones changed, and names signals."""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bigtop.config.options import table

from .browser import chromium, expect, watched_page, web_on_socket  # skips without them
from .conftest import Daemon

TOKEN = "layout-test-token"
PHONE = {"width": 390, "height": 844}

CONFIG = """\
[watcher:api]
cmd = {python} -c "import time; time.sleep(600)"
numprocesses = 2
graceful_timeout = 5
stop_signal = INT
max_age_variance = 30

[watcher:a-watcher-with-a-rather-long-name]
cmd = sleep 600

[socket:api]
host = 127.0.0.1
port = 0

[socket:a-socket-with-a-long-name-too]
path = {path}
"""


@pytest.fixture
def console(daemon: Callable[..., Daemon], tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    # A long socket path, in a short directory: tmp_path may leave too few
    # of a Unix socket's 107 bytes.
    with tempfile.TemporaryDirectory(prefix="bigtop-") as short:
        d = daemon(CONFIG.format(python=sys.executable,
                                 path=Path(short) / "a-rather-long-path-for-a-socket.sock"))
        d.wait_pids("api", 2)
        with web_on_socket(tmp_path, TOKEN, "--endpoint", f"app-1={d.endpoint}") as url:
            yield d, url


def log_in(page: Any, base: str) -> None:
    page.goto(base + "/")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("#conn")).to_have_text("live")


def plain(doc: str) -> str:
    """An option's doc line as the page shows it: its Markdown's text."""
    return re.sub(r"\[([^]]+)\]\([^)]*\)", r"\1", doc).replace("`", "").replace("**", "")


def overflow(page: Any) -> list[str]:
    """What sticks out: the page wider than the screen, or an element
    whose box ends right of it, or a table wider than its box."""
    return page.evaluate("""() => {
        const out = [];
        const width = document.documentElement.clientWidth;
        if (document.documentElement.scrollWidth > width) {
            out.push(`page ${document.documentElement.scrollWidth}px > ${width}px`);
        }
        for (const e of document.querySelectorAll("#view *, .topbar *")) {
            const box = e.getBoundingClientRect();
            if (!box.width || e.closest("[hidden]") || getComputedStyle(e).visibility === "hidden") continue;
            if (box.right > width + 0.5) out.push(`${e.tagName}.${e.className} ends at ${box.right}`);
        }
        for (const wrap of document.querySelectorAll(".table-wrap")) {
            if (wrap.scrollWidth > wrap.clientWidth + 1) {
                out.push(`${wrap.querySelector("table").className} scrolls: ${wrap.scrollWidth} > ${wrap.clientWidth}`);
            }
        }
        return out;
    }""")


def test_a_phone_sees_everything_and_can_log_out(console: tuple[Daemon, str]) -> None:
    _, base = console
    with chromium() as browser:
        context = browser.new_context(viewport=PHONE, device_scale_factor=2,  # type: ignore
                                      is_mobile=True, has_touch=True)
        context.set_default_timeout(15_000)
        page = context.new_page()
        log_in(page, base)
        expect(page.locator('tr[data-watcher="api"] .procs')).to_have_text("2/2")
        sockets = page.locator(".panel", has=page.locator("h2", has_text="Sockets"))
        expect(sockets.locator("tbody tr")).to_have_count(2)
        expect(sockets).to_contain_text("a-rather-long-path-for-a-socket.sock")
        # Each figure says what it is (the table's header is not shown).
        labels = sockets.locator("tbody tr").first.locator("td").evaluate_all(
            "(cells) => cells.map((c) => getComputedStyle(c, '::before').content)")
        assert [label for label in labels if label not in ("none", "normal")] == [
            '"fd "', '"Backlog "', '"Accept queue "'], labels
        expect(sockets.locator("thead")).to_be_hidden()
        page.wait_for_timeout(500)  # a snapshot or two: the rows as they stay
        assert overflow(page) == [], overflow(page)
        for cell in sockets.locator("td").all():
            box = cell.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (
                cell.inner_text(), box)

        # The watcher page and the Options tab fit too.
        page.locator('tr[data-watcher="api"] a').click()
        expect(page.locator("h1")).to_have_text("api")
        page.click("text=Options")
        expect(page.locator('tr[data-option="graceful_timeout"]')).to_be_visible()
        assert overflow(page) == [], overflow(page)
        page.goto(base + "/#/all")
        expect(page.locator(".node-card")).to_have_count(1)
        assert overflow(page) == [], overflow(page)

        # Log out: on screen, within it, and it logs out.
        logout = page.locator("#logout")
        expect(logout).to_be_visible()
        box = logout.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert box["y"] >= 0 and box["height"] >= 24  # a finger can hit it
        logout.click()
        expect(page).to_have_url(re.compile(r"/login$"))
        page.goto(base + "/")
        expect(page).to_have_url(re.compile(r"/login$"))  # the session is gone
        context.close()


def test_the_options_tab_explains_each_option(console: tuple[Daemon, str]) -> None:
    _, base = console
    watcher = table("watcher")
    with chromium() as browser:
        page, errors = watched_page(browser, viewport={"width": 1280, "height": 900})
        log_in(page, base)
        page.goto(base + "/#/n/app-1/w/api")
        expect(page.locator("h1")).to_have_text("api")
        page.click("text=Options")

        # An option the file changed: its doc line, its default, "changed".
        graceful = page.locator('tr[data-option="graceful_timeout"]')
        expect(graceful.locator(".val")).to_have_text("5")
        expect(graceful.locator(".doc")).to_have_text(plain(watcher["graceful_timeout"].doc))
        expect(graceful.locator(".default")).to_have_text("30")
        expect(graceful.locator(".badge-changed")).to_have_text("changed")
        # A signal, by name: the value and the default.
        stop = page.locator('tr[data-option="stop_signal"]')
        expect(stop.locator(".val")).to_have_text("SIGINT")
        expect(stop.locator(".default")).to_have_text("SIGTERM")
        expect(stop.locator(".badge-changed")).to_be_visible()
        expect(stop.locator(".doc")).to_contain_text("signal that asks the process tree to stop")
        # Left at its default (even written out in the file): no mark.
        for name in ("max_age_variance", "max_retry", "respawn", "sockets"):
            row = page.locator(f'tr[data-option="{name}"]')
            expect(row.locator(".doc")).to_have_text(plain(watcher[name].doc))
            expect(row.locator(".badge-changed")).to_have_count(0)
        expect(page.locator('tr[data-option="numprocesses"] .badge-changed')).to_be_visible()
        expect(page.locator('tr[data-option="numprocesses"] .default')).to_have_text("1")
        # Only what changed: cmd, numprocesses, graceful_timeout, stop_signal.
        page.check(".changed-only")
        expect(page.locator("table.options tbody tr")).to_have_count(4)
        expect(page.locator(".options-count")).to_contain_text("4 changed from the default")
        page.uncheck(".changed-only")
        assert page.locator("table.options tbody tr").count() >= 60

        # Edit the signal by name; the daemon takes it, the page names it.
        stop.locator("button", has_text="Edit").click()
        expect(stop.locator("input")).to_have_value("SIGINT")
        stop.locator("input").fill("TERM")
        stop.locator("button", has_text="Save").click()
        expect(page.locator('tr[data-option="stop_signal"] .val')).to_have_text("SIGTERM")
        expect(page.locator('tr[data-option="stop_signal"] .badge-changed')).to_have_count(0)
        assert not errors, errors
        page.context.close()  # type: ignore[attr-defined]
