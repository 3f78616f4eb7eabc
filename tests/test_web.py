"""bigtop-web over HTTP (aiohttp's test client) against real daemons: every
endpoint, the login and session rules, CSRF and Origin checks, the live
WebSocket, unreachable nodes, and ``httpd = true``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("pytest_aiohttp")
import pytest_asyncio  # noqa: E402

from bigtop.config import load  # noqa: E402
from bigtop.config.build import with_httpd  # noqa: E402
from bigtop.web import cli  # noqa: E402
from bigtop.web.app import make_app  # noqa: E402
from bigtop.web.auth import COOKIE, Auth, load_token  # noqa: E402
from bigtop.web.nodes import Cluster, Node  # noqa: E402

from .conftest import Daemon, wait_for  # noqa: E402

TOKEN = "test-token-0123456789"

GREETER = """\
import os, signal, sys, time
wid = os.environ.get("BIGTOP_WID", "?")
print(f"hello from wid {wid}", flush=True)
print(f"warning from wid {wid}", file=sys.stderr, flush=True)
signal.signal(signal.SIGUSR1, lambda *a: print(f"got USR1 in wid {wid}", flush=True))
while True:
    time.sleep(1)
"""

CONFIG = """\
[watcher:greeter]
cmd = {python} -u {script}
numprocesses = 2
graceful_timeout = 5

[watcher:sleeper]
cmd = sleep 300
graceful_timeout = 5

[socket:web]
host = 127.0.0.1
port = 0
"""


def start_daemon(daemon: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    script = tmp_path / "greeter.py"
    script.write_text(GREETER)
    d = daemon(CONFIG.format(python=sys.executable, script=script))
    d.wait_pids("greeter", 2)
    return d


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                message: str = "condition") -> Any:
    """The async wait_for: poll check() until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.05)


class Console:
    """The test client, logged in or not, with the headers a page sends."""

    def __init__(self, client: Any):
        self.client = client
        self.csrf = ""

    @property
    def origin(self) -> str:
        url = self.client.make_url("/")
        return f"{url.scheme}://{url.host}:{url.port}"

    async def login(self, token: str = TOKEN) -> Any:
        response = await self.client.post("/login", data={"token": token},
                                          headers={"Origin": self.origin},
                                          allow_redirects=False)
        if response.status == 303:
            self.csrf = (await (await self.client.get("/api/session")).json())["csrf"]
        return response

    async def post(self, path: str, body: Any = None, *, csrf: str | None = None,
                   origin: str | None = None, headers: dict[str, str] | None = None) -> Any:
        sent = {"Origin": self.origin if origin is None else origin,
                "X-CSRF-Token": self.csrf if csrf is None else csrf, **(headers or {})}
        if sent["Origin"] == "":
            del sent["Origin"]
        return await self.client.post(path, json=body if body is not None else {},
                                      headers=sent)

    async def get_json(self, path: str, status: int = 200) -> Any:
        response = await self.client.get(path)
        assert response.status == status, (path, response.status, await response.text())
        return await response.json()

    async def watcher(self, name: str) -> dict[str, Any]:
        return (await self.get_json(f"/api/nodes/local/watchers/{name}"))["watcher"]


