"""How many watchers and processes a daemon may run: the one rule that
files, `add`, `set` and `incr` are checked against.

The bound is ``[circus] max_processes`` for every watcher's processes
together (so also for each watcher). Left out, it is what the machine
allows: ``MAX_PROCESSES``, or less where the daemon runs under a lower
``RLIMIT_NPROC`` (for a daemon not run as root, which counts its own
threads and its user's other processes there too) or a pids cgroup limit.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping

MAX_PROCESSES = 10_000  # the default bound where the machine allows more
MAX_WATCHERS = 1_000  # watchers in one daemon
MAX_CONNECTIONS = 100_000  # the highest max_connections (clients on one endpoint)
HEADROOM = 64  # tasks left under a machine limit for the daemon's threads and hooks
PIDS_MAX = "/sys/fs/cgroup/pids{}/pids.max"  # cgroup v1; v2 is /sys/fs/cgroup{}/pids.max


def _cgroup_pids_max() -> int | None:
    """The pids.max of the daemon's own cgroup, if it has one."""
    try:
        with open("/proc/self/cgroup") as groups:
            lines = groups.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers in ("pids", ""):
            name = PIDS_MAX if controllers else "/sys/fs/cgroup{}/pids.max"
            try:
                with open(name.format(path.rstrip("/"))) as limit:
                    text = limit.read().strip()
            except OSError:
                continue
            if text.isdigit():
                return int(text)
    return None


def machine_limit() -> int:
    """The default bound: MAX_PROCESSES, or what the limits leave room for."""
    bound = MAX_PROCESSES
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if os.geteuid() != 0 and nproc != resource.RLIM_INFINITY:
        bound = min(bound, nproc - HEADROOM)
    pids = _cgroup_pids_max()
    if pids is not None:
        bound = min(bound, pids - HEADROOM)
    return max(bound, 1)


def count_problem(counts: Mapping[str, int], limit: int | None) -> str | None:
    """Why watchers wanting ``counts`` processes (name -> count) are too
    many (MAX_WATCHERS watchers; a bound of ``limit`` processes, None: the
    machine's), if they are."""
    if len(counts) > MAX_WATCHERS:
        return f"{len(counts)} watchers, more than {MAX_WATCHERS}"
    bound = machine_limit() if limit is None else limit
    origin = "max_processes" if limit is not None else "the machine's limit"
    total = sum(counts.values())
    if total <= bound:
        return None
    name, most = max(counts.items(), key=lambda item: item[1])
    if most > bound:
        return f"{name}: {most} processes, more than {origin} ({bound})"
    return f"{total} processes in all, more than {origin} ({bound})"
