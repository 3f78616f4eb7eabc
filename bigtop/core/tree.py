"""Signalling and waiting for whole process trees.

A managed child leads its own process group. Stopping it signals the group
and every descendant psutil can find (including those that left the group
with ``setsid``), and waits for each of them through a pidfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

# Set in the environment of every child, so that a descendant that outlived
# its parent (and was re-parented to the daemon) can still be attributed.
WATCHER_ENV = "BIGTOP_WATCHER"
WID_ENV = "BIGTOP_WID"

# Read straight from /proc (cheaper than psutil, which the daemon does not
# need to load for this).


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    queue = children(pid)
    while queue:
        child = queue.pop()
        if child not in found:
            found.add(child)
            queue += children(child)
    return found


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command's name: item 0 is field 3 of
    proc(5) (the state), so field N is item N - 3. None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()
    except OSError:
        return None


def environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            data = handle.read()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in data.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def adopted_orphans(watcher: str, managed: set[int], wid: int) -> set[int]:
    """Children of the daemon that a slot's processes started but that are
    not its processes (their parent died and the subreaper adopted them),
    with their descendants."""
    return orphans_by_slot(managed).get((watcher, str(wid)), set())


def orphans_by_slot(managed: set[int]) -> dict[tuple[str, str], set[int]]:
    """What every slot's processes left, in one look at the daemon's
    children: (watcher, wid) -> the adopted orphans, with their descendants."""
    found: dict[tuple[str, str], set[int]] = {}
    for child in children(os.getpid()):
        if child in managed:
            continue
        env = environ(child)
        if WATCHER_ENV in env:
            key = (env[WATCHER_ENV], env.get(WID_ENV, ""))
            found.setdefault(key, set()).update({child}, descendants(child))
    return found


def signal_tree(pgid: int | None, pids: set[int], sig: int) -> None:
    """Send sig to the process group and to each pid; gone ones are skipped."""
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def group_alive(pgid: int | None) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until every pid has exited (not necessarily been reaped, that is
    the reaper's job) or the timeout passes; returns those still alive."""
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[None]] = {}
    fds: list[int] = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        fds.append(fd)
        future: asyncio.Future[None] = loop.create_future()
        waiting[pid] = future

        def done(fd: int = fd, future: asyncio.Future[None] = future) -> None:
            loop.remove_reader(fd)
            if not future.done():
                future.set_result(None)

        loop.add_reader(fd, done)
    try:
        if waiting:
            await asyncio.wait(waiting.values(), timeout=timeout)
        return {pid for pid, future in waiting.items() if not future.done()}
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)
