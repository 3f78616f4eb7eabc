"""bigtopd: the daemon. ``bigtopd CONFIG`` runs in the foreground;
SIGTERM/SIGINT stop everything (a second SIGINT kills it now), SIGHUP
reloads the configuration."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import Config, ConfigError

if TYPE_CHECKING:
    from ..control.server import ControlServer
    from ..core import Arbiter

log = logging.getLogger("bigtop")
STOP_ON_ERROR_S = 30.0  # the graceful stop of everything, on a fatal error; then kill
UPGRADE_CHECK_S = 30.0  # the program to re-execute, asked whether it takes the state
UPGRADE_WAIT_S = 60.0  # for what is under way (a rolling reload) to end, before refusing
BUSY_POLL_S = 0.05
FLUSH_S = 0.5  # before the exec: how long replies and events may take to leave
SETTLED_LOG = "every watcher started or waiting (for a priority, a dependency or a hook)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bigtopd", description="The bigtop daemon.")
    parser.add_argument("config", help="configuration file: Circus's INI, supervisord's, or "
                                           "bigtop's TOML (.toml)")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration, print it resolved, and exit")
    parser.add_argument("--to", choices=["toml", "ini"],
                        help="with --check: the format to print (default: toml)")
    parser.add_argument("--strict", action="store_true",
                        help="an unknown option or section is an error, not a warning "
                             "(also for reloads)")
    parser.add_argument("--daemon", action="store_true", help="detach and run in the background")
    parser.add_argument("--pidfile", help="write the daemon's pid to this file")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"],
                        help="default: [circus] loglevel, or info")
    parser.add_argument("--log-output", metavar="TARGET",
                        help="-, a file, or syslog://[HOST:PORT] (default: [circus] logoutput, "
                             "or stderr)")
    parser.add_argument("--version", action="version", version=f"bigtopd {__version__}")
    # Run by a daemon about to re-execute itself: can this image take over
    # the state on stdin? (core/handover.py)
    parser.add_argument("--handover-check", action="store_true", help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.to and not args.check:
        parser.error("--to goes with --check")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ..core import handover

    if args.handover_check:
        try:
            state = json.loads(sys.stdin.read(handover.MAX_STATE))
            handover.check_version(state)
            handover.config_of(state)
        except (ValueError, handover.HandoverError) as err:
            print(f"bigtopd {__version__}: {err}", file=sys.stderr)
            return 1
        return 0
    taken = os.environ.pop(handover.ENV, None)
    if taken is not None:  # this daemon re-executed itself: same pid, same children
        return resume(args, taken)
    from ..config.saved import load_saved

    try:
        config = load_saved(args.config, strict=args.strict)
    except ConfigError as err:
        print(f"bigtopd: {args.config}: invalid configuration, nothing started", file=sys.stderr)
        print(textwrap.indent(str(err), "  "), file=sys.stderr)
        return 2
    from ..core.limits import close_inherited, config_warnings, raise_fd_limit

    warnings = [*config.warnings, *config_warnings(config)]
    if args.check:
        from ..config.render import render

        for warning in warnings:
            print(f"bigtopd: warning: {warning}", file=sys.stderr)
        if config.cluster is not None and config.cluster.etcd_password:
            from dataclasses import replace

            # Shown to whoever runs --check: the secret stays out of it.
            config = replace(config, cluster=replace(config.cluster, etcd_password="********"))
        try:
            print(render(config, args.to or "toml"))
        except ValueError as err:
            print(f"bigtopd: {err}", file=sys.stderr)
            return 1
        return 0

    settings = config.settings
    level = args.log_level or settings.loglevel or ("debug" if settings.debug else "info")
    output = args.log_output or settings.logoutput or "-"
    if args.daemon:
        daemonize()
    from . import logs

    try:
        logs.setup(level, output)
    except OSError as err:
        print(f"bigtopd: cannot log to {output}: {err}", file=sys.stderr)
        return 1
    for warning in warnings:
        log.warning("%s", warning)
    raise_fd_limit()
    close_inherited()
    pidfile = args.pidfile or settings.pidfile
    if pidfile and not write_pidfile(pidfile):
        return 1
    try:
        if settings.umask is not None:
            os.umask(settings.umask)
        return run(serve(config, args.config, daemonized=args.daemon))
    finally:
        if pidfile:
            remove_pidfile(pidfile)


def resume(args: argparse.Namespace, fd: str) -> int:
    """The image after ``bigtopctl upgrade``: take over from the previous
    one (core/handover.py). Not daemonized again, no new pidfile: the
    process is the same."""
    from ..core import handover, limits
    from . import logs

    try:
        state = handover.read(int(fd))
        config = handover.config_of(state)
    except (ValueError, handover.HandoverError) as err:
        print(f"bigtopd {__version__}: cannot take over: {err}", file=sys.stderr)
        return 70  # the children are orphaned to the subreaper above, if any: say so loudly
    settings = config.settings
    level = args.log_level or settings.loglevel or ("debug" if settings.debug else "info")
    logs.setup(level, args.log_output or settings.logoutput or "-")
    nofile = state.get("children_nofile")
    limits.children_nofile = tuple(nofile) if nofile else None  # type: ignore[assignment]
    log.info("bigtopd %s took over from bigtopd %s (pid %d)", __version__,
             state.get("bigtop"), os.getpid())
    pidfile = args.pidfile or settings.pidfile
    try:
        if settings.umask is not None:
            os.umask(settings.umask)
        return run(serve(config, args.config, daemonized=args.daemon, taken=state))
    finally:
        if pidfile:
            remove_pidfile(pidfile)


def run(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, with asyncio imported here: ``--check`` and
    ``--handover-check`` never need it. The daemon never speaks TLS, so
    asyncio is kept from loading OpenSSL (about 5 MB of RSS); the block is
    lifted at once, so a hook or plugin can import ssl."""
    blocked = "ssl" not in sys.modules
    if blocked:
        sys.modules["ssl"] = None  # type: ignore[assignment]
    import asyncio

    if blocked:
        del sys.modules["ssl"]
    return asyncio.run(main)


