"""command_reloader: restart (or reload) a watcher when the program it
runs changes on disk (Circus's CommandReloader).

For each watcher followed the plugin works out the files its command runs:
the executable (found on the watcher's PATH, both the name and, through
symlinks, the real file) and every argument of the command line that names
an existing file (``python app.py``: the interpreter and ``app.py``), plus
the ``paths`` given in the plugin's section. It learns of changes from the
kernel (inotify, through watchfiles), not by polling modification times:
the directories holding those files are watched (so an editor's or a
deploy's replace-by-rename is seen), ``paths`` directories recursively.

A change restarts each watcher it concerns (``restart``), or with ``reload
= true`` reloads it gracefully (new processes first, the watcher's
``rolling_reload`` deciding one at a time or all). A watcher that is
stopped is left alone. Added, removed and changed watchers are followed
from the daemon's events.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import shlex
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .base import Plugin, PluginError, split_topic


def split_list(text: str) -> list[str]:
    """Names or paths separated by commas or new lines (spaces kept in a
    path), or by spaces when there is neither."""
    separated = "," in text or "\n" in text
    items = text.replace("\n", ",").split(",") if separated else text.split()
    return [item.strip() for item in items if item.strip()]


@dataclass
class Target:
    """What one watcher's restart depends on."""

    files: set[str] = field(default_factory=set)  # absolute paths (and real paths)
    trees: set[str] = field(default_factory=set)  # directories, watched recursively


def command_files(options: dict[str, Any]) -> set[str]:
    """The files a watcher's command runs: its executable and the
    arguments that name existing files, relative to its working_dir."""
    cwd = options.get("working_dir") or os.getcwd()
    text = " ".join(str(options.get(key) or "") for key in ("cmd", "args"))
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    if options.get("shell"):
        words = [w for w in words if not set(w) & set("|&;<>()$`")]
    if not words:
        return set()
    found: set[str] = set()
    executable = options.get("executable") or words[0]
    if os.sep not in executable:
        env = options.get("env") or {}
        path = env.get("PATH") if isinstance(env, dict) else None
        venv = options.get("virtualenv")
        if venv:
            path = os.pathsep.join(p for p in (os.path.join(venv, "bin"), path) if p)
        executable = shutil.which(executable, path=path or os.environ.get("PATH")) or ""
    for word in (executable, *words[1:]):
        if not word or word.startswith("-"):
            continue
        path = os.path.normpath(os.path.join(cwd, os.path.expanduser(word)))
        if os.path.isfile(path):
            found.add(path)
            found.add(os.path.realpath(path))
    return found


