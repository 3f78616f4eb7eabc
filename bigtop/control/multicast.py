"""LAN discovery as Circus does it: answer a UDP multicast probe with the
control endpoint, so that circus-web (and ``bigtop.client.discovery``)
lists this daemon among the nodes it can connect to.

The wire, as circusd 0.19.0 speaks it (``circus/controller.py``,
``circus/util.py``) and circus-web probes (``circusweb/util.py``):

- the daemon joins the group of ``multicast_endpoint``
  (``udp://237.219.251.97:12027`` by default) on the port of that endpoint;
- a prober sends, from a port of its own, the two bytes ``""`` (JSON's
  empty string) to the group and port;
- the daemon answers the sender, unicast, from the group port, with the
  JSON text ``{"endpoint": "tcp://HOST:PORT"}`` (Python's default
  separators: ``", "`` and ``": "``);
- the prober reads the ``endpoint`` key of each answer; when it starts with
  ``tcp://`` it puts the answer's source address in place of ``0.0.0.0``.

circusd answers any datagram at all, up to 1,024 bytes read; this
responder answers only what a probe can be (see ``Responder``), at most so
many a second, so that a flood or a stray answer cannot load the daemon or
set two daemons answering each other. It is a hint for consoles, never a
membership protocol: nothing here trusts what it receives.

This module imports nothing of bigtop, and nothing heavy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

log = logging.getLogger("bigtop.control.discovery")

DEFAULT_ENDPOINT = "udp://237.219.251.97:12027"  # Circus's DEFAULT_ENDPOINT_MULTICAST
PROBE = b'""'  # what circus-web sends
MAX_PROBE = 1024  # circusd reads this much of a datagram; a larger one is no probe
RATE = 20.0  # probes answered a second, in the long run (a console probes every 10 s)
BURST = 20  # probes answered at once, after a quiet time
LOG_INTERVAL = 60.0  # seconds between two warnings of dropped probes
MAX_BACKLOG = 64 * 1024  # bytes of answers the transport may hold before we stop answering

# Hosts of a tcp:// endpoint bound to every address: no prober can connect there.
_WILDCARDS = frozenset({"0.0.0.0", "*", "::", "[::]"})


class EndpointError(ValueError):
    """A multicast endpoint that is not ``udp://MULTICAST-IPV4:PORT``."""


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``udp://ADDRESS:PORT`` as (address, port), or EndpointError saying
    what is wrong. Circus takes an IPv4 address from 224.0.0.0 to
    239.255.255.255 only (no name, no IPv6): so does bigtop, so that a file
    means the same to both."""
    example = f"expected udp://ADDRESS:PORT, e.g. {DEFAULT_ENDPOINT}"
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() != "udp":
        raise EndpointError(f"multicast endpoint {endpoint!r}: {example}")
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host:
        raise EndpointError(f"multicast endpoint {endpoint!r} has no port: {example}")
    if host.startswith("["):
        raise EndpointError(f"multicast endpoint {endpoint!r}: only IPv4 groups are "
                            f"supported (as by Circus): {example}")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise EndpointError(f"multicast endpoint {endpoint!r}: {host!r} is not an IPv4 "
                            f"address: {example}") from None
    if not address.is_multicast:
        raise EndpointError(f"multicast endpoint {endpoint!r}: {host} is not a multicast "
                            "address (224.0.0.0 to 239.255.255.255)")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise EndpointError(f"multicast endpoint {endpoint!r}: the port {port_text!r} is not "
                            "a number from 1 to 65535")
    return str(address), int(port_text)


def answer_payload(endpoint: str) -> bytes:
    """The answer to a probe, byte for byte what circusd sends."""
    return json.dumps({"endpoint": endpoint}).encode()


def is_probe(data: bytes) -> bool:
    """Whether a datagram may be a probe: small, JSON, and not an answer
    (an answer taken for a probe would set two daemons answering each
    other for ever, circusd's weakness)."""
    if len(data) > MAX_PROBE:
        return False
    if data == PROBE:
        return True
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return not (isinstance(value, dict) and "endpoint" in value)


def local_address_towards(ip: str) -> str | None:
    """The address of this host that the kernel would send from to reach
    ip: the one a prober there can reach us on. A connected UDP socket
    sends nothing; connect only looks up the route."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((ip, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def is_local(ip: str) -> bool:
    """Whether ip is an address of this host (a prober on this host)."""
    try:
        if ipaddress.ip_address(ip).is_loopback:
            return True
    except ValueError:
        return False
    return local_address_towards(ip) == ip


class TokenBucket:
    """At most ``rate`` a second in the long run, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _tcp_host(endpoint: str) -> tuple[str, str] | None:
    """(host, port) of ``tcp://HOST:PORT`` (an IPv6 host keeps its brackets)."""
    if not endpoint.startswith("tcp://"):
        return None
    host, colon, port = endpoint[len("tcp://"):].rpartition(":")
    return (host, port) if colon and host else None


class _Transport(Protocol):
    """What the responder uses of asyncio's datagram transport (whose type
    hints leave out the size of what it holds to send)."""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def close(self) -> None: ...


class Responder(asyncio.DatagramProtocol):
    """Answers probes on the group's socket, within the loop callback that
    reads them: no task, no thread, nothing that blocks.

    What it announces, ``answer``, is the daemon's control endpoint, as
    bound. Two cases are not announced as they are:

    - bound to every address (``tcp://0.0.0.0:P``, ``tcp://*:P``): circusd
      announces ``tcp://0.0.0.0:P`` and leaves circus-web to put the
      answer's source address in its place; a prober that does not (and
      ``*``, which circus-web leaves alone) would get an address it cannot
      connect to. So each answer names the address this host sends from
      towards that prober, the very address circus-web would put there:
      the same for circus-web, right for everyone else.
    - bound to a loopback address (Circus's default ``tcp://127.0.0.1:5555``):
      only a prober on this host can use it, so only such a prober is
      answered; another machine would be told of an endpoint that is its own.
    """

    def __init__(self, group: tuple[str, int], answer: str, rate: float = RATE,
                 burst: int = BURST, clock: Callable[[], float] = time.monotonic,
                 log_interval: float = LOG_INTERVAL):
        self.group = group
        self.answer = answer
        self.bucket = TokenBucket(rate, burst, clock)
        self.clock = clock
        self.log_interval = log_interval
        self.transport: _Transport | None = None
        self.answered = 0
        self.dropped = 0  # over the rate
        self.ignored = 0  # not a probe, or from where an answer is of no use
        self._unlogged = 0  # dropped since the last warning
        self._next_log = float("-inf")  # the first drop is told at once
        self._payload = answer_payload(answer)
        hostport = _tcp_host(answer)
        host = hostport[0] if hostport else ""
        self._wildcard = hostport if host in _WILDCARDS else None
        self._loopback = False
        with contextlib.suppress(ValueError):
            self._loopback = ipaddress.ip_address(host.strip("[]")).is_loopback

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's datagram transport is not even a DatagramTransport subclass.)
        self.transport = cast(_Transport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self._probed(data, addr)
        except Exception:  # never an exception in the loop for a datagram
            self.ignored += 1
            log.debug("discovery: datagram from %s not handled", addr, exc_info=True)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for an earlier answer (a prober gone): nothing to do.
        log.debug("discovery: %s", exc)

    def _probed(self, data: bytes, addr: tuple[str, int]) -> None:
        ip, port = addr[0], addr[1]
        # Port 0 cannot be answered; the group port is where daemons answer
        # from, so that datagram is an answer (or a forgery of one).
        if port == 0 or port == self.group[1] or not is_probe(data):
            self.ignored += 1
            return
        if not self.bucket.take():
            self._drop()
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_BACKLOG:
            self._drop()
            return
        payload = self._payload_for(ip)
        if payload is None:
            self.ignored += 1
            return
        transport.sendto(payload, (ip, port))
        self.answered += 1

    def _payload_for(self, ip: str) -> bytes | None:
        if self._wildcard is not None:
            local = local_address_towards(ip)
            if local is None:  # as circusd does: circus-web puts our address in
                return answer_payload(f"tcp://0.0.0.0:{self._wildcard[1]}")
            return answer_payload(f"tcp://{local}:{self._wildcard[1]}")
        if self._loopback and not is_local(ip):
            return None
        return self._payload

    def _drop(self) -> None:
        self.dropped += 1
        self._unlogged += 1
        now = self.clock()
        if now >= self._next_log:
            log.warning("discovery: probes dropped: more than %g a second to %s:%d "
                        "(%d since the last such warning)", self.bucket.rate, *self.group,
                        self._unlogged)
            self._unlogged = 0
            self._next_log = now + self.log_interval

    def close(self) -> None:
        """Leave the group and close the socket (idempotent)."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def open_group_socket(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket on the group's port, in the group.

    Bound to the group's address rather than to every address (as circusd
    is): it receives the group's datagrams only, not those sent to this host
    on that port nor to other groups on it. SO_REUSEADDR and SO_REUSEPORT
    let several daemons (and a circusd) on one host share the port: each
    gets every multicast datagram. The membership is on the interface the
    route to the group goes by (INADDR_ANY, as circusd): with no such route
    the kernel says ENODEV."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        membership = socket.inet_aton(address) + socket.inet_aton("0.0.0.0")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_responder(endpoint: str, answer: str, rate: float = RATE,
                          burst: int = BURST) -> Responder:
    """Answer the probes sent to ``endpoint`` (``udp://GROUP:PORT``) with
    ``answer`` (a control endpoint). EndpointError for an endpoint that is
    not one, OSError when the group cannot be joined or its port bound."""
    group = parse_endpoint(endpoint)
    sock = open_group_socket(*group)
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: Responder(group, answer, rate, burst), sock=sock)
    except BaseException:
        sock.close()
        raise
    return protocol
