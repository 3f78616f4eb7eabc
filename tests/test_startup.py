"""Starting bigtopd at boot with systemd (docs/boot.md): the unit that
``bigtopctl startup`` prints, checked by systemd's own ``systemd-analyze
verify``; ``--install``/``--uninstall`` in a directory of the test's, with
a stand-in systemctl that records what it is asked; every bad input
refused with nothing written; and a real bigtopd speaking systemd's notify
protocol to a datagram socket the test binds, as systemd's would be."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bigtop.cli import startup
from bigtop.cli.bigtopctl import main as bigtopctl
from bigtop.config import load
from bigtop.sdnotify import watchdog_interval

from .conftest import Daemon, environ_of, wait_for

Factory = Callable[..., Daemon]
BIGTOPD = str(Path(os.path.abspath(sys.executable)).parent / "bigtopd")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
CONFIG = """\
[watcher:web]
cmd = sleep 1000
numprocesses = 2
graceful_timeout = 12

[watcher:worker]
cmd = sleep 1000
depends_on = web
graceful_timeout = 5
"""


def ctl(*args: str) -> tuple[int, str, str]:
    """bigtopctl in this process: its exit status, stdout, stderr."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = bigtopctl(list(args))
    return status, out.getvalue(), err.getvalue()


def settings(text: str) -> dict[str, list[str]]:
    """A unit's settings, KEY -> its values in order."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "shop.ini"
    path.write_text(CONFIG)
    return path


# -- the unit ---------------------------------------------------------------------------

def test_the_printed_unit(config: Path, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = ctl("startup", "shop.ini", "--watchdog", "30")
    assert status == 0 and err == "", err
    unit = settings(out)
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    # Absolute paths: this installation's bigtopd, the file, where it starts.
    assert unit["ExecStart"] == [f"{BIGTOPD} {config}"]
    assert "--daemon" not in out
    assert unit["WorkingDirectory"] == [str(tmp_path)]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["KillMode"] == ["mixed"]
    # worker stops before web, which it depends on: 5 + 12, and the margin.
    assert unit["TimeoutStopSec"] == ["27"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # an invalid configuration
    assert unit["RuntimeDirectory"] == ["bigtop-shop"]
    assert '"BIGTOP_RUNTIME_DIR=/run/bigtop-shop"' in unit["Environment"]
    assert f'"PATH={Path(BIGTOPD).parent}:{startup.SERVICE_PATH}"' in unit["Environment"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["LimitNOFILE"] == ["1024:524288"]
    assert unit["WantedBy"] == ["multi-user.target"]
    assert "User" not in unit and "Group" not in unit
    assert out.startswith("# bigtop-shop.service: ") and startup.MARKER in out

    # `systemd` may name the init system; --json gives the text with its name.
    status, again, _ = ctl("startup", "systemd", str(config), "--watchdog", "30")
    assert status == 0 and again == out
    import json

    status, out, _ = ctl("--json", "startup", str(config), "--watchdog", "30")
    assert json.loads(out) == {"unit": "bigtop-shop.service", "text": again}


def test_user_group_name_and_overrides(config: Path, tmp_path: Path) -> None:
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    status, out, err = ctl("startup", str(config), "--user", user, "--group", group,
                           "--name", "shop-2", "--timeout-stop", "90.5", "--kill-mode",
                           "process", "--working-dir", "/")
    assert status == 0, err
    unit = settings(out)
    assert unit["User"] == [user] and unit["Group"] == [group]
    assert unit["RuntimeDirectory"] == ["bigtop-shop-2"]
    assert unit["TimeoutStopSec"] == ["91"] and unit["KillMode"] == ["process"]
    assert unit["WorkingDirectory"] == ["/"]
    assert "WatchdogSec" not in unit


@pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                    reason="no systemd-analyze (make systemd-analyze, or apt-get install "
                           "systemd)")
@pytest.mark.parametrize("options", [(), ("--watchdog", "10", "--kill-mode", "process")])
def test_systemd_analyze_verifies_the_unit(tmp_path: Path, options: tuple[str, ...]) -> None:
    """systemd's own checks of the unit: its syntax, every setting known
    and valid, the ExecStart= program there and executable; with a path
    that needs quoting and escaping."""
    import pwd

    awkward = tmp_path / "conf dir 100%$HOME"
    awkward.mkdir()
    (awkward / "shop.ini").write_text(CONFIG)
    user = pwd.getpwuid(os.getuid()).pw_name
    status, out, err = ctl("startup", str(awkward / "shop.ini"), "--user", user,
                           "--working-dir", str(awkward), *options)
    assert status == 0, err
    assert 'ExecStart=' + BIGTOPD + ' "' + str(awkward).replace("%", "%%").replace(
        "$", "$$") + '/shop.ini"' in out
    unit = tmp_path / "bigtop-shop.service"
    unit.write_text(out)
    done = subprocess.run([str(SYSTEMD_ANALYZE), "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    said = [line for line in done.stderr.splitlines() if unit.name in line]
    assert done.returncode == 0 and not said, done.stderr


def test_stop_timeout_follows_the_stop_order(tmp_path: Path) -> None:
    def seconds(text: str) -> float:
        path = tmp_path / "c.ini"
        path.write_text(textwrap.dedent(text))
        return startup.stop_seconds(load(str(path)))

    margin = startup.STOP_MARGIN_S
    # Stopped together: the longest.
    assert seconds("""
        [watcher:a]
        cmd = sleep 1
        graceful_timeout = 3
        [watcher:b]
        cmd = sleep 1
        graceful_timeout = 7
    """) == 7 + margin
    # Lower priority first, then higher: one after the other.
    assert seconds("""
        [watcher:a]
        cmd = sleep 1
        graceful_timeout = 3
        priority = 1
        [watcher:b]
        cmd = sleep 1
        graceful_timeout = 7
        [watcher:c]
        cmd = sleep 1
        graceful_timeout = 1
    """) == 3 + 7 + margin
    # A stop hook has its hook_timeout.
    assert seconds("""
        [watcher:a]
        cmd = sleep 1
        graceful_timeout = 3
        hook_timeout = 2
        hooks.before_stop = os.getcwd
    """) == 3 + 2 + margin
    assert seconds("[watcher:a]\ncmd = sleep 1\n") == 30 + margin  # the default


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "said"), [
    ((), "which configuration?"),
    (("missing.ini",), "missing.ini: no such file"),
    (("upstart", "shop.ini"), "no init system 'upstart'"),
    (("systemd", "shop.ini", "more"), "too many arguments"),
    (("shop.ini", "--user", "no-such-user-here"), "no such user"),
    (("shop.ini", "--group", "no-such-group-here"), "no such group"),
    (("shop.ini", "--user", "a b"), "is not a user name"),
    (("shop.ini", "--name", "../etc"), "--name '../etc'"),
    (("shop.ini", "--working-dir", "nowhere"), "not a directory"),
    (("shop.ini", "--bigtopd", "nowhere"), "not an executable file"),
    (("shop.ini", "--unit-dir", "."), "go with --install or --uninstall"),
    (("--uninstall",), "needs CONFIG or --name"),
    (("--uninstall", "--name", "shop", "--user", "root"), "--user make no sense"),
])
def test_bad_arguments(config: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
                       said: str) -> None:
    monkeypatch.chdir(config.parent)
    status, out, err = ctl("startup", *args)
    assert status == 2 and out == ""
    assert err.startswith("bigtopctl startup: error: ") and said in err, err


@pytest.mark.parametrize("args", [("--watchdog", "0"), ("--watchdog", "x"),
                                  ("--timeout-stop", "-1"), ("--kill-mode", "none"),
                                  ("--install", "--uninstall")])
def test_bad_option_values(config: Path, args: tuple[str, ...]) -> None:
    status, out, err = ctl("startup", str(config), *args)
    assert status == 2 and out == "" and "usage: bigtopctl startup" in err


def test_an_invalid_configuration_is_reported_as_bigtopd_would(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[watcher:web]\ncmd = sleep 1\nnumprocesses = many\n")
    status, out, err = ctl("startup", str(bad), "--install", "--unit-dir", str(tmp_path),
                           "--no-reload")
    assert status == 2 and out == ""
    assert "invalid configuration, no unit made" in err and "numprocesses" in err
    assert "bad.ini:3" in err
    assert not list(tmp_path.glob("*.service"))


def test_a_file_name_that_cannot_name_a_unit(tmp_path: Path) -> None:
    odd = tmp_path / "my shop.ini"
    odd.write_text(CONFIG)
    status, _, err = ctl("startup", str(odd))
    assert status == 2 and "give --name NAME" in err
    status, out, _ = ctl("startup", str(odd), "--name", "shop")
    assert status == 0 and "RuntimeDirectory=bigtop-shop\n" in out


# -- --install, --uninstall ---------------------------------------------------------------

@pytest.fixture
def units(tmp_path: Path) -> Path:
    path = tmp_path / "units"
    path.mkdir()
    return path


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """A systemctl first on PATH that records its arguments, and fails the
    subcommand named in $FAKE_SYSTEMCTL_FAILS; returns the calls so far."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "systemctl.calls"
    fake = bindir / "systemctl"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$*" >> {calls}
        if [ "$1" = "$FAKE_SYSTEMCTL_FAILS" ]; then echo "Failed to $1: it broke" >&2; exit 1; fi
        exit 0
    """))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return lambda: calls.read_text().splitlines() if calls.exists() else []


def test_install_and_uninstall_without_systemctl(config: Path, units: Path) -> None:
    _, printed, _ = ctl("startup", str(config))
    status, out, err = ctl("startup", str(config), "--install", "--unit-dir", str(units),
                           "--no-reload")
    assert status == 0, err
    unit = units / "bigtop-shop.service"
    assert unit.read_text() == printed
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert [p.name for p in units.iterdir()] == [unit.name]  # no temporary file left
    assert f"wrote {unit}" in out and "ipc:///run/bigtop-shop/control.sock" in out
    status, out, _ = ctl("startup", str(config), "--install", "--unit-dir", str(units),
                         "--no-reload")
    assert status == 0 and f"kept {unit}" in out

    status, out, err = ctl("startup", "--uninstall", "--name", "shop", "--unit-dir",
                           str(units), "--no-reload")
    assert status == 0, err
    assert f"removed {unit}" in out and not unit.exists()
    status, _, err = ctl("startup", "--uninstall", str(config), "--unit-dir", str(units),
                         "--no-reload")
    assert status == 1 and "nothing to remove" in err


def test_install_runs_systemctl(config: Path, units: Path,
                                systemctl: Callable[[], list[str]]) -> None:
    status, out, err = ctl("startup", str(config), "--install", "--unit-dir", str(units))
    assert status == 0, err
    assert systemctl() == ["show --property=Version", "daemon-reload",
                           "enable bigtop-shop.service"]
    assert "enabled it: bigtopd starts on" in out
    assert "systemctl start bigtop-shop.service" in out

    # Uninstalled under another name for the same file: it is gone.
    config.unlink()
    status, out, err = ctl("startup", "--uninstall", str(config), "--unit-dir", str(units))
    assert status == 0, err
    assert systemctl()[3:] == ["show --property=Version", "disable bigtop-shop.service",
                               "is-active --quiet bigtop-shop.service", "daemon-reload"]
    assert not (units / "bigtop-shop.service").exists()
    assert "still runs until it stops" in out  # the stand-in says it is active


def test_a_failing_systemctl_leaves_the_unit_as_it_was(config: Path, units: Path,
                                                       systemctl: Callable[[], list[str]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    unit = units / "bigtop-shop.service"
    monkeypatch.setenv("FAKE_SYSTEMCTL_FAILS", "enable")
    status, out, err = ctl("startup", str(config), "--install", "--unit-dir", str(units))
    assert status == 1 and out == ""
    assert "systemctl enable bigtop-shop.service failed (exit 1): Failed to enable" in err
    assert list(units.iterdir()) == []  # a new unit: removed again

    monkeypatch.delenv("FAKE_SYSTEMCTL_FAILS")
    assert ctl("startup", str(config), "--install", "--unit-dir", str(units))[0] == 0
    before = unit.read_text()
    monkeypatch.setenv("FAKE_SYSTEMCTL_FAILS", "daemon-reload")
    status, _, err = ctl("startup", str(config), "--install", "--unit-dir", str(units),
                         "--watchdog", "20")
    assert status == 1 and "daemon-reload failed" in err
    assert unit.read_text() == before  # the previous one: put back

    monkeypatch.setenv("FAKE_SYSTEMCTL_FAILS", "show")  # no manager to talk to
    status, _, err = ctl("startup", str(config), "--install", "--unit-dir", str(units),
                         "--watchdog", "20")
    assert status == 1 and "systemctl show --property=Version failed" in err
    assert unit.read_text() == before

    monkeypatch.setenv("FAKE_SYSTEMCTL_FAILS", "disable")
    status, _, err = ctl("startup", "--uninstall", str(config), "--unit-dir", str(units))
    assert status == 1 and "systemctl disable" in err and unit.read_text() == before


def test_no_systemctl(config: Path, units: Path, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    status, _, err = ctl("startup", str(config), "--install", "--unit-dir", str(units))
    assert status == 1 and "no systemctl on PATH" in err and "--no-reload" in err
    assert list(units.iterdir()) == []


def test_unit_directories_it_cannot_write(config: Path, tmp_path: Path) -> None:
    status, _, err = ctl("startup", str(config), "--install", "--unit-dir",
                         str(tmp_path / "absent"), "--no-reload")
    assert status == 1 and "no such directory" in err
    if os.geteuid() == 0:  # root writes anywhere a mode allows: sysfs takes no new file
        closed = Path("/sys")
    else:
        closed = tmp_path / "closed"
        closed.mkdir(mode=0o500)
    status, out, err = ctl("startup", str(config), "--install", "--unit-dir", str(closed),
                           "--no-reload")
    assert status == 1 and out == "" and f"cannot write to {closed}" in err, err
    assert not (closed / "bigtop-shop.service").exists()


def test_a_unit_it_did_not_write_is_left_alone(config: Path, units: Path) -> None:
    foreign = units / "bigtop-shop.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    for args in (("startup", str(config), "--install"), ("startup", "--uninstall",
                                                         "--name", "shop")):
        status, _, err = ctl(*args, "--unit-dir", str(units), "--no-reload")
        assert status == 1 and "was not written by bigtopctl startup" in err
        assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"


# -- bigtopd as a Type=notify service -----------------------------------------------------

CREDENTIALS = struct.Struct("3i")


class NotifySocket:
    """The socket systemd would read: each datagram with its sender's pid."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        self.messages: list[tuple[int, dict[str, str]]] = []

    def read(self, timeout: float) -> bool:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(CREDENTIALS.size))
        except TimeoutError:
            return False
        pid = next(CREDENTIALS.unpack(payload[:CREDENTIALS.size])[0]
                   for level, kind, payload in ancillary
                   if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.messages.append((pid, fields))
        return True

    def wait(self, key: str, timeout: float = 15.0) -> tuple[int, dict[str, str]]:
        """The first message not yet waited for with ``key=1`` in it, every
        message before it read (and kept in ``messages``)."""
        deadline = time.monotonic() + timeout
        start = getattr(self, "_next", 0)
        while True:
            for index in range(start, len(self.messages)):
                if self.messages[index][1].get(key) == "1":
                    self._next = index + 1
                    return self.messages[index]
            start = len(self.messages)
            if not self.read(deadline - time.monotonic()) and time.monotonic() > deadline:
                pytest.fail(f"no {key}=1 within {timeout}s; got {self.messages}")

    def states(self) -> list[str]:
        """The states said so far, in order, the watchdog's pings left out."""
        return [next(k for k in ("READY", "RELOADING", "STOPPING") if k in fields)
                for _, fields in self.messages if set(fields) - {"WATCHDOG"}]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """NOTIFY_SOCKET (and a 0.2 s watchdog) in the environment the daemons
    of the test start with."""
    listener = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    yield listener
    listener.close()


TELLS_READY = """\
import os, socket, time
address = os.environ["NOTIFY_SOCKET"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    sock.connect("\\0" + address[1:] if address.startswith("@") else address)
    sock.send(b"READY=1")
time.sleep(1000)
"""
NOTIFY_CONFIG = """\
[watcher:plain]
cmd = sleep 1000
numprocesses = 2
copy_env = true

[watcher:told]
cmd = {python} {script}
copy_env = true
ready = notify
"""
SERVICE_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def notify_daemon(daemon: Factory, tmp_path: Path) -> Daemon:
    script = tmp_path / "tells_ready.py"
    script.write_text(TELLS_READY)
    return daemon(NOTIFY_CONFIG.format(python=sys.executable, script=script), start=False)


def test_bigtopd_tells_systemd_its_states(daemon: Factory, tmp_path: Path,
                                          systemd: NotifySocket) -> None:
    d = notify_daemon(daemon, tmp_path).start(wait=False)
    pid, ready = systemd.wait("READY")
    # Said once the watchers have started: their processes are there now.
    assert len(d.pids("plain")) == 2 and len(d.pids("told")) == 1
    assert pid == d.pid and ready["MAINPID"] == str(d.pid)
    assert ready["STATUS"] == f"running: 2 watcher(s) of {d.config}"
    d.wait_ready("told")  # its READY=1 went to bigtopd's own socket

    # Children never see systemd's variables; a notify watcher gets bigtopd's socket.
    for child in d.children("plain"):
        assert not set(SERVICE_VARIABLES) & set(environ_of(child))
    (told,) = d.children("told")
    env = environ_of(told)
    assert env["NOTIFY_SOCKET"].startswith("@bigtop-notify-")
    assert "WATCHDOG_USEC" not in env

    # The watchdog's pings: every 0.1 s for WATCHDOG_USEC=200000.
    for _ in range(3):
        systemd.wait("WATCHDOG")

    d.signal(signal.SIGHUP)
    _, reloading = systemd.wait("RELOADING")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    assert reloading["STATUS"] == f"reloading {d.config}"
    systemd.wait("READY")

    assert d.stop() == 0
    _, stopping = systemd.wait("STOPPING")
    assert stopping["STATUS"] == "stopping every watcher"
    assert systemd.states() == ["READY", "RELOADING", "READY", "STOPPING"]
    assert {pid for pid, _ in systemd.messages} == {d.pid}  # NotifyAccess=main would take all


def test_a_stop_by_quit_is_said_too(daemon: Factory, tmp_path: Path,
                                    systemd: NotifySocket) -> None:
    d = daemon("[watcher:a]\ncmd = sleep 1000\n")
    systemd.wait("READY")
    d.call("quit")
    systemd.wait("STOPPING")
    assert d.proc is not None and d.proc.wait(30) == 0
    assert systemd.states() == ["READY", "STOPPING"]


def test_upgrade_keeps_systemd_told(daemon: Factory, tmp_path: Path,
                                    systemd: NotifySocket) -> None:
    """The same pid re-executes: RELOADING=1 before, READY=1 from the new
    image once it has taken over, the watchdog's pings going on, and the
    variables still out of the children's environment."""
    d = notify_daemon(daemon, tmp_path).start()
    systemd.wait("READY")
    pids = d.pids("plain")
    assert d.call("upgrade")["status"] == "ok"
    _, reloading = systemd.wait("RELOADING")
    assert reloading["STATUS"].startswith("upgrading: re-executing ")
    assert reloading.get("WATCHDOG") == "1"  # a last ping before the exec
    pid, ready = systemd.wait("READY")
    assert pid == d.pid and ready["MAINPID"] == str(d.pid)
    assert "took over" in ready["STATUS"]
    systemd.wait("WATCHDOG")  # the new image pings
    assert d.pids("plain") == pids
    d.call("incr", name="plain")
    (new,) = d.wait_pids("plain", 3) - pids
    import psutil

    assert not set(SERVICE_VARIABLES) & set(environ_of(psutil.Process(new)))
    assert "took over" in d.log_text()
    assert d.stop() == 0
    systemd.wait("STOPPING")
    assert systemd.states() == ["READY", "RELOADING", "READY", "STOPPING"]


def test_without_notify_socket_nothing_is_imported(daemon: Factory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("PYTHONVERBOSE", "1")  # every import, on the daemon's stderr
    d = daemon("[watcher:a]\ncmd = sleep 1000\n")
    d.signal(signal.SIGHUP)
    d.wait_log("got SIGHUP")
    wait_for(lambda: "reload:" in d.log_text(), message="the reload")
    assert "import 'bigtop.core'" in d.log_text()  # the log does show imports
    assert "bigtop.sdnotify" not in d.log_text()


def test_watchdog_interval() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "3000000"}, 42) == 1.5
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "42"}, 42) == 1.5
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None
    assert watchdog_interval({}, 42) is None