def watched_layout(targets: dict[str, Target]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The directories to watch: those holding the files (not recursively),
    and the trees (recursively); those that exist."""
    files = set().union(*(t.files for t in targets.values()))
    trees = set().union(*(t.trees for t in targets.values()))
    directories = {os.path.dirname(f) for f in files}
    return (tuple(sorted(d for d in directories if os.path.isdir(d))),
            tuple(sorted(t for t in trees if os.path.isdir(t))))


class CommandReloader(Plugin):
    plugin_name = "command_reloader"
    topics = ("watcher.",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.patterns = split_list(self.option("watchers", ""))
        cwd = os.getcwd()
        self.paths = [os.path.normpath(os.path.join(cwd, os.path.expanduser(p)))
                      for p in split_list(self.option("paths", ""))]
        self.reload = self.option("reload", False)
        # Circus polled modification times every loop_rate seconds; inotify
        # needs no period. Accepted and ignored, so Circus sections load.
        self.option("loop_rate", 1.0)
        self.targets: dict[str, Target] = {}
        self.files: set[str] = set()  # every file of every target
        self.layout: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # what is watched
        self.tasks: list[asyncio.Task[None]] = []
        self.rebuilding: asyncio.Task[None] | None = None
        self.dirty = False
        self.started = False

    def follows(self, name: str) -> bool:
        if name.startswith("plugin:"):
            return False
        if not self.patterns:
            return True
        return any(fnmatch.fnmatchcase(name, p.lower()) for p in self.patterns)

    async def handle_init(self) -> None:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise PluginError("needs the watchfiles package (pip install watchfiles)") from None
        if not self.log.isEnabledFor(logging.DEBUG):
            # its "1 change detected" lines: the plugin says what changed itself
            logging.getLogger("watchfiles").setLevel(logging.WARNING)
        await self.rebuild()

    async def handle_stop(self) -> None:
        await self.unwatch()

    def handle_recv(self, topic: str, payload: dict[str, Any]) -> None:
        _, name, event = split_topic(topic)
        # "start" too: a reload of the configuration that changes a command
        # restarts the watcher, and a symlink may point elsewhere since.
        if event not in ("add", "remove", "updated", "start") or not self.follows(name):
            return
        self.dirty = True
        if self.rebuilding is None or self.rebuilding.done():
            self.rebuilding = self._task(self._rebuild_soon())

    async def _rebuild_soon(self) -> None:
        """Once for a burst of events (a configuration reload), and again if
        more came meanwhile."""
        while self.dirty:
            await asyncio.sleep(0.1)
            self.dirty = False
            await self.rebuild()

    # -- what to watch -----------------------------------------------------------

    async def rebuild(self) -> None:
        """Work out what each watcher followed depends on; watch anew only
        if the directories to watch changed (no gap otherwise)."""
        targets: dict[str, Target] = {}
        for name in await self.watchers():
            if not self.follows(name):
                continue
            try:
                options = (await self.call("options", name=name))["options"]
            except Exception as err:
                self.log.warning("%s: cannot read its options: %s", name, err)
                continue
            target = Target(files=command_files(options))
            for path in self.paths:
                if os.path.isdir(path):
                    target.trees.add(path)
                else:
                    target.files.update({path, os.path.realpath(path)})
            targets[name] = target
        before, self.targets = self.targets, targets
        self.files = set().union(*(t.files for t in targets.values()))
        layout = watched_layout(targets)
        if layout != self.layout:
            await self.unwatch()
            self.layout = layout
            directories, trees = layout
            if directories:
                await self.watch(list(directories), False, lambda _, path: path in self.files)
            if trees:
                import watchfiles

                await self.watch(list(trees), True, watchfiles.DefaultFilter())
        for name, target in sorted(targets.items()):
            if before.get(name) != target:
                self.log.info("%s: watching %s", name,
                              ", ".join(sorted(target.files | target.trees)) or "nothing")
        if not targets and (before or not self.started):
            self.log.info("no watcher to follow")
        self.started = True

    async def watch(self, paths: list[str], recursive: bool,
                    wanted: Callable[[Any, str], bool]) -> None:
        """Start watching; returns once the kernel's watches are in place."""
        import watchfiles

        changes = watchfiles.awatch(*paths, recursive=recursive, watch_filter=wanted)
        self.tasks.append(self._task(self._follow(changes)))
        # One turn of the loop runs the task up to its first wait, and awatch
        # sets its watches up before it first waits.
        await asyncio.sleep(0)

    async def _follow(self, changes: AsyncIterator[set[tuple[Any, str]]]) -> None:
        async for batch in changes:
            await self.changed({os.path.normpath(path) for _, path in batch})

    async def unwatch(self) -> None:
        self.layout = ((), ())
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- acting ------------------------------------------------------------------

    def concerned(self, paths: set[str]) -> dict[str, list[str]]:
        """The watchers a set of changed paths concerns, with the paths."""
        found: dict[str, list[str]] = {}
        for name, target in self.targets.items():
            hits = sorted(p for p in paths if p in target.files
                          or any(p == t or p.startswith(t + os.sep) for t in target.trees))
            if hits:
                found[name] = hits
        return found

    async def changed(self, paths: set[str]) -> None:
        for name, hits in sorted(self.concerned(paths).items()):
            shown = ", ".join(hits[:3]) + (f" and {len(hits) - 3} more" if len(hits) > 3 else "")
            try:
                status = (await self.call("status", name=name)).get("status")
                if status == "stopped":
                    self.log.info("%s changed; %s is stopped: left alone", shown, name)
                    continue
                if self.reload:
                    self.log.info("%s changed: reloading %s", shown, name)
                    await self.call("reload", name=name, graceful=True)
                else:
                    self.log.info("%s changed: restarting %s", shown, name)
                    await self.call("restart", name=name)
            except Exception as err:
                self.log.warning("%s: cannot restart: %s", name, err)
