"""bigtopd re-executing itself (``bigtopctl upgrade``, SIGUSR2) without its
children noticing: what one image hands to the next.

The children are the daemon's children through an exec (same pid), so
nothing about them has to move: their pipes' read ends, the listening
sockets and the systemd-notify socket are left open across the exec (each
fd marked inheritable), and a versioned state says which fd is what. The
configuration the daemon runs (its watchers as they are now: those added
with ``add``, options changed with ``set``) travels as the TOML that
``bigtopd --check --to toml`` would print, so the next image reads it with
its own reader. The unfinished line of each pipe travels too, and the
output read so far is written out before the exec: no byte is lost, split
or repeated.

What does not travel: the restart policy's counters (backoff starts
afresh), output kept only in memory for ``logs`` (the files have it),
timers (a process in backoff is started again at once). Commands in
progress (a rolling reload, say) are finished first: the upgrade waits for
them (``busy``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from typing import Any

from .. import __version__
from ..config import Config

# The arbiter, untyped here: it imports this module (no import circle in core).
Arbiter = Any

VERSION = 1  # of the state below; an image reads the versions it knows
ENV = "BIGTOP_HANDOVER"  # the fd of the state, in the next image's environment
MAX_STATE = 64 * 1024 * 1024


class HandoverError(Exception):
    """This state cannot be taken over (its version, its configuration)."""


def refusal(arbiter: Arbiter) -> str | None:
    """Why the daemon cannot re-execute now, or None."""
    if arbiter.stopping:
        return "the daemon is stopping"
    return busy(arbiter)


def busy(arbiter: Arbiter) -> str | None:
    """What the daemon is in the middle of (a command, a rolling reload, a
    watcher starting), which the upgrade waits for; None if nothing."""
    if arbiter.tasks.others():
        return "a command is still running"
    for watcher in arbiter.watchers.values():
        if watcher.state in ("starting", "stopping"):
            return f"{watcher.name} is {watcher.state}"
        if watcher.spawning:
            return f"{watcher.name} is running spawn hooks"
        if any(p.replacing for p in watcher.processes.values()):
            return f"{watcher.name} is being reloaded"
    return None


def running_config(arbiter: Arbiter) -> Config:
    """The configuration the daemon runs now: the watchers as they are."""
    from dataclasses import replace

    watchers = tuple(w.spec for name, w in sorted(arbiter.watchers.items())
                     if name not in arbiter.plugins)
    return replace(arbiter.config, watchers=watchers)


def describe(arbiter: Arbiter) -> dict[str, Any]:
    """The state without its fds: what the next image is asked to check
    before the exec (``bigtopd --handover-check``)."""
    from ..config.render import render

    config = running_config(arbiter)
    return {"version": VERSION, "bigtop": __version__, "config": render(config, "toml"),
            "files": list(config.files), "strict": config.strict}


def capture(arbiter: Arbiter) -> tuple[dict[str, Any], list[int]]:
    """Stop reading every pipe and take the whole state, with the fds to
    keep open; after this the daemon must exec (or stop)."""
    from . import limits

    state = describe(arbiter)
    # A process adopted after a crash is not our child: its pidfd travels
    # (the reaper closes its own), so its exit is still seen.
    pidfds = {process.pid: os.dup(process.foreign[0])
              for watcher in arbiter.watchers.values()
              for process in watcher.processes.values() if process.foreign is not None}
    # From here no exit is reaped and no slot filled: what happens now is
    # the next image's to see (an exit stays a zombie until it reaps it).
    arbiter.reaper.uninstall()
    for watcher in arbiter.watchers.values():
        for timer in watcher.backoff.values():
            timer.cancel()
        watcher.backoff.clear()
    arbiter.on_demand.disarm()
    fds: list[int] = []
    state["started"] = arbiter.started
    state["activity"] = list(arbiter.activity.entries) if arbiter.activity is not None else []
    state["tag"] = arbiter.tag
    state["children_nofile"] = limits.children_nofile
    state["sockets"] = {name: sock.fd for name, sock in arbiter.sockets.items()}
    fds += state["sockets"].values()
    if arbiter.notify is not None:
        state["notify"] = arbiter.notify.detach()
        arbiter.notify = None
        fds.append(state["notify"])
    watchers: dict[str, Any] = {}
    for name, watcher in arbiter.watchers.items():
        processes = []
        for process in watcher.processes.values():
            pipes, partial = {}, {}
            for stream, reader in process.readers.items():
                taken = reader.detach()
                if taken is None:
                    continue
                pipes[stream], rest = taken
                partial[stream] = base64.b64encode(rest).decode()
                fds.append(taken[0])
            entry = {"wid": process.wid, "pid": process.pid, "started": process.started,
                     "ready": process.is_ready, "pipes": pipes, "partial": partial}
            if process.foreign is not None:
                entry["foreign"] = [pidfds[process.pid], process.foreign[1]]
                fds.append(pidfds[process.pid])
            if process.stdin_hold is not None:  # stdin_pipe: the write end stays open
                entry["stdin"] = process.stdin_hold
                fds.append(process.stdin_hold)
            processes.append(entry)
        watchers[name] = {"state": watcher.state, "wanted": watcher.wanted,
                          "restarts": watcher.restarts, "failure": watcher.failure,
                          "completed": sorted(watcher.completed), "processes": processes}
    state["watchers"] = watchers
    return state, fds


def write(state: dict[str, Any], fds: list[int]) -> int:
    """The state in a memfd, and every fd it names, left open across exec."""
    data = json.dumps({**state, "fds": fds}).encode()
    memfd = os.memfd_create("bigtop-handover", 0)
    os.write(memfd, data)
    os.lseek(memfd, 0, os.SEEK_SET)
    for fd in fds:
        os.set_inheritable(fd, True)
    return memfd


def read(fd: int) -> dict[str, Any]:
    """The state the previous image left at fd (closed once read)."""
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_STATE + 1)
    except OSError as err:
        raise HandoverError(f"cannot read the state: {err}") from None
    if len(data) > MAX_STATE:
        raise HandoverError("the state is too large")
    try:
        state = json.loads(data)
    except ValueError as err:
        raise HandoverError(f"the state is not JSON: {err}") from None
    check_version(state)
    for kept in state.get("fds", ()):  # open across the exec, and no further
        with contextlib.suppress(OSError):
            os.set_inheritable(kept, False)
    for entry in state.get("watchers", {}).values():  # unfinished lines, as bytes again
        for item in entry.get("processes", ()):
            item["partial"] = {stream: base64.b64decode(text)
                               for stream, text in item.get("partial", {}).items()}
    return state  # type: ignore[no-any-return]


def check_version(state: Any) -> None:
    if not isinstance(state, dict) or state.get("version") != VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise HandoverError(f"state version {version!r}: this bigtopd {__version__} reads "
                            f"version {VERSION}")


def config_of(state: dict[str, Any]) -> Config:
    """The configuration the previous image ran, read by this image's
    reader; HandoverError if it cannot."""
    from dataclasses import replace

    from ..config import ConfigError
    from ..config.build import build
    from ..config.toml import read_toml

    sections, problems, _ = read_toml(str(state.get("config", "")), "<handover>")
    try:
        if problems:
            raise ConfigError(problems)
        config = build(sections, os.environ)
    except ConfigError as err:
        raise HandoverError(f"the running configuration does not read here: {err}") from None
    return replace(config, files=tuple(state.get("files") or ()),
                   strict=bool(state.get("strict")))

