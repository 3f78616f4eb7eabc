"""Changes made at run time survive a restart once saved (``bigtopctl
save``), in a state file beside the configuration, which is never
rewritten; ``bigtopctl diff`` says what the daemon runs that the file does
not, and what of it is saved."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bigtop.config import load
from bigtop.config.saved import Changes, apply, compare, load_saved, read, state_file, write

from .conftest import ROOT, Daemon

CONFIG = """\
# my comments stay
[watcher:web]
cmd = sleep 1000
numprocesses = 2

[watcher:old]
cmd = sleep 1000
"""


def ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopctl", "--endpoint",
                           d.endpoint, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def ok(d: Daemon, *args: str) -> str:
    done = ctl(d, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_saved_changes_survive_a_restart_and_the_file_is_untouched(
        daemon: Callable[..., Daemon]) -> None:
    d = daemon(CONFIG)
    d.wait_pids("web", 2)
    assert ok(d, "diff").strip() == "the daemon runs what its configuration file says"
    ok(d, "incr", "web", "2", "--waiting")
    ok(d, "set", "web", "graceful_timeout", "7", "--waiting")
    ok(d, "add", "extra", "--start", "--", "sleep", "1001")
    ok(d, "rm", "old", "--yes", "--waiting")
    diff = ok(d, "diff")
    for line in ("+ extra (added)  (not saved)", "- old (removed)  (not saved)",
                 "~ web: numprocesses 2 -> 4  (not saved)",
                 "~ web: graceful_timeout 30.0 -> 7.0  (not saved)"):
        assert line in diff, diff
    saved = ok(d, "save")
    assert f"saved to {d.config}.saved.toml:" in saved
    assert "(saved)" in ok(d, "diff") and "(not saved)" not in ok(d, "diff")
    assert d.config.read_text().startswith("# my comments stay")  # never rewritten
    d.stop()
    d.start()
    d.wait_pids("web", 4)
    d.wait_pids("extra", 1)
    status = d.call("status")["statuses"]
    assert "old" not in status and status["extra"] == "active"
    assert d.call("get", name="web", keys=["graceful_timeout"])["options"] == {
        "graceful_timeout": 7.0}
    assert "applying the saved state" in d.log_text()
    ok(d, "reloadconfig")  # a reload keeps them too
    d.wait_pids("web", 4)
    assert "extra" in d.call("status")["statuses"]


def test_the_file_wins_where_it_changed_since_the_save(tmp_path: Path) -> None:
    config = tmp_path / "bigtop.ini"
    config.write_text(CONFIG)
    base = load(str(config))
    running = base.watchers[0].__class__(name="web", cmd="sleep 1000", numprocesses=5)
    changes = compare(base, (running,))
    assert set(changes.changed["web"]) == {"numprocesses"} and changes.removed == ["old"]
    write(state_file(base), changes, str(config))
    assert read(state_file(base)) == changes
    assert [w.numprocesses for w in load_saved(str(config)).watchers] == [5]
    config.write_text(CONFIG.replace("numprocesses = 2", "numprocesses = 3"))
    edited = load_saved(str(config))
    assert [w.numprocesses for w in edited.watchers] == [3]
    assert any("numprocesses changed in the file since it was saved" in w
               for w in edited.warnings)


def test_a_saved_state_that_does_not_hold_leaves_the_file_alone(tmp_path: Path) -> None:
    config = tmp_path / "bigtop.ini"
    config.write_text(CONFIG)
    base = load(str(config))
    broken = Changes(added={"x": {"cmd": "sleep 1", "depends_on": ["nothere"]}})
    try:
        apply(base, broken)
    except Exception as err:  # the reader's own error
        assert "nothere" in str(err)
    else:
        raise AssertionError("a dependency on no watcher was applied")
    write(state_file(base), broken, str(config))
    loaded = load_saved(str(config))
    assert {w.name for w in loaded.watchers} == {"web", "old"}
    assert any("the saved state is not applied" in w for w in loaded.warnings)
    Path(state_file(base)).write_text("[saved]\nversion = 99\n")
    assert any("state version 99" in w for w in load_saved(str(config)).warnings)


def test_an_option_the_file_leaves_unset_is_saved(tmp_path: Path) -> None:
    """TOML has no null: an unset option (working_dir) is saved all the same."""
    from bigtop.config.build import update_watcher

    config = tmp_path / "bigtop.ini"
    config.write_text(CONFIG)
    base = load(str(config))
    running = tuple(update_watcher(w, {"working_dir": str(tmp_path)}) if w.name == "web" else w
                    for w in base.watchers)
    changes = compare(base, running)
    write(state_file(base), changes, str(config))
    assert read(state_file(base)) == changes
    web = next(w for w in load_saved(str(config)).watchers if w.name == "web")
    assert web.working_dir == str(tmp_path)
