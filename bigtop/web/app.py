"""The aiohttp application: pages, the JSON API, and the WebSocket that
keeps every open page up to date.

Routes (everything but ``/login`` and ``/static/`` needs a session; every
POST also needs the CSRF token in ``X-CSRF-Token`` and a same-origin
``Origin``):

- ``GET /``, ``GET /login``, ``POST /login`` (form field ``token``), ``POST /logout``
- ``GET /api/session``: the CSRF token, the nodes, whether a cluster is
  followed and the LAN probed (``--discover``)
- ``GET /api/nodes``, ``GET /api/nodes/{node}`` (with history and recent events)
- ``GET /api/cluster``: the followed cluster (``--cluster``): nodes, leader, and
  where each cluster watcher runs, with its state there
- ``GET /api/nodes/{node}/watchers/{name}``: the watcher's latest state and its history
- ``GET /api/history?node=N&range=10m|1h|24h[&watcher=W]``: the charts' history
  of a node (its daemon and watchers) or of a watcher (and its process slots)
- ``GET /api/options``: the watcher option table (docs and defaults)
- ``GET /api/nodes/{node}/watchers/{name}/options``
- ``GET /api/nodes/{node}/watchers/{name}/logs?lines=N&stream=S&format=text|json``
- ``POST /api/nodes/{node}/watchers/{name}/{action}``: start, stop, restart,
  reload, incr, decr, signal, set, rm (``timeout``: how long to wait for the
  node, as the page's actions on every node of a cluster watcher send it)
- ``POST /api/nodes/{node}/watchers``: add a watcher
- ``POST /api/nodes/{node}/reloadconfig``
- ``GET /ws``: snapshots, events and live output (see :class:`Viewer`)
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from .. import __version__
from ..client import CommandFailed, Shown, log_entries
from .auth import COOKIE, UNSAFE, Auth
from .nodes import ACTION_TIMEOUT, Cluster, Node, NodeDown

log = logging.getLogger("bigtop.web")

STATIC = Path(__file__).parent / "static"
AUTH: web.AppKey[Auth] = web.AppKey("auth", Auth)
CLUSTER: web.AppKey[Cluster] = web.AppKey("cluster", Cluster)
VIEWERS: web.AppKey[set[Viewer]] = web.AppKey("viewers")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
THROTTLE_DELAY_S = 1.0  # a wrong login past the throttle waits this long for its answer
TAIL_LINES = 200  # lines a live log view starts with
TAIL_MAX = 2000
DOWNLOAD_MAX = 10_000  # the daemon's own limit for `logs`
OUTPUT_BATCH = 1000  # live lines a page gets at most per send; more are counted as dropped
POINTS_BATCH = 120  # history points a page gets at most per send (a slow page: the latest)


# -- the security layer -------------------------------------------------------------------------

def _public(request: web.Request) -> bool:
    return request.path == "/login" or request.path.startswith("/static/")


def _api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/ws"


def _refuse(request: web.Request, status: int, reason: str) -> web.Response:
    if _api(request) or request.method in UNSAFE:
        return web.json_response({"ok": False, "error": reason}, status=status)
    return web.Response(status=status, text=reason)


@web.middleware
async def guard(request: web.Request,
                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> web.StreamResponse:
    """No page, API call or WebSocket without a session; nothing that
    changes state without the session's CSRF token from this origin."""
    auth = request.app[AUTH]
    sid = auth.request_session(request)
    response: web.StreamResponse
    if not auth.host_ok(request):
        response = _refuse(request, 421, "this server is not that Host")
    elif request.method in UNSAFE and not auth.same_origin(request):
        response = _refuse(request, 403, "cross-origin request refused")
    elif _public(request):
        response = await _handle(handler, request)
    elif sid is None:
        if _api(request) or request.method in UNSAFE:
            response = _refuse(request, 401, "login required")
        else:
            response = redirect("/login")
    elif request.method in UNSAFE and not auth.csrf_ok(request, sid):
        response = _refuse(request, 403, "missing or wrong CSRF token")
    elif request.method in UNSAFE and request.path != "/logout" and not _controls(request):
        response = _refuse(request, 403, "a read-only user changes nothing")
    else:
        response = await _handle(handler, request)
    if not response.prepared:  # a WebSocket has sent its headers already
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cache-Control", "no-store")
    return response


