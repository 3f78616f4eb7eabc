"""LAN discovery, Circus's way (docs/discovery.md): bigtopd answers the
multicast probe with its tcp:// control endpoint, as circusd does, byte for
byte; ``bigtop.client.discovery`` finds bigtopd and the real circusd alike.

The probes here are sent with a TTL of 0: the kernel loops them back to
this host's members of the group and sends nothing out. Each test has a
group and port of its own, so that runs at the same time do not meet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from bigtop.client import CallError, Client
from bigtop.client.discovery import Node, discover, read_answer
from bigtop.control import multicast
from bigtop.control.multicast import (
    BURST,
    PROBE,
    RATE,
    EndpointError,
    Responder,
    TokenBucket,
    open_group_socket,
    parse_endpoint,
)

from .conftest import ROOT, Daemon, free_port, wait_for

CIRCUS_BIN = ROOT / ".venv-circus" / "bin"
WAIT = 10.0  # seconds an answer that should come may take, on a loaded machine


def free_udp_port() -> int:
    """A UDP port nobody has bound on any address now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def fresh_group() -> str:
    """An organization-local group (239.255/16) and a free port."""
    return f"udp://239.255.{random.randint(1, 254)}.{random.randint(1, 254)}:{free_udp_port()}"


def port_held(port: int) -> bool:
    """Whether a socket is bound to this UDP port on some address: a bind
    without SO_REUSEADDR to every address then fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def udp_ports(pid: int) -> set[int]:
    """The ports of the UDP sockets a process holds."""
    return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="udp4")}


def prober(timeout: float = WAIT) -> socket.socket:
    """A socket as circus-web's: any port, every address; TTL 0 here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.bind(("0.0.0.0", 0))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
    sock.settimeout(timeout)
    return sock


def find(group: str, expect: int = 1) -> list[Node]:
    return asyncio.run(discover(group, timeout=WAIT, expect=expect, ttl=0))


def answers(client: Client) -> bool:
    try:
        client.call("status")
    except CallError:
        return False
    return True


@pytest.fixture(scope="module")
def loops() -> None:
    """Multicast loops back on this host (a route to the groups, an
    interface that takes multicast): else these tests cannot run here."""
    address, port = parse_endpoint(fresh_group())
    try:
        member = open_group_socket(address, port)
    except OSError as err:
        pytest.skip(f"cannot join a multicast group here: {err}")
    with member, prober(2.0) as sock:
        member.settimeout(2.0)
        try:
            sock.sendto(PROBE, (address, port))
            member.recvfrom(64)
        except OSError as err:
            pytest.skip(f"multicast does not loop back on this host: {err}")


def tcp_daemon(daemon, group: str, host: str = "127.0.0.1"):
    """A daemon on a keyless tcp:// control endpoint (its events and stats
    on the default ipc:// ones) with this multicast_endpoint."""
    port = free_port()
    d = daemon(f"""
        [circus]
        endpoint = tcp://{host}:{port}
        insecure = true
        multicast_endpoint = {group}

        [watcher:one]
        cmd = sleep 1000
    """)
    assert d.proc.poll() is None, d.log_text()
    return d, port


# -- the daemon: found, byte for byte as circusd -------------------------------

def test_discover_finds_bigtopd(daemon, loops):
    group = fresh_group()
    d, port = tcp_daemon(daemon, group)
    endpoint = f"tcp://127.0.0.1:{port}"
    assert f"discovery: answering probes on {group} with {endpoint}" in d.log_text()
    assert udp_ports(d.pid) == {parse_endpoint(group)[1]}
    nodes = find(group)
    assert [n.endpoint for n in nodes] == [endpoint]
    with Client(nodes[0].endpoint, timeout=5) as client:
        assert client.call("status")["statuses"] == {"one": "active"}


