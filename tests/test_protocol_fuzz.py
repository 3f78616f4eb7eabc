"""Random and mutated messages on the control socket of one live bigtopd.

Bad input must never take the daemon down or stall it: every message that
is not a cast gets exactly one JSON reply, ``status: ok`` or ``status: error``
with an integer Circus ``errno`` (0-6), and afterwards the daemon still
answers, runs the same watchers with the same processes, and has logged no
traceback.

Nothing here may change the daemon's state, so messages that could (quit,
reloadconfig, add, and start/stop/restart/reload/kill/signal/incr/decr/rm/set
on a real watcher) are filtered out of the generated space: mutations of
those commands aim at watchers that do not exist.

Hypothesis runs derandomized (a fixed seed per test) with no example
database, so every run sends the same messages.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bigtop.client import CallError, Client
from bigtop.control.commands import COMMANDS

from .conftest import processes_under, wait_for

ERRNOS = range(7)  # Circus's commands/errors.py: NOT_SPECIFIED .. BAD_MSG_DATA_ERROR
MAX_MESSAGE = 1024 * 1024
REPLY_TIMEOUT = 10.0

WATCHERS = {"alpha": 2, "Beta": 1}
CONFIG = """
    [circus]
    check_delay = 5

    [watcher:alpha]
    cmd = sleep 1000
    numprocesses = 2

    [watcher:Beta]
    cmd = sleep 1000

    [socket:web]
    host = 127.0.0.1
    port = 0
