"""The restart policy: what to do when a process ends or cannot start.

Pure bookkeeping, with no loop and no processes, so every rule can be
tested with a fake clock: a slot refilled at once the first time, then
after an exponential backoff while the failures continue (a process that
stayed up ``backoff_reset`` seconds starts the count again), and given up
on (the watcher fails) after more than ``max_retry`` failures in a row.
``restart`` says which exits count: ``always``, ``on-failure`` (an exit
status outside ``success_exit_codes``, or a missed readiness deadline) or
``never``.

A one-shot task (``ready = exited``) is the exception: its success
completes its slot, never restarted, and a failure is retried (as above)
only under ``restart = on-failure``; under ``always`` (the default, which
would restart a success) and ``never`` the first failure gives up.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..config import WatcherSpec

MIN_REFUSAL_DELAY = 0.01  # a before_spawn hook saying no is asked again no sooner


def backoff(spec: WatcherSpec, retries: int) -> float:
    """The delay before retry number ``retries`` (from 0) of a backoff."""
    return min(spec.backoff_max, spec.backoff_initial * spec.backoff_factor ** retries)


def describe_exit(code: int | None) -> str:
    """``status 3``, or ``signal SIGKILL`` for Circus's negative codes."""
    if code is None:  # a process adopted after a crash, on an older kernel
        return "a status the kernel did not tell (it was not this daemon's child)"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def retries(spec: WatcherSpec) -> bool:
    """Whether a failure may be retried: unless ``restart = never``; for a
    one-shot task, only with ``restart = on-failure``."""
    if spec.ready.one_shot:
        return spec.restart == "on-failure"
    return spec.restart != "never"


@dataclass(frozen=True)
class Decision:
    """``respawn`` after ``delay`` seconds (0: now), ``leave`` the slot
    empty (the exit was not one the policy restarts), ``complete`` it (a
    one-shot task succeeded: never respawned), or ``give_up``."""

    action: Literal["respawn", "leave", "complete", "give_up"]
    delay: float = 0.0
    failures: int = 0  # in a row, this one included
    reason: str = ""


class RestartPolicy:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.failures: dict[int, int] = {}  # slot -> failures in a row
        self.refusals: dict[int, int] = {}  # slot -> spawns put off, times in a row

    def reset(self) -> None:
        self.failures.clear()
        self.refusals.clear()

    def exited(self, spec: WatcherSpec, wid: int, code: int | None, started: float,
               timed_out: bool = False) -> Decision:
        """A process of slot ``wid`` started at ``started`` ended on its own
        with Circus's exit ``code``."""
        if spec.ready.one_shot:
            return self._one_shot_exited(spec, wid, code, timed_out)
        if spec.restart == "never" or (
            spec.restart == "on-failure" and code in spec.success_exit_codes and not timed_out
        ):
            return Decision("leave")
        return self.failed(spec, wid, self.clock() - started, describe_exit(code))

    def _one_shot_exited(self, spec: WatcherSpec, wid: int, code: int | None,
                         timed_out: bool) -> Decision:
        """A one-shot's success completes its slot; a failure gives up,
        unless ``on-failure`` retries it. Every failure of the run counts
        towards ``max_retry``, however long it ran (no ``backoff_reset``)."""
        if timed_out:
            last = what = f"still running after ready_timeout = {spec.ready_timeout:g}s"
        elif code in spec.success_exit_codes:
            return Decision("complete")
        else:
            last = describe_exit(code)
            what = f"exited with {last}"
        if not retries(spec):
            return Decision("give_up", failures=1, reason=f"process {wid} {what}")
        return self.failed(spec, wid, None, last)

    def spawn_failed(self, spec: WatcherSpec, wid: int, reason: str) -> Decision:
        if not retries(spec):
            return Decision("give_up", reason=f"process {wid} could not start: {reason}")
        return self.failed(spec, wid, 0.0, reason)

    def failed(self, spec: WatcherSpec, wid: int, uptime: float | None,
               reason: str) -> Decision:
        """A failure of slot ``wid`` after ``uptime`` seconds (None: one that
        never starts the count again)."""
        if uptime is not None and uptime >= spec.backoff_reset:
            self.failures[wid] = 0
        count = self.failures[wid] = self.failures.get(wid, 0) + 1
        if 0 <= spec.max_retry < count:
            times = "once" if count == 1 else f"{count} times in a row"
            return Decision("give_up", failures=count,
                            reason=f"process {wid} failed {times}, last: {reason}")
        delay = 0.0 if count == 1 else backoff(spec, count - 2)
        return Decision("respawn", delay=max(delay, 0.0), failures=count, reason=reason)

    def refused(self, spec: WatcherSpec, wid: int, reason: str = "before_spawn") -> Decision:
        """The spawn is put off (before_spawn said no, or the daemon is short
        of descriptors, memory or processes): try again later, with
        backoff. Not a failure of the process: max_retry does not count
        these, and the watcher never gives up on them."""
        count = self.refusals[wid] = self.refusals.get(wid, 0) + 1
        return Decision("respawn", delay=max(backoff(spec, count - 1), MIN_REFUSAL_DELAY),
                        failures=count, reason=reason)

    def spawned(self, wid: int) -> None:
        """A spawn went ahead: its refusals start again from zero."""
        self.refusals.pop(wid, None)