def test_a_circus_web_probe_gets_circusds_answer(daemon, loops):
    """circus-web (circusweb/util.py, AutoDiscovery) sends ``""`` from a
    port of its own and reads ``endpoint`` from the JSON that comes back;
    the bytes are those of circusd's json.dumps({'endpoint': ...}), as
    Circus's own serializer writes them."""
    group = fresh_group()
    address, group_port = parse_endpoint(group)
    d, port = tcp_daemon(daemon, group)
    endpoint = f"tcp://127.0.0.1:{port}"
    with prober() as sock:
        sock.sendto(b'""', (address, group_port))
        data, source = sock.recvfrom(1024)
    assert source[1] == group_port  # answered from the group's port, as circusd
    assert json.loads(data).get("endpoint", "") == endpoint
    if (CIRCUS_BIN / "python").exists():
        circus = subprocess.run(
            [str(CIRCUS_BIN / "python"), "-c",
             "import sys, zmq.utils.jsonapi as json; "
             "sys.stdout.buffer.write(json.dumps({'endpoint': sys.argv[1]}))", endpoint],
            capture_output=True, timeout=60, check=True)
        assert data == circus.stdout
    assert data == f'{{"endpoint": "{endpoint}"}}'.encode()


@pytest.mark.parametrize("host", ["0.0.0.0", "*"])
def test_every_address_is_announced_as_one_the_prober_reaches(daemon, loops, host):
    """circusd announces tcp://0.0.0.0:P and leaves circus-web to put the
    answer's address there (``*`` it leaves alone): bigtopd names that
    address itself, so that any prober gets an endpoint it can connect to."""
    group = fresh_group()
    address, group_port = parse_endpoint(group)
    d, port = tcp_daemon(daemon, group, host=host)
    with prober() as sock:
        sock.sendto(PROBE, (address, group_port))
        data, source = sock.recvfrom(1024)
    announced = json.loads(data)["endpoint"]
    assert announced == f"tcp://{source[0]}:{port}"  # what circus-web would make of it
    nodes = find(group)
    assert [n.endpoint for n in nodes] == [announced]
    with Client(announced, timeout=5) as client:
        assert client.call("status")["statuses"] == {"one": "active"}


@pytest.mark.skipif(not (CIRCUS_BIN / "circusd").exists(),
                    reason=f"the real Circus is missing: `make test` installs it into "
                           f"{ROOT / '.venv-circus'}")