"""

# Commands that only read state: sent to real watchers too.
READ_ONLY = {"status", "list", "stats", "dstats", "options", "get", "globaloptions",
             "numprocesses", "numwatchers", "listsockets", "listen", "depends", "logs",
             "version"}
# Commands that change state: only ever sent where they cannot act.
STATEFUL = {"add", "rm", "set", "quit", "reloadconfig", "start", "stop", "restart", "reload",
            "kill", "signal", "incr", "decr"}
# Circus's required properties, in the order its validate() checks them.
CIRCUS_REQUIRED = {"add": ["name", "cmd"], "rm": ["name"], "set": ["name", "options"],
                   "get": ["name", "keys"], "options": ["name"], "signal": ["name", "signum"],
                   "kill": ["name"], "incr": ["name"], "decr": ["name"]}

# Tracebacks the fuzzing may provoke that are known and harmless (none now:
# an entry needs a test of its own that shows the bug).
KNOWN_TRACEBACKS: list[re.Pattern[str]] = []

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


# -- the daemon ---------------------------------------------------------------

class Live:
    """One bigtopd for the whole module, started as the conftest fixture does."""

    def __init__(self, path: Path):
        self.path = path
        self.run_dir = path / "run"
        self.config = path / "bigtop.ini"
        self.config.write_text(textwrap.dedent(CONFIG))
        self.log = path / "daemon.log"
        self.endpoint = f"ipc://{self.run_dir}/control.sock"
        env = {**os.environ, "BIGTOP_RUNTIME_DIR": str(self.run_dir)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bigtop.cli.bigtopd",
                                          str(self.config)], cwd=path, stdout=out,
                                         stderr=out, start_new_session=True, env=env)
        self.pids = wait_for(self._running, timeout=20, message="the fuzz daemon")
        self.raw = Raw(self.endpoint)

    def _running(self) -> dict[str, list[int]] | None:
        assert self.proc.poll() is None, self.log_text()
        try:
            pids = self.snapshot()
        except CallError:
            return None
        counts = {name: len(p) for name, p in pids.items()}
        return pids if counts == {k.lower(): v for k, v in WATCHERS.items()} else None

    def snapshot(self) -> dict[str, list[int]]:
        """The watchers (list) and the pids of each."""
        with Client(self.endpoint, timeout=REPLY_TIMEOUT) as client:
            names = client.call("list")["watchers"]
            return {name: sorted(client.call("list", name=name)["pids"]) for name in names}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        self.raw.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -1

    def check_intact(self) -> None:
        """Still answering, the same watchers and processes, no traceback."""
        assert self.proc.poll() is None, "the daemon died"
        assert self.snapshot() == self.pids
        with Client(self.endpoint, timeout=REPLY_TIMEOUT) as client:
            statuses = client.call("status")["statuses"]
        assert statuses == {name: "active" for name in WATCHERS}
        assert not unexpected_tracebacks(self.log_text())


def unexpected_tracebacks(log: str) -> list[str]:
    blocks = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            end = i + 1
            while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
                end += 1
            blocks.append("\n".join(lines[max(i - 1, 0):end + 1]))
    unknown = [b for b in blocks if not any(k.search(b) for k in KNOWN_TRACEBACKS)]
    others = [line for line in lines if "Logging error" in line or "never retrieved" in line]
    return unknown + others


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("fuzz")
    daemon = Live(path)
    try:
        yield daemon
    finally:
        status = daemon.stop()
        leftovers = processes_under(path)
        for proc in leftovers:
            proc.kill()
        assert not leftovers, f"processes left behind: {[p.pid for p in leftovers]}"
        assert status == 0, daemon.log_text()[-3000:]


@pytest.fixture(autouse=True)
def still_intact(request: pytest.FixtureRequest):
    """After every test on the shared daemon: still answering, same
    watchers and pids, no unexpected traceback."""
    yield
    if "live" in request.fixturenames:
        request.getfixturevalue("live").check_intact()


# -- talking to it --------------------------------------------------------------

class NoReply(AssertionError):
    pass


class Raw:
    """A DEALER socket: what Circus's client uses, without its safety nets."""

    def __init__(self, endpoint: str):
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.sent = 0

    def close(self) -> None:
        self.sock.close()
        self.context.term()

    def receive(self, what: object, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        if not self.sock.poll(int(timeout * 1000)):
            raise NoReply(f"no reply in {timeout}s to {_short(what)}")
        frames = self.sock.recv_multipart()
        assert len(frames) == 1, f"a reply is one frame, got {frames!r}"
        reply = json.loads(frames[0])
        assert isinstance(reply, dict), reply
        return reply

    def exchange(self, frames: list[bytes]) -> dict[str, Any] | None:
        """Send one message; its reply, or None for a cast (after checking
        that no reply came, by a ping that must be answered first)."""
        self.sent += 1
        self.sock.send_multipart(frames)
        if expects_no_reply(frames):
            ping = f"ping-{uuid.uuid4().hex}"
            self.sock.send(json.dumps({"command": "numwatchers", "id": ping}).encode())
            reply = self.receive(frames)
            assert reply.get("id") == ping, f"a cast was answered: {reply}"
            return None
        reply = self.receive(frames)
        check_reply(reply, frames)
        return reply


def _short(what: object) -> str:
    text = repr(what)
    return text if len(text) < 300 else text[:300] + f"... ({len(text)} chars)"


def parsed(frames: list[bytes]) -> Any:
    """What the daemon's json.loads makes of a one-frame message (or None)."""
    if len(frames) != 1 or len(frames[0]) > MAX_MESSAGE:
        return None
    try:
        return json.loads(frames[0])
    except (ValueError, RecursionError):
        return None


def expects_no_reply(frames: list[bytes]) -> bool:
    message = parsed(frames)
    return isinstance(message, dict) and message.get("msg_type") == "cast"


def same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def check_reply(reply: dict[str, Any], frames: list[bytes]) -> None:
    assert isinstance(reply.get("status"), str), reply
    assert isinstance(reply.get("time"), float) and math.isfinite(reply["time"]), reply
    if reply["status"] == "error":
        errno = reply.get("errno")
        assert isinstance(errno, int) and not isinstance(errno, bool), reply
        assert errno in ERRNOS, reply
        assert isinstance(reply.get("reason"), str) and reply["reason"], reply
        assert "tb" in reply and (reply["tb"] is None or isinstance(reply["tb"], str)), reply
    message = parsed(frames)
    if isinstance(message, dict):
        assert "id" in reply, reply
        assert same_json(reply["id"], message.get("id")), (reply["id"], message.get("id"))
        if reply["status"] != "error":
            # Only a real command can succeed; `status NAME` puts the state
            # in "status", as Circus does.
            command = message.get("command")
            assert isinstance(command, str) and command.lower() in COMMANDS, reply
            assert reply["status"] == "ok" or command.lower() == "status", reply


def send(live: Live, message: Any, **dumps: Any) -> dict[str, Any] | None:
    """Send a JSON message, never one that could change the daemon's state
    (inside a property-based test, such an example is discarded)."""
    if dangerous(message):
        assume(False)
    return live.raw.exchange([json.dumps(message, **dumps).encode("utf-8", "surrogatepass")])


# -- what may not be sent ---------------------------------------------------------

REAL = [name.lower() for name in WATCHERS]


def touches_real_watcher(name: str, match: Any) -> bool:
    """Would the daemon's lookup (simple, glob or regex, case-insensitive)
    find a real watcher by this name?"""
    lowered = name.lower()
    if match == "simple":
        return lowered in REAL
    if match == "glob":
        pattern = re.compile(fnmatch.translate(lowered))
    elif match == "regex":
        try:
            pattern = re.compile(lowered)
        except Exception:
            return False  # the daemon cannot compile it either
    else:
        return False  # an unknown match method is refused
    return any(pattern.match(w) for w in REAL)


def dangerous(message: Any) -> bool:
    """Could this message change the daemon's state, if it were obeyed?"""
    if not isinstance(message, dict):
        return False
    command = message.get("command")
    if not isinstance(command, str) or command.lower() not in COMMANDS:
        return False
    command = command.lower()
    if command in READ_ONLY:
        return False
    props = message.get("properties", {})
    if props is None:
        props = {}
    if not isinstance(props, dict):
        return False
    if command not in STATEFUL:
        return True  # a command this test does not know: never sent
    if command in ("quit", "reloadconfig"):
        return True
    name = props.get("name")
    if command == "add":
        return isinstance(name, str) and isinstance(props.get("cmd"), str)
    if "name" not in props:
        return command in ("start", "stop", "restart", "reload")  # all watchers
    if not isinstance(name, str):
        return False
    match = props.get("match", "glob") if command in ("start", "stop", "restart") else "simple"
    return touches_real_watcher(name, match)


def test_the_filter_keeps_state_changes_out():
    """The filter itself, on messages that would change something."""
    for message in [
        {"command": "quit"}, {"command": "QUIT", "properties": None},
        {"command": "reloadconfig", "properties": {"x": 1}},
        {"command": "add", "properties": {"name": "n", "cmd": "sleep 1"}},
        {"command": "stop"}, {"command": "Restart", "properties": {}},
        {"command": "stop", "properties": {"name": "ALPHA"}},
        {"command": "start", "properties": {"name": "a*"}},
        {"command": "start", "properties": {"name": "zz|", "match": "regex"}},
        {"command": "stop", "properties": {"name": "B.TA", "match": "regex"}},
        {"command": "kill", "properties": {"name": "beta"}},
        {"command": "incr", "properties": {"name": "Alpha", "nb": 3}},
        {"command": "signal", "properties": {"name": "alpha", "signum": 9}, "msg_type": "cast"},
        {"command": "set", "properties": {"name": "beta", "options": {}}},
        {"command": "reload", "properties": {"name": "beta"}},
        {"command": "rm", "properties": {"name": "alpha"}},
    ]:
        assert dangerous(message), message
    for message in [
        {"command": "quit", "properties": []}, {"command": "stop", "properties": "x"},
        {"command": "stop", "properties": {"name": "ghost"}},
        {"command": "stop", "properties": {"name": "alpha", "match": "bogus"}},
        {"command": "stop", "properties": {"name": 1}},
        {"command": "kill", "properties": {"name": "alp*"}},
        {"command": "add", "properties": {"name": 1, "cmd": "x"}},
        {"command": "status"}, {"command": "nope"}, [1], "quit",
    ]:
        assert not dangerous(message), message


# -- strategies ---------------------------------------------------------------------

scalars = (st.none() | st.booleans()
           | st.integers()
           | st.sampled_from([0, -1, 1, 2**31, -2**31, 2**63, 2**64, 10**30, -10**30, 10**400])
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
# Values that look like what a property wants but are not quite.
tricky = st.one_of(
    st.integers(-3, 40).map(str),                      # numbers as strings
    st.sampled_from(["", " ", "HUP", "SIGKILL", "sigterm", "SIGRTMIN+1", "SIGFOO", "9",
                     "-1", "1e3", "0x10", "nan", "inf", "true", "no", "yes", "*", "?", ".*",
                     "(", "[", "\x00", "\ud800", "é", "☃", "𝔘𝔫𝔦", "a" * 2000]),
    st.lists(st.integers(-2, 5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from([None, True, False, 0, -1, -2**70, 2**70, 1.5, -0.0, 1e308,
                     math.inf, -math.inf, math.nan]),
)
values = json_values | tricky
# For properties that want an integer.
bad_numbers = st.sampled_from([math.inf, -math.inf, math.nan, 2**64, -2**64, 10**400, -1,
                               0, 1.5, "1", "x", "", None, True, [1], {"n": 1}])
KNOWN_KEYS = ["name", "cmd", "args", "options", "start", "waiting", "nostop", "match",
              "graceful", "sequential", "rolling", "terminate", "nb", "pid", "childpid",
              "signum", "children", "recursive", "graceful_timeout", "keys", "option",
              "process", "extended", "lines", "__proto__", "id", "msg_type", "properties"]
prop_keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)

def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """one_of with weights (a plain one_of flattens and evens out its branches)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


REAL_NAMES = ["alpha", "ALPHA", "Alpha", "beta", "Beta", "BETA"]
ghost_names = weighted(
    (1, st.sampled_from(["ghost", "nosuch", "zz*", "zz?", "[zz]", "ghost*", "", " ", "alpha ",
                         " alpha", "alpha\x00", "alph", "betaa", "al\\pha", "a*", ".*",
                         "(", "*"])),
    (1, st.text(max_size=20).map(lambda t: "ghost-" + t)))
read_names = weighted((2, st.sampled_from(REAL_NAMES)), (1, ghost_names), (1, values))
state_names = weighted((3, ghost_names), (1, values))


def casing(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title(), name.swapcase()])


command_words = weighted(
    (7, st.sampled_from(sorted(COMMANDS)).flatmap(casing)),
    (1, st.sampled_from(["", " status", "status ", "nope", "ipython", "__init__",
                         "STATUS\x00", "ștatus"])),
    (2, st.text(max_size=15)))


# A valid form of each command's properties, before mutation. "R" is a
# real or a ghost watcher name, "G" a ghost one (commands that change state).
BASES: dict[str, dict[str, Any]] = {
    "status": {"name": "R"}, "list": {"name": "R"}, "options": {"name": "R"},
    "numprocesses": {"name": "R"}, "depends": {"name": "R"},
    "stats": {"name": "R", "process": 1, "extended": False},
    "get": {"name": "R", "keys": ["cmd", "numprocesses"]},
    "globaloptions": {"option": "endpoint"}, "logs": {"name": "R", "lines": 5},
    "dstats": {}, "numwatchers": {}, "listsockets": {}, "listen": {}, "version": {},
    "start": {"name": "G", "match": "glob", "waiting": False},
    "stop": {"name": "G", "match": "simple", "waiting": True},
    "restart": {"name": "G", "match": "regex", "waiting": False},
    "reload": {"name": "G", "graceful": True, "sequential": False, "waiting": False},
    "kill": {"name": "G", "pid": 1, "signum": "TERM", "graceful_timeout": 1},
    "signal": {"name": "G", "signum": "HUP", "pid": 1, "childpid": 2, "children": False,
               "recursive": False},
    "incr": {"name": "G", "nb": 1, "waiting": True}, "decr": {"name": "G", "nb": 2},
    "rm": {"name": "G", "nostop": False, "waiting": False},
    "set": {"name": "G", "options": {"numprocesses": 3, "cmd": "sleep 2"}, "waiting": False},
    "add": {"name": "G", "cmd": "sleep 1", "args": ["x"], "options": {"numprocesses": 1},
            "start": True},
    "quit": {"waiting": False}, "reloadconfig": {"waiting": True},
}
non_strings = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                        st.lists(st.text(max_size=5), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
not_objects = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                        st.lists(values, max_size=3))


@st.composite
def command_properties(draw: st.DrawFn, command: str) -> Any:
    """The command's valid properties with one to four keys mutated."""
    props = dict(BASES.get(command, {}))
    if props.get("name") == "R":
        props["name"] = draw(read_names)
    elif props.get("name") == "G":
        props["name"] = draw(state_names)
    if command == "add":  # an add that could succeed is never sent
        props[draw(st.sampled_from(["name", "cmd"]))] = draw(non_strings)
    others = sorted(k for k in props if k != "name")  # the name is already drawn
    for _ in range(draw(st.integers(1, 4))):
        key = draw(weighted((3, st.sampled_from(others)), (1, prop_keys)) if others
                   else prop_keys)
        if draw(st.integers(0, 4)) == 0:
            props.pop(key, None)
        elif isinstance(props.get(key), int) and not isinstance(props[key], bool):
            props[key] = draw(bad_numbers | values)
        else:
            props[key] = draw(values)
    if command in ("quit", "reloadconfig"):  # only malformed ones are sent
        return draw(not_objects)
    return props


@st.composite
def mutated_commands(draw: st.DrawFn) -> dict[str, Any]:
    """A real command with mutated properties, an odd id, maybe a cast."""
    word = draw(command_words)
    known = word.lower() if word.lower() in COMMANDS else None
    props: Any
    if known and draw(st.integers(0, 3)):
        props = draw(command_properties(known))
    else:
        props = draw(st.dictionaries(prop_keys, values, max_size=5))
        if known and draw(st.booleans()):
            props["name"] = draw(read_names if known in READ_ONLY else state_names)
    choice = draw(st.integers(0, 11))
    if choice == 0:
        props = draw(values)                 # properties of the wrong type
    message: dict[str, Any] = {"command": word}
    if choice != 1:
        message["properties"] = props
    if draw(st.booleans()):
        message["id"] = draw(st.just(uuid.uuid4().hex) | values)
    if draw(st.integers(0, 7)) == 0:
        message["msg_type"] = draw(st.sampled_from(["cast", "CAST", "call"]) | values)
    if draw(st.integers(0, 9)) == 0:
        message["command"] = draw(values)    # a command that is not a string
    return message


def exchange_bytes(live: Live, raw: bytes) -> dict[str, Any] | None:
    assume(not dangerous(parsed([raw])))
    return live.raw.exchange([raw])


# -- the tests ---------------------------------------------------------------------

@fuzz(400)
@given(raw=st.binary(max_size=3000))
@example(raw=b"")
@example(raw=b"   ")
@example(raw=b"\x00")
@example(raw=b"{")
@example(raw=b"null")
@example(raw=b'"status"')
@example(raw=b"\xef\xbb\xbf{}")
def test_arbitrary_bytes(live, raw):
    reply = exchange_bytes(live, raw)
    if parsed([raw]) is None:
        assert reply is not None and reply["status"] == "error", reply
        assert reply["errno"] in (1, 3), reply


@fuzz(200)
@given(message=mutated_commands(), data=st.data())
def test_non_utf8(live, message, data):
    """Invalid UTF-8 inside an otherwise valid message is invalid JSON."""
    raw = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")
    at = data.draw(st.integers(0, len(raw)))
    bad = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xfe\xff"]))
    raw = raw[:at] + bad + raw[at:]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        assume(False)
    reply = exchange_bytes(live, raw)
    if parsed([raw]) is None:
        assert reply is not None and reply["status"] == "error" and reply["errno"] == 1, reply
        assert reply["reason"] == "json invalid"


@fuzz(200)
@given(frames=st.lists(st.binary(max_size=300), min_size=2, max_size=5))
@example(frames=[b"", b'{"command": "status"}'])         # what a REQ socket sends
@example(frames=[b'{"command": "quit"}', b""])
@example(frames=[b'{"command": "quit"}'] * 5)
def test_wrong_frame_counts(live, frames):
    """A request is one frame. (A message of zero frames cannot be sent:
    every ZeroMQ message has at least one part; the empty one-frame message
    is in test_arbitrary_bytes.)"""
    reply = live.raw.exchange(frames)
    assert reply is not None and reply["status"] == "error" and reply["errno"] == 3, reply


@pytest.mark.parametrize("size", [MAX_MESSAGE + 1, 2 * MAX_MESSAGE, 4 * MAX_MESSAGE + 7])
@pytest.mark.parametrize("kind", ["junk", "json-name", "json-array", "non-utf8",
                                  "ghost-stop"])
def test_huge_messages(live, size, kind):
    head = {
        "junk": b"x",
        "json-name": b'{"command": "status", "properties": {"name": "',
        "json-array": b"[",
        "non-utf8": b"\xff",
        "ghost-stop": b'{"command": "stop", "properties": {"name": "ghost-',
    }[kind]
    tail = {"json-name": b'"}}', "json-array": b"1]", "ghost-stop": b'"}}'}.get(kind, b"")
    filler = b"1," if kind == "json-array" else (b"\xfe" if kind == "non-utf8" else b"a")
    raw = head + filler * ((size - len(head) - len(tail)) // len(filler) + 1) + tail
    assert len(raw) > MAX_MESSAGE
    reply = live.raw.exchange([raw])
    assert reply is not None and reply["status"] == "error", reply
    assert reply["errno"] in (1, 3), reply


def test_large_message_under_the_limit(live):
    name = "ghost-" + "n" * (MAX_MESSAGE - 200)
    reply = live.raw.exchange([json.dumps({"command": "status", "properties": {"name": name},
                                           "id": 7}).encode()])
    assert reply["status"] == "error" and reply["errno"] == 3 and reply["id"] == 7
    assert reply["reason"] == f"program {name} not found"


@fuzz(300)
@given(value=json_values)
def test_json_values_of_every_type(live, value):
    reply = send(live, value)
    if not isinstance(value, dict):
        assert reply is not None and reply["status"] == "error", reply
        assert reply["errno"] == 3, reply


@fuzz(300)
@given(message=st.dictionaries(st.sampled_from(["command", "properties", "id", "msg_type"])
                               | st.text(max_size=10), values, max_size=6))
def test_objects_with_random_keys(live, message):
    reply = send(live, message)
    if reply is not None and not isinstance(message.get("command"), str):
        assert reply["status"] == "error" and reply["errno"] == 3, reply


@fuzz(2500)
@given(message=mutated_commands())
def test_mutated_commands(live, message):
    send(live, message)


@fuzz(200)
@given(message=mutated_commands(), ascii_only=st.booleans())
def test_casts_get_no_reply(live, message, ascii_only):
    message["msg_type"] = "cast"
    assume(not dangerous(message))
    raw = json.dumps(message, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    reply = live.raw.exchange([raw])
    if isinstance(parsed([raw]), dict):
        assert reply is None
    else:  # not UTF-8 (a lone surrogate): invalid JSON, answered as such
        assert reply is not None and reply["errno"] == 1, reply


@fuzz(200)
@given(word=st.text(max_size=40))
@example(word="")
@example(word="ipython")
@example(word="STATUSS")
def test_unknown_commands(live, word):
    assume(word.lower() not in COMMANDS)
    reply = send(live, {"command": word, "properties": {}, "id": "u"})
    assert reply is not None and reply["status"] == "error", reply
    assert reply["errno"] == 2 and reply["reason"] == f"unknown command: {word!r}", reply
    assert reply["id"] == "u" and reply["tb"] is None


@pytest.mark.parametrize("command", sorted(CIRCUS_REQUIRED))
def test_missing_required_properties(live, command):
    """Checked in Circus's order: "message invalid 'KEY' is missing", errno 3."""
    props: dict[str, Any] = {}
    for key in CIRCUS_REQUIRED[command]:
        reply = send(live, {"command": command, "properties": props, "id": key})
        assert reply is not None and reply["status"] == "error", reply
        assert (reply["errno"], reply["reason"], reply["id"]) == \
            (3, f"message invalid {key!r} is missing", key)
        props[key] = "ghost"


def test_read_only_commands_on_real_watchers(live):
    """The plain, valid forms answer ok (no fuzzing: a baseline)."""
    for message in [
        {"command": "status"}, {"command": "status", "properties": {"name": "ALPHA"}},
        {"command": "list"}, {"command": "list", "properties": {"name": "beta"}},
        {"command": "stats"}, {"command": "stats", "properties": {"name": "alpha"}},
        {"command": "dstats"}, {"command": "options", "properties": {"name": "Beta"}},
        {"command": "get", "properties": {"name": "alpha", "keys": ["cmd"]}},
        {"command": "globaloptions"}, {"command": "numprocesses"},
        {"command": "numwatchers"}, {"command": "listsockets"},
    ]:
        reply = send(live, {**message, "id": 1})
        assert reply is not None and reply["status"] in ("ok", "active"), reply


# -- server bugs the fuzzing found ------------------------------------------------

def reply_to(live: Live, message: dict[str, Any]) -> dict[str, Any]:
    reply = live.raw.exchange([json.dumps(message).encode()])
    assert reply is not None
    return reply


def new_log(live: Live, since: int) -> str:
    return live.log.read_bytes()[since:].decode(errors="replace")


@pytest.mark.parametrize("message", [
    {"command": "stats", "properties": {"name": "alpha", "process": float("inf")}},
    {"command": "logs", "properties": {"lines": float("-inf")}},
], ids=["stats-process", "logs-lines"])
def test_numbers_that_do_not_fit_an_int_are_a_message_error(live, message):
    since = live.log.stat().st_size
    reply = reply_to(live, message)
    assert "Traceback" not in new_log(live, since)
    assert reply["status"] == "error" and reply["errno"] == 3 and reply["tb"] is None, reply


@pytest.mark.parametrize("message", [
    {"command": "get", "properties": {"name": "alpha", "keys": [["cmd"]]}},
    {"command": "get", "properties": {"name": "alpha", "keys": [{}]}},
    {"command": "globaloptions", "properties": {"option": []}},
], ids=["get-list", "get-object", "globaloptions-list"])
def test_unhashable_keys_are_a_message_error(live, message):
    since = live.log.stat().st_size
    reply = reply_to(live, message)
    assert "Traceback" not in new_log(live, since)
    assert reply["status"] == "error" and reply["errno"] == 3 and reply["tb"] is None, reply


@pytest.mark.parametrize("frames", [[b"{"], [b"[]"], [b"a", b"b"]],
                         ids=["invalid-json", "not-an-object", "two-frames"])
def test_early_errors_carry_a_null_id(live, frames):
    reply = live.raw.exchange(frames)
    assert reply is not None and reply["status"] == "error"
    assert "id" in reply and reply["id"] is None, reply


def test_deeply_nested_json_is_invalid_json(daemon):
    d = daemon(CONFIG)
    d.wait_pids("alpha", 2)
    raw = Raw(d.endpoint)
    try:
        raw.sock.send(b"[" * 100_000)
        raw.sock.send(json.dumps({"command": "status", "id": "after"}).encode())
        first = raw.receive("deep", timeout=5)
        second = raw.receive("status", timeout=5)
    finally:
        raw.close()
    assert first["status"] == "error" and first["errno"] == 1, first
    assert second["id"] == "after" and second["status"] == "ok", second
    assert "Traceback" not in d.log_text()


def test_a_frame_past_the_hard_limit_is_never_held_whole(live):
    """Past 8 MiB ZeroMQ stops reading and drops the sender: no reply, and
    the daemon never holds the 200 MB (once, it did)."""
    daemon = psutil.Process(live.proc.pid)
    before = daemon.memory_info().rss
    hog = Raw(live.endpoint)
    try:
        hog.sock.send(b"x" * (200 * 1024 * 1024))
        with pytest.raises(NoReply):
            hog.receive("a 200 MB frame", timeout=2)
    finally:
        hog.close()
    assert daemon.memory_info().rss - before < 40 * 1024 * 1024
    reply = reply_to(live, {"command": "status", "id": "after"})
    assert reply["status"] == "ok" and reply["id"] == "after"


# -- the long run -------------------------------------------------------------------

@pytest.mark.slow
@fuzz(20_000)
@given(message=mutated_commands())
def test_mutated_commands_soak(live, message):
    send(live, message)


def test_zz_daemon_intact_after_everything(live):
    """Run last in this module: the daemon took all of the above in its stride."""
    live.check_intact()
    reply = reply_to(live, {"command": "status", "id": "end"})
    assert reply["statuses"] == {name: "active" for name in WATCHERS}
    assert reply["id"] == "end"

