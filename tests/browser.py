"""What the browser tests share: Debian's chromium driven by Playwright,
and bigtop-web serving on a socket it inherits. Importing this module
skips the importing test module when either is missing."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import wait_for

CHROMIUM = "/usr/bin/chromium"
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no {CHROMIUM}: `apt-get install -y chromium` (make test does it as root)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = playwright.expect


@contextlib.contextmanager
def web_on_socket(tmp_path: Path, token: str, *args: str) -> Iterator[str]:
    """bigtop-web with these arguments, serving on a socket it inherits
    (--fd), until the block ends; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    out = tmp_path / "web.out"
    env = {**os.environ, "BIGTOP_WEB_TOKEN": token}
    with open(out, "wb") as sink:
        web = subprocess.Popen(
            [sys.executable, "-m", "bigtop.web", *args, "--fd", str(listener.fileno())],
            pass_fds=(listener.fileno(),), stdout=sink, stderr=subprocess.STDOUT, env=env)
    listener.close()
    try:
        wait_for(lambda: "serving on" in out.read_text() or web.poll() is not None,
                 message="bigtop-web to serve")
        assert web.poll() is None, out.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        web.terminate()
        try:
            web.wait(10)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def watched_page(browser: object, timeout_ms: int = 15_000,
                 **context: object) -> tuple[object, list[str]]:
    """A page in a new browser context (``context``: its options, such as
    ``viewport``), and the list its script errors are put in."""
    page = browser.new_context(**context).new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(timeout_ms)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    return page, errors
