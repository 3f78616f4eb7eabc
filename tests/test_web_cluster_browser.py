"""The cluster overview in a real browser: Playwright drives Debian's
chromium (headless, /usr/bin/chromium) against a real ``bigtop-web
--cluster`` process following real nodes on the real etcd of
tests/etcd.py. The overview shows which watcher runs where and the
leader; an action on every node running a watcher reports each node's
answer, the error of a node the console cannot reach included; a node
that dies is shown down."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .browser import chromium, expect, web_on_socket  # skips without them
from .clusters import TTL, WATCHERS, apply, kill_node, node_config, start_nodes, wait_running
from .conftest import Daemon, wait_for
from .etcd import EtcdCluster

TOKEN = "browser-cluster-token"


@pytest.fixture
def web(daemon: Callable[..., Daemon], etcd: EtcdCluster,
        tmp_path: Path) -> Iterator[tuple[dict[str, Daemon], str]]:
    """Three nodes (web on n1 and n2, db on n3), and bigtop-web following
    them through n1, on a socket it inherits (--fd). n2 runs web but
    advertises an endpoint where nothing listens: the console cannot
    reach it, however long it waits."""
    nodes = start_nodes(daemon, etcd, {"n1": "role=web", "n3": "role=db"})
    nowhere = f"ipc://{tmp_path}/nowhere/control.sock"
    nodes["n2"] = daemon(node_config(etcd, "n2", "role=web", f"advertise = {nowhere}\n"),
                         where="n2")
    wait_for(lambda: len(nodes["n1"].call("cluster_nodes")["nodes"]) == 3,
             message="n2 registered")
    apply(nodes["n1"], WATCHERS.replace("nodes = 1", "nodes = all"))
    wait_running(nodes, "web", 2)
    wait_running(nodes, "db", 1)
    with web_on_socket(tmp_path, TOKEN, "--cluster", f"shop={nodes['n1'].endpoint}") as url:
        yield nodes, url


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as found:
        yield found


def every_node(page: object, watcher: str, action: str, timeout: str = "5") -> object:
    """Click an action on the overview's row of a watcher, say how long to
    wait for each node, confirm; the results' panel."""
    page.locator(f'tr[data-cluster-watcher="{watcher}"] '  # type: ignore[attr-defined]
                 f'[data-action="{action}"]').click()
    dialog = page.locator("dialog#dialog")  # type: ignore[attr-defined]
    expect(dialog).to_contain_text("on every node running it")
    dialog.locator('input[name="timeout"]').fill(timeout)
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    return page.locator(".cluster-overview .fanout")  # type: ignore[attr-defined]


def test_cluster_overview_and_an_action_on_every_node(
        web: tuple[dict[str, Daemon], str], browser: object, tmp_path: Path) -> None:
    nodes, base = web
    context = browser.new_context(viewport={"width": 1440, "height": 900})  # type: ignore
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("#conn")).to_have_text("live")

    # The overview: a row per cluster watcher, a column per node, the leader.
    overview = page.locator(".cluster-overview")
    expect(overview.locator("h2")).to_have_text("Cluster shop")
    expect(overview.locator(".leader")).to_have_text(re.compile(r"^leader: n[123]$"))
    expect(overview.locator("thead th .leader-mark")).to_have_count(1)
    web_row = overview.locator('tr[data-cluster-watcher="web"]')
    db_row = overview.locator('tr[data-cluster-watcher="db"]')
    for name in ("n1", "n2"):
        expect(web_row.locator(f'td[data-node="{name}"] .badge')).to_have_text("running")
    expect(web_row.locator('td[data-node="n1"] .local')).to_have_text("active 1/1")
    expect(web_row.locator('td[data-node="n2"] .local')).to_have_count(0)  # out of reach
    expect(web_row.locator('td[data-node="n3"]')).to_have_text("–")
    expect(db_row.locator('td[data-node="n3"] .badge')).to_have_text("running")
    expect(page.locator(".node-card")).to_have_count(3)
    expect(page.locator('.node-card[data-node="n3"] .labels')).to_contain_text("role=db")

    # n2 is up in the cluster, but out of the console's reach.
    expect(page.locator('.node-card[data-node="n2"] .badge').first).to_have_text("unreachable")
    expect(page.locator('.node-card[data-node="n2"]')).to_contain_text("no such socket")
    expect(overview.locator('thead th[data-node="n2"] .badge')).to_have_text("up")

    # + on every node running web: one request each, each one's answer.
    results = every_node(page, "web", "incr")
    n1_row = results.locator('tr[data-node="n1"]')  # type: ignore[attr-defined]
    expect(n1_row).to_have_attribute("data-result", "ok")
    expect(n1_row).to_contain_text("2 processes wanted")
    n2_row = results.locator('tr[data-node="n2"]')  # type: ignore[attr-defined]
    expect(n2_row).to_have_attribute("data-result", "failed")
    expect(n2_row).to_contain_text("n2 is unreachable")
    expect(page.locator(".toast").last).to_contain_text("incr web on every node: failed on some")
    nodes["n1"].wait_pids("web", 2)
    assert len(nodes["n2"].pids("web")) == 1
    expect(web_row.locator('td[data-node="n1"] .local')).to_have_text("active 2/2")
    page.screenshot(path=str(tmp_path / "cluster.png"), full_page=True)

    # n3 dies: once its lease ended it is shown down.
    for child in kill_node(nodes["n3"]):
        child.kill()
    expect(page.locator('.node-card[data-node="n3"] .badge').first).to_have_text(
        "down", timeout=(TTL + 20) * 1000)
    expect(overview.locator('thead th[data-node="n3"] .badge')).to_have_text("down")
    page.locator('.node-card[data-node="n3"] a').first.click()
    expect(page.locator('[role="alert"]').first).to_contain_text("n3 is down")
    assert not errors, errors
