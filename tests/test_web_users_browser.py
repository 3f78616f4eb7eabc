"""Named users in the web console (``bigtop-web --users``): a read-only
user sees every watcher but is offered no action, is refused any (403),
and does not see the output of a watcher marked ``private``; a user who
controls acts, and the daemon's activity log names them, with the
browser's address, which the console's events show."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .browser import chromium, expect, web_on_socket  # skips without them
from .conftest import Daemon

USERS = """\
[users.alice]
token = "alice-token-0123456789"
role = "control"

[users.bob]
token = "bob-token-0123456789"
"""

CONFIG = """\
[watcher:web]
cmd = sleep 1000

[watcher:vault]
cmd = sh -c 'echo the-secret; exec sleep 1000'
private = true
"""


def login(browser: object, url: str, token: str) -> object:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(15_000)
    page.goto(url + "/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("#conn")).to_have_text("live")
    return page


def post(page: object, path: str) -> int:
    """A POST as the page's own script makes it (session cookie, CSRF token)."""
    return int(page.evaluate("""async (path) => {
        const info = await (await fetch("/api/session")).json();
        const r = await fetch(path, {method: "POST", headers: {"X-CSRF-Token": info.csrf,
                              "Content-Type": "application/json"}, body: "{}"});
        return r.status; }""", path))  # type: ignore[attr-defined]


def test_roles_private_output_and_the_activity_shown(daemon: Callable[..., Daemon],
                                                     tmp_path: Path) -> None:
    d = daemon(CONFIG)
    d.wait_pids("web", 1)
    users = tmp_path / "users.toml"
    users.write_text(USERS)
    with web_on_socket(tmp_path, "unused", "--endpoint", f"box={d.endpoint}",
                       "--users", str(users)) as url, chromium() as browser:
        bob = login(browser, url, "bob-token-0123456789")
        row = bob.locator('tr[data-watcher="web"]')  # type: ignore[attr-defined]
        expect(row.locator(".badge")).to_have_text("active")
        expect(row.locator('[data-action="incr"]')).to_be_hidden()
        assert post(bob, "/api/nodes/box/watchers/web/incr") == 403
        assert d.call("status", name="web", details=True)["details"]["wanted"] == 1
        public = bob.evaluate(  # type: ignore[attr-defined]
            "async () => (await fetch('/api/nodes/box/watchers/web/logs')).status")
        private = bob.evaluate(  # type: ignore[attr-defined]
            "async () => { const r = await fetch('/api/nodes/box/watchers/vault/logs');"
            " return [r.status, await r.text()]; }")
        assert public == 200
        assert private[0] == 403 and "private" in private[1] and "the-secret" not in private[1]

        alice = login(browser, url, "alice-token-0123456789")
        arow = alice.locator('tr[data-watcher="web"]')  # type: ignore[attr-defined]
        arow.locator('[data-action="incr"]').click()
        expect(arow.locator(".procs")).to_have_text("2/2")
        entry = d.call("history")["history"][-1]
        assert entry["command"] == "incr" and entry["by"]["user"] == "alice"
        assert entry["by"]["via"] == "bigtop-web" and entry["by"]["from"] == "127.0.0.1"
        logs = alice.evaluate(  # type: ignore[attr-defined]
            "async () => (await fetch('/api/nodes/box/watchers/vault/logs')).text()")
        assert "the-secret" in logs
        expect(alice.locator("ul.events")).to_contain_text(  # type: ignore[attr-defined]
            re.compile(r"alice from 127\.0\.0\.1 \(bigtop-web\): incr web · ok"))
