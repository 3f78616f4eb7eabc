"""Hostile and careless input on a real daemon: every input has a bound
and a clear error, nothing reaches past the watcher it names, and no hook
ends or leaks the daemon. (Files are checked in test_config; the fuzzer is
test_protocol_fuzz.)"""

from __future__ import annotations

import os
import resource
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest
import zmq

from bigtop.client import CommandFailed

from .conftest import free_port, wait_for
from .test_security import CurveDaemon

HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", "../x", "../../escaped", "a\nforged line",
                 "a\x00b", "", "w" * 10_000, "web\n", " web", "a/b", ".hidden", "-x"]


def test_add_refuses_every_name_a_file_would_refuse(daemon):
    """Names reach file paths (log_dir/NAME.stdout.log), log lines and web
    pages: refused before anything is made of them."""
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        """)
    with d.client() as client:
        for name in HOSTILE_NAMES:
            with pytest.raises(CommandFailed, match="cannot name a watcher|needs a name"):
                client.call("add", name=name, cmd="sleep 1000", start=True)
        assert client.call("list")["watchers"] == ["web"]
        client.call("add", name="ok_name-1.b@c", cmd="sleep 1000", start=True)
    d.wait_pids("ok_name-1.b@c", 1)
    assert "forged line" not in d.log_text()


@pytest.mark.parametrize(("command", "props", "message"), [
    ("incr", {"nb": 100_000}, "more than the machine's limit"),
    ("incr", {"nb": 10**20}, "more than the machine's limit"),
    ("incr", {"nb": 1e20}, "'nb' must be an integer"),
    ("incr", {"nb": 2.5}, "'nb' must be an integer"),
    ("incr", {"nb": True}, "'nb' must be an integer"),
    ("incr", {"nb": "3x"}, "'nb' must be an integer"),
    ("set", {"options": {"numprocesses": 1_000_000}}, "more than the machine's limit"),
    ("add", {"name": "more", "cmd": "sleep 1000", "options": {"numprocesses": 10_001}},
     "more than the machine's limit"),
])
def test_process_counts_past_the_bound_are_refused(daemon, command, props, message):
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        numprocesses = 2
        """)
    pids = d.wait_pids("web", 2)
    if command != "add":
        props = {"name": "web", **props}
    with d.client() as client:
        with pytest.raises(CommandFailed, match=message):
            client.call(command, **props)
        assert client.call("list")["watchers"] == ["web"]
        assert client.call("numprocesses", name="web")["numprocesses"] == 2
    assert d.pids("web") == pids


def test_max_processes_bounds_every_watcher_together(daemon):
    d = daemon("""
        [circus]
        max_processes = 5

        [watcher:a]
        cmd = sleep 1000
        numprocesses = 2

        [watcher:b]
        cmd = sleep 1000
        numprocesses = 2
        """)
    d.wait_pids("a", 2)
    with d.client() as client:
        assert client.call("incr", name="a", waiting=True)["numprocesses"] == 3
        with pytest.raises(CommandFailed, match=r"6 processes in all, more than max_processes"):
            client.call("incr", name="b")
        # A new watcher's processes count too.
        with pytest.raises(CommandFailed, match="more than max_processes"):
            client.call("add", name="c", cmd="sleep 1000")
        assert client.call("decr", name="a", waiting=True)["numprocesses"] == 2
        assert client.call("incr", name="b", waiting=True)["numprocesses"] == 3
    d.wait_pids("b", 3)


def test_check_refuses_a_billion_processes(tmp_path):
    config = tmp_path / "bigtop.ini"
    config.write_text("[watcher:web]\ncmd = sleep 1\nnumprocesses = 1000000000\n")
    checked = subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopd", "--check", str(config)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode != 0
    assert "web: 1000000000 processes, more than the machine's limit" in checked.stderr