def default_log_dir() -> str:
    """Where a daemonized bigtopd puts output that has no stream configured."""
    if os.geteuid() == 0:
        return "/var/log/bigtop"
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "bigtop", "log")


async def serve(config: Config, path: str, daemonized: bool = False,
                taken: dict[str, Any] | None = None) -> int:
    """``taken``: the state of the image this one re-executed from."""
    import asyncio

    from ..core import Arbiter, ReloadError, SocketError
    from ..tasks import TaskOwner

    loop = asyncio.get_running_loop()
    systemd = None  # systemd runs this daemon as a Type=notify service (docs/boot.md)
    if "NOTIFY_SOCKET" in os.environ:
        from ..sdnotify import ServiceNotifier

        systemd = ServiceNotifier.from_environ()  # out of the children's environment
        systemd.start_watchdog(loop)
    log_dir = (config.settings.log_dir or default_log_dir()) if daemonized else None
    arbiter = Arbiter(config, log_dir=log_dir)
    interrupts = 0
    reload_lock = asyncio.Lock()
    tasks = TaskOwner("bigtopd")  # the signal handlers' work

    def spawn(coro: Coroutine[Any, Any, Any]) -> None:
        tasks.spawn(coro)

    def on_stop(name: str) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            log.info("got %s: stopping every watcher (%s to kill every process now)", name,
                     "again" if name == "SIGINT" else "twice more")
            stopping()
            spawn(arbiter.stop())
        elif name == "SIGINT" or interrupts > 2:
            log.warning("got %s again: killing every process now", name)
            arbiter.kill_all()

    def ready(what: str) -> None:
        if systemd is not None:
            systemd.ready(f"{what}: {len(arbiter.watchers)} watcher(s) of {path}")

    def stopping() -> None:
        if systemd is not None:
            systemd.stopping("stopping every watcher")

    def on_event(topic: str, payload: dict[str, Any]) -> None:
        if arbiter.stopping:  # a stop that `quit` asked for: said at its first event
            stopping()

    async def reload() -> None:
        async with reload_lock:
            if arbiter.stopping:
                return
            log.info("got SIGHUP: reloading %s", path)
            if systemd is not None:
                systemd.reloading(f"reloading {path}")
            try:
                await arbiter.reload_from_file()
            except ConfigError as err:
                log.error("reload refused, nothing changed:\n%s", textwrap.indent(str(err), "  "))
            except ReloadError as err:
                log.error("reload refused, nothing changed: %s", err)
            finally:  # refused or not, the reload is over
                ready("running")

    agent: Any = None  # the cluster agent, with a [cluster] section
    server: Any = None

    async def upgrade() -> str | None:
        """Re-execute the daemon's program (a new version, if one was
        installed) keeping every child, socket and pipe; why not, if it
        cannot (nothing changed then)."""
        from ..core import handover

        # What is under way (a rolling reload, a command) is finished first.
        deadline = loop.time() + UPGRADE_WAIT_S
        while handover.busy(arbiter) and loop.time() < deadline:
            await asyncio.sleep(BUSY_POLL_S)
        async with reload_lock:
            reason = await upgrade_refusal(arbiter)
            if reason is not None:
                log.warning("upgrade refused, nothing changed: %s", reason)
                return reason
            spawn(reexec())
            return None

    async def reexec() -> None:
        from ..core import handover

        async with reload_lock:  # no reload between the check and the exec
            log.info("upgrading: bigtopd %s re-executes %s", __version__,
                     " ".join(sys.orig_argv))
            if agent is not None:
                await agent.detach()
            await server.close(flush=FLUSH_S)  # the reply to `upgrade` leaves first
            state, fds = handover.capture(arbiter)
            if agent is not None:
                state["cluster_lease"] = agent.lease
            await arbiter.output.close()  # everything read is written first
            fd = handover.write(state, fds)
            env = {**os.environ, handover.ENV: str(fd)}
            if systemd is not None:  # for the next image, which says READY=1 (docs/boot.md)
                env.update(systemd.before_exec(f"upgrading: re-executing {sys.executable}"))
            try:
                os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
            except OSError as err:  # past the point of return: as if the new image failed
                log.critical("cannot execute %s: %s; exiting, the processes are left to the "
                             "next bigtopd, which stops them (docs/upgrade.md)",
                             sys.executable, err)
                os._exit(70)

    arbiter.upgrader = upgrade
    if systemd is not None:
        arbiter.bus.subscribe(on_event)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)
    loop.add_signal_handler(signal.SIGHUP, lambda: spawn(reload()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: spawn(upgrade()))
    log.info("bigtopd %s starting (pid %d) with %s", __version__, os.getpid(), path)
    from ..control.endpoints import (
        check_free,
        default_endpoint,
        default_pubsub_endpoint,
        default_stats_endpoint,
    )

    try:
        check_free(config.settings.endpoint or default_endpoint(),
                   config.settings.pubsub_endpoint or default_pubsub_endpoint(),
                   config.settings.stats_endpoint or default_stats_endpoint())
    except OSError as err:
        log.error("%s; nothing started", err)
        return 1
    async with reload_lock:  # a SIGHUP during the start waits for it
        # The control endpoints first: a daemon that cannot be driven
        # starts nothing.
        try:
            server = await start_control(arbiter, config)
        except Exception as err:  # OSError, ValueError, zmq.ZMQError (EMFILE, EADDRINUSE)
            log.error("cannot serve the control endpoints: %s; nothing started", err)
            await tasks.cancel_all()
            return 1
        if config.cluster is not None:
            try:
                from ..cluster.agent import make_agent

                agent = arbiter.cluster = make_agent(arbiter, config.cluster)
            except ImportError as err:
                log.error("[cluster] needs the cluster extra (pip install 'bigtop[cluster]'): "
                          "%s; nothing started", err)
                await server.close()
                await tasks.cancel_all()
                return 1
        if taken is None:
            starting = tasks.spawn(arbiter.start(), name="start")
        else:
            starting = tasks.spawn(arbiter.resume(taken), name="resume")
            if agent is not None:
                agent.lease = int(taken.get("cluster_lease") or 0)
        await arbiter.settled.wait()
        failed = starting.done() and (starting.cancelled() or starting.exception() is not None)
        if not failed:
            log.info(SETTLED_LOG)
            ready("running" if taken is None else f"bigtopd {__version__} took over")
            if agent is not None:  # the node's own watchers first, then the cluster's
                agent.start()
        try:
            await starting
        except asyncio.CancelledError:
            if not (starting.cancelled() and arbiter.stopping):
                raise  # not the stop's doing: this coroutine itself is cancelled
        except SocketError as err:
            log.error("%s; nothing started", err)
            await server.close()
            await tasks.cancel_all()
            return 1
        except BaseException:
            await _stop_on_error(arbiter)
            raise
    try:
        await arbiter.stopped.wait()
    except BaseException:
        await _stop_on_error(arbiter)
        raise
    if agent is not None:
        await agent.close()
    await server.close()
    await tasks.cancel_all()
    left = asyncio.all_tasks() - {asyncio.current_task()}
    if left:  # a bug: every task has an owner that ends it
        log.error("tasks left at shutdown: %s", ", ".join(sorted(t.get_name() for t in left)))
    if systemd is not None:
        systemd.close()
    log.info("stopped")
    return 0


async def upgrade_refusal(arbiter: Arbiter) -> str | None:
    """Why the daemon cannot re-execute now: the state it is in, or what
    the program it would execute says of that state (run first, on the
    state without its fds)."""
    from ..core import handover

    reason = handover.refusal(arbiter)
    if reason is not None:
        return reason
    status, said = await _ask_new_program(arbiter, json.dumps(handover.describe(arbiter)))
    if status is None:
        return f"the new program did not answer within {UPGRADE_CHECK_S:g} s"
    if status != 0:
        lines = said.strip().splitlines()
        return f"the new program refuses: {lines[-1] if lines else f'exit {status}'}"
    return None


async def _ask_new_program(arbiter: Arbiter, state: str) -> tuple[int | None, str]:
    """Run ``bigtopd --handover-check`` with the state on its stdin: its
    exit status (None: no answer in time) and what it said. Its exit comes
    through the daemon's reaper, which reaps every child of the daemon."""
    import asyncio
    import subprocess

    from ..core.reaper import exit_code

    check = subprocess.Popen([sys.executable, *sys.orig_argv[1:], "--handover-check"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def reaped(status: int) -> None:
        if not ended.done():
            ended.set_result(status)

    arbiter.reaper.watch(check.pid, reaped)

    def talk() -> str:
        assert check.stdin is not None and check.stderr is not None
        with contextlib.suppress(BrokenPipeError):
            check.stdin.write(state.encode())
            check.stdin.close()
        return check.stderr.read(64 * 1024).decode(errors="replace")

    try:
        async with asyncio.timeout(UPGRADE_CHECK_S):
            said = await asyncio.to_thread(talk)
            status = exit_code(await ended)
    except TimeoutError:
        check.kill()
        await ended
        return None, ""
    finally:
        check.returncode = -1  # reaped by the daemon's reaper: Popen must not wait
        for pipe in (check.stdin, check.stderr):
            if pipe is not None:
                pipe.close()
    return status, said


async def _stop_on_error(arbiter: Arbiter) -> None:
    """The daemon is going down on an error it did not expect: stop what it
    started first, so that no process is left without a manager."""
    import asyncio

    log.critical("bigtopd is exiting on an unexpected error: stopping every process first",
                 exc_info=True)
    try:
        await asyncio.wait_for(asyncio.shield(arbiter.stop()), STOP_ON_ERROR_S)
    except BaseException:
        arbiter.kill_all()


async def start_control(arbiter: Arbiter, config: Config) -> ControlServer:
    """Bind the control and event endpoints: private ipc:// sockets by
    default; tcp:// ones with CurveZMQ keys (or an explicit insecure)."""
    from ..control.endpoints import (
        default_endpoint,
        default_pubsub_endpoint,
        default_stats_endpoint,
        ensure_private_dir,
        runtime_dir,
    )
    from ..control.server import ControlServer

    settings = config.settings
    endpoint = settings.endpoint or default_endpoint()
    pubsub = settings.pubsub_endpoint or default_pubsub_endpoint()
    stats = settings.stats_endpoint or default_stats_endpoint()
    if not (settings.endpoint and settings.pubsub_endpoint and settings.stats_endpoint):
        ensure_private_dir(runtime_dir())
    curve = None
    tcp = any(e.startswith("tcp://") for e in (endpoint, pubsub, stats))
    if tcp and settings.server_key and settings.authorized_keys:
        import zmq.auth

        public, secret = zmq.auth.load_certificate(settings.server_key)
        if secret is None:
            raise ValueError(f"{settings.server_key} holds no secret key")
        curve = (public, secret, settings.authorized_keys)
    elif tcp and settings.insecure:
        log.warning("insecure = true: anyone who can reach %s controls this daemon", endpoint)
    owner = None
    if settings.endpoint_owner:
        import pwd

        owner_name = settings.endpoint_owner
        owner = int(owner_name) if owner_name.isdigit() else pwd.getpwnam(owner_name).pw_uid
    server = ControlServer(arbiter, endpoint, pubsub, curve, owner, stats_endpoint=stats)
    await server.start()
    arbiter.endpoints = {"endpoint": endpoint, "pubsub_endpoint": pubsub,
                         "stats_endpoint": stats}
    return server


def daemonize() -> None:
    """Detach: double fork, new session, stdio on /dev/null."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def write_pidfile(path: str) -> bool:
    try:
        with open(path) as handle:
            old = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        old = 0
    if old and old != os.getpid():
        try:
            os.kill(old, 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            log.error("pidfile %s names pid %d, which is running", path, old)
            return False
        else:
            log.error("pidfile %s names pid %d, which is running", path, old)
            return False
    try:
        with open(path, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    except OSError as err:
        log.error("cannot write pidfile %s: %s", path, err.strerror)
        return False
    return True


def remove_pidfile(path: str) -> None:
    try:
        with open(path) as handle:
            if int(handle.read().strip() or 0) != os.getpid():
                return
        os.unlink(path)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
