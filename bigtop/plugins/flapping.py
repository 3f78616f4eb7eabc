"""flapping: stop a watcher whose processes keep dying, retry it later,
give up after a number of retries (Circus's flapping plugin).

The core already respawns a crashed process, at once and then with
exponential backoff, and puts a watcher whose process fails ``max_retry``
times in a row in the failed state. This plugin adds Circus's policy on
top: when ``attempts`` exits happen within ``window`` seconds, the watcher
is stopped, started again ``retry_in`` seconds later, and after
``max_retry`` such retries (-1: no limit) left stopped.

Only exits nobody asked for count (a ``reap`` event with ``requested``
false): stopping or reloading a watcher is not flapping.

Its options (``attempts``, ``window``, ``retry_in``, ``max_retry``,
``active``) are declared once, as ``bigtop.config.model.FlappingSpec``; a
watcher may override each with ``flapping.<option>`` in its own section. A
watcher with ``check_flapping = false`` is left alone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..config.model import FlappingSpec as Policy
from ..config.options import table
from .base import Plugin, split_topic

INFINITE_RETRY = -1
OPTIONS = table("flapping")


@dataclass
class Track:
    exits: list[float] = field(default_factory=list)
    tries: int = 0
    retry: asyncio.Task[None] | None = None


class Flapping(Plugin):
    plugin_name = "flapping"
    topics = ("watcher.",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.policy = Policy(**{key: self.option(key, opt.default, opt.converter())
                                for key, opt in OPTIONS.items()})
        self.tracks: dict[str, Track] = {}
        self.policies: dict[str, Policy] = {}  # per watcher, from its options

    async def handle_recv(self, topic: str, payload: dict[str, Any]) -> None:
        _, name, event = split_topic(topic)
        if event == "updated":
            self.policies.pop(name, None)
        elif event == "remove":
            self.forget(name)
        elif event == "reap" and not payload.get("requested"):
            await self.exited(name, payload.get("time") or time.time())

    async def policy_of(self, name: str) -> Policy:
        """The plugin's options, with the watcher's flapping.* over them."""
        if name not in self.policies:
            options = (await self.call("options", name=name)).get("options", {})
            own: dict[str, Any] = dict(options.get("flapping") or {})
            for key, value in options.items():  # a Circus-style flat key
                if key.startswith("flapping."):
                    own[key[len("flapping."):]] = value
            changes = {k: OPTIONS[k].converter()(v) for k, v in own.items() if k in OPTIONS}
            policy = replace(self.policy, **changes)
            if options.get("check_flapping") is False:
                policy = replace(policy, active=False)
            self.policies[name] = policy
        return self.policies[name]

    async def exited(self, name: str, when: float) -> None:
        policy = await self.policy_of(name)
        if not policy.active:
            return
        track = self.tracks.setdefault(name, Track())
        track.exits.append(when)
        if len(track.exits) < policy.attempts:
            return
        # As Circus: every `attempts` exits are compared with the window
        # (without its check_delay, a polling interval bigtop does not have).
        span = track.exits[-1] - track.exits[0]
        track.exits.clear()
        if span > policy.window:
            track.tries = 0
            return
        if policy.max_retry == INFINITE_RETRY or track.tries < policy.max_retry:
            track.tries += 1
            self.log.info("%s: flapping detected (%d exits in %.2fs): stopped, retry %d in %gs",
                          name, policy.attempts, span, track.tries, policy.retry_in)
            await self.call("stop", name=name)
            if track.retry is not None:
                track.retry.cancel()
            track.retry = self._task(self._retry(name, policy.retry_in))
        else:
            self.log.warning("%s: flapping detected: reached max retry limit (%d), stopped",
                             name, policy.max_retry)
            track.tries = 0
            await self.call("stop", name=name)

    async def _retry(self, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        track = self.tracks.get(name)
        if track is not None:
            track.retry = None
        self.log.info("%s: retrying after flapping", name)
        try:
            await self.call("start", name=name)
        except Exception as err:
            self.log.warning("%s: cannot start: %s", name, err)

    def forget(self, name: str) -> None:
        track = self.tracks.pop(name, None)
        if track is not None and track.retry is not None:
            track.retry.cancel()
        self.policies.pop(name, None)
