"""One sample of a process's resources, in Circus's ``info`` shape.

psutil.Process objects are kept between samples so that ``cpu`` is the
usage since the previous sample, as ``top`` shows it, without sleeping.
Descendants come from /proc's per-task children lists, not from a scan of
every process (which psutil's ``children()`` does, once per call).
"""

from __future__ import annotations

import os
import shlex
import time
from datetime import timedelta
from typing import Any

import psutil

from ..core.tree import descendants

_cache: dict[int, psutil.Process] = {}


def human_bytes(n: float) -> str:
    for power, symbol in reversed(list(enumerate("KMGTPEZY", start=1))):
        if n >= 1024 ** power:
            return f"{n / 1024 ** power:.2f}{symbol}"
    return f"{int(n)}B"


def _ctime(seconds: float) -> str:
    td = timedelta(seconds=seconds)
    return f"{td.seconds // 60 % 60}:{str(td.seconds % 60).zfill(2)}.{str(td.microseconds)[:2]}"


_users: dict[int, str] = {}


def _process(pid: int) -> psutil.Process:
    """Cached: the daemon drops pids it has reaped (see forget)."""
    proc = _cache.get(pid)
    if proc is None:
        proc = _cache[pid] = psutil.Process(pid)
    return proc


def _username(proc: psutil.Process) -> str:
    uid = proc.uids().real
    if uid not in _users:
        try:
            _users[uid] = proc.username()
        except (psutil.AccessDenied, KeyError):
            _users[uid] = str(uid)
    return _users[uid]


def info(pid: int, children: bool = True) -> dict[str, Any]:
    """Raises psutil.NoSuchProcess if the process is gone."""
    try:
        return _info(pid, children)
    except psutil.NoSuchProcess:
        _cache.pop(pid, None)
        raise


def _info(pid: int, children: bool) -> dict[str, Any]:
    proc = _process(pid)
    out: dict[str, Any] = {}
    with proc.oneshot():
        try:
            mem = proc.memory_info()
            out["mem_info1"], out["mem_info2"] = human_bytes(mem.rss), human_bytes(mem.vms)
            out["rss"], out["vms"] = mem.rss, mem.vms
        except psutil.AccessDenied:
            out["mem_info1"] = out["mem_info2"] = "N/A"
        try:
            out["cpu"] = proc.cpu_percent(None)
        except psutil.AccessDenied:
            out["cpu"] = "N/A"
        try:
            out["mem"] = round(proc.memory_percent(), 3)
        except psutil.AccessDenied:
            out["mem"] = "N/A"
        try:
            cpu = proc.cpu_times()
            out["ctime"] = _ctime(cpu.user + cpu.system)
        except psutil.AccessDenied:
            out["ctime"] = "N/A"
        out["pid"] = pid
        out["username"] = _username(proc)
        try:
            out["nice"] = proc.nice()
        except psutil.AccessDenied:
            out["nice"] = "N/A"
        created = proc.create_time()
        out["create_time"] = created
        out["age"] = time.time() - created
        try:
            cmdline = proc.cmdline()
            argv0 = shlex.split(cmdline[0])[0] if cmdline else proc.name()
            out["cmdline"] = os.path.basename(argv0)
        except (psutil.AccessDenied, ValueError, IndexError):
            out["cmdline"] = "N/A"
        try:
            out["threads"] = proc.num_threads()
            out["fds"] = proc.num_fds()
        except psutil.AccessDenied:
            pass
    kids = []
    if children:
        for child in sorted(descendants(pid)):
            try:
                kids.append(info(child, children=False))
            except psutil.Error:
                _cache.pop(child, None)
    out["children"] = kids
    return out