def ended(pid: int) -> bool:
    """Gone, or a zombie (it may be reaped between any two looks)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_signal_reaches_only_the_watchers_own_processes(daemon):
    d = daemon("""
        [watcher:a]
        cmd = sleep 1000

        [watcher:b]
        cmd = sh -c 'sleep 1000 & wait'
        """)
    (a,) = d.wait_pids("a", 1)
    (b,) = d.wait_pids("b", 1)
    wait_for(lambda: psutil.Process(b).children(), message="b's child")
    (b_child,) = (p.pid for p in psutil.Process(b).children())
    stranger = subprocess.Popen(["sleep", "1000"])
    try:
        with d.client() as client:
            for props in ({"pid": 1, "childpid": stranger.pid},
                          {"pid": stranger.pid},
                          {"pid": b, "childpid": b_child},  # b's, named through a
                          {"pid": a, "childpid": stranger.pid}):
                with pytest.raises(CommandFailed, match="not managed by a|not a child of"):
                    client.call("signal", name="a", signum="TERM", **props)
            assert stranger.poll() is None
            assert psutil.Process(b_child).is_running() and d.pids() == {a, b}
            # Through its own watcher, b's child is reached.
            client.call("signal", name="b", signum="TERM", pid=b, childpid=b_child)
        wait_for(lambda: ended(b_child), message="b's child signalled")
    finally:
        stranger.kill()
        stranger.wait()


HOOKS = '''
import sys, time

async def exits(watcher, arbiter, hook_name, **kwargs):
    sys.exit(4)

async def blocks(watcher, arbiter, hook_name, **kwargs):
    time.sleep(2)
    return True

def never_returns(watcher, arbiter, hook_name, **kwargs):
    time.sleep(1000)
'''


def test_a_coroutine_hook_cannot_end_the_daemon(daemon, tmp_path):
    (tmp_path / "badhooks.py").write_text(HOOKS)
    d = daemon("""
        [watcher:other]
        cmd = sleep 1000
        priority = 10

        [watcher:exiting]
        cmd = sleep 1000
        hooks.before_start = badhooks.exits
        """)
    d.wait_pids("other", 1)
    wait_for(lambda: d.call("status", name="exiting")["status"] == "stopped",
             message="the failed start")
    assert "hook before_start (badhooks.exits) failed: raised SystemExit: 4" in d.log_text(), d.log_text()
    assert d.proc is not None and d.proc.poll() is None
    assert len(d.pids("other")) == 1


def test_a_coroutine_hook_that_blocks_fails_as_an_overrun(daemon, tmp_path):
    (tmp_path / "badhooks.py").write_text(HOOKS)
    d = daemon("""
        [watcher:blocking]
        cmd = sleep 1000
        autostart = false
        hook_timeout = 0.5
        hooks.before_start = badhooks.blocks
        """)
    with d.events("watcher.blocking.hook_failure") as events:
        d.call("start", name="blocking")
        error = events.wait("watcher.blocking.hook_failure", name="before_start")[1]["error"]
    assert "overran its 0.5s: a coroutine hook blocked the daemon for 2." in error
    assert d.call("status", name="blocking")["status"] == "stopped"


def test_overrun_hooks_hold_a_bounded_number_of_threads(daemon, tmp_path):
    (tmp_path / "badhooks.py").write_text(HOOKS)
    d = daemon("""
        [watcher:hooked]
        cmd = sleep 1000
        hook_timeout = 0.2
        backoff_initial = 0.05
        backoff_max = 0.1
        hooks.before_spawn = badhooks.never_returns
        """)
    daemon_process = psutil.Process(d.pid)
    d.wait_log("8 hooks are still running (overrun ones included): not started")
    most = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        most = max(most, daemon_process.num_threads())
        time.sleep(0.05)
    # 8 hook threads over the daemon's own few; never one per attempt.
    assert most <= 8 + 8, most
    assert d.call("status", name="hooked")["status"] == "backoff"  # and answering


def test_an_unknown_property_is_refused_not_ignored(daemon):
    """A typo must not widen a command: stop with "nmae" once stopped
    every watcher."""
    d = daemon("""
        [watcher:a]
        cmd = sleep 1000

        [watcher:b]
        cmd = sleep 1000
        """)
    d.wait_pids("a", 1)
    b = d.wait_pids("b", 1)
    with d.client() as client:
        with pytest.raises(CommandFailed, match=r"stop takes no property 'nmae' "
                                                r"\(did you mean 'name'\?\); it takes match, "
                                                r"name, waiting"):
            client.call("stop", nmae="a")
        with pytest.raises(CommandFailed, match="incr takes no property 'count'"):
            client.call("incr", name="a", count=3)
        assert client.call("status")["statuses"] == {"a": "active", "b": "active"}
        client.call("stop", name="a", waiting=True)  # waiting: taken by every command
    assert d.pids() == b


def test_a_reload_that_includes_a_fifo_is_refused_at_once(daemon, tmp_path):
    """Reading a FIFO would wait for a writer, on the daemon's loop."""
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        """)
    pids = d.wait_pids("web", 1)
    os.mkfifo(tmp_path / "fifo.ini")
    d.config.write_text("[circus]\ninclude = fifo.ini\n[watcher:web]\ncmd = sleep 1000\n")
    with d.client(timeout=5) as client:
        with pytest.raises(CommandFailed, match="fifo.ini: cannot read: not a regular file"):
            client.call("reloadconfig", waiting=True)
        assert client.call("status")["statuses"] == {"web": "active"}
    assert d.pids("web") == pids


def test_add_checks_its_args(daemon, tmp_path):
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        """)
    with d.client() as client:
        for args in ([None], [1, 2], {"a": 1}):
            with pytest.raises(CommandFailed) as failed:
                client.call("add", name="more", cmd="sleep", args=args)
            assert failed.value.errno == 3, failed.value
        # A list keeps each argument whole.
        client.call("add", name="more", cmd="sh", args=["-c", "echo one two > out; sleep 1000"],
                    options={"working_dir": str(tmp_path)}, start=True)
    wait_for(lambda: (tmp_path / "out").exists() and (tmp_path / "out").read_text() == "one two\n",
             message="the child's output")


