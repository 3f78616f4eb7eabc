"""examples/django runs as its README says: a real Django project migrated
by a one-shot watcher, then served by bigtop-wsgi processes on a socket the
daemon owns, a background worker that fulfils orders, and a rolling reload
that no request notices."""

from __future__ import annotations

import http.cookiejar
import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, Daemon, free_port, wait_for

pytest.importorskip("django", reason="the Django example needs django: pip install -e '.[test]'")

EXAMPLE = ROOT / "examples" / "django"


def install_site(tmp_path: Path) -> tuple[Path, str, int]:
    """The example laid out as in the repository (examples/django next to
    .venv, the daemon started from the top), on a free port. Returns the
    site, the configuration text and the port."""
    site = tmp_path / "examples" / "django"
    shutil.copytree(EXAMPLE, site, ignore=shutil.ignore_patterns("var", "__pycache__"))
    # bigtop.ini says `virtualenv = .venv`: the environment running the tests.
    (tmp_path / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    port = free_port()
    config = (site / "bigtop.ini").read_text()
    assert "port = 8000\n" in config
    config = config.replace("port = 8000\n", f"port = {port}\n")
    return site, config, port


def wait_ready(d: Daemon, name: str) -> None:
    """Until the watcher is ready; fail at once, with the logs, if it failed."""
    d.wait_ready(name, timeout=60)


def get(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, str]:
    with (opener or urllib.request.build_opener()).open(url, timeout=10) as response:
        return response.status, response.read().decode()


def order(base: str, number: int) -> dict[str, object]:
    return json.loads(get(f"{base}/orders/{number}")[1])


def served_pid(served_by: object) -> int:
    match = re.search(r"\(pid (\d+)\)", str(served_by))
    assert match, served_by
    return int(match.group(1))


class Traffic(threading.Thread):
    """Requests one after another until stopped: which pids answered, and
    every request that failed."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.pids: list[int] = []
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                status, body = get(self.url)
                if status != 200:
                    self.failures.append(f"status {status}")
                    continue
                self.pids.append(served_pid(json.loads(body)["served_by"]))
            except (OSError, ValueError) as err:  # URLError, reset, bad JSON
                self.failures.append(repr(err))

    def stop(self) -> None:
        self.done.set()
        self.join(30)


def test_django_site_worker_and_rolling_reload(daemon, tmp_path, monkeypatch):
    # copy_env = true passes the shop's settings to the processes.
    monkeypatch.setenv("SHOP_DB_PATH", str(tmp_path / "shop.sqlite3"))
    monkeypatch.setenv("SHOP_POLL_SECONDS", "0.1")
    site, config, port = install_site(tmp_path)
    base = f"http://127.0.0.1:{port}"
    assert not (tmp_path / "shop.sqlite3").exists()
    d: Daemon = daemon(config)
    wait_ready(d, "web")
    wait_ready(d, "worker")
    assert (tmp_path / "shop.sqlite3").exists() and not (site / "var").exists()
    # The migrate watcher ran the migrations, to completion, before web
    # and worker started (at the daemon's start the log is the record of
    # the order: no subscriber can follow it yet).
    migrate = d.call("status", name="migrate", details=True)["details"]
    assert migrate["status"] == "done" and migrate["running"] == 0
    assert migrate["last_exit"]["exit_code"] == 0 and not migrate["last_exit"]["requested"]
    log = d.log_text()
    assert log.count("migrate: process 1 (pid ") == 1
    done = log.index("migrate: done: 1 process(es) exited with success")
    assert done < log.index("web: started") and done < log.index("worker: started")
    assert "Applying orders.0001_initial... OK" in d.out_text()

    status, page = get(f"{base}/")
    assert status == 200 and "<h1>Shop</h1>" in page and "No orders yet." in page
    assert get(f"{base}/healthz") == (200, "ok\n")

    # GET /orders/new?item=X queues a job and goes (303) to the order.
    status, body = get(f"{base}/orders/new?item=teapot")
    first = json.loads(body)
    assert status == 200 and first["item"] == "teapot"
    wait_for(lambda: order(base, first["id"])["status"] == "fulfilled", timeout=30,
             message="the worker to fulfil the order")
    wait_for(lambda: f"order {first['id']} (teapot) fulfilled" in d.out_text(),
             message="the worker's log line")

    # The form on the home page: a CSRF-checked POST, back to the list.
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                      get(f"{base}/", browser)[1])
    assert token
    form = urllib.parse.urlencode({"item": "kettle",
                                   "csrfmiddlewaretoken": token.group(1)}).encode()
    with browser.open(f"{base}/orders/new", data=form, timeout=10) as response:
        assert response.status == 200 and response.url == f"{base}/"
        assert "kettle" in response.read().decode()
    with pytest.raises(urllib.error.HTTPError) as refused:  # no CSRF token
        urllib.request.urlopen(f"{base}/orders/new", data=b"item=x", timeout=10)
    assert refused.value.code == 403

    def all_fulfilled() -> bool:
        page = get(f"{base}/")[1]
        return page.count("fulfilled</td>") == 2 and "pending</td>" not in page

    wait_for(all_fulfilled, timeout=30, message="both orders fulfilled on the home page")

    # A rolling reload under traffic: every request answered, by new pids after.
    old = d.wait_pids("web", 2)
    traffic = Traffic(f"{base}/orders/{first['id']}")
    traffic.start()
    wait_for(lambda: traffic.pids or traffic.failures, message="traffic before the reload")
    reload = subprocess.run(
        [sys.executable, "-m", "bigtop.cli.bigtopctl", "--endpoint", d.endpoint,
         "--json", "reload", "web", "--rolling", "--waiting"],
        capture_output=True, text=True, timeout=120)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    info = json.loads(reload.stdout)["info"]
    assert set(info["stopped"]) == old and not info["kept"]
    new = d.wait_pids("web", 2)
    assert set(info["started"]) == new and not new & old
    before = len(traffic.pids)
    wait_for(lambda: set(traffic.pids[before:]) & new or traffic.failures,
             message="traffic served by the new processes")
    traffic.stop()
    assert not traffic.failures, traffic.failures[:5]
    assert set(traffic.pids) <= old | new and set(traffic.pids) & old
    status, body = get(f"{base}/orders/new?item=mug")
    assert status == 200 and served_pid(json.loads(body)["served_by"]) in new
    wait_for(lambda: order(base, json.loads(body)["id"])["status"] == "fulfilled",
             timeout=30, message="the worker to fulfil an order after the reload")

    # Stopping: the worker finishes its job and exits on SIGTERM.
    (worker,) = d.pids("worker")
    assert d.stop() == 0
    out = d.out_text()
    assert f"worker {worker}: SIGTERM: stopping after the current job" in out
    assert f"worker {worker}: stopped" in out
