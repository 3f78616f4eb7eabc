"""bigtop-web: the web console's command line.

``bigtop-web [--endpoint [NAME=]URL ...] [--cluster [NAME=]URL] [--discover [GROUP]]
[--config FILE] [--host 127.0.0.1] [--port 8080] [--fd N]``. With no endpoint
it shows the daemon bigtopctl would talk to. ``--cluster`` follows a cluster
through one of its nodes: the nodes it lists are shown too, beside those
given by hand. ``--discover`` shows the daemons that answer Circus's LAN
probe on GROUP (default Circus's group), as hints.
``--fd`` serves on an inherited listening socket, which is how bigtopd runs
it for ``httpd = true``.
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import contextlib
import logging
import os
import signal
import socket
import sys
from typing import Any

from .. import __version__
from ..client.discovery import DEFAULT_ENDPOINT as DISCOVERY_GROUP
from ..client.discovery import parse_endpoint

log = logging.getLogger("bigtop.web")


class UsageError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bigtop-web",
        description="The bigtop web console: live state, output and controls of one or "
                    "several bigtop daemons.",
        epilog="The login token comes from $BIGTOP_WEB_TOKEN, or from the token file, "
               "which is made (and the token printed) at the first start. See docs/web.md.")
    p.add_argument("--endpoint", action="append", default=[], metavar="[NAME=]URL",
                   help="a daemon's control endpoint; repeat for several nodes "
                        "(default: $BIGTOPCTL_ENDPOINT or the local daemon)")
    p.add_argument("--cluster", metavar="[NAME=]URL",
                   help="follow a cluster through this node's control endpoint: every node "
                        "it lists is shown, read again every 5 s (NAME: what the page calls "
                        "the cluster; default its own name)")
    p.add_argument("--discover", nargs="?", const=DISCOVERY_GROUP, metavar="GROUP",
                   help="also show the daemons that answer Circus's multicast probe on the "
                        f"LAN, probed every 10 s (GROUP: udp://ADDRESS:PORT, default "
                        f"{DISCOVERY_GROUP}); a hint, reached with --key/--server-key")
    p.add_argument("--config", metavar="FILE",
                   help="an INI file with [web] options and a [cluster] list of NAME = URL")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080)")
    p.add_argument("--fd", type=int, help="serve on this inherited listening socket instead")
    p.add_argument("--token-file", metavar="PATH",
                   help="where the login token is kept (default ~/.config/bigtop/web-token)")
    p.add_argument("--users", metavar="FILE",
                   help="named users instead of the one token: a TOML file of [users.NAME] "
                        "tables with token (or token_sha256) and role (control or read)")
    p.add_argument("--key", help="CurveZMQ client key (.key_secret) for tcp:// endpoints "
                                 "(default $BIGTOPCTL_KEY)")
    p.add_argument("--server-key", help="the daemons' public key (default "
                                        "$BIGTOPCTL_SERVER_KEY)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                   help="another origin pages may come from (a reverse proxy's https://host)")
    p.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--keyfile", help="... and this private key")
    p.add_argument("--idle-sample", type=float, metavar="SECONDS",
                   help="while no page is open, sample each node's processes for the charts' "
                        "history every SECONDS (default 10; 0: not at all, the history then "
                        "has a gap while nobody looks)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"bigtop-web {__version__}")
    return p


def node_name(url: str, count: int) -> str:
    """A name for an endpoint given without one: this host for a local
    daemon, host:port for a remote one."""
    if url.startswith("tcp://"):
        return url[len("tcp://"):]
    host = socket.gethostname() or "local"
    if count == 1 or not url.startswith("ipc://"):
        return host
    return f"{host}:{os.path.basename(os.path.dirname(url[len('ipc://'):])) or url}"


def split_endpoint(item: str) -> tuple[str | None, str]:
    name, sep, url = item.partition("=")
    if sep and "://" not in name:
        return name.strip(), url.strip()
    return None, item.strip()


def node_specs(ns: argparse.Namespace, file: configparser.ConfigParser | None
               ) -> list[dict[str, Any]]:
    """name, endpoint, key, server_key and pubsub_endpoint of each node."""
    specs: list[dict[str, Any]] = []
    listed = [split_endpoint(item) for item in ns.endpoint]
    if file is not None and file.has_section("cluster"):
        listed += [(name, url.strip()) for name, url in file.items("cluster")]
    if not listed and not getattr(ns, "cluster", None) and not getattr(ns, "discover", None):
        listed = [(None, "")]  # bigtopctl's default daemon
    taken: set[str] = set()
    for name, url in listed:
        if not name:
            name = node_name(url, len(listed))
        base, n = name, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        spec: dict[str, Any] = {"name": name, "endpoint": url or None, "key": ns.key,
                                "server_key": ns.server_key, "pubsub_endpoint": None}
        if file is not None and file.has_section(f"node:{name}"):
            section = file[f"node:{name}"]
            for key in ("key", "server_key", "pubsub_endpoint"):
                if section.get(key):
                    spec[key] = section[key]
        specs.append(spec)
    return specs


def following_spec(ns: argparse.Namespace) -> dict[str, Any] | None:
    """The cluster to follow (``--cluster [NAME=]URL``): endpoint, name and
    the keys to reach that node with."""
    if not getattr(ns, "cluster", None):
        return None
    name, url = split_endpoint(ns.cluster)
    if not url:
        raise UsageError("--cluster needs a node's control endpoint")
    return {"endpoint": url, "name": name or None, "key": ns.key, "server_key": ns.server_key}


def discovery_spec(ns: argparse.Namespace) -> dict[str, Any] | None:
    """The LAN to probe (``--discover [GROUP]``): the group, and the keys to
    reach what answers with."""
    group = getattr(ns, "discover", None)
    if not group:
        return None
    try:
        parse_endpoint(group)
    except ValueError as err:  # EndpointError
        raise UsageError(f"--discover: {err}") from None
    return {"group": group, "key": ns.key, "server_key": ns.server_key}


def read_config(path: str | None) -> configparser.ConfigParser | None:
    if not path:
        return None
    file = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            file.read_file(handle)
    except (OSError, configparser.Error) as err:
        raise UsageError(f"cannot read {path}: {err}") from None
    unknown = [s for s in file.sections()
               if s not in ("web", "cluster") and not s.startswith("node:")]
    if unknown:
        raise UsageError(f"{path}: unknown section [{unknown[0]}] (sections are [web], "
                         "[cluster] and [node:NAME])")
    return file


def merged(ns: argparse.Namespace, file: configparser.ConfigParser | None) -> None:
    """[web] options fill in what the command line did not say."""
    web = file["web"] if file is not None and file.has_section("web") else {}
    for key, cast in (("host", str), ("port", int), ("token_file", str), ("key", str),
                      ("server_key", str), ("certfile", str), ("keyfile", str),
                      ("cluster", str), ("idle_sample", float)):
        if getattr(ns, key) is None and web.get(key):
            try:
                setattr(ns, key, cast(web[key]))
            except ValueError:
                raise UsageError(f"[web] {key}: {web[key]!r} is not valid") from None
    if web.get("allow_origin"):
        ns.allow_origin += web["allow_origin"].split()
    discover = (web.get("discover") or "").strip()
    if getattr(ns, "discover", None) is None and discover:
        from ..config import to_bool

        try:  # yes/no, or a group
            if to_bool(discover):
                ns.discover = DISCOVERY_GROUP
        except ValueError:
            ns.discover = discover
    ns.host = ns.host or "127.0.0.1"
    ns.port = 8080 if ns.port is None else ns.port


HISTORY_SCALE = "BIGTOP_WEB_HISTORY_SCALE"  # for tests: every duration of the history times this


def history_layout(ns: argparse.Namespace) -> Any:
    """The charts' history (history.py): the tiers and ranges, scaled by
    $BIGTOP_WEB_HISTORY_SCALE (tests: 0.05 makes "24 h" 72 minutes), and
    the idle sampling interval of --idle-sample."""
    from .history import layout

    text = os.environ.get(HISTORY_SCALE, "").strip()
    scale = 1.0
    if text:
        try:
            scale = float(text)
        except ValueError:
            scale = -1.0
        if not 0.001 <= scale <= 1.0:
            raise UsageError(f"${HISTORY_SCALE}: {text!r} is not a number from 0.001 to 1")
    idle = getattr(ns, "idle_sample", None)
    if idle is not None and not (idle == 0 or 0.1 <= idle <= 3600):
        raise UsageError("--idle-sample: 0, or from 0.1 to 3600 seconds")
    return layout(scale, idle)


def login_token(ns: argparse.Namespace) -> str:
    from .auth import default_token_file, load_token

    token = os.environ.get("BIGTOP_WEB_TOKEN", "").strip()
    if token:
        return token
    path = ns.token_file or default_token_file()
    try:
        token, made = load_token(path)
    except OSError as err:
        raise UsageError(f"cannot read or make the token file {path}: {err.strerror}") from None
    if made:
        print(f"bigtop-web: login token: {token}\n"
              f"bigtop-web: (kept in {path}; delete the file for a new one)", flush=True)
    else:
        print(f"bigtop-web: login token in {path}", flush=True)
    return token


async def serve(ns: argparse.Namespace, token: str | None, specs: list[dict[str, Any]],
                follow: dict[str, Any] | None = None,
                discover: dict[str, Any] | None = None, history: Any = None,
                users: dict[str, Any] | None = None) -> None:
    from aiohttp import web

    from .app import make_app
    from .auth import LOOPBACK, Auth, default_token_file, revoked_file
    from .nodes import Cluster, Discovering, Following, Node

    cluster = Cluster([Node(**spec, history=history) for spec in specs],
                      Following(**follow) if follow is not None else None,
                      Discovering(**discover) if discover is not None else None,
                      history=history)
    auth = Auth(token, tuple(ns.allow_origin), users=users,
                revoked_path=revoked_file(ns.users or ns.token_file or default_token_file()))
    app = make_app(cluster, auth)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ssl_context = None
    if ns.certfile:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(ns.certfile, ns.keyfile)
    scheme = "https" if ssl_context else "http"
    site: web.BaseSite
    if ns.fd is not None:
        sock = socket.socket(fileno=ns.fd)
        sock.setblocking(False)
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        host, port = sock.getsockname()[:2]
    else:
        site = web.TCPSite(runner, ns.host, ns.port, ssl_context=ssl_context)
        host, port = ns.host, ns.port
    auth.serving(str(host))
    await site.start()
    shown = f"[{host}]" if ":" in str(host) else host
    what = [s["name"] for s in specs]
    if cluster.following is not None:
        what.append(f"the nodes of the cluster at {cluster.following.endpoint}")
    if cluster.discovering is not None:
        what.append(f"the nodes heard on the LAN at {cluster.discovering.group}")
    print(f"bigtop-web: serving on {scheme}://{shown}:{port}/ ({', '.join(what)})", flush=True)
    if ssl_context is None and host not in LOOPBACK:
        log.warning("serving plain HTTP on %s: the token and the session cookie cross the "
                    "network in clear; use --certfile/--keyfile or a TLS proxy", host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    logging.basicConfig(level=ns.log_level.upper(), format="bigtop-web: %(message)s",
                        stream=sys.stderr)
    if bool(ns.certfile) != bool(ns.keyfile):
        print("bigtop-web: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    try:
        file = read_config(ns.config)
        merged(ns, file)
        specs = node_specs(ns, file)
        follow = following_spec(ns)
        discover = discovery_spec(ns)
        history = history_layout(ns)
        token = None if ns.users else login_token(ns)
        users = None
        if ns.users:
            from .auth import load_users

            users = load_users(ns.users)
    except (UsageError, ValueError) as err:
        print(f"bigtop-web: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(ns, token, specs, follow, discover, history, users))
    except OSError as err:
        print(f"bigtop-web: cannot serve: {err}", file=sys.stderr)
        return 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0