def test_discover_finds_a_real_circusd(tmp_path, loops):
    group = fresh_group()
    address, group_port = parse_endpoint(group)
    port, pub, stats = free_port(), free_port(), free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    config = tmp_path / "circus.ini"
    config.write_text(textwrap.dedent(f"""
        [circus]
        endpoint = {endpoint}
        pubsub_endpoint = tcp://127.0.0.1:{pub}
        stats_endpoint = tcp://127.0.0.1:{stats}
        multicast_endpoint = {group}

        [watcher:one]
        cmd = sleep 1000
        """))
    circusd = subprocess.Popen([str(CIRCUS_BIN / "circusd"), str(config)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        with Client(endpoint, timeout=10) as client:
            wait_for(lambda: answers(client), timeout=60, message="circusd up")
        assert [n.endpoint for n in find(group)] == [endpoint]
        with prober() as sock:  # and its bytes are the ones bigtopd sends
            sock.sendto(PROBE, (address, group_port))
            data, _ = sock.recvfrom(1024)
        assert data == multicast.answer_payload(endpoint)
    finally:
        circusd.send_signal(signal.SIGTERM)
        try:
            circusd.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(circusd.pid, signal.SIGKILL)
            circusd.wait()


def test_two_daemons_on_one_host_share_the_group(daemon, tmp_path, loops):
    group = fresh_group()
    first, port1 = tcp_daemon(daemon, group)
    (tmp_path / "second").mkdir()
    port2 = free_port()
    second = Daemon(tmp_path / "second", f"""
        [circus]
        endpoint = tcp://127.0.0.1:{port2}
        insecure = true
        multicast_endpoint = {group}
    """)
    try:
        second.start()
        found = {n.endpoint for n in find(group, expect=2)}
        assert found == {f"tcp://127.0.0.1:{port1}", f"tcp://127.0.0.1:{port2}"}
    finally:
        second.stop()


# -- bounds: a flood, garbage ---------------------------------------------------

def test_a_flood_of_probes_leaves_the_daemon_answering(daemon, loops):
    group = fresh_group()
    address, group_port = parse_endpoint(group)
    d, port = tcp_daemon(daemon, group)
    started = time.monotonic()
    with prober() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for _ in range(10_000):
            try:
                sock.sendto(PROBE, (address, group_port))
            except OSError:  # ENOBUFS: the flood outruns the host itself
                pass
        sock.recvfrom(1024)  # the first probes are answered: the bucket is full
        got = 1
        with Client(f"tcp://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(20):
                assert client.call("status")["statuses"] == {"one": "active"}
        sock.setblocking(False)
        while True:
            try:
                sock.recvfrom(1024)
            except BlockingIOError:
                break
            got += 1
        elapsed = time.monotonic() - started
    assert got <= BURST + RATE * elapsed + 1, (got, elapsed)
    d.wait_log("discovery: probes dropped")
    warnings = d.log_text().count("discovery: probes dropped")
    assert 1 <= warnings <= 1 + elapsed / multicast.LOG_INTERVAL
    # And once the flood is over, probes are answered again.
    wait_for(lambda: find(group), timeout=60, message="an answer after the flood")
    assert "Traceback" not in d.log_text()


def test_garbage_and_oversized_datagrams_are_not_answered(daemon, loops):
    """What cannot be a probe is not answered, and breaks nothing. The
    garbage goes first, from a socket of its own: by the time the probe
    after it is answered, an answer to the garbage would be there."""
    group = fresh_group()
    address, group_port = parse_endpoint(group)
    d, port = tcp_daemon(daemon, group)
    with prober() as garbage, prober() as good:
        for data in (b"\xff\xfe garbage \x00", b'"' + b"x" * 4000 + b'"', b"[" * 1000,
                     b'{"endpoint": "tcp://192.0.2.9:5555"}', b""):
            garbage.sendto(data, (address, group_port))
        good.sendto(PROBE, (address, group_port))
        data, _ = good.recvfrom(1024)
        assert json.loads(data) == {"endpoint": f"tcp://127.0.0.1:{port}"}
        garbage.setblocking(False)
        with pytest.raises(BlockingIOError):
            garbage.recvfrom(1024)
    with Client(f"tcp://127.0.0.1:{port}", timeout=5) as client:
        assert client.call("status")["statuses"] == {"one": "active"}
    assert "Traceback" not in d.log_text()


# -- when the daemon does not answer ---------------------------------------------

@pytest.mark.parametrize("group, message", [
    ("udp://10.1.2.3:{port}", "10.1.2.3 is not a multicast address"),
    ("udp://239.255.1.1:70000", "the port '70000' is not a number from 1 to 65535"),
    ("tcp://239.255.1.1:{port}", "expected udp://ADDRESS:PORT"),
    ("udp://239.255.1.1", "has no port"),
    ("udp://239.255.1.1:{taken}", "Address already in use"),
])
def test_unusable_multicast_endpoints_warn_and_the_daemon_starts(daemon, group, message):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", 0))  # no SO_REUSEADDR: the daemon cannot share this port
        taken = holder.getsockname()[1]
        d, port = tcp_daemon(daemon, group.format(port=free_udp_port(), taken=taken))
        log = d.log_text()
        assert log.count("discovery off: cannot answer probes") == 1, log
        assert message in log, log
        with Client(f"tcp://127.0.0.1:{port}", timeout=5) as client:
            assert client.call("status")["statuses"] == {"one": "active"}


def test_unset_the_group_is_circuss_default(daemon):
    """No probe is sent to it here: the real LAN's group."""
    port = free_port()
    d = daemon(f"""
        [circus]
        endpoint = tcp://127.0.0.1:{port}
        insecure = true

        [watcher:one]
        cmd = sleep 1000
    """)
    log = d.log_text()
    default = multicast.DEFAULT_ENDPOINT
    if f"discovery off: cannot answer probes on {default}" not in log:  # no route, say
        assert f"discovery: answering probes on {default} with tcp://127.0.0.1:{port}" in log
        assert udp_ports(d.pid) == {12027}


def test_an_ipc_daemon_starts_no_responder(daemon):
    group = fresh_group()
    d = daemon(f"""
        [circus]
        multicast_endpoint = {group}

        [watcher:one]
        cmd = sleep 1000
    """)
    assert d.call("status")["statuses"] == {"one": "active"}
    assert udp_ports(d.pid) == set()
    assert not port_held(parse_endpoint(group)[1])
    assert "discovery" not in d.log_text()


def test_an_empty_multicast_endpoint_turns_discovery_off(daemon):
    """Not even Circus's default group: `multicast_endpoint =` is off."""
    d, port = tcp_daemon(daemon, "")
    with Client(f"tcp://127.0.0.1:{port}", timeout=5) as client:
        assert client.call("status")["statuses"] == {"one": "active"}
    assert udp_ports(d.pid) == set()
    assert "discovery" not in d.log_text()


# -- the parts, without a daemon ---------------------------------------------------

ENDPOINTS = [
    "udp://237.219.251.97:12027", "UDP://239.1.2.3:1", "udp://224.0.0.1:65535",
    "udp://10.0.0.1:12027", "udp://240.0.0.1:12027", "udp://239.1.2.3:0",
    "udp://239.1.2.3:65536", "udp://239.1.2.3:", "udp://239.1.2.3", "udp://:12027",
    "udp://239.1.2.3:12027/x", "udp://239.1.2.3:+1", "udp://239.1.2.3:١٢", "tcp://239.1.2.3:1",
    "239.1.2.3:1", "udp://[ff02::1]:12027", "udp://host.example:12027", "udp://239.1.2:1",
    "",
]


VALID = {"udp://237.219.251.97:12027": ("237.219.251.97", 12027),
         "UDP://239.1.2.3:1": ("239.1.2.3", 1), "udp://224.0.0.1:65535": ("224.0.0.1", 65535)}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_endpoint_is_a_multicast_group_and_port(endpoint):
    if endpoint in VALID:
        assert parse_endpoint(endpoint) == VALID[endpoint]
        return
    with pytest.raises(EndpointError, match="^multicast endpoint"):
        parse_endpoint(endpoint)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


def responder(answer: str = "tcp://192.0.2.2:5555", **kw) -> tuple[Responder, FakeTransport,
                                                                    Clock]:
    clock = Clock()
    r = Responder(("239.255.1.1", 12027), answer, clock=clock, **kw)
    transport = FakeTransport()
    r.connection_made(transport)  # type: ignore[arg-type]
    return r, transport, clock


def test_token_bucket():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 3600  # never more than the burst
    assert sum(bucket.take() for _ in range(100)) == 5


def test_the_responder_answers_at_most_its_rate_and_warns_once_an_interval(caplog):
    r, transport, clock = responder(rate=10, burst=5, log_interval=60)
    caplog.set_level(logging.WARNING, "bigtop.control.discovery")
    for _ in range(1000):
        r.datagram_received(PROBE, ("192.0.2.50", 40000))
    assert (r.answered, r.dropped) == (5, 995)
    assert transport.sent == [(b'{"endpoint": "tcp://192.0.2.2:5555"}', ("192.0.2.50", 40000))] * 5
    assert len(caplog.records) == 1
    clock.now += 1.0
    for _ in range(1000):
        r.datagram_received(PROBE, ("192.0.2.50", 40000))
    assert r.answered == 10 and len(caplog.records) == 1  # within the interval: no warning
    clock.now += 60
    r.datagram_received(PROBE, ("192.0.2.50", 40000))
    for _ in range(10):
        r.datagram_received(PROBE, ("192.0.2.50", 40000))
    assert len(caplog.records) == 2
    # 994 + 995 between the two warnings, and the one that made the second
    assert "(1990 since the last such warning)" in caplog.records[1].getMessage()


@pytest.mark.parametrize("data, addr", [
    (b"garbage", ("192.0.2.50", 40000)),
    (b'"' + b"x" * 2000 + b'"', ("192.0.2.50", 40000)),
    (b"[" * 1024, ("192.0.2.50", 40000)),
    (b'{"endpoint": "tcp://192.0.2.9:1"}', ("192.0.2.50", 40000)),  # an answer
    (PROBE, ("192.0.2.50", 12027)),  # from the group port: a daemon's
    (PROBE, ("192.0.2.50", 0)),
    (PROBE, None),  # not even an address: ignored, never raised
])
def test_the_responder_ignores_what_is_no_probe(data, addr):
    r, transport, _ = responder()
    r.datagram_received(data, addr)
    assert transport.sent == [] and r.answered == 0 and r.ignored == 1


def test_a_loopback_endpoint_is_announced_on_this_host_only():
    r, transport, _ = responder("tcp://127.0.0.1:5555")
    r.datagram_received(PROBE, ("127.0.0.1", 40000))
    r.datagram_received(PROBE, ("198.51.100.7", 40000))  # another machine (TEST-NET-2)
    assert transport.sent == [(b'{"endpoint": "tcp://127.0.0.1:5555"}', ("127.0.0.1", 40000))]


def test_every_address_becomes_the_one_towards_the_prober():
    r, transport, _ = responder("tcp://0.0.0.0:5555")
    r.datagram_received(PROBE, ("127.0.0.1", 40000))
    assert transport.sent == [(b'{"endpoint": "tcp://127.0.0.1:5555"}', ("127.0.0.1", 40000))]


def test_answers_as_the_client_reads_them():
    assert read_answer(b'{"endpoint": "tcp://10.0.0.5:5555"}', "10.0.0.5") == "tcp://10.0.0.5:5555"
    assert read_answer(b'{"endpoint": "tcp://0.0.0.0:5555"}', "10.0.0.5") == "tcp://10.0.0.5:5555"
    assert read_answer(b'{"endpoint": "tcp://*:5555"}', "10.0.0.5") == "tcp://10.0.0.5:5555"
    assert read_answer(b'{"endpoint": "ipc:///run/c.sock"}', "10.0.0.5") == "ipc:///run/c.sock"
    for junk in (b"", b"junk", b'""', b"[]", b'{"endpoint": 5}', b'{"endpoint": "x"}',
                 b'{"other": "tcp://a:1"}', b'{"endpoint": "tcp://a:1", "pad": "' + b"x" * 5000
                 + b'"}'):
        assert read_answer(junk, "10.0.0.5") is None


def test_discover_with_nobody_there_returns_nothing(loops):
    assert asyncio.run(discover(fresh_group(), timeout=0.2, ttl=0)) == []


def test_importing_discovery_loads_no_zeromq():
    code = ("import sys, bigtop.client.discovery, bigtop.control.multicast; "
            "print(any(m == 'zmq' or m.startswith('zmq.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "False", out


def test_a_console_follows_what_it_hears_and_forgets_the_silent(daemon, loops):
    from bigtop.client.discovery import DiscoveryFollower

    group = fresh_group()
    d, port = tcp_daemon(daemon, group)
    heard: list[list[str]] = []
    follower = DiscoveryFollower(heard.append, group, timeout=1.0, forget_after=2, ttl=0)
    endpoint = f"tcp://127.0.0.1:{port}"
    wait_for(lambda: asyncio.run(follower.probe_once()) == [endpoint], timeout=WAIT,
             message="the daemon heard")
    d.stop()
    assert asyncio.run(follower.probe_once()) == [endpoint]  # silent once: kept
    assert asyncio.run(follower.probe_once()) == []  # twice: forgotten
    assert heard[-1] == []
    with pytest.raises(EndpointError):
        DiscoveryFollower(heard.append, "udp://10.0.0.1:12027")
