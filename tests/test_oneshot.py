"""One-shot tasks (``ready = exited``), end to end: a migration that runs
to completion before its dependents start, is never respawned after its
success, and keeps them from starting when it fails."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bigtop.config import ConfigError, load
from bigtop.config.convert import to_ready
from bigtop.config.values import ReadySpec

from .conftest import Daemon, wait_for


def runs(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def status(d: Daemon, name: str) -> str:
    return str(d.call("status", name=name)["status"])


def details(d: Daemon, name: str) -> dict:
    return d.call("status", name=name, details=True)["details"]


def wait_status(d: Daemon, name: str, wanted: str, timeout: float = 10.0) -> None:
    wait_for(lambda: status(d, name) == wanted, timeout, message=f"{name} {wanted}")


def one_shot(tmp_path: Path, body: str = "sleep 0.2", extra: str = "") -> str:
    """A migrate watcher that records each run and, at the end of a
    successful one, that it has migrated; web records, when it starts,
    whether the migration had happened by then."""
    return f"""
        [watcher:migrate]
        cmd = sh -c 'echo run >> {tmp_path}/runs; {body}; touch {tmp_path}/migrated'
        ready = exited
        {extra}

        [watcher:web]
        cmd = sh -c 'if [ -e {tmp_path}/migrated ]; then echo yes; else echo no; fi \\
              >> {tmp_path}/web_saw; exec sleep 1000'
        depends_on = migrate
    """


def test_ready_exited_is_read_from_ini_and_toml(tmp_path):
    assert to_ready(" Exited ") == ReadySpec("exited") and to_ready("exited").one_shot
    assert str(ReadySpec("exited")) == "exited" and not ReadySpec().one_shot
    with pytest.raises(ValueError, match=r"not a readiness check .*delay:SECONDS or exited"):
        to_ready("exited:3")
    ini = tmp_path / "a.ini"
    ini.write_text(textwrap.dedent("""
        [watcher:migrate]
        cmd = true
        ready = exited
    """))
    toml = tmp_path / "a.toml"
    toml.write_text('[watchers.migrate]\ncmd = "true"\nready = "exited"\n')
    for path in (ini, toml):
        (spec,) = load(str(path)).watchers
        assert spec.ready.one_shot and spec.restart == "always"
    ini.write_text("[watcher:migrate]\ncmd = true\nready = exit\n")
    with pytest.raises(ConfigError, match="'exit' is not a readiness check"):
        load(str(ini))


def test_dependents_start_after_it_exited_and_it_is_not_respawned(daemon, tmp_path):
    d = daemon(one_shot(tmp_path))
    wait_status(d, "migrate", "done")
    d.wait_pids("web", 1)
    wait_for(lambda: (tmp_path / "web_saw").exists(), message="web started")
    assert (tmp_path / "web_saw").read_text() == "yes\n", "web started after the migration"
    log = d.log_text()
    assert "migrate: process 1 (pid " in log and ") exited with status 0 after" in log
    assert log.index("migrate: done: 1 process(es) exited with success") < log.index(
        "web: started")
    info = details(d, "migrate")
    assert (info["running"], info["wanted"], info["restarts"], info["failure"]) == (0, 0, 0, None)
    assert info["last_exit"]["exit_code"] == 0 and not info["last_exit"]["requested"]
    assert d.call("list", name="migrate")["pids"] == []
    assert d.call("status")["statuses"] == {"migrate": "done", "web": "active"}
    assert d.stop() == 0
    assert runs(tmp_path / "runs") == 1
    assert d.log_text().count("migrate: process 1 (pid ") == 1, "spawned once, never again"


def test_a_failure_keeps_its_dependents_from_starting(daemon, tmp_path):
    d = daemon(f"""
        [watcher:migrate]
        cmd = sh -c '[ -e {tmp_path}/fixed ] || {{ echo "no such table: orders" >&2; exit 3; }}'
        ready = exited

        [watcher:web]
        cmd = sleep 1000
        depends_on = migrate

        [watcher:worker]
        cmd = sleep 1000
        depends_on = migrate

        [watcher:proxy]
        cmd = sleep 1000
        depends_on = web

        [watcher:other]
        cmd = sleep 1000
    """)
    d.wait_log("not started, as they depend on it: proxy")
    log = d.log_text()
    assert ("migrate is failed (process 1 exited with status 3); not started, as they depend "
            "on it: web, worker") in log
    assert "web was not started (dependency migrate is failed); not started" in log
    assert "migrate: failed: process 1 exited with status 3" in log
    assert "no such table: orders" in log, "the failure shows its last output"
    assert log.count("migrate: process 1 (pid ") == 1, "not retried by default"
    # The daemon stays up and answers; the rest of it runs.
    assert d.call("status")["statuses"] == {"migrate": "failed", "web": "stopped",
                                            "worker": "stopped", "proxy": "stopped",
                                            "other": "active"}
    assert details(d, "web")["failure"] == "not started: dependency migrate is failed"
    assert details(d, "proxy")["failure"] == "not started: dependency web was not started"
    assert details(d, "migrate")["failure"] == "process 1 exited with status 3"
    assert not d.pids("web") and not d.pids("worker") and not d.pids("proxy")
    d.wait_pids("other", 1)
    assert "web: started" not in log and "worker: started" not in log
    # Starting a dependent does not retry a failed dependency...
    d.call("start", name="web", waiting=True)
    assert status(d, "migrate") == "failed" and status(d, "web") == "stopped"
    # ... fixed, a start of everything runs it again, then what it held back.
    (tmp_path / "fixed").touch()
    d.call("start", waiting=True)
    assert d.call("status")["statuses"] == {"migrate": "done", "web": "active",
                                            "worker": "active", "proxy": "active",
                                            "other": "active"}
    assert details(d, "web")["failure"] is None


def test_a_failure_followed_by_events(daemon):
    d = daemon("""
        [watcher:migrate]
        cmd = sh -c 'exit 3'
        ready = exited
        autostart = false

        [watcher:web]
        cmd = sleep 1000
        depends_on = migrate
        autostart = false
    """)
    with d.events("watcher.migrate.", "watcher.web.") as ev:
        d.call("start", name="web")  # migrate first: web depends on it
        ev.wait("watcher.migrate.reap", exit_code=3, requested=False)
        failed = ev.wait("watcher.migrate.failed")[1]
        ev.wait("watcher.web.dependency_failed", dependency="migrate")
        events = ev.sync()
    assert failed["reason"] == "process 1 exited with status 3"
    assert [e["exit_code"] for e in failed["exits"]] == [3]
    topics = [topic for topic, _ in events]
    assert "watcher.migrate.done" not in topics and "watcher.migrate.ready" not in topics
    assert [t for t in topics if t.startswith("watcher.web.")] == ["watcher.web.dependency_failed"]


def test_on_failure_retries_it(daemon, tmp_path):
    # Fails once, then succeeds: restart = on-failure asks for the retry.
    d = daemon(f"""
        [watcher:migrate]
        cmd = sh -c 'echo run >> {tmp_path}/runs; [ $(wc -l < {tmp_path}/runs) -ge 2 ]'
        ready = exited
        restart = on-failure
        max_retry = 3

        [watcher:web]
        cmd = sleep 1000
        depends_on = migrate
    """)
    d.wait_pids("web", 1)
    assert status(d, "migrate") == "done"
    assert runs(tmp_path / "runs") == 2
    assert details(d, "migrate")["restarts"] == 1


def test_start_restart_and_reload_run_it_again(daemon, tmp_path):
    d = daemon(one_shot(tmp_path))
    wait_status(d, "migrate", "done")
    (web,) = d.wait_pids("web", 1)
    for command, count in (("start", 2), ("restart", 3), ("reload", 4)):
        with d.events("watcher.migrate.") as ev:
            d.call(command, name="migrate")
            ev.wait("watcher.migrate.spawn")
            ev.wait("watcher.migrate.reap", exit_code=0, requested=False)
            ev.wait("watcher.migrate.ready")
            ev.wait("watcher.migrate.done")
        assert runs(tmp_path / "runs") == count, command
        assert status(d, "migrate") == "done"
    assert d.pids("web") == {web}, "its dependents are left as they are"

    # Starting a dependent does not run a one-shot that is done again...
    d.call("stop", name="web", waiting=True)
    d.call("start", name="web", waiting=True)
    d.wait_pids("web", 1)
    assert runs(tmp_path / "runs") == 4
    # ... but one that was stopped, it does, first.
    d.call("stop", waiting=True)
    assert status(d, "migrate") == "stopped"
    (tmp_path / "migrated").unlink()
    (tmp_path / "web_saw").unlink()
    d.call("start", name="web", waiting=True)
    d.wait_pids("web", 1)
    assert runs(tmp_path / "runs") == 5
    assert status(d, "migrate") == "done"
    wait_for(lambda: (tmp_path / "web_saw").exists(), message="web started")
    assert (tmp_path / "web_saw").read_text() == "yes\n"


def test_dependents_wait_for_every_process(daemon, tmp_path):
    release = tmp_path / "release"
    d = daemon(f"""
        [watcher:migrate]
        cmd = sh -c 'echo $BIGTOP_WID >> {tmp_path}/runs; \\
              if [ $BIGTOP_WID = 2 ]; then while [ ! -e {release} ]; do sleep 0.02; done; fi'
        numprocesses = 2
        ready = exited

        [watcher:web]
        cmd = sleep 1000
        depends_on = migrate
    """)
    d.wait_log("migrate: process 1 (pid ")
    wait_for(lambda: runs(tmp_path / "runs") == 2, message="both processes started")
    # Process 1 is done, process 2 still runs: web waits.
    assert status(d, "migrate") == "active"
    info = details(d, "migrate")
    assert info["running"] == 1 and list(info["pids"]) == ["2"]
    assert status(d, "web") == "stopped" and not d.pids("web")
    release.touch()
    wait_status(d, "migrate", "done")
    d.wait_pids("web", 1)
    assert sorted((tmp_path / "runs").read_text().split()) == ["1", "2"], "neither respawned"
    assert "migrate: done: 2 process(es) exited with success" in d.log_text()


def test_still_running_after_ready_timeout_is_a_failure(daemon):
    d = daemon("""
        [watcher:migrate]
        cmd = sleep 1000
        ready = exited
        ready_timeout = 0.5

        [watcher:web]
        cmd = sleep 1000
        depends_on = migrate
    """)
    wait_status(d, "migrate", "failed")
    assert not d.pids("migrate"), "stopped"
    assert details(d, "migrate")["failure"] == "process 1 still running after ready_timeout = 0.5s"
    d.wait_log("not started, as they depend on it: web")
    log = d.log_text()
    assert "migrate: process 1 still running after ready_timeout = 0.5s (ready = exited)" in log
    assert status(d, "web") == "stopped" and not d.pids("web")


def test_a_reload_that_does_not_change_it_does_not_run_it_again(daemon, tmp_path):
    config = one_shot(tmp_path)
    d = daemon(config)
    wait_status(d, "migrate", "done")
    (web,) = d.wait_pids("web", 1)
    d.reload(config)
    d.wait_log("reload: nothing changed")
    assert status(d, "migrate") == "done" and runs(tmp_path / "runs") == 1
    # A change to how it runs: it runs again (its dependents are kept).
    d.reload(one_shot(tmp_path, extra="env = MIGRATION=2"))
    d.wait_log("reload: restarted migrate")
    wait_for(lambda: runs(tmp_path / "runs") == 2, message="migrate run again")
    wait_status(d, "migrate", "done")
    assert d.pids("web") == {web}
    # One that changes nothing of how it runs updates it in place.
    d.reload(one_shot(tmp_path, extra="env = MIGRATION=2\n        graceful_timeout = 5"))
    d.wait_log("reload: updated migrate")
    assert status(d, "migrate") == "done" and runs(tmp_path / "runs") == 2
