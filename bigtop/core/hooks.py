"""Watcher hooks: user functions called at points of a watcher's life.

Circus's hook points and signature: ``hook(watcher, arbiter, hook_name,
**kwargs)`` returning a boolean, named in a watcher's options as
``hooks.NAME = module.function[, ignore_failure]``.

The daemon's loop never waits on a hook: a plain function runs in a thread
of its own, a coroutine function runs on the loop, and either gets
``hook_timeout`` seconds. A hook that raises (even ``SystemExit``) or times
out has failed; a failure counts as False unless ignore_failure says
otherwise (and for the hooks whose failure Circus always ignores). A
thread that overran its time is left to finish on its own: its result is
not waited for, and while ``HOOK_THREADS`` such threads still run, a new
plain hook fails at once instead of starting another. A coroutine hook
that blocks (``time.sleep`` instead of ``await asyncio.sleep``) stalls the
loop, which cannot be prevented from here: when its call took longer than
its timeout, it has failed as an overrun, and the log says it blocked.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..config import HookSpec, WatcherSpec

log = logging.getLogger("bigtop.hooks")

# Whose failure (an exception, a timeout) never stops anything, as in
# Circus; ignore_failure adds others. A False *return* is not a failure.
ALWAYS_IGNORED = frozenset({"before_stop", "after_stop", "before_signal", "after_signal",
                            "extended_stats", "before_reap", "after_reap"})

# dotted path -> the callable, imported once
_resolved: dict[str, Callable[..., Any]] = {}
_paths_lock = threading.Lock()
HOOK_THREADS = 8  # plain hooks running at once, those that overran their time included
_threads = threading.BoundedSemaphore(HOOK_THREADS)


class HookError(Exception):
    """A hook could not be called, raised, or overran its time."""


def search_paths(spec: WatcherSpec, extra: Iterable[str]) -> list[str]:
    """Where hook modules are looked for besides sys.path: the directories
    of the watcher's PYTHONPATH (as Circus), then ``extra`` (the
    configuration file's directory)."""
    paths = [p for p in spec.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return paths + list(extra)


def resolve(target: str, paths: Iterable[str] = ()) -> Callable[..., Any]:
    """Import ``module.attribute`` (or ``module:attribute``); paths are
    added to the end of sys.path first. Blocking: call it from a thread."""
    found = _resolved.get(target)
    if found is not None:
        return found
    with _paths_lock:
        for path in paths:
            if path not in sys.path:
                sys.path.append(path)
    if ":" in target:
        module_name, _, attribute = target.partition(":")
    else:
        module_name, _, attribute = target.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as err:
        raise HookError(f"cannot import {target}: {type(err).__name__}: {err}") from None
    if not callable(obj):
        raise HookError(f"{target} is not callable")
    _resolved[target] = obj
    return obj


def forget() -> None:
    """Resolve hooks again at their next call (after a configuration reload:
    a hook may name another function; modules are not re-imported)."""
    _resolved.clear()


def _in_thread(loop: asyncio.AbstractEventLoop, func: Callable[..., Any],
               kwargs: dict[str, Any], name: str) -> asyncio.Future[Any]:
    """Run func in a daemon thread of its own: a hook that never returns
    holds neither a pool's worker nor the daemon's exit. At most
    HOOK_THREADS at once: past that, a HookError at once."""
    future: asyncio.Future[Any] = loop.create_future()
    if not _threads.acquire(blocking=False):
        future.set_exception(HookError(
            f"{HOOK_THREADS} hooks are still running (overrun ones included): not started"))
        return future

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return  # timed out or cancelled meanwhile
        if error is not None:
            if not isinstance(error, Exception):  # SystemExit must not reach the loop
                error = HookError(f"raised {type(error).__name__}: {error}")
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = func(**kwargs), None
        except BaseException as err:  # reported to the loop, whatever it is
            result, error = None, err
        finally:
            _threads.release()
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is closed: the daemon has stopped

    threading.Thread(target=run, name=f"hook-{name}", daemon=True).start()
    return future


async def _contained(call: Any) -> Any:
    """A coroutine hook's call, whose SystemExit or KeyboardInterrupt would
    otherwise end the loop (asyncio re-raises them out of a task): a
    HookError instead."""
    try:
        return await call
    except (SystemExit, KeyboardInterrupt) as err:
        raise HookError(f"raised {type(err).__name__}: {err}") from err


def _is_async(func: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose __call__ is one."""
    return inspect.iscoroutinefunction(func) or (
        not inspect.isroutine(func) and inspect.iscoroutinefunction(type(func).__call__))


class WatcherHooks:
    """The hooks of one watcher. ``target`` and ``arbiter`` are what the
    user's functions get as ``watcher`` and ``arbiter`` (Circus's
    signature); ``emit`` publishes hook_success and hook_failure."""

    def __init__(self, target: Any, arbiter: Any, spec: Callable[[], WatcherSpec],
                 emit: Callable[..., None], paths: Iterable[str] = ()):
        self.target = target
        self.arbiter = arbiter
        self.spec = spec
        self.emit = emit
        self.paths = list(paths)

    def has(self, *names: str) -> bool:
        hooks = self.spec().hooks
        return any(name in hooks for name in names)

    async def call(self, name: str, **kwargs: Any) -> bool:
        """Call hook ``name`` if the watcher has one, as Circus does: the
        hook's answer, or on a failure whether the failure is ignored."""
        spec = self.spec()
        hook = spec.hooks.get(name)
        if hook is None:
            return True
        try:
            result = await run_hook(self, name, hook, spec.hook_timeout, **kwargs)
        except HookError as err:
            ignored = hook.ignore_failure or name in ALWAYS_IGNORED
            log.error("%s: hook %s (%s) failed: %s%s", spec.name, name, hook.target, err,
                      " (ignored)" if ignored else "")
            if err.__cause__ is not None and log.isEnabledFor(logging.DEBUG):
                log.debug("hook traceback", exc_info=err.__cause__)
            self.emit("hook_failure", name=name, error=str(err), time=time.time())
            return ignored
        self.emit("hook_success", name=name, time=time.time())
        return bool(result)


async def run_hook(hooks: WatcherHooks, name: str, spec: HookSpec, timeout: float,
                   **kwargs: Any) -> Any:
    """Call one hook within timeout; raises HookError if it cannot be
    called, raises, or overruns."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def left() -> float:
        return max(deadline - loop.time(), 0.0)

    try:
        func = _resolved.get(spec.target)
        if func is None:  # importing may be slow: not on the loop
            paths = search_paths(hooks.spec(), hooks.paths)
            resolving = _in_thread(loop, resolve, {"target": spec.target, "paths": paths}, name)
            func = await asyncio.wait_for(resolving, left())
        assert func is not None
        call_kwargs = {"watcher": hooks.target, "arbiter": hooks.arbiter, "hook_name": name,
                       **kwargs}
        if _is_async(func):
            started = loop.time()
            result = await asyncio.wait_for(_contained(func(**call_kwargs)), left())
            if loop.time() - started > timeout:  # it blocked the loop past its time
                raise HookError(f"overran its {timeout:g}s: a coroutine hook blocked the "
                                f"daemon for {loop.time() - started:.1f}s (a blocking call "
                                "in an async def: make it a plain def, or await)")
            return result
        result = await asyncio.wait_for(_in_thread(loop, func, call_kwargs, name), left())
        if inspect.isawaitable(result):  # e.g. a partial of a coroutine function
            result = await asyncio.wait_for(_contained(result), left())
        return result
    except TimeoutError:
        raise HookError(f"timed out after {timeout:g}s") from None
    except (HookError, asyncio.CancelledError):
        raise
    except BaseException as err:  # SystemExit from a hook must not stop the daemon
        raise HookError(f"{type(err).__name__}: {err}") from err