def test_a_reload_of_an_emptied_file_is_refused(daemon):
    """An editor that truncated the file, then a HUP: everything would stop."""
    d = daemon("""
        [watcher:web]
        cmd = sleep 1000
        """)
    pids = d.wait_pids("web", 1)
    d.config.write_text("# being edited\n")
    with d.client() as client:
        with pytest.raises(CommandFailed, match="no section at all: a reload would stop every "
                                                "watcher and socket"):
            client.call("reloadconfig", waiting=True)
        d.reload("")  # on SIGHUP: the same, in the log
        d.wait_log("no section at all")
        assert d.pids("web") == pids
        # On purpose: a file that still has a [circus] section.
        d.config.write_text("[circus]\n")
        client.call("reloadconfig", waiting=True)
        assert client.call("list")["watchers"] == []


def test_watchers_are_bounded(daemon, tmp_path):
    from bigtop.config.bounds import MAX_WATCHERS

    many = "".join(f"[watcher:w{n}]\ncmd = sleep 1000\nautostart = false\n"
                   for n in range(MAX_WATCHERS))
    d = daemon(many)
    with pytest.raises(CommandFailed, match=f"{MAX_WATCHERS + 1} watchers, more than "
                                            f"{MAX_WATCHERS}"):
        d.call("add", name="one_more", cmd="sleep 1000")
    assert d.call("numwatchers")["numwatchers"] == MAX_WATCHERS


FLOOD = 1_100  # connections: past the common soft limit of 1,024 descriptors


