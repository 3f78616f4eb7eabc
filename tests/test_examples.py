"""The shipped examples run as the README says."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from .conftest import ROOT, free_port, wait_for


def test_quickstart_serves_from_two_workers(daemon, tmp_path, monkeypatch):
    # As `make run` does: the venv's bin (bigtop-wsgi) first on PATH.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    port = free_port()
    text = (ROOT / "examples" / "quickstart.ini").read_text()
    assert "port = 8090\n" in text and ":8090/" in text
    text = text.replace("port = 8090", f"port = {port}").replace(":8090/", f":{port}/")
    text = text.replace("examples/apps", f"{ROOT}/examples/apps")
    d = daemon(text)
    wait_for(lambda: d.call("status", name="ticker")["status"] == "active", timeout=20,
             message="ticker started")
    # The order of the daemon's own start: its events come before anyone
    # can subscribe (see test_lifecycle.test_priority_orders_start); the
    # log is the daemon's record of it.
    assert d.log_text().index("web: ready") < d.log_text().index("ticker: started")
    seen = set()

    def both_workers() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            seen.add(response.read().decode().split(" (")[0])
        return len(seen) == 2

    wait_for(both_workers, timeout=20, message="answers from both workers")
    wait_for(lambda: "Hello from bigtop worker" in d.out_text(), message="ticker output")


def test_toml_config_runs(daemon):
    d = daemon("""
        [watchers.pair]
        cmd = "sleep 1000"
        numprocesses = 2
        env = { MODE = "toml" }
    """, name="bigtop.toml")
    pids = d.wait_pids("pair", 2)
    assert {d.children("pair")[0].environ()["MODE"]} == {"toml"}
    assert len(pids) == 2