PRIVATE = "this watcher's output is private: a read-only user does not see it"


def _controls(request: web.Request) -> bool:
    user = request.app[AUTH].user(request)
    return user is not None and user.controls


def by(request: web.Request) -> dict[str, str]:
    """Who asks the daemon, for its activity log: the console's user and
    the browser's address."""
    user = request.app[AUTH].user(request)
    return {"user": user.name if user else "?", "via": "bigtop-web",
            "from": request.remote or "?"}


async def private_output(request: web.Request, target: Node, name: str) -> bool:
    """Is this watcher's output kept from the request's user (a read-only
    user, and a watcher marked ``private``)?"""
    if _controls(request):
        return False
    try:
        reply = await target.call("get", name=name, keys=["private"])
    except (CommandFailed, NodeDown):
        return True  # not known: not shown
    return bool(reply.get("options", {}).get("private"))


async def _handle(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                  request: web.Request) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as err:
        response = web.Response(status=err.status, body=err.body, headers=err.headers)
        return response


def redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


# -- pages ---------------------------------------------------------------------------------------

def _page(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


async def index(request: web.Request) -> web.Response:
    return web.Response(text=_page("index.html"), content_type="text/html")


def login_page(error: str = "", status: int = 200) -> web.Response:
    notice = f'<p class="login-error" role="alert">{html.escape(error)}</p>' if error else ""
    body = _page("login.html").replace("<!--error-->", notice)
    return web.Response(text=body, content_type="text/html", status=status)


async def login_form(request: web.Request) -> web.StreamResponse:
    if request.app[AUTH].request_session(request):
        return redirect("/")
    return login_page()


async def login(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    address = request.remote or "?"
    form = await request.post()
    token = form.get("token")
    user = auth.login(token) if isinstance(token, str) else None
    # The right token always gets in: a neighbour's wrong guesses from the
    # same address cannot lock the operator out. Past the throttle a wrong
    # guess is answered a second late, and not logged again.
    if user is None and auth.throttled(address):
        await asyncio.sleep(THROTTLE_DELAY_S)
        return login_page("Too many failed attempts: wait a minute.", 429)
    if user is None:
        auth.failed(address)
        log.warning("failed login from %s", address)
        return login_page("That token is not right.", 401)
    response = redirect("/", 303)
    auth.set_cookie(response, request, auth.new_session(user.name))
    log.info("login of %s (%s) from %s", user.name, user.role, address)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    request.app[AUTH].revoke(request.cookies.get(COOKIE))
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


# -- reading ------------------------------------------------------------------------------------

def _node(request: web.Request) -> Node:
    node = request.app[CLUSTER].get(request.match_info["node"])
    if node is None:
        raise web.HTTPNotFound(text=json.dumps({"ok": False, "error": "no such node"}),
                               content_type="application/json")
    return node


async def session_info(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    sid = auth.request_session(request) or ""  # the guard let only a session through
    cluster = request.app[CLUSTER]
    user = auth.user(request)
    return web.json_response({"csrf": auth.csrf(sid), "version": __version__,
                              "user": user.name if user else None,
                              "role": user.role if user else None,
                              "nodes": list(cluster.nodes),
                              "cluster": cluster.following is not None,
                              "discovery": discovery(cluster),
                              "history": cluster.history.info()})


def discovery(cluster: Cluster) -> dict[str, Any] | None:
    """The LAN probes (``--discover``): the group, how often, what they
    hold now; None without."""
    return cluster.discovering.info() if cluster.discovering is not None else None


async def fresh(node: Node) -> Node:
    """With no page open, the snapshot's resource use is as old as the last
    idle sample (up to --idle-sample seconds): sample now."""
    if not node.viewers and node.reachable:
        await node.poll(full=True)
    return node


async def nodes(request: web.Request) -> web.Response:
    # A copy: a node may come or go while one is polled.
    found = [await fresh(n) for n in list(request.app[CLUSTER].nodes.values())]
    return web.json_response({"nodes": [n.info() for n in found]})


async def node(request: web.Request) -> web.Response:
    return web.json_response((await fresh(_node(request))).info(with_history=True))


async def cluster_overview(request: web.Request) -> web.Response:
    """The followed cluster, as of its last reading (``following: false``
    without ``--cluster``)."""
    overview = request.app[CLUSTER].overview()
    if overview is None:
        return web.json_response({"following": False})
    return web.json_response({"following": True, **overview})


async def watcher(request: web.Request) -> web.Response:
    target = await fresh(_node(request))
    name = request.match_info["name"]
    found = None
    for entry in (target.snapshot or {}).get("watchers", []):
        if entry["name"].lower() == name.lower():
            found = entry
    if found is None:
        return web.json_response({"ok": False, "error": f"no watcher {name!r} on {target.name}"},
                                 status=404)
    return web.json_response({"watcher": found,
                              "history": target.history.recent(watcher=found["name"])})


HISTORY_QUERY = ("node", "range", "watcher")


async def history(request: web.Request) -> web.Response:
    """The charts' history: ``node`` (required), ``range`` (one of the
    layout's: 10m, 1h, 24h; default 10m) and ``watcher`` (its processes'
    slots; without, the node's daemon and watchers), as columns."""
    query = request.query
    layout = request.app[CLUSTER].history
    names = ", ".join(r.name for r in layout.ranges)
    unknown = sorted(set(query) - set(HISTORY_QUERY))
    if unknown:
        return _bad(BadRequest(f"unknown parameter {unknown[0]!r} (the parameters are "
                               f"{', '.join(HISTORY_QUERY)})"))
    if any(len(query.getall(k)) > 1 for k in HISTORY_QUERY if k in query):
        return _bad(BadRequest("each parameter may be given once"))
    if not query.get("node"):
        return _bad(BadRequest("node is required"))
    range_name = query.get("range", layout.ranges[0].name)
    if layout.range(range_name) is None:
        shown = range_name if len(range_name) <= 20 else range_name[:20] + "…"
        return _bad(BadRequest(f"unknown range {shown!r}: the range is one of {names}"))
    target = request.app[CLUSTER].get(query["node"])
    if target is None:
        return web.json_response({"ok": False, "error": "no such node"}, status=404)
    watcher_name = query.get("watcher")
    data = target.history.read(range_name, time.time(), watcher=watcher_name)
    assert data is not None
    if watcher_name is not None and data["watcher"] is None:
        return web.json_response({"ok": False, "error": f"no history of a watcher "
                                  f"{watcher_name[:100]!r} on {target.name}"}, status=404)
    return web.json_response({"ok": True, "node": target.name, **data})


async def call(node: Node, command: str, timeout: float | None = None,
               **props: Any) -> web.Response:
    """The daemon's reply as JSON: ``{ok: true, reply}``, or ``{ok: false,
    error, errno}`` with 422 for an error reply and 502 when it is down."""
    try:
        reply = await node.call(command, timeout=timeout, **props)
    except CommandFailed as err:
        return web.json_response({"ok": False, "error": str(err), "errno": err.errno,
                                  "reply": err.reply}, status=422)
    except NodeDown as err:
        return web.json_response({"ok": False, "error": f"{node.name} is unreachable: {err}"},
                                 status=502)
    return web.json_response({"ok": True, "reply": reply})


async def options(request: web.Request) -> web.Response:
    return await call(_node(request), "options", name=request.match_info["name"])


def option_info() -> dict[str, Any]:
    """The watcher options as the Options tab explains them, from the option
    table (bigtop.config.options: the one place they are declared): each
    one's doc line, its default as ``options`` would show it, the default
    as the docs word it, what it accepts, whether ``set`` may change it and
    whether a change restarts the processes, and ``signal`` for one whose
    value is a signal number (the page names it). Built once, at startup."""
    from ..config.convert import to_signal
    from ..config.model import WatcherSpec
    from ..config.options import table

    defaults = WatcherSpec(name="-", cmd="-").option_values()
    defaults["stdout_stream_conf"] = defaults["stdout_stream"]  # as the daemon adds them
    defaults["stderr_stream_conf"] = defaults["stderr_stream"]
    out: dict[str, Any] = {}
    for name, option in table("watcher").items():
        out[name] = {"key": option.key, "doc": option.doc, "default": defaults.get(name),
                     "shown": option.shown, "accepts": option.accepts,
                     "required": option.required, "runtime": option.runtime,
                     "restarts": option.restarts, "signal": option.convert is to_signal}
    for alias, of in (("stdout_stream_conf", "stdout_stream"),
                      ("stderr_stream_conf", "stderr_stream")):
        out[alias] = {**out[of], "key": alias, "alias": of,
                      "doc": f"Circus's name for `{of}`: {out[of]['doc']}"}
    # Not options of the table, or not comparable with their default: the
    # name is the section's; without working_dir the daemon answers its own
    # directory, so the value never looks like the default.
    out["name"] = {"key": "name", "doc": "The watcher's name: its section's, `[watcher:NAME]`.",
                   "default": None, "shown": "", "accepts": "", "required": True,
                   "runtime": False, "restarts": False, "signal": False, "compare": False}
    out["working_dir"]["compare"] = False
    import signal as signals

    return {"options": out, "signals": {str(int(s)): s.name for s in signals.Signals}}


OPTION_INFO: web.AppKey[dict[str, Any]] = web.AppKey("options", dict)


async def option_table(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPTION_INFO],
                             headers={"Cache-Control": "private, max-age=3600"})


async def logs(request: web.Request) -> web.StreamResponse:
    """The last lines of a watcher: JSON, or ``format=text`` to download."""
    target = _node(request)
    name = request.match_info["name"]
    query = request.query
    try:
        lines = max(1, min(int(query.get("lines", "100")), DOWNLOAD_MAX))
    except ValueError:
        return web.json_response({"ok": False, "error": "lines must be a number"}, status=400)
    props: dict[str, Any] = {"name": name, "lines": lines}
    if query.get("stream") in ("stdout", "stderr"):
        props["stream"] = query["stream"]
    if await private_output(request, target, name):
        return web.json_response({"ok": False, "error": PRIVATE}, status=403)
    try:
        reply = await target.call("logs", **props)
    except CommandFailed as err:
        return web.json_response({"ok": False, "error": str(err), "errno": err.errno},
                                 status=422)
    except NodeDown as err:
        return web.json_response({"ok": False, "error": f"{target.name} is unreachable: {err}"},
                                 status=502)
    entries = log_entries(reply)
    if query.get("format") != "text":
        return web.json_response({"ok": True, "lines": entries})
    out = []
    for entry in entries:
        when = entry.get("time")
        stamp = (datetime.fromtimestamp(when).isoformat(sep=" ", timespec="milliseconds")
                 if isinstance(when, int | float) else "-")
        out.append(f"{stamp} {entry.get('stream') or '-'} {entry.get('pid') or '-'} "
                   f"{entry.get('line', '')}")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    filename = f"{safe}-{target.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
    return web.Response(text="\n".join(out) + ("\n" if out else ""), content_type="text/plain",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- actions ------------------------------------------------------------------------------------

class BadRequest(Exception):
    pass


def _flag(body: dict[str, Any], key: str, default: bool | None = None) -> bool | None:
    value = body.get(key, default)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequest(f"{key} must be true or false")


def _count(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{key} must be a whole number of at least 1")
    return value


def _timeout(body: dict[str, Any]) -> float:
    """How long an action waits for its node: ``timeout`` seconds, at most
    ACTION_TIMEOUT (the default). The page's action on every node of a
    cluster watcher sends one, so that a node that does not answer is an
    error row after it rather than a wait of minutes."""
    value = body.get("timeout", ACTION_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= ACTION_TIMEOUT:
        raise BadRequest(f"timeout must be a number of seconds, above 0 and at most "
                         f"{ACTION_TIMEOUT:g}")
    return float(value)


def action_props(action: str, body: dict[str, Any]) -> dict[str, Any]:
    """The command's properties for an action, from the request's JSON."""
    if action in ("start", "stop", "restart"):
        return {"match": "simple", "waiting": True}
    if action == "reload":
        props: dict[str, Any] = {"graceful": _flag(body, "graceful", True), "waiting": True}
        rolling = _flag(body, "rolling")
        if rolling is not None:
            props["rolling"] = rolling
        return props
    if action in ("incr", "decr"):
        return {"nb": _count(body, "nb", 1), "waiting": True}
    if action == "signal":
        signum = body.get("signum")
        if not isinstance(signum, str | int) or isinstance(signum, bool) or signum == "":
            raise BadRequest("signum must be a signal name or number")
        props = {"signum": signum}
        if body.get("pid") is not None:
            props["pid"] = _count(body, "pid", 0)
        for key in ("children", "recursive"):
            if _flag(body, key):
                props[key] = True
        return props
    if action == "set":
        values = body.get("options")
        if not isinstance(values, dict) or not values:
            raise BadRequest("options must be an object of option names and values")
        return {"options": values, "waiting": True}
    if action == "rm":
        return {"nostop": bool(_flag(body, "nostop", False)), "waiting": True}
    raise KeyError(action)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _bad(err: Exception) -> web.Response:
    return web.json_response({"ok": False, "error": str(err)}, status=400)


async def watcher_action(request: web.Request) -> web.Response:
    target = _node(request)
    action = request.match_info["action"]
    try:
        body = await _body(request)
        props = action_props(action, body)
        timeout = _timeout(body)
    except KeyError:
        return web.json_response({"ok": False, "error": f"no action {action!r}"}, status=404)
    except BadRequest as err:
        return _bad(err)
    command = action
    log.info("%s: %s %s %s", target.name, command, request.match_info["name"], props)
    try:
        return await call(target, command, timeout=timeout, by=by(request),
                          name=request.match_info["name"], **props)
    finally:
        target.refresh_soon()


async def add_watcher(request: web.Request) -> web.Response:
    target = _node(request)
    try:
        body = await _body(request)
        name, cmd = body.get("name"), body.get("cmd")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name is required")
        if not isinstance(cmd, str) or not cmd.strip():
            raise BadRequest("cmd is required")
        props: dict[str, Any] = {"name": name.strip(), "cmd": cmd.strip(),
                                 "start": bool(_flag(body, "start", True)), "waiting": True}
        if body.get("args"):
            if not isinstance(body["args"], str):
                raise BadRequest("args must be a string")
            props["args"] = body["args"]
        if body.get("options"):
            if not isinstance(body["options"], dict):
                raise BadRequest("options must be an object")
            props["options"] = body["options"]
    except BadRequest as err:
        return _bad(err)
    log.info("%s: add %s", target.name, props["name"])
    try:
        return await call(target, "add", timeout=ACTION_TIMEOUT, by=by(request), **props)
    finally:
        target.refresh_soon()


async def reloadconfig(request: web.Request) -> web.Response:
    target = _node(request)
    log.info("%s: reloadconfig", target.name)
    try:
        return await call(target, "reloadconfig", timeout=ACTION_TIMEOUT, by=by(request),
                          waiting=True)
    finally:
        target.refresh_soon()


# -- the live feed -------------------------------------------------------------------------------

class Viewer:
    """One open page's WebSocket. It gets every node's snapshots and events,
    and the output of the one watcher it tails (``{"op": "tail", "node",
    "watcher", "lines"}``; ``{"op": "untail"}``); with a followed cluster,
    each reading of it (``cluster``) and the nodes it adds and drops
    (``added``, ``removed``); nodes heard on the LAN (``--discover``) come
    and go the same way. Messages are gathered and sent together, so a
    slow browser makes fewer, larger sends and gets the latest snapshot, not
    every one it missed."""

    def __init__(self, ws: web.WebSocketResponse, cluster: Cluster):
        self.ws = ws
        self.cluster = cluster
        self.pending: dict[str, dict[str, Any]] = {}  # latest node message per node
        self.changes: list[dict[str, Any]] = []  # nodes added and removed, in order
        self.overview: dict[str, Any] | None = None  # the cluster's latest reading, unsent
        self.events: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []
        self.dropped = 0
        self.tailing: tuple[str, str] | None = None
        self.backlog: list[dict[str, Any]] | None = None  # live lines while history loads
        self.shown: Shown | None = None
        self.wake = asyncio.Event()

    def attach(self) -> None:
        self.cluster.listeners.append(self.on_cluster)
        for node in self.cluster.nodes.values():
            node.listeners.append(self.on_node)
            node.watched(+1)

    def detach(self) -> None:
        self.untail()
        with contextlib.suppress(ValueError):
            self.cluster.listeners.remove(self.on_cluster)
        for node in self.cluster.nodes.values():
            with contextlib.suppress(ValueError):
                node.listeners.remove(self.on_node)
            node.watched(-1)

    def on_cluster(self, kind: str, node: Node | None) -> None:
        if kind == "added" and node is not None:
            node.listeners.append(self.on_node)
            node.watched(+1)
            self.changes.append({"type": "added", "node": node.info(with_history=True)})
        elif kind == "removed" and node is not None:
            with contextlib.suppress(ValueError):
                node.listeners.remove(self.on_node)
            node.watched(-1)
            self.pending.pop(node.name, None)
            if self.tailing is not None and self.tailing[0] == node.name:
                self.untail()
            self.changes.append({"type": "removed", "node": node.name})
        elif kind == "view":
            self.overview = self.cluster.overview()
        self.wake.set()

    def on_node(self, kind: str, message: dict[str, Any]) -> None:
        if kind in ("snapshot", "points"):
            # The history's new points ride with the node's latest snapshot.
            name = message["node"]
            previous = self.pending.get(name)
            points = (previous or {}).get("points", []) + message.get("points", [])
            if kind == "snapshot":
                snapshot, info = message["snapshot"], message["info"]
            elif previous is not None and previous["type"] == "snapshot":
                snapshot, info = previous["snapshot"], previous["info"]
            else:
                node = self.cluster.get(name)
                if node is None or node.snapshot is None:
                    return
                snapshot = node.snapshot
                info = {k: v for k, v in node.info().items() if k != "snapshot"}
            self.pending[name] = {"type": "snapshot", "node": name, "snapshot": snapshot,
                                  "info": info, "points": points[-POINTS_BATCH:]}
        elif kind == "node":
            self.pending[message["name"]] = {"type": "node", "node": message["name"],
                                             "info": message}
        elif kind == "event":
            self.events.append(message)
            del self.events[:-500]
        elif kind == "output":
            self.on_output(message["node"], message["entry"])
            return
        self.wake.set()

    def on_output(self, node: str, entry: dict[str, Any]) -> None:
        if self.tailing is None or self.tailing[0] != node:
            return
        if str(entry.get("watcher", "")).lower() != self.tailing[1].lower():
            return
        if self.backlog is not None:
            self.backlog.append(entry)
            return
        if self.shown is not None and self.shown.hide(entry):
            return  # a repeat, or the end of a line the page shows in pieces
        if len(self.output) >= OUTPUT_BATCH:
            self.dropped += 1
        else:
            self.output.append(entry)
        self.wake.set()

    async def tail(self, node_name: str, watcher_name: str, lines: int) -> None:
        self.untail()
        node = self.cluster.get(node_name)
        if node is None:
            await self.send({"type": "log", "node": node_name, "watcher": watcher_name,
                             "reset": True, "lines": [], "error": "no such node"})
            return
        key = (node_name, watcher_name)
        self.tailing, self.backlog, self.shown = key, [], None
        node.tail(watcher_name)
        await node.handshake()  # subscribed before asking: no line falls in between
        error = None
        history: list[dict[str, Any]] = []
        try:
            reply = await node.call("logs", name=watcher_name, lines=lines)
            history = log_entries(reply)
        except (CommandFailed, NodeDown) as err:
            error = str(err)
        if self.tailing != key:  # another tail began meanwhile
            return
        self.shown = Shown(history)
        live, self.backlog = self.backlog or [], None
        await self.send({"type": "log", "node": node_name, "watcher": watcher_name,
                         "reset": True, "lines": history, "error": error})
        for entry in live:
            self.on_output(node_name, entry)

    def untail(self) -> None:
        if self.tailing is not None:
            node = self.cluster.get(self.tailing[0])
            if node is not None:
                node.untail(self.tailing[1])
        self.tailing, self.backlog, self.shown = None, None, None
        self.output.clear()

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(message, default=str))

    async def pump(self) -> None:
        while not self.ws.closed:
            await self.wake.wait()
            self.wake.clear()
            messages = self.changes + list(self.pending.values())
            self.changes = []
            self.pending.clear()
            if self.overview is not None:
                messages.append({"type": "cluster", "cluster": self.overview})
                self.overview = None
            if self.events:
                messages.append({"type": "events", "items": self.events})
                self.events = []
            if self.output and self.tailing:
                messages.append({"type": "log", "node": self.tailing[0],
                                 "watcher": self.tailing[1], "lines": self.output,
                                 "dropped": self.dropped})
                self.output, self.dropped = [], 0
            for message in messages:
                await self.send(message)
            await asyncio.sleep(0.05)  # gather what comes meanwhile into the next send


async def websocket(request: web.Request) -> web.StreamResponse:
    if not request.app[AUTH].same_origin(request) or "Origin" not in request.headers:
        return web.json_response({"ok": False, "error": "cross-origin WebSocket refused"},
                                 status=403)
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=64 * 1024)
    await ws.prepare(request)
    cluster = request.app[CLUSTER]
    viewer = Viewer(ws, cluster)
    # Attached first: a node added while the hello is sent is in it, or
    # comes in the first messages after it.
    viewer.attach()
    request.app[VIEWERS].add(viewer)
    pump: asyncio.Task[None] | None = None
    try:
        await viewer.send({"type": "hello", "version": __version__,
                           "nodes": [n.info(with_history=True) for n in cluster.nodes.values()],
                           "cluster": cluster.overview(), "discovery": discovery(cluster)})
        pump = asyncio.get_running_loop().create_task(viewer.pump())
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            if data.get("op") == "tail" and isinstance(data.get("node"), str) \
                    and isinstance(data.get("watcher"), str):
                lines = data.get("lines")
                lines = lines if isinstance(lines, int) and 0 < lines <= TAIL_MAX else TAIL_LINES
                node = cluster.get(data["node"])
                if node is not None and await private_output(request, node, data["watcher"]):
                    await viewer.send({"type": "log", "node": data["node"],
                                       "watcher": data["watcher"], "reset": True, "lines": [],
                                       "error": PRIVATE})
                    continue
                await viewer.tail(data["node"], data["watcher"], lines)
            elif data.get("op") == "untail":
                viewer.untail()
    finally:
        if pump is not None:
            pump.cancel()
        viewer.detach()
        request.app[VIEWERS].discard(viewer)
    return ws


# -- the application ------------------------------------------------------------------------------

def make_app(cluster: Cluster, auth: Auth, start_nodes: bool = True) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=1024 * 1024)
    app[AUTH] = auth
    app[CLUSTER] = cluster
    app[VIEWERS] = set()
    app[OPTION_INFO] = option_info()
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/session", session_info)
    app.router.add_get("/api/nodes", nodes)
    app.router.add_get("/api/cluster", cluster_overview)
    app.router.add_get("/api/nodes/{node}", node)
    app.router.add_post("/api/nodes/{node}/reloadconfig", reloadconfig)
    app.router.add_post("/api/nodes/{node}/watchers", add_watcher)
    app.router.add_get("/api/nodes/{node}/watchers/{name}", watcher)
    app.router.add_get("/api/nodes/{node}/watchers/{name}/options", options)
    app.router.add_get("/api/nodes/{node}/watchers/{name}/logs", logs)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/options", option_table)
    app.router.add_post("/api/nodes/{node}/watchers/{name}/{action}", watcher_action)
    app.router.add_static("/static/", STATIC)

    async def on_startup(app: web.Application) -> None:
        if start_nodes:
            cluster.start()

    async def on_shutdown(app: web.Application) -> None:
        viewers: set[Viewer] = app[VIEWERS]
        for viewer in list(viewers):
            await viewer.ws.close()

    async def on_cleanup(app: web.Application) -> None:
        await cluster.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