@pytest.fixture
def local_daemon(daemon: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    return start_daemon(daemon, tmp_path)


@pytest_asyncio.fixture
async def console(aiohttp_client: Any, local_daemon: Daemon) -> Console:
    cluster = Cluster([Node("local", local_daemon.endpoint)])
    client = await aiohttp_client(make_app(cluster, Auth(TOKEN)))
    node = cluster.nodes["local"]

    async def ready() -> bool:
        return bool(node.reachable and node.snapshot)

    await until(ready, message="the node's first snapshot")
    return Console(client)


@pytest_asyncio.fixture
async def logged_in(console: Console) -> Console:
    response = await console.login()
    assert response.status == 303
    return console


# -- login and sessions ----------------------------------------------------------------------

@pytest.mark.asyncio
async def test_nothing_without_login(console: Console, local_daemon: Daemon) -> None:
    client = console.client
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/login"
    for path in ("/api/session", "/api/nodes", "/api/nodes/local",
                 "/api/nodes/local/watchers/greeter", "/api/nodes/local/watchers/greeter/options",
                 "/api/nodes/local/watchers/greeter/logs", "/ws"):
        response = await client.get(path, headers={"Origin": console.origin})
        assert response.status == 401, path
        assert (await response.json())["error"] == "login required"
    for path in ("/api/nodes/local/watchers/greeter/incr", "/api/nodes/local/watchers",
                 "/api/nodes/local/reloadconfig", "/logout"):
        response = await console.post(path, {"nb": 1}, csrf="")
        assert response.status == 401, path
    assert len(local_daemon.pids("greeter")) == 2


@pytest.mark.asyncio
async def test_login_page_and_static_files_are_public(console: Console) -> None:
    response = await console.client.get("/login")
    assert response.status == 200
    text = await response.text()
    assert 'name="token"' in text and 'action="/login"' in text
    headers = response.headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in (("app.js", "javascript"), ("ui.js", "javascript"),
                       ("chart.js", "javascript"), ("theme.js", "javascript"),
                       ("app.css", "text/css"), ("favicon.svg", "image/svg")):
        response = await console.client.get(f"/static/{name}")
        assert response.status == 200, name
        assert kind in response.headers["Content-Type"], name
        body = (await response.text()).replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http://" not in body and "https://" not in body, f"{name} loads from elsewhere"
    for path in ("/static/../auth.py", "/static/%2E%2E/auth.py", "/static/nothing.js"):
        response = await console.client.get(path, allow_redirects=False)
        assert response.status in (302, 403, 404), path  # never the file
        assert "Auth" not in await response.text()


@pytest.mark.asyncio
async def test_login_with_the_token_sets_a_strict_httponly_cookie(console: Console) -> None:
    response = await console.login()
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on 127.0.0.1; set under https
    page = await console.client.get("/")
    assert page.status == 200
    assert '<script type="module" src="/static/app.js">' in await page.text()
    session = await console.get_json("/api/session")
    assert session["nodes"] == ["local"] and len(session["csrf"]) == 64
    # Logged in, the login page sends you to the console.
    again = await console.client.get("/login", allow_redirects=False)
    assert again.status == 302 and again.headers["Location"] == "/"


@pytest.mark.asyncio
async def test_wrong_token_is_refused(console: Console) -> None:
    response = await console.login("not-the-token")
    assert response.status == 401
    assert "Set-Cookie" not in response.headers
    assert "That token is not right." in await response.text()
    response = await console.client.post("/login", data={}, headers={"Origin": console.origin})
    assert response.status == 401
    assert (await console.client.get("/api/nodes")).status == 401


@pytest.mark.asyncio
async def test_forged_or_expired_cookie_is_refused(console: Console) -> None:
    auth = Auth(TOKEN)
    good = auth.new_session()
    sid, user, expiry, mac = good.split(".")
    forged = [f"{sid}x.{user}.{expiry}.{mac}", f"{sid}.{user}.{int(expiry) + 1}.{mac}",
              f"{sid}.root.{expiry}.{mac}", "garbage",
              Auth("another-token").new_session(), Auth(TOKEN, session_age=-10).new_session()]
    for value in forged:
        console.client.session.cookie_jar.update_cookies({COOKIE: value})
        assert (await console.client.get("/api/nodes")).status == 401, value
    console.client.session.cookie_jar.update_cookies({COOKIE: good})
    assert (await console.client.get("/api/nodes")).status == 200


@pytest.mark.asyncio
async def test_login_from_another_origin_is_refused(console: Console) -> None:
    response = await console.client.post("/login", data={"token": TOKEN},
                                         headers={"Origin": "http://evil.example"},
                                         allow_redirects=False)
    assert response.status == 403
    assert "Set-Cookie" not in response.headers


@pytest.mark.asyncio
async def test_on_loopback_only_its_own_host_names_are_served(aiohttp_client: Any) -> None:
    """DNS rebinding: a page of evil.example, its name pointed at 127.0.0.1,
    reaches the console with that Host; it is refused."""
    auth = Auth(TOKEN, ("https://console.example.org",))
    auth.serving("127.0.0.1")
    client = await aiohttp_client(make_app(Cluster([]), auth, start_nodes=False))
    for host, status in (("evil.example", 421), ("evil.example:8080", 421), ("[", 421),
                         ("localhost:8080", 200), ("127.0.0.1", 200), ("[::1]:8080", 200),
                         ("console.example.org", 200)):
        response = await client.get("/login", headers={"Host": host})
        assert response.status == status, (host, await response.text())
    open_auth = Auth(TOKEN)
    open_auth.serving("0.0.0.0")  # reached by names it cannot know: any
    assert open_auth.hosts is None


@pytest.mark.asyncio
async def test_repeated_failed_logins_are_throttled(console: Console) -> None:
    for _ in range(10):
        assert (await console.login("wrong")).status == 401
    started = time.monotonic()
    response = await console.login("wrong")  # for a minute, and a second late
    assert response.status == 429 and time.monotonic() - started >= 1.0
    assert "Set-Cookie" not in response.headers
    response = await console.login()  # never the right token: no lock-out
    assert response.status == 303 and COOKIE in response.headers["Set-Cookie"]


def test_a_logout_outlives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "web-token.revoked")
    before = Auth(TOKEN, revoked_path=path)
    cookie, kept = before.new_session(), before.new_session()
    before.revoke(cookie)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    after = Auth(TOKEN, revoked_path=path)  # bigtop-web started again
    assert after.session(cookie) is None
    assert after.session(kept) is not None


