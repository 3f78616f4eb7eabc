"""The restart policy as a pure function of exits and a (fake) clock."""

from __future__ import annotations

import signal

from bigtop.config import WatcherSpec
from bigtop.config.values import ReadySpec
from bigtop.core.policy import RestartPolicy, backoff, describe_exit, retries


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def spec(**options: object) -> WatcherSpec:
    return WatcherSpec(name="w", cmd="true", **options)  # type: ignore[arg-type]


def crash_loop(policy: RestartPolicy, clock: Clock, s: WatcherSpec, runs: int) -> list:
    """Each run lives 0.05 s, then exits with status 3, respawned when told."""
    decisions = []
    for _ in range(runs):
        started = clock.now
        clock.now += 0.05
        decision = policy.exited(s, 1, 3, started)
        decisions.append(decision)
        if decision.action != "respawn":
            break
        clock.now += decision.delay
    return decisions


def test_first_failure_respawns_at_once_then_backs_off_exponentially():
    clock = Clock()
    s = spec(backoff_initial=0.2, backoff_factor=2.0, backoff_max=100.0, max_retry=-1)
    decisions = crash_loop(RestartPolicy(clock), clock, s, 6)
    assert [d.action for d in decisions] == ["respawn"] * 6
    assert [d.delay for d in decisions] == [0.0, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert [d.failures for d in decisions] == [1, 2, 3, 4, 5, 6]


def test_backoff_is_capped():
    s = spec(backoff_initial=1.0, backoff_factor=10.0, backoff_max=15.0)
    assert [backoff(s, n) for n in range(4)] == [1.0, 10.0, 15.0, 15.0]


def test_gives_up_after_max_retry_failures_in_a_row():
    clock = Clock()
    s = spec(max_retry=4, backoff_initial=0.2)
    decisions = crash_loop(RestartPolicy(clock), clock, s, 10)
    assert [d.action for d in decisions] == ["respawn"] * 4 + ["give_up"]
    assert decisions[-1].reason == "process 1 failed 5 times in a row, last: status 3"


def test_max_retry_zero_gives_up_at_the_first_failure():
    clock = Clock()
    decision = RestartPolicy(clock).exited(spec(max_retry=0), 2, -9, clock.now)
    assert decision.action == "give_up"
    assert decision.reason == "process 2 failed once, last: signal SIGKILL"


def test_a_process_that_stayed_up_long_enough_starts_the_count_again():
    clock = Clock()
    policy = RestartPolicy(clock)
    s = spec(max_retry=2, backoff_reset=10.0)
    assert [d.action for d in crash_loop(policy, clock, s, 2)] == ["respawn", "respawn"]
    started = clock.now
    clock.now += 10.0  # up for backoff_reset
    decision = policy.exited(s, 1, 3, started)
    assert (decision.action, decision.delay, decision.failures) == ("respawn", 0.0, 1)


def test_slots_count_their_failures_apart():
    clock = Clock()
    policy = RestartPolicy(clock)
    s = spec(max_retry=1)
    assert policy.exited(s, 1, 3, clock.now).action == "respawn"
    assert policy.exited(s, 2, 3, clock.now).action == "respawn"
    assert policy.exited(s, 1, 3, clock.now).action == "give_up"
    policy.reset()
    assert policy.exited(s, 1, 3, clock.now).failures == 1


def test_which_exits_are_restarted():
    clock = Clock()
    policy = RestartPolicy(clock)
    never = spec(restart="never")
    on_failure = spec(restart="on-failure", success_exit_codes=(0, 2))
    assert policy.exited(never, 1, 3, clock.now).action == "leave"
    assert policy.exited(on_failure, 1, 2, clock.now).action == "leave"
    assert policy.exited(on_failure, 1, 1, clock.now).action == "respawn"
    # A process stopped for missing its readiness deadline failed, whatever its status.
    assert policy.exited(on_failure, 1, 0, clock.now, timed_out=True).action == "respawn"
    assert policy.exited(spec(), 1, 0, clock.now).action == "respawn"


def test_spawn_failures():
    clock = Clock()
    policy = RestartPolicy(clock)
    never = policy.spawn_failed(spec(restart="never"), 1, "no such file")
    assert (never.action, never.reason) == ("give_up", "process 1 could not start: no such file")
    s = spec(max_retry=1, backoff_initial=0.5)
    assert policy.spawn_failed(s, 1, "no such file").delay == 0.0
    last = policy.spawn_failed(s, 1, "no such file")
    assert last.action == "give_up" and last.reason.endswith("last: no such file")


def test_before_spawn_refusals_back_off_without_counting_as_failures():
    clock = Clock()
    policy = RestartPolicy(clock)
    s = spec(max_retry=0, backoff_initial=0.0, backoff_factor=2.0)
    delays = [policy.refused(s, 1).delay for _ in range(3)]
    assert delays == [0.01, 0.01, 0.01], "never sooner than 10 ms"
    s = spec(max_retry=0, backoff_initial=0.1, backoff_factor=2.0)
    policy.spawned(1)
    assert [policy.refused(s, 1).delay for _ in range(3)] == [0.1, 0.2, 0.4]
    assert policy.failures == {}


def test_describe_exit():
    assert describe_exit(0) == "status 0"
    assert describe_exit(-signal.SIGTERM) == "signal SIGTERM"
    assert describe_exit(-200) == "signal 200"


def one_shot(**options: object) -> WatcherSpec:
    return spec(ready=ReadySpec("exited"), **options)


def test_a_one_shot_success_completes_its_slot_whatever_restart_says():
    clock = Clock()
    policy = RestartPolicy(clock)
    for restart in ("always", "on-failure", "never"):
        assert policy.exited(one_shot(restart=restart), 1, 0, clock.now).action == "complete"
    custom = one_shot(success_exit_codes=(0, 2))
    assert policy.exited(custom, 1, 2, clock.now).action == "complete"
    assert policy.failures == {}


def test_a_one_shot_failure_gives_up_at_once_unless_on_failure():
    clock = Clock()
    policy = RestartPolicy(clock)
    for restart in ("always", "never"):  # always, the default, would restart a success
        s = one_shot(restart=restart, max_retry=5)
        assert not retries(s)
        decision = policy.exited(s, 1, 3, clock.now)
        assert (decision.action, decision.reason) == ("give_up",
                                                      "process 1 exited with status 3")
        killed = policy.exited(s, 2, -signal.SIGKILL, clock.now)
        assert killed.reason == "process 2 exited with signal SIGKILL"
        failed = policy.spawn_failed(s, 1, "no such file")
        assert (failed.action, failed.reason) == ("give_up",
                                                  "process 1 could not start: no such file")
    assert retries(spec()) and retries(one_shot(restart="on-failure"))
    assert not retries(spec(restart="never"))


def test_a_one_shot_still_running_after_ready_timeout_failed_whatever_its_status():
    clock = Clock()
    s = one_shot(ready_timeout=2.5)
    decision = RestartPolicy(clock).exited(s, 1, 0, clock.now, timed_out=True)
    assert decision.action == "give_up"
    assert decision.reason == "process 1 still running after ready_timeout = 2.5s"


def test_on_failure_retries_a_one_shot_up_to_max_retry_however_long_it_ran():
    clock = Clock()
    policy = RestartPolicy(clock)
    s = one_shot(restart="on-failure", max_retry=2, backoff_initial=0.5, backoff_reset=10.0)
    decisions = []
    for _ in range(3):
        started = clock.now
        clock.now += 60.0  # longer than backoff_reset: still counts
        decisions.append(policy.exited(s, 1, 3, started))
    assert [(d.action, d.delay, d.failures) for d in decisions] == [
        ("respawn", 0.0, 1), ("respawn", 0.5, 2), ("give_up", 0.0, 3)]
    assert decisions[-1].reason == "process 1 failed 3 times in a row, last: status 3"
    timed_out = policy.exited(s, 2, -signal.SIGTERM, clock.now, timed_out=True)
    assert timed_out.reason == "still running after ready_timeout = 60s"