@pytest.fixture
def flood_fds() -> Iterator[None]:
    """Room in the test process for the flood's own descriptors (a
    connection each; a SUB also has a mailbox), whatever limit the test
    run was started under; skips the test when the hard limit is lower."""
    needed = 4 * FLOOD
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit[0] == resource.RLIM_INFINITY or limit[0] >= needed:
        yield
        return
    if limit[1] != resource.RLIM_INFINITY and limit[1] < needed:
        pytest.skip(f"the flood needs {needed} descriptors, the hard limit is {limit[1]}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, limit[1]))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, limit)


@pytest.mark.usefixtures("flood_fds")
def test_a_flood_of_unfinished_handshakes_leaves_the_daemon_in_charge(daemon, tmp_path):
    """1,100 TCP connects that never finish the CurveZMQ handshake, under a
    limit of 1,024 descriptors the daemon cannot raise: the endpoint stops
    taking new clients before the descriptors run out, the processes are
    still respawned, and an authorized client is answered once the
    handshake timeout has dropped the flood."""
    curve = CurveDaemon(daemon, tmp_path, processes=2,
                        rlimits={resource.RLIMIT_NOFILE: (1024, 1024)})
    d, port = curve.daemon, int(curve.endpoint.rsplit(":", 1)[1])
    flood = []
    for _ in range(FLOOD):
        try:
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:  # refused: the endpoint closed
            pass
    try:
        d.wait_log("takes no client for now")
        assert len(os.listdir(f"/proc/{d.pid}/fd")) < 1024
        os.kill(min(d.pids("one")), 9)
        d.wait_pids("one", 2)
        with curve.client(curve.client_secret, timeout=30) as client:
            assert client.call("list")["watchers"] == ["one"]
    finally:
        for sock in flood:
            sock.close()
    assert "Traceback" not in d.log_text() and "Exception in callback" not in d.log_text()


@pytest.mark.usefixtures("flood_fds")
def test_a_flood_of_subscribers_does_not_abort_the_daemon(daemon):
    """1,100 SUB sockets on the events endpoint under 1,024 descriptors
    (it ended in a libzmq assertion, the children orphaned)."""
    pub = free_port()
    d = daemon(f"""
        [circus]
        pubsub_endpoint = tcp://127.0.0.1:{pub}

        [watcher:one]
        cmd = sleep 1000
        numprocesses = 2
        """, rlimits={resource.RLIMIT_NOFILE: (1024, 1024)})
    d.wait_pids("one", 2)
    context = zmq.Context()
    context.max_sockets = 2 * FLOOD
    subscribers = []
    try:
        for _ in range(FLOOD):
            sub = context.socket(zmq.SUB)
            sub.linger = 0
            sub.connect(f"tcp://127.0.0.1:{pub}")
            sub.subscribe(b"")
            subscribers.append(sub)
        d.wait_log("takes no client for now")
        assert d.call("list")["watchers"] == ["one"]  # the ipc:// control endpoint
        os.kill(min(d.pids("one")), 9)
        d.wait_pids("one", 2)
    finally:
        for sub in subscribers:
            sub.close()
        context.term()
    assert d.proc.poll() is None


def test_children_get_the_descriptor_limit_back(daemon, tmp_path):
    """The daemon raises its soft limit to the hard one, for connections;
    its children start with the limit it was started with: inherited while
    the daemon's descriptors are few (its own limit lowered for the spawn),
    set in the child past that ("many" crosses the line), and with other
    limits to set (rlimit_core)."""
    d = daemon("""
        [watcher:plain]
        cmd = sh -c 'ulimit -n > plain.out; exec sleep 1000'

        [watcher:limited]
        cmd = sh -c 'ulimit -Sn > limited.out; exec sleep 1000'
        rlimit_core = 0

        [watcher:many]
        cmd = sleep 1000
        numprocesses = 80
        """, rlimits={resource.RLIMIT_NOFILE: (256, 4096)})
    wait_for(lambda: (tmp_path / "plain.out").exists() and (tmp_path / "limited.out").exists())
    d.wait_pids("many", 80)
    assert resource.prlimit(d.pid, resource.RLIMIT_NOFILE) == (4096, 4096)
    assert max(int(fd) for fd in os.listdir(f"/proc/{d.pid}/fd")) > 256 - 64  # crossed
    for name in ("plain", "limited"):
        assert (tmp_path / f"{name}.out").read_text().split() == ["256"]
    for child in d.children():
        assert resource.prlimit(child.pid, resource.RLIMIT_NOFILE) == (256, 4096), child


def test_an_endpoint_past_max_connections_drops_them_and_listens_again(daemon):
    d = daemon("""
        [circus]
        max_connections = 3

        [watcher:one]
        cmd = sleep 1000
        """)
    path = d.endpoint[len("ipc://"):]
    clients = []
    for _ in range(3):
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        clients.append(client)
    d.wait_log("takes no client for now: 3 clients connected")
    for client in clients:  # dropped with the listener
        client.settimeout(10)
        while client.recv(1024):  # ZMTP's greeting, then the end
            pass
        client.close()
    d.wait_log("takes clients again")
    assert d.call("list")["watchers"] == ["one"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# -- a corpus of hostile values, over the commands that change state ----------------------

FUZZ_NAMES = [*HOSTILE_NAMES, "x" * 65, "@at", "ok", "w", "W", "w*"]  # and some sound ones
HOSTILE_VALUES = [None, True, False, 0, -1, 1, 2, 10**9, 2**64, -2**64, 1.5, 1e20, "1e20",
                  "2.5", "3", "", "nan", "inf", [], [None], {}, {"a": 1}, "\x00", "x" * 5000]
HOSTILE_KEYS = ["name", "nb", "cmd", "args", "key", "value", "options", "start", "signum",
                "pid", "childpid", "children", "recursive", "nmae", "waiting", "__class__"]
STATE_COMMANDS = ["add", "incr", "decr", "set", "signal", "rm", "start", "stop", "restart"]
MOST = 12  # max_processes of the fuzzed daemon


def _hostile_messages():
    """A command that changes state, mostly with the properties it takes
    (each a hostile value, or a sound one), sometimes with one it does not."""
    from hypothesis import strategies as st

    from bigtop.control.commands import COMMANDS

    sound = {"name": st.sampled_from(["w", "w2", "w*"]), "nb": st.sampled_from([1, 2, 3]),
             "cmd": st.just("sleep 1000"), "start": st.booleans(),
             "signum": st.sampled_from(["HUP", 1]), "key": st.just("numprocesses"),
             "value": st.sampled_from([0, 1, 3])}
    hostile = st.sampled_from(HOSTILE_VALUES) | st.sampled_from(FUZZ_NAMES)

    @st.composite
    def message(draw):
        command = draw(st.sampled_from(STATE_COMMANDS))
        properties = {}
        for key in sorted(COMMANDS[command].accepts - {"waiting"}):
            if draw(st.booleans()):
                properties[key] = draw(sound.get(key, hostile) | hostile
                                       if draw(st.booleans()) else sound.get(key, hostile))
        if draw(st.integers(0, 9)) == 0:
            properties[draw(st.sampled_from(HOSTILE_KEYS))] = draw(hostile)
        return command, properties

    return message()


def _fuzz_state_commands(daemon, examples: int) -> None:
    from hypothesis import HealthCheck, given, settings

    from bigtop.client import CallError
    from bigtop.config.names import name_problem

    d = daemon(f"""
        [circus]
        max_processes = {MOST}

        [watcher:w]
        cmd = sleep 1000
        numprocesses = 2
        """)
    d.wait_pids("w", 2)
    client = d.client(timeout=30)

    @settings(derandomize=True, database=None, deadline=None, max_examples=examples,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(_hostile_messages())
    def one(message):
        command, properties = message
        try:
            reply = client.call(command, raise_on_error=False, **properties)
        except CallError as err:  # a reply that never came
            raise AssertionError(f"no reply to {command} {properties!r}: {err}") from None
        assert reply["status"] in ("ok", "error"), reply
        if reply["status"] == "error":
            assert isinstance(reply.get("errno"), int) and reply.get("reason"), reply

    with client:
        one()
        watchers = client.call("list")["watchers"]
    assert all(name_problem(name, "watcher") is None for name in watchers), watchers
    assert len(d.children()) <= MOST
    assert d.proc.poll() is None
    log = d.log_text()
    assert "Traceback" not in log and "Exception in callback" not in log, log[-3000:]


def test_hostile_values_on_the_commands_that_change_state(daemon):
    """Every reply ok or error, with a number and a reason; afterwards no
    watcher with a name a file would refuse, no more processes than the
    bound, the daemon up, no traceback."""
    _fuzz_state_commands(daemon, examples=150)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_hostile_values_on_the_commands_that_change_state_soak(daemon):
    _fuzz_state_commands(daemon, examples=3000)