@pytest.mark.asyncio
async def test_logout_revokes_the_session(logged_in: Console) -> None:
    cookie = logged_in.client.session.cookie_jar.filter_cookies(
        logged_in.client.make_url("/"))[COOKIE].value
    response = await logged_in.post("/logout")
    assert response.status == 200
    assert f"{COOKIE}=\"\"" in response.headers["Set-Cookie"] or \
        f"{COOKIE}=;" in response.headers["Set-Cookie"]
    logged_in.client.session.cookie_jar.update_cookies({COOKIE: cookie})  # replayed
    assert (await logged_in.client.get("/api/nodes")).status == 401


# -- CSRF and Origin -------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_actions_need_the_csrf_token_and_this_origin(logged_in: Console,
                                                          local_daemon: Daemon) -> None:
    path = "/api/nodes/local/watchers/greeter/incr"
    refused = [
        await logged_in.post(path, {"nb": 1}, csrf=""),
        await logged_in.post(path, {"nb": 1}, csrf="0" * 64),
        await logged_in.post(path, {"nb": 1}, origin="http://evil.example"),
        await logged_in.post(path, {"nb": 1}, origin="null"),
        await logged_in.post(path, {"nb": 1}, origin="",
                             headers={"Referer": "http://evil.example/page"}),
        await logged_in.post(path, {"nb": 1}, headers={"Sec-Fetch-Site": "cross-site"}),
    ]
    for response in refused:
        assert response.status == 403
        assert (await response.json())["ok"] is False
    assert len(local_daemon.pids("greeter")) == 2
    # The page's own request passes: same Origin, the session's token.
    response = await logged_in.post(path, {"nb": 1},
                                    headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status == 200
    assert (await response.json())["reply"]["numprocesses"] == 3
    local_daemon.wait_pids("greeter", 3)


@pytest.mark.asyncio
async def test_a_token_from_another_session_is_refused(logged_in: Console,
                                                       aiohttp_client: Any) -> None:
    other = Auth(TOKEN)
    foreign = other.csrf(other.session(other.new_session()) or "")
    response = await logged_in.post("/api/nodes/local/watchers/greeter/incr", {},
                                    csrf=foreign)
    assert response.status == 403


@pytest.mark.asyncio
async def test_websocket_from_another_origin_is_refused(logged_in: Console) -> None:
    for headers in ({"Origin": "http://evil.example"}, {}):
        response = await logged_in.client.get("/ws", headers={
            **headers, "Connection": "Upgrade", "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert response.status == 403


# -- reading -----------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_nodes_and_watchers(logged_in: Console, local_daemon: Daemon) -> None:
    nodes = (await logged_in.get_json("/api/nodes"))["nodes"]
    assert [n["name"] for n in nodes] == ["local"]
    node = nodes[0]
    assert node["reachable"] is True and node["endpoint"] == local_daemon.endpoint
    assert node["version"]
    snapshot = node["snapshot"]
    watchers = {w["name"]: w for w in snapshot["watchers"]}
    assert set(watchers) == {"greeter", "sleeper"}
    greeter = watchers["greeter"]
    assert greeter["status"] == "active"
    assert greeter["running"] == greeter["wanted"] == 2
    assert {p["pid"] for p in greeter["processes"]} == local_daemon.pids("greeter")
    assert {p["wid"] for p in greeter["processes"]} == {1, 2}
    assert all(p["rss"] > 0 for p in greeter["processes"])
    assert greeter["restarts"] == 0 and greeter["uptime"] is not None
    assert snapshot["daemon"]["pid"] == local_daemon.pid and snapshot["daemon"]["rss"] > 0
    [sock] = snapshot["sockets"]
    assert sock["name"] == "web" and sock["host"] == "127.0.0.1" and sock["port"] > 0
    assert "accept_queue" in sock

    detail = await logged_in.get_json("/api/nodes/local")
    assert detail["history"] and set(detail["history"][-1]) == {"t", "d", "w", "p"}
    assert "events" in detail
    one = await logged_in.get_json("/api/nodes/local/watchers/GREETER")
    assert one["watcher"]["name"] == "greeter"
    assert one["history"] and set(one["history"][-1]["p"]) == {
        str(p["pid"]) for p in one["watcher"]["processes"]}

    missing = await logged_in.get_json("/api/nodes/local/watchers/nope", 404)
    assert missing["ok"] is False
    assert (await logged_in.get_json("/api/nodes/elsewhere", 404))["error"] == "no such node"


@pytest.mark.asyncio
async def test_options(logged_in: Console) -> None:
    data = await logged_in.get_json("/api/nodes/local/watchers/greeter/options")
    assert data["ok"] is True
    options = data["reply"]["options"]
    assert options["numprocesses"] == 2 and options["graceful_timeout"] == 5
    missing = await logged_in.get_json("/api/nodes/local/watchers/nope/options", 422)
    assert missing["errno"] == 3 and "nope" in missing["error"]


@pytest.mark.asyncio
async def test_logs_as_json_and_as_a_download(logged_in: Console) -> None:
    async def hello() -> Any:
        data = await logged_in.get_json("/api/nodes/local/watchers/greeter/logs?lines=50")
        texts = [e["line"] for e in data["lines"]]
        return len([t for t in texts if t.startswith("hello from wid")]) == 2 and data

    data = await until(hello, message="both greetings in the logs")
    entry = data["lines"][-1]
    assert set(entry) >= {"time", "pid", "wid", "stream", "line", "watcher"}
    only = await logged_in.get_json(
        "/api/nodes/local/watchers/greeter/logs?lines=50&stream=stderr")
    assert {e["stream"] for e in only["lines"]} == {"stderr"}

    response = await logged_in.client.get(
        "/api/nodes/local/watchers/greeter/logs?lines=1000&format=text")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="greeter-local-')
    text = await response.text()
    assert "stdout" in text and "hello from wid 1" in text and "warning from wid 2" in text

    last = await logged_in.get_json(
        "/api/nodes/local/watchers/greeter/logs?lines=1&stream=stdout")
    assert len(last["lines"]) == 1
    assert (await logged_in.get_json(
        "/api/nodes/local/watchers/greeter/logs?lines=x", 400))["ok"] is False
    missing = await logged_in.get_json("/api/nodes/local/watchers/nope/logs", 422)
    assert "nope" in missing["error"]


# -- actions against the daemon ------------------------------------------------------------

@pytest.mark.asyncio
async def test_scaling_stopping_starting_and_restarting(logged_in: Console,
                                                        local_daemon: Daemon) -> None:
    base = "/api/nodes/local/watchers/greeter"
    reply = await (await logged_in.post(f"{base}/incr", {"nb": 2})).json()
    assert reply == {"ok": True, "reply": reply["reply"]}
    assert reply["reply"]["numprocesses"] == 4
    local_daemon.wait_pids("greeter", 4)
    reply = await (await logged_in.post(f"{base}/decr", {})).json()
    assert reply["reply"]["numprocesses"] == 3

    response = await logged_in.post(f"{base}/stop")
    assert response.status == 200
    assert local_daemon.pids("greeter") == set()

    async def stopped() -> bool:
        return (await logged_in.watcher("greeter"))["status"] == "stopped"

    await until(stopped, message="the page's snapshot to show greeter stopped")
    reply = await (await logged_in.post(f"{base}/start")).json()
    assert len(reply["reply"]["info"]["started"]) == 3
    before = local_daemon.wait_pids("greeter", 3)
    reply = await (await logged_in.post(f"{base}/restart")).json()
    info = reply["reply"]["info"]
    assert set(info["stopped"]) == before
    after = local_daemon.wait_pids("greeter", 3)
    assert set(info["started"]) == after and not before & after

    for body in ({"nb": 0}, {"nb": "2"}, {"nb": True}):
        response = await logged_in.post(f"{base}/incr", body)
        assert response.status == 400, body
    assert (await logged_in.post(f"{base}/explode")).status == 404
    bad = await logged_in.client.post(f"{base}/incr", data="{not json",
                                      headers={"Origin": logged_in.origin,
                                               "X-CSRF-Token": logged_in.csrf,
                                               "Content-Type": "application/json"})
    assert bad.status == 400
    missing = await logged_in.post("/api/nodes/local/watchers/nope/start")
    assert missing.status == 422
    assert "nope" in (await missing.json())["error"]
    assert (await logged_in.post("/api/nodes/elsewhere/watchers/greeter/start")).status == 404


@pytest.mark.asyncio
async def test_rolling_reload_and_its_progress_events(logged_in: Console,
                                                      local_daemon: Daemon) -> None:
    ws = await logged_in.client.ws_connect("/ws", headers={"Origin": logged_in.origin})
    hello = await ws.receive_json()
    assert hello["type"] == "hello"
    before = local_daemon.pids("greeter")
    response = await logged_in.post("/api/nodes/local/watchers/greeter/reload",
                                    {"rolling": True})
    assert response.status == 200
    info = (await response.json())["reply"]["info"]
    assert set(info["stopped"]) == before and len(info["started"]) == 2
    progress = []

    async def progress_events() -> bool:
        message = await ws.receive_json(timeout=10)
        if message["type"] == "events":
            progress.extend(e["payload"] for e in message["items"]
                            if e["topic"] == "watcher.greeter.reload_progress")
        return bool(progress) and progress[-1]["done"] == progress[-1]["total"] == 2

    await until(progress_events, message="reload_progress events up to 2/2")
    assert [p["done"] for p in progress] == [1, 2]
    await ws.close()
    for flag in ("rolling", "graceful"):
        response = await logged_in.post("/api/nodes/local/watchers/greeter/reload", {flag: 1})
        assert response.status == 400


@pytest.mark.asyncio
async def test_signal(logged_in: Console, local_daemon: Daemon) -> None:
    base = "/api/nodes/local/watchers/greeter"
    pids = local_daemon.pids("greeter")
    reply = await (await logged_in.post(f"{base}/signal", {"signum": "USR1"})).json()
    assert set(reply["reply"]["pids"]) == pids
    one = min(pids)
    reply = await (await logged_in.post(f"{base}/signal", {"signum": 10, "pid": one})).json()
    assert reply["reply"]["pids"] == [one]

    async def got() -> bool:
        data = await logged_in.get_json(f"{base}/logs?lines=20&stream=stdout")
        return sum("got USR1" in e["line"] for e in data["lines"]) >= 3

    await until(got, message="the processes to print that they got SIGUSR1")
    response = await logged_in.post(f"{base}/signal", {"signum": "NOPE"})
    assert response.status == 422 and (await response.json())["error"] == "signal invalid"
    assert (await logged_in.post(f"{base}/signal", {})).status == 400
    assert local_daemon.pids("greeter") == pids


@pytest.mark.asyncio
async def test_set_options_and_validation_errors(logged_in: Console,
                                                 local_daemon: Daemon) -> None:
    base = "/api/nodes/local/watchers/greeter"
    response = await logged_in.post(f"{base}/set", {"options": {"graceful_timeout": "7"}})
    assert response.status == 200
    options = (await logged_in.get_json(f"{base}/options"))["reply"]["options"]
    assert options["graceful_timeout"] == 7
    response = await logged_in.post(f"{base}/set", {"options": {"numprocesses": "many"}})
    assert response.status == 422
    body = await response.json()
    assert body["errno"] == 3 and "numprocesses" in body["error"]
    assert "many" in body["error"]
    response = await logged_in.post(f"{base}/set", {"options": {"max_retry": -2}})
    assert response.status == 422
    assert (await logged_in.post(f"{base}/set", {"options": {}})).status == 400
    assert (await logged_in.post(f"{base}/set", {"options": "x"})).status == 400
    options = (await logged_in.get_json(f"{base}/options"))["reply"]["options"]
    assert options["numprocesses"] == 2  # nothing changed
    assert len(local_daemon.pids("greeter")) == 2


@pytest.mark.asyncio
async def test_add_and_remove_a_watcher(logged_in: Console, local_daemon: Daemon) -> None:
    response = await logged_in.post("/api/nodes/local/watchers", {
        "name": "extra", "cmd": "sleep 300", "options": {"numprocesses": "2"}, "start": True})
    assert response.status == 200, await response.text()
    assert len((await response.json())["reply"]["started"]) == 2
    local_daemon.wait_pids("extra", 2)

    async def listed() -> bool:
        data = await logged_in.client.get("/api/nodes/local/watchers/extra")
        return data.status == 200

    await until(listed, message="the new watcher in the snapshot")
    again = await logged_in.post("/api/nodes/local/watchers",
                                 {"name": "extra", "cmd": "sleep 1"})
    assert again.status == 422 and "already exists" in (await again.json())["error"]
    bad = await logged_in.post("/api/nodes/local/watchers",
                               {"name": "bad", "cmd": "sleep 1",
                                "options": {"numprocesses": "x"}})
    assert bad.status == 422
    assert (await logged_in.post("/api/nodes/local/watchers", {"name": "x"})).status == 400
    assert (await logged_in.post("/api/nodes/local/watchers", {"cmd": "x"})).status == 400

    response = await logged_in.post("/api/nodes/local/watchers/extra/rm")
    assert response.status == 200
    assert local_daemon.pids("extra") == set()

    async def gone() -> bool:
        data = await logged_in.client.get("/api/nodes/local/watchers/extra")
        return data.status == 404

    await until(gone, message="the removed watcher to leave the snapshot")


@pytest.mark.asyncio
async def test_reloadconfig(logged_in: Console, local_daemon: Daemon) -> None:
    text = local_daemon.config.read_text().replace("cmd = sleep 300", "cmd = sleep 301")
    local_daemon.config.write_text(text)
    response = await logged_in.post("/api/nodes/local/reloadconfig")
    assert response.status == 200
    changes = (await response.json())["reply"]["changes"]
    assert changes["restarted"] == ["sleeper"]
    local_daemon.config.write_text(text + "\n[watcher:broken\n")
    response = await logged_in.post("/api/nodes/local/reloadconfig")
    assert response.status == 422
    assert "nothing changed" in (await response.json())["error"]


# -- the live feed ------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_websocket_snapshots_and_live_output(logged_in: Console,
                                                   local_daemon: Daemon) -> None:
    ws = await logged_in.client.ws_connect("/ws", headers={"Origin": logged_in.origin})
    hello = await ws.receive_json()
    assert hello["type"] == "hello"
    [node] = hello["nodes"]
    assert node["name"] == "local" and node["reachable"] is True
    assert node["history"] and {w["name"] for w in node["snapshot"]["watchers"]} == {
        "greeter", "sleeper"}
    await ws.send_json({"op": "tail", "node": "local", "watcher": "greeter", "lines": 50})
    seen: dict[str, list[Any]] = {"snapshot": [], "reset": [], "live": []}

    async def receive() -> bool:
        message = await ws.receive_json(timeout=10)
        if message["type"] == "snapshot":
            seen["snapshot"].append(message)
        elif message["type"] == "log":
            seen["reset" if message.get("reset") else "live"].extend(message["lines"])
        return bool(seen["snapshot"] and seen["reset"])

    await until(receive, message="a snapshot and the last lines")
    assert {e["line"] for e in seen["reset"]} >= {"hello from wid 1", "hello from wid 2"}
    assert set(seen["snapshot"][-1]["points"][-1]) == {"t", "d", "w", "p"}
    # A process started now prints its greeting: it comes live.
    await logged_in.post("/api/nodes/local/watchers/greeter/incr")

    async def greeting() -> bool:
        await receive()
        return any(e["line"] == "hello from wid 3" for e in seen["live"])

    await until(greeting, message="the new process's greeting, live")
    entry = next(e for e in seen["live"] if e["line"] == "hello from wid 3")
    assert entry["wid"] == 3 and entry["stream"] == "stdout"
    await ws.send_json({"op": "untail"})
    await ws.send_json({"op": "tail", "node": "local", "watcher": "nope"})

    async def refused() -> Any:
        message = await ws.receive_json(timeout=10)
        return message["type"] == "log" and message["watcher"] == "nope" and message

    message = await until(refused, message="an error for an unknown watcher")
    assert "nope" in message["error"]
    await ws.close()


# -- several nodes, one of them away -------------------------------------------------------

@pytest.mark.asyncio
async def test_unreachable_node_is_shown_and_comes_back(
        aiohttp_client: Any, daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    script = tmp_path / "greeter.py"
    script.write_text(GREETER)
    later = daemon(CONFIG.format(python=sys.executable, script=script), start=False)
    away = Node("away", f"ipc://{tmp_path}/nobody/control.sock")
    cluster = Cluster([Node("later", later.endpoint), away])
    console = Console(await aiohttp_client(make_app(cluster, Auth(TOKEN))))
    await console.login()

    async def both_down() -> Any:
        nodes = (await console.get_json("/api/nodes"))["nodes"]
        return all(n["reachable"] is False for n in nodes) and nodes

    nodes = await until(both_down, message="both nodes marked unreachable")
    assert [n["name"] for n in nodes] == ["later", "away"]
    assert "no such socket" in nodes[1]["error"]
    response = await console.post("/api/nodes/away/watchers/greeter/start")
    assert response.status == 502
    assert "unreachable" in (await response.json())["error"]
    await asyncio.to_thread(later.start)

    async def back() -> Any:
        nodes = (await console.get_json("/api/nodes"))["nodes"]
        return nodes[0]["reachable"] and nodes[0]["snapshot"]

    snapshot = await until(back, message="the node that started to come back")
    assert {w["name"] for w in snapshot["watchers"]} == {"greeter", "sleeper"}
    assert (await console.get_json("/api/nodes"))["nodes"][1]["reachable"] is False


# -- httpd = true ---------------------------------------------------------------------------------

def test_httpd_adds_a_watcher_and_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "bigtop.ini"
    path.write_text("[circus]\nhttpd = true\nhttpd_port = 9123\n"
                    "endpoint = ipc:///tmp/x y/control.sock\n"
                    "[env]\nBIGTOP_WEB_TOKEN = abc\n"
                    "[watcher:w]\ncmd = sleep 1\n")
    read = load(str(path))
    assert read.watcher("circushttpd") is None  # the file's model, as written
    config = with_httpd(read)
    web = config.watcher("circushttpd")
    assert web is not None and web.copy_env and web.singleton
    assert web.cmd == sys.executable
    assert web.args == ("-m bigtop.web --fd $(circus.sockets.circushttpd) "
                        "--endpoint 'ipc:///tmp/x y/control.sock'")
    assert web.env == {"BIGTOP_WEB_TOKEN": "abc"}
    [sock] = [s for s in config.sockets if s.name == "circushttpd"]
    assert (sock.host, sock.port) == ("localhost", 9123)
    assert [w.name for w in config.watchers] == ["circushttpd", "w"]
    assert with_httpd(config) == config
    path.write_text("[circus]\nhttpd = true\n[watcher:circushttpd]\ncmd = sleep 1\n")
    mine = with_httpd(load(str(path)))
    assert mine.watcher("circushttpd").cmd == "sleep 1"  # type: ignore[union-attr]
    path.write_text("[circus]\nhttpd = false\n[watcher:w]\ncmd = sleep 1\n")
    assert with_httpd(load(str(path))).watcher("circushttpd") is None


def test_httpd_runs_the_console_on_a_daemon_socket(daemon: Callable[..., Daemon],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGTOP_WEB_TOKEN", TOKEN)
    d = daemon("""\
        [circus]
        httpd = true
        httpd_host = 127.0.0.1
        httpd_port = 0

        [watcher:sleeper]
        cmd = sleep 300
        """)
    sockets = d.client().call("listsockets")["sockets"]
    [sock] = [s for s in sockets if s["name"] == "circushttpd"]
    base = f"http://127.0.0.1:{sock['port']}"
    wait_for(lambda: "bigtop-web: serving on" in d.out_text() + d.log_text(),
             message="bigtop-web serving")
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = urllib.request.Request(f"{base}/login", data=f"token={TOKEN}".encode(),
                                   headers={"Origin": base})
    with opener.open(login) as page:  # 303 to / and the console's page
        assert page.status == 200 and "/static/app.js" in page.read().decode()

    def listed() -> Any:
        with opener.open(f"{base}/api/nodes") as response:
            nodes = json.load(response)["nodes"]
        return nodes[0]["snapshot"] and nodes[0]

    node = wait_for(listed, message="the console's first snapshot")
    assert {w["name"] for w in node["snapshot"]["watchers"]} == {"circushttpd", "sleeper"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/api/nodes")
    assert refused.value.code == 401


# -- the command line ---------------------------------------------------------------------------

def test_token_file_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "web-token"
    token, made = load_token(str(path))
    assert made and len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_token(str(path)) == (token, False)


def test_login_token_is_printed_at_first_start(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BIGTOP_WEB_TOKEN", raising=False)
    ns = cli.parser().parse_args(["--token-file", str(tmp_path / "t")])
    token = cli.login_token(ns)
    assert f"login token: {token}" in capsys.readouterr().out
    assert cli.login_token(ns) == token
    assert token not in capsys.readouterr().out
    monkeypatch.setenv("BIGTOP_WEB_TOKEN", "from-env")
    assert cli.login_token(ns) == "from-env"


def test_nodes_from_options_and_a_cluster_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIGTOPCTL_ENDPOINT", raising=False)
    conf = tmp_path / "web.ini"
    conf.write_text("[web]\nport = 9001\nhost = 0.0.0.0\n"
                    "[cluster]\nbeta = tcp://10.0.0.2:5555\n"
                    "[node:beta]\nserver_key = /etc/beta.key\n")
    ns = cli.parser().parse_args(["--endpoint", "alpha=ipc:///run/a/control.sock",
                                  "--endpoint", "tcp://10.0.0.3:5555", "--config", str(conf)])
    file = cli.read_config(ns.config)
    cli.merged(ns, file)
    assert (ns.host, ns.port) == ("0.0.0.0", 9001)
    specs = cli.node_specs(ns, file)
    assert [(s["name"], s["endpoint"]) for s in specs] == [
        ("alpha", "ipc:///run/a/control.sock"), ("10.0.0.3:5555", "tcp://10.0.0.3:5555"),
        ("beta", "tcp://10.0.0.2:5555")]
    assert specs[2]["server_key"] == "/etc/beta.key"
    ns = cli.parser().parse_args([])
    cli.merged(ns, None)
    assert (ns.host, ns.port) == ("127.0.0.1", 8080)
    [spec] = cli.node_specs(ns, None)
    assert spec["endpoint"] is None
    assert Node(**spec).endpoint == f"ipc://{os.environ['BIGTOP_RUNTIME_DIR']}/control.sock"
    conf.write_text("[webb]\n")
    with pytest.raises(cli.UsageError, match=r"unknown section \[webb\]"):
        cli.read_config(str(conf))


def test_bad_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--certfile", "x.pem"]) == 2
    assert "go together" in capsys.readouterr().err
    assert cli.main(["--config", str(tmp_path / "missing.ini")]) == 2
    assert "cannot read" in capsys.readouterr().err
