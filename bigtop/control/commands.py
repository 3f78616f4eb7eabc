"""The command table: every command the daemon answers, Circus's and bigtop's.

Each command checks its properties (``validate``, raising MessageError),
then ``execute`` calls the arbiter's public methods and returns the reply's
fields. Commands that act on watchers take their place in each watcher's queue
(``Arbiter.queued``), so commands on one watcher run in arrival order, and without ``waiting`` they
reply at once and carry on in the background (as Circus does).
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import logging
import os
import re
import shlex
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import ConfigError, WatcherSpec, to_bool
from ..config.bounds import MAX_WATCHERS, count_problem
from ..config.build import update_watcher
from ..config.convert import to_signal
from ..config.names import name_problem
from .protocol import CommandError, MessageError

if TYPE_CHECKING:
    from ..core import Arbiter
    from ..core.watcher import Watcher

log = logging.getLogger("bigtop.control")

Reply = dict[str, Any] | None
Handler = Callable[["Arbiter", dict[str, Any]], Any]


# What only reads: every other command changes something, and is an action
# of the activity log (activity.py).
READS = frozenset({
    "numprocesses", "numwatchers", "options", "get", "globaloptions", "list", "status",
    "listsockets", "stats", "dstats", "depends", "logs", "version", "diff", "listen",
    "history", "cluster_nodes", "cluster_placement"})


class Command:
    """A handler that is a plain function is *instant*: it is answered
    within the loop callback that read the request. Coroutine handlers run
    as tasks."""

    def __init__(self, name: str, handler: Handler, required: tuple[str, ...] = (),
                 accepts: tuple[str, ...] = (), doc: str = ""):
        self.name = name
        self.handler = handler
        self.required = required
        self.accepts = frozenset((*required, *accepts, *ALWAYS_ACCEPTED))
        self.doc = doc
        self.instant = not asyncio.iscoroutinefunction(handler)
        self.changes = name not in READS

    def validate(self, props: dict[str, Any]) -> None:
        for key in self.required:
            if key not in props:
                raise MessageError(f"message invalid {key!r} is missing")
        for key in props:
            if key not in self.accepts:  # a typo must not widen what a command does
                near = difflib.get_close_matches(key, self.accepts, 1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise MessageError(f"{self.name} takes no property {key!r}{hint}; it takes "
                                   f"{', '.join(sorted(self.accepts))}")

    def run(self, arbiter: Arbiter, props: dict[str, Any]) -> Reply:
        result: Reply = self.handler(arbiter, props)
        return result

    async def execute(self, arbiter: Arbiter, props: dict[str, Any]) -> Reply:
        result: Reply = await self.handler(arbiter, props)
        return result


COMMANDS: dict[str, Command] = {}
# Taken by every command: Circus's clients send ``waiting`` with most (where
# a command has nothing to wait for, it is answered as without).
ALWAYS_ACCEPTED = ("waiting",)


def command(name: str, *required: str,
            accepts: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    """Register a handler for ``name``: ``required`` properties must be
    there, and no property but those and ``accepts`` may be."""
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, handler, required, accepts,
                                 (handler.__doc__ or "").strip())
        return handler

    return register


# -- helpers -------------------------------------------------------------

def text(props: dict[str, Any], key: str) -> str:
    value = props[key]
    if not isinstance(value, str):
        raise MessageError(f"{key!r} must be a string")
    return value


def flag(props: dict[str, Any], key: str, default: bool = False) -> bool:
    value = props.get(key, default)
    if isinstance(value, str):
        try:
            return to_bool(value)
        except ValueError:
            raise MessageError(f"{key!r} must be true or false") from None
    return bool(value)


def number(props: dict[str, Any], key: str, default: int) -> int:
    """An integer property: a JSON integer, or a string of digits (as
    Circus's clients send some); 2.5, 1e20, true and "3x" are not."""
    value = props.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise MessageError(f"{key!r} must be an integer")


def room(arbiter: Arbiter, name: str, wanted: int) -> None:
    """Refuse watcher ``name`` wanting ``wanted`` processes past the
    daemon's bound (config/bounds.py)."""
    counts = {w.name: w.spec.numprocesses for w in arbiter.watchers.values()}
    counts[name] = wanted
    if (problem := count_problem(counts, arbiter.config.settings.max_processes)) is not None:
        raise MessageError(problem)


def watcher(arbiter: Arbiter, props: dict[str, Any], key: str = "name") -> Watcher:
    name = text(props, key)
    found = arbiter.get_watcher(name)
    if found is None:
        raise MessageError(f"program {name} not found")
    return found


def matching(arbiter: Arbiter, props: dict[str, Any]) -> list[Watcher]:
    """Watchers named by ``name`` with ``match`` = simple, glob or regex."""
    name = text(props, "name")
    how = props.get("match", "glob")
    if how == "simple":
        return [watcher(arbiter, props)]
    if how == "glob":
        pattern = re.compile(fnmatch.translate(name.lower()))
    elif how == "regex":
        try:
            pattern = re.compile(name.lower())
        except re.error as err:
            raise MessageError(f"invalid regex {name!r}: {err}") from None
    else:
        raise MessageError(f"unknown match method {how}")
    found = [w for w in arbiter.watchers.values() if pattern.match(w.name.lower())]
    if not found:
        raise MessageError(f"program {name} not found")
    return found


async def in_background(arbiter: Arbiter, props: dict[str, Any],
                        work: Callable[[], Awaitable[Any]]) -> Any:
    """With ``waiting``, the result; otherwise reply at once and let the
    arbiter's task owner run the work on."""
    if flag(props, "waiting"):
        return await work()

    async def run() -> None:
        try:
            await work()
        except Exception as err:
            log.error("background command failed: %s", err)

    arbiter.tasks.spawn(run(), name="background command")
    return None


def queued(arbiter: Arbiter, props: dict[str, Any], watchers: list[Watcher],
           work: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
    """Queue the work on these watchers (after the commands queued before
    on any of them), in the background unless ``waiting``."""

    async def in_turn() -> Any:
        async with arbiter.queued(watchers):
            return await work()

    return in_background(arbiter, props, in_turn)


def pids(w: Watcher) -> set[int]:
    return {p.pid for p in w.processes.values()}


# -- watchers: lifecycle -------------------------------------------------

async def _lifecycle(arbiter: Arbiter, props: dict[str, Any], action: str) -> Reply:
    targets = matching(arbiter, props) if "name" in props else list(arbiter.watchers.values())
    single = "name" in props and len(targets) == 1

    async def work() -> Reply:
        before = {w.name: pids(w) for w in targets}
        if action == "start":
            chosen = targets if single else [w for w in targets if w.spec.autostart]
            await arbiter.start_watchers(chosen)
        elif action == "stop":
            await arbiter.stop_watchers(targets)
        else:
            await arbiter.stop_watchers(targets)
            await arbiter.start_watchers(targets)
        if not single:
            return None
        if action == "stop":
            return {"info": None, "name": targets[0].name}
        now, old = pids(targets[0]), before[targets[0].name]
        info = {"started": sorted(now - old), "kept": sorted(now & old)}
        if action == "restart":
            info["stopped"] = sorted(old - now)
        return {"info": info, "name": targets[0].name}

    return await queued(arbiter, props, targets, work)


@command("start", accepts=("name", "match"))
async def start(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Start watchers (all, or those matching ``name``), dependencies first."""
    return await _lifecycle(arbiter, props, "start")


@command("stop", accepts=("name", "match"))
async def stop(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Stop watchers (all, or those matching ``name``), dependents first."""
    return await _lifecycle(arbiter, props, "stop")


@command("restart", accepts=("name", "match"))
async def restart(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Stop then start watchers (all, or those matching ``name``)."""
    return await _lifecycle(arbiter, props, "restart")


@command("reload", accepts=("name", "match", "graceful", "sequential", "rolling"))
async def reload(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Replace the processes of one watcher (``name``) or all. ``graceful``
    (default): new processes first, old ones stopped once the new are
    ready; ``sequential`` or ``rolling``: one process at a time (default:
    the watcher's ``rolling_reload``);
    ``graceful: false``: stop then start."""
    targets = [watcher(arbiter, props)] if "name" in props else list(arbiter.watchers.values())
    graceful = flag(props, "graceful", True)
    one_by_one = None  # the watcher's rolling_reload
    if "sequential" in props or "rolling" in props:
        one_by_one = flag(props, "sequential") or flag(props, "rolling")

    async def work() -> Reply:
        from ..core import ReloadAborted

        before = {w.name: pids(w) for w in targets}
        for target in sorted(targets, key=lambda w: -w.spec.priority):
            try:
                await target.reload(graceful=graceful, sequential=one_by_one)
            except ReloadAborted as err:
                raise CommandError(f"{target.name}: reload aborted, old processes kept: "
                                   f"{err}") from None
        if "name" not in props:
            return None
        now, old = pids(targets[0]), before[targets[0].name]
        return {"info": {"stopped": sorted(old - now), "started": sorted(now - old),
                         "kept": sorted(now & old)}, "name": targets[0].name}

    return await queued(arbiter, props, targets, work)


@command("kill", "name", accepts=("pid", "signum", "graceful_timeout"))
async def kill(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Stop the processes of a watcher (or one, ``pid``) with ``signum``
    (default: its stop_signal) and ``graceful_timeout``; they are replaced."""
    target = watcher(arbiter, props)
    pid = number(props, "pid", 0) or None
    signum = signal_of(props["signum"]) if props.get("signum") is not None else None
    timeout = props.get("graceful_timeout")
    try:
        timeout = float(timeout) if timeout is not None else None
    except (TypeError, ValueError):
        raise MessageError("'graceful_timeout' must be a number") from None
    if pid is not None and pid not in pids(target):
        raise MessageError(f"process {pid} not found in {target.name!r}")
    return await queued(arbiter, props, [target], lambda: target.kill(pid, signum, timeout))


@command("signal", "name", "signum", accepts=("pid", "childpid", "children", "recursive"))
def send_signal(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Send ``signum`` to a watcher's processes, or to ``pid``; ``children``
    adds their children, ``recursive`` all their descendants, ``childpid``
    targets one child of ``pid``."""
    target = watcher(arbiter, props)
    signum = signal_of(props["signum"])
    pid = number(props, "pid", 0) or None
    childpid = number(props, "childpid", 0) or None
    if childpid and not pid:
        raise MessageError("cannot specify childpid without pid")
    try:
        sent = target.send_signal(signum, pid, flag(props, "children"),
                                  flag(props, "recursive"), childpid)
    except ProcessLookupError as err:
        raise MessageError(str(err)) from None
    return {"pids": sent}


def signal_of(value: Any) -> int:
    try:
        return to_signal(value)
    except ValueError:
        raise MessageError("signal invalid") from None


# -- watchers: number of processes ----------------------------------------

async def _scale(arbiter: Arbiter, props: dict[str, Any], sign: int) -> Reply:
    target = watcher(arbiter, props)
    count = number(props, "nb", 1)
    if count < 0:
        raise MessageError("'nb' must not be negative")
    if target.spec.singleton:
        return {"numprocesses": target.spec.numprocesses, "singleton": True}
    if sign > 0:  # now, for the reply; again in turn, with what was queued before
        room(arbiter, target.name, target.spec.numprocesses + count)

    async def work() -> dict[str, Any]:
        # Counted under the lock, so queued incr/decr all add up.
        was = target.spec.numprocesses
        wanted = max(was + sign * count, 0)
        if sign > 0:
            room(arbiter, target.name, wanted)
        return {"numprocesses": await target.set_numprocesses(wanted), "was": was}

    return await queued(arbiter, props, [target], work)


@command("incr", "name", accepts=("nb",))
async def incr(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Add ``nb`` (default 1) processes to a watcher."""
    return await _scale(arbiter, props, 1)


@command("decr", "name", accepts=("nb",))
async def decr(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Remove ``nb`` (default 1) processes from a watcher, newest slots first."""
    return await _scale(arbiter, props, -1)


@command("numprocesses", accepts=("name",))
def numprocesses(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Processes running: in all watchers, or in ``name``."""
    if "name" in props:
        target = watcher(arbiter, props)
        return {"numprocesses": len(target.processes), "watcher_name": props["name"]}
    return {"numprocesses": sum(len(w.processes) for w in arbiter.watchers.values())}


@command("numwatchers")
def numwatchers(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """How many watchers there are."""
    return {"numwatchers": len(arbiter.watchers)}


# -- watchers: adding, removing, options -----------------------------------

@command("add", "name", "cmd", accepts=("args", "options", "start"))
async def add(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Add a watcher: ``name``, ``cmd``, ``args``, ``options`` (any watcher
    option, checked as in a file), ``start``."""
    name, cmd = text(props, "name"), text(props, "cmd")
    if (problem := name_problem(name)) is not None:
        raise MessageError(problem)
    if arbiter.get_watcher(name) is not None:
        raise MessageError(f"a watcher named {name!r} already exists")
    options = props.get("options") or {}
    if not isinstance(options, dict):
        raise MessageError("'options' property should be an object")
    changes = dict(options)
    if props.get("args") is not None:
        args = props["args"]
        if isinstance(args, list):
            if not all(isinstance(arg, str) for arg in args):
                raise MessageError("'args' must be a string or a list of strings")
            args = shlex.join(args)
        changes["args"] = args
    try:
        spec = update_watcher(WatcherSpec(name=name, cmd=cmd), changes)
    except ConfigError as err:
        raise MessageError(str(err)) from None
    references(arbiter, spec)
    room(arbiter, name, spec.numprocesses)
    added = await arbiter.add_watcher(spec)
    if not flag(props, "start"):
        return None

    async def work() -> dict[str, Any]:
        await arbiter.start_watchers([added])
        return {"started": sorted(pids(added)), "kept": []}

    return await queued(arbiter, props, [added], work)


@command("rm", "name", accepts=("nostop",))
async def rm(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Remove a watcher, stopping its processes (unless ``nostop``)."""
    target = watcher(arbiter, props)
    nostop = flag(props, "nostop")
    return await queued(arbiter, props, [target],
                        lambda: arbiter.rm_watcher(target.name, nostop))


@command("set", "name", "options")
async def set_options(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Change options of a watcher; all are checked before any is applied.
    A change to how processes start replaces them gracefully."""
    target = watcher(arbiter, props)
    options = props["options"]
    if not isinstance(options, dict):
        raise MessageError("'options' property should be an object")
    if "name" in options:
        raise MessageError("a watcher cannot be renamed")
    try:
        spec = update_watcher(target.spec, options)
    except ConfigError as err:
        raise MessageError(str(err)) from None
    references(arbiter, spec)
    room(arbiter, target.name, spec.numprocesses)

    async def work() -> None:
        from ..core import ReloadAborted

        try:
            await target.update(spec, graceful=True)
        except ReloadAborted as err:
            raise CommandError(f"{target.name}: reload aborted, old options and processes "
                               f"kept: {err}") from None

    return await queued(arbiter, props, [target], work)


def references(arbiter: Arbiter, spec: WatcherSpec) -> None:
    try:
        arbiter.check_references(spec)
    except ValueError as err:
        raise MessageError(str(err)) from None


@command("options", "name")
def options(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Every option of a watcher."""
    return {"options": dict(sorted(option_values(watcher(arbiter, props)).items()))}


def option_values(w: Watcher) -> dict[str, Any]:
    """The options, with Circus's names for streams too, and the directory
    processes really run in."""
    import os

    values = w.spec.option_values()
    values["stdout_stream_conf"] = values["stdout_stream"]
    values["stderr_stream_conf"] = values["stderr_stream"]
    values["working_dir"] = w.spec.working_dir or os.getcwd()
    return values


@command("get", "name", "keys")
def get(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """The value of some options (``keys``) of a watcher."""
    values = option_values(watcher(arbiter, props))
    keys = props["keys"]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise MessageError("'keys' must be a list of option names")
    out = {}
    for key in keys:
        if key not in values:
            raise MessageError(f"{key!r} option not found")
        out[key] = values[key]
    return {"options": out}


@command("globaloptions", accepts=("option",))
def globaloptions(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """The daemon's options, or one (``option``)."""
    settings = arbiter.config.settings
    values = {
        "endpoint": arbiter.endpoints.get("endpoint"),
        "stats_endpoint": arbiter.endpoints.get("stats_endpoint"),
        "pubsub_endpoint": arbiter.endpoints.get("pubsub_endpoint"),
        "check_delay": settings.check_delay,
        "multicast_endpoint": settings.multicast_endpoint,
        "warmup_delay": settings.warmup_delay,
        "umask": settings.umask,
        "pidfile": settings.pidfile,
        "stats_interval": settings.stats_interval,
    }
    if "option" in props:
        key = props["option"]
        if not isinstance(key, str) or key not in values:
            raise MessageError(f"{key!r} not an existing option")
        return {"options": {key: values[key]}}
    return {"options": values}


# -- reading state ---------------------------------------------------------

@command("list", accepts=("name",))
def list_(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Watcher names, or the pids of one watcher (``name``)."""
    if "name" in props:
        target = watcher(arbiter, props)
        return {"pids": [p.pid for _, p in sorted(target.processes.items())]}
    return {"watchers": sorted(name.lower() for name in arbiter.watchers)}


@command("status", accepts=("name", "details"))
def status(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """The state of one watcher (``name``) or of all; with ``details``
    (bigtop), also processes running/wanted, uptime, restarts, last exit."""
    if "name" in props:
        target = watcher(arbiter, props)
        reply: dict[str, Any] = {"status": target.status}
        if flag(props, "details"):
            reply["details"] = details(target)
        return reply
    reply = {"statuses": {w.name: w.status for w in arbiter.watchers.values()}}
    if flag(props, "details"):
        reply["details"] = {w.name: details(w) for w in arbiter.watchers.values()}
    return reply


def details(w: Watcher) -> dict[str, Any]:
    import time

    now = time.time()
    started = [p.started for p in w.processes.values() if p.started]
    return {
        "status": w.status,
        "running": len(w.processes),
        "ready": sum(p.is_ready for p in w.processes.values()),
        "wanted": w.wanted_processes,
        "numprocesses": w.spec.numprocesses,
        "uptime": round(now - min(started), 3) if started else None,
        "restarts": w.restarts,
        "last_exit": last_exit(w),
        "failure": w.failure,
        "dropped_lines": w.output_drops.lines,
        "dropped_bytes": w.output_drops.bytes,
        "pids": {str(wid): p.pid for wid, p in sorted(w.processes.items())},
    }


def last_exit(w: Watcher) -> dict[str, Any] | None:
    """Its last exit; for a failed watcher, the last one that failed (not
    the stops of its other processes that followed)."""
    exits = list(w.last_exits)
    if w.state == "failed":
        exits = [e for e in exits if not e["requested"]] or exits
    return exits[-1] if exits else None


@command("listsockets")
def listsockets(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """The daemon's sockets: fd, name, backlog and address (host and port,
    or path), and from the kernel the connections waiting to be accepted
    (``accept_queue``; null when it does not say)."""
    return {"sockets": sorted(socket_info(arbiter), key=lambda s: s["fd"])}


def socket_info(arbiter: Arbiter) -> list[dict[str, Any]]:
    from ..core.sockdiag import accept_queues

    bound = [sock for sock in arbiter.sockets.values() if sock.sock is not None]
    queues = accept_queues([sock.sock for sock in bound if sock.sock is not None])
    out = []
    for sock in bound:
        entry: dict[str, Any] = {"fd": sock.fd, "name": sock.name, "backlog": sock.spec.backlog}
        if sock.spec.path:
            entry["path"] = sock.spec.path
        else:
            entry["host"], entry["port"] = sock.bound_address()
        queue = queues.get(sock.fd)
        entry["accept_queue"] = queue[0] if queue else None
        out.append(entry)
    return out


@command("stats", accepts=("name", "process", "extended"))
async def stats(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Resource use of every process, of one watcher (``name``), or of one
    process (``name`` and ``process``); a process's figures include its
    descendants, listed in ``children``. Sampled off the loop, by the same
    sampler as the stats endpoint (bigtop.stats)."""
    from ..stats.sampler import Sampler, extended_stats_hook

    sampler = Sampler.of(arbiter)
    extended = extended_stats_hook if flag(props, "extended") else None
    if "name" in props:
        target = watcher(arbiter, props)
        if "process" in props:
            pid = number(props, "process", 0)
            if not any(p.pid == pid for p in target.processes.values()):
                raise MessageError(f"process {pid} not found in {target.name!r}")
            infos, _ = await sampler.query([target], pid=pid, extended=extended)
            return {"process": pid,
                    "info": infos[target.name].get(str(pid), "No such process (stopped?)")}
        infos, _ = await sampler.query([target], extended=extended)
        return {"name": props["name"], "info": infos[target.name]}
    infos, sockets = await sampler.query(list(arbiter.watchers.values()), sockets=True,
                                         extended=extended)
    return {"infos": infos, "sockets": sockets}


@command("dstats")
async def dstats(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Resource use of the daemon itself; ``sampler`` (bigtop) says what the
    statistics sampler does (rounds published, subscriptions, last round),
    ``tasks`` (bigtop) how many asyncio tasks the daemon has."""
    from ..stats.sampler import Sampler

    sampler = Sampler.of(arbiter)
    status = sampler.status()  # as it was before this command asked
    return {"info": await sampler.daemon(), "sampler": status,
            "tasks": len(asyncio.all_tasks())}


@command("depends", accepts=("name",))
def depends(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: the dependency graph, or one watcher's dependencies and dependents."""
    if "name" in props:
        target = watcher(arbiter, props)
        dependents = sorted(w.name for w in arbiter.watchers.values()
                            if target.name in w.spec.depends_on)
        return {"depends_on": list(target.spec.depends_on), "dependents": dependents}
    return {"depends": {w.name: list(w.spec.depends_on) for w in arbiter.watchers.values()}}


LOG_LINES_MAX = 10_000  # lines of one watcher a `logs` reply gives at most


@command("logs", accepts=("name", "lines", "stream", "since"))
async def logs(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: the last output lines of one watcher (``name``), of several
    (a list of names) or of all: ``lines`` of each (default 20, at most
    10000), of one ``stream`` (stdout or stderr) or of both merged by time,
    and with ``since`` (Unix time) only those written at or after it. They
    come from the stream's files (and their rotated backups) when it has
    some, else from the 256 KiB kept in memory: time, pid, wid, stream, line,
    null where a file does not say."""
    count = max(0, min(number(props, "lines", 20), LOG_LINES_MAX))
    found = await arbiter.read_logs(log_targets(arbiter, props), count, log_streams(props),
                                    moment(props, "since"))
    return {"lines": {name: [entry._asdict() for entry in lines]
                      for name, lines in found.items()}}


def moment(props: dict[str, Any], key: str) -> float | None:
    import math

    value = props.get(key)
    if value is None:
        return None
    problem = MessageError(f"{key!r} must be a time in seconds since the epoch")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise problem
    try:
        when = float(value)
    except (ValueError, OverflowError):
        raise problem from None
    if not math.isfinite(when):
        raise problem
    return when


def log_streams(props: dict[str, Any]) -> tuple[str, ...]:
    stream = props.get("stream")
    if stream is None:
        return ("stdout", "stderr")
    if stream not in ("stdout", "stderr"):
        raise MessageError("'stream' must be stdout or stderr")
    return (stream,)


def log_targets(arbiter: Arbiter, props: dict[str, Any]) -> list[Watcher]:
    names = props.get("name")
    if names is None:
        return list(arbiter.watchers.values())
    if isinstance(names, str):
        return [watcher(arbiter, props)]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise MessageError("'name' must be a watcher name or a list of them")
    found: list[Watcher] = []
    for name in names:
        target = watcher(arbiter, {"name": name})
        if target not in found:
            found.append(target)
    return found


@command("version")
def version(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: the daemon's version and the Circus protocol it speaks."""
    return {"version": __version__, "circus": "0.19"}


# -- the daemon ------------------------------------------------------------

@command("reloadconfig")
async def reloadconfig(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Read the configuration file again and apply the difference."""
    from ..core import ReloadError

    async def work() -> dict[str, Any]:
        try:
            return {"changes": await arbiter.reload_from_file()}
        except ConfigError as err:
            raise CommandError(f"configuration not reloaded, nothing changed:\n{err}") from None
        except ReloadError as err:
            raise CommandError(f"configuration not reloaded, nothing changed: {err}") from None

    return await in_background(arbiter, props, work)


def _run_time_changes(arbiter: Arbiter) -> tuple[Any, Any, str]:
    """The file's configuration as it is now, what the daemon runs that it
    does not say (plugins, the web console and cluster watchers are not
    the file's to say), and the state file. Blocking: run in a thread."""
    from ..config import load, saved
    from ..config.build import with_httpd

    if not arbiter.config.files:
        raise MessageError("this daemon runs no configuration file")
    main = arbiter.config.files[0]
    try:
        base = with_httpd(load(main, strict=arbiter.config.strict))
    except ConfigError as err:
        raise CommandError(f"{main} does not read now, nothing compared:\n{err}") from None
    owned = set(getattr(arbiter.cluster, "owned", ()) or ())
    running = tuple(w.spec for name, w in sorted(arbiter.watchers.items())
                    if name not in arbiter.plugins and name not in owned)
    return base, saved.compare(base, running), saved.state_file(base)


@command("save")
async def save(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: keep what was changed at run time (add, rm, set, incr, decr)
    across restarts, in the state file beside the configuration."""
    from ..config import saved

    base, changes, path = await asyncio.to_thread(_run_time_changes, arbiter)
    try:
        await asyncio.to_thread(saved.write, path, changes, base.files[0])
    except OSError as err:
        raise CommandError(f"cannot write {path}: {err.strerror}; nothing saved") from None
    return {"file": path, "saved": changes.as_dict(), "lines": changes.lines()}


@command("diff")
async def diff(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: what the running daemon has that its configuration file does
    not (``lines``), and whether that is saved (``unsaved``: what a
    ``save`` would add to the state file)."""
    from ..config import saved

    base, changes, path = await asyncio.to_thread(_run_time_changes, arbiter)
    try:
        kept = await asyncio.to_thread(saved.read, path)
    except ConfigError as err:
        kept = None
        log.warning("%s", err)
    unsaved = [line for line in changes.lines() if kept is None or line not in kept.lines()]
    return {"file": path, "changes": changes.as_dict(), "lines": changes.lines(),
            "unsaved": unsaved}


@command("history", accepts=("limit",))
def history(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: the last actions taken on the daemon (``limit``, default 100,
    at most the 1000 it keeps): time, command, properties, ``by`` (who
    asked, from where, as the client said), status and reason."""
    from .activity import MAX_ENTRIES

    limit = number(props, "limit", 100)
    if not 0 <= limit <= MAX_ENTRIES:
        raise MessageError(f"'limit' must be between 0 and {MAX_ENTRIES}")
    activity = arbiter.activity
    return {"history": activity.last(limit) if activity is not None else []}


@command("quit")
async def quit_(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Stop every watcher and the daemon (the server then stops it)."""
    if flag(props, "waiting"):
        await arbiter.stop_watchers(list(arbiter.watchers.values()))
    return None


@command("listen")
def listen(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """Events are read from the pub/sub endpoint, not here."""
    raise MessageError("invalid message. use a pub/sub socket")



# -- the cluster -------------------------------------------------------------

APPLY_TIMEOUT_S = 30.0  # a file of many watchers: one transaction per hundred

async def _cluster(arbiter: Arbiter, call: Callable[[Any], Awaitable[Any]],
                   timeout: float | None = None) -> Any:
    """Run ``call(agent)``: an error if this daemon is no node, or if etcd
    cannot be reached (within the store's timeout, or ``timeout``)."""
    from ..cluster.store import CALL_TIMEOUT_S, StoreError

    if arbiter.cluster is None:
        raise CommandError("this daemon is not a cluster node (no [cluster] section)")
    try:
        async with asyncio.timeout(timeout or CALL_TIMEOUT_S):
            return await call(arbiter.cluster)
    except StoreError as err:
        raise CommandError(f"etcd: {err}") from None
    except TimeoutError:
        raise CommandError(f"etcd: no answer within {timeout or CALL_TIMEOUT_S:g} s") from None


@command("cluster_nodes")
async def cluster_nodes(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: the nodes registered in the cluster (their records), and its leader."""
    return await _cluster(arbiter, lambda agent: agent.nodes())


@command("cluster_apply", "text", accepts=("file",))
async def cluster_apply(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: store the cluster watchers a file declares (``text``; ``file``
    names it in errors, and ``.toml`` reads it as TOML). All are checked
    first; any problem stores none."""
    source, file = text(props, "text"), props.get("file", "cluster.ini")
    if not isinstance(file, str) or len(file) > 4096:
        raise MessageError("'file' must be a file name")

    async def apply(agent: Any) -> Any:
        try:
            return await agent.apply(source, file)
        except ConfigError as err:
            raise CommandError(f"nothing applied:\n{err}") from None

    return await _cluster(arbiter, apply, APPLY_TIMEOUT_S)


@command("cluster_rm", "names")
async def cluster_rm(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: remove cluster watchers (``names``): the nodes running them stop them."""
    names = props["names"]
    if isinstance(names, str):
        names = [names]
    if not (isinstance(names, list) and 0 < len(names) <= MAX_WATCHERS
            and all(isinstance(n, str) for n in names)):
        raise MessageError(f"'names' must be a name or a list of at most {MAX_WATCHERS} names")

    async def remove(agent: Any) -> Any:
        try:
            return await agent.remove(names)
        except KeyError as err:
            raise CommandError(f"no cluster watcher {err.args[0]}") from None

    return await _cluster(arbiter, remove)


@command("cluster_forget", "name")
async def cluster_forget(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: drop a node that is down from the node list."""
    name = text(props, "name")

    async def forget(agent: Any) -> Any:
        try:
            return await agent.forget(name)
        except KeyError:
            raise CommandError(f"no node {name} in the cluster") from None
        except ValueError as err:
            raise CommandError(f"{err}: only a node that is down can be forgotten") from None

    return await _cluster(arbiter, forget)


@command("cluster_placement")
async def cluster_placement(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: each cluster watcher, its placement, the nodes it is assigned to
    and what each made of it."""
    return await _cluster(arbiter, lambda agent: agent.placement())


@command("upgrade")
async def upgrade(arbiter: Arbiter, props: dict[str, Any]) -> Reply:
    """bigtop: re-execute the daemon's program (a new version, if one was
    installed) keeping every process, socket and pipe; refused, with
    nothing changed, when the daemon or the new program cannot."""
    if arbiter.upgrader is None:
        raise CommandError("this daemon cannot re-execute itself")
    reason = await arbiter.upgrader()
    if reason is not None:
        raise CommandError(f"upgrade refused, nothing changed: {reason}")
    return {"upgrading": True, "pid": os.getpid()}
