"""Find the daemons on the LAN as circus-web does: send Circus's multicast
probe and collect the answers, from bigtopd and circusd alike
(docs/discovery.md).

An answer is a hint: anyone on the network can send one, and it says
nothing of who may connect. A console shows it; it trusts only what the
endpoint itself says once connected (with its CurveZMQ key, on tcp://).

The wire (the group's endpoint, the probe) is the daemon's
``bigtop.control.multicast``, which imports nothing else of bigtop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..control.multicast import DEFAULT_ENDPOINT, PROBE, parse_endpoint

MAX_ANSWER = 4096  # an answer is one short endpoint; anything longer is not one
TTL = 1  # the probe stays on the local network (circus-web sends 255)
MAX_HEARD = 256  # distinct answers taken from one probe


@dataclass(frozen=True)
class Node:
    """One answer: the control endpoint a daemon announced, and the address
    the answer came from."""

    endpoint: str
    address: str


def read_answer(data: bytes, address: str) -> str | None:
    """The endpoint an answer announces, or None for a datagram that is not
    one. As circus-web does, a tcp:// endpoint on every address (0.0.0.0,
    and * too) is given the address the answer came from."""
    if len(data) > MAX_ANSWER:
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str) or "://" not in endpoint or len(endpoint) > 1024:
        return None
    if endpoint.startswith("tcp://"):
        host, colon, port = endpoint[len("tcp://"):].rpartition(":")
        if colon and host in ("0.0.0.0", "*"):
            endpoint = f"tcp://{address}:{port}"
    return endpoint


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, expect: int | None):
        self.nodes: dict[Node, None] = {}  # in the order they answered
        self.expect = expect
        self.enough = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        endpoint = read_answer(data, addr[0])
        if endpoint is None or len(self.nodes) >= MAX_HEARD:  # anyone on the LAN can answer
            return
        self.nodes.setdefault(Node(endpoint, addr[0]))
        if self.expect is not None and len(self.nodes) >= self.expect:
            self.enough.set()

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error: the probe went nowhere, the timeout ends it


async def discover(endpoint: str = DEFAULT_ENDPOINT, timeout: float = 1.0, *,
                   expect: int | None = None, ttl: int = TTL, interface: str | None = None,
                   repeat: int = 2) -> list[Node]:
    """The nodes that answer Circus's probe on ``endpoint`` within
    ``timeout`` seconds (or as soon as ``expect`` distinct ones have), in
    the order they answered, each once.

    The probe is sent ``repeat`` times within the first half of the
    timeout, for UDP may lose one. ``ttl``: how many routers it may cross
    (0: this host only). ``interface``: the IPv4 address of the interface
    to send it from (else the route to the group's)."""
    group = parse_endpoint(endpoint)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        if interface is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            socket.inet_aton(interface))
        sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(
        lambda: _Collector(expect), sock=sock)
    try:
        gap = timeout / 2 / max(repeat, 1)
        deadline = loop.time() + timeout
        for attempt in range(max(repeat, 1)):
            transport.sendto(PROBE, group)
            wait = gap if attempt + 1 < repeat else deadline - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(collector.enough.wait(), max(wait, 0.0))
            if collector.enough.is_set():
                break
    finally:
        transport.close()
    return list(collector.nodes)


class DiscoveryFollower:
    """The nodes a console finds on the LAN: it probes every ``every``
    seconds and hands the endpoints heard to ``on_nodes``; an endpoint
    silent for ``forget_after`` probes in a row is dropped. A hint for
    the node list, never more (the endpoint itself is what a console then
    trusts, with its key)."""

    def __init__(self, on_nodes: Callable[[list[str]], None], endpoint: str = DEFAULT_ENDPOINT,
                 every: float = 10.0, timeout: float = 1.0, forget_after: int = 3,
                 ttl: int = TTL):
        parse_endpoint(endpoint)  # a bad group is said at once, not at the first probe
        self.on_nodes = on_nodes  # called with the endpoints heard, sorted
        self.endpoint = endpoint
        self.every = every
        self.timeout = timeout
        self.forget_after = forget_after
        self.ttl = ttl
        self.silent: dict[str, int] = {}  # endpoint -> probes in a row without its answer
        self.error: str | None = None  # why the last probe could not be sent

    async def run(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self.every)

    async def probe_once(self) -> list[str]:
        try:
            heard = {n.endpoint for n in await discover(self.endpoint, self.timeout,
                                                        ttl=self.ttl)}
        except OSError as err:  # no route to the group: nothing heard this time
            heard, self.error = set(), str(err)
        else:
            self.error = None
        for endpoint in list(self.silent):
            if endpoint not in heard:
                self.silent[endpoint] += 1
                if self.silent[endpoint] >= self.forget_after:
                    del self.silent[endpoint]
        for endpoint in heard:
            self.silent[endpoint] = 0
        found = sorted(self.silent)
        self.on_nodes(found)
        return found
