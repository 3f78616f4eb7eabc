"""bigtop.client's subscribers against a real daemon: an event published
right after the handshake returns is received (sync and asyncio, on the
events and the stats endpoints), topics come and go at run time beside a
reader, handshake answers are never handed over, and a publisher that
does not answer gives a clear error after the timeout."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from bigtop.client import AsyncSubscriber, Subscriber, Unreachable
from bigtop.control.protocol import SYNC_PREFIX, sync_reply

from .conftest import ROOT

CONFIG = """
    [circus]
    stats_interval = 0.2

    [watcher:web]
    cmd = sleep 1000

    [watcher:other]
    cmd = sleep 1000
"""


def stats_endpoint(d) -> str:
    return f"ipc://{d.run_dir}/stats.sock"


def first(sub: Subscriber, topic: str, timeout: float = 10.0) -> tuple[str, dict]:
    """The first event whose topic starts with topic (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        event = sub.recv(max(deadline - time.monotonic(), 0.0))
        if event is None:
            pytest.fail(f"no {topic} event within {timeout}s")
        if event[0].startswith(topic):
            return event


def test_an_event_right_after_the_handshake_arrives(daemon):
    d = daemon(CONFIG)
    d.wait_pids("web", 1)
    with d.client() as client:
        for _ in range(10):  # a new subscriber each time: no luck in the timing
            with Subscriber(d.pubsub_endpoint, timeout=5) as sub:
                sub.subscribe("watcher.web.")
                sub.handshake()
                client.call("incr", name="web")
                _, payload = first(sub, "watcher.web.spawn")
                assert payload["process_pid"] in d.pids("web")
            client.call("decr", name="web", waiting=True)


def test_an_async_subscriber_gets_the_event_and_topics_change_beside_a_reader(daemon):
    d = daemon(CONFIG)
    d.wait_pids("web", 1)
    d.wait_pids("other", 1)

    async def follow() -> list[str]:
        seen: list[str] = []
        async with AsyncSubscriber(d.pubsub_endpoint, timeout=5) as sub:
            sub.subscribe("watcher.web.")
            await sub.handshake()
            d.client().call("incr", name="web")
            topic, _ = await asyncio.wait_for(sub.recv(), 10)
            seen.append(topic)

            # A reader task reads on while the topics change under it: the
            # handshake is answered through the reader's reads.
            got: asyncio.Queue[str] = asyncio.Queue()

            async def read() -> None:
                async for topic, _ in sub:
                    await got.put(topic)

            reader = asyncio.get_running_loop().create_task(read())
            sub.unsubscribe("watcher.web.")
            sub.subscribe("watcher.other.")
            await sub.handshake()
            d.client().call("incr", name="web", waiting=True)  # no longer subscribed
            d.client().call("incr", name="other")
            seen.append(await asyncio.wait_for(got.get(), 10))
            reader.cancel()
        return seen

    seen = asyncio.run(follow())
    assert seen[0].startswith("watcher.web.")
    assert seen[1].startswith("watcher.other."), "the web events came before, if at all"


def test_the_stats_endpoint_answers_the_handshake(daemon):
    d = daemon(CONFIG)
    pids = d.wait_pids("web", 1)
    with Subscriber(stats_endpoint(d), timeout=5) as sub:
        sub.subscribe("stat.web.")
        sub.handshake()
        topic, payload = first(sub, "stat.web.")
    assert int(topic.rsplit(".", 1)[1]) in pids
    assert "cpu" in payload

    async def follow() -> str:
        async with AsyncSubscriber(stats_endpoint(d), timeout=5) as sub:
            sub.subscribe("stat.circus")
            await sub.handshake()
            topic, _ = await asyncio.wait_for(sub.recv(), 10)
            return topic

    assert asyncio.run(follow()).startswith("stat.circus")


def test_handshake_answers_are_never_handed_over(daemon):
    d = daemon(CONFIG)
    d.wait_pids("web", 1)
    with Subscriber(d.pubsub_endpoint, timeout=5) as everything:
        everything.subscribe("")
        everything.handshake()
        for _ in range(3):  # other subscribers' answers reach every topic too
            with Subscriber(d.pubsub_endpoint, timeout=5) as other:
                other.handshake()
        d.client().call("incr", name="web")
        topic, _ = everything.recv(10) or ("nothing", {})
    assert topic == "activity" or topic.startswith("watcher.web."), topic


def test_events_read_during_the_handshake_are_kept(tmp_path: Path):
    """A publisher that sends an event before the handshake's answer (as
    the daemon may: the topic was in force before the token)."""
    endpoint = f"ipc://{tmp_path}/pub.sock"
    pub = zmq.Context.instance().socket(zmq.XPUB)
    pub.bind(endpoint)
    answered: list[bytes] = []

    def answer() -> None:
        while pub.poll(5000):
            message = pub.recv()
            reply = sync_reply(message)
            if reply is not None:
                answered.append(message)
                pub.send_multipart([b"watcher.web.spawn", b'{"process_pid": 1}'])
                pub.send_multipart(reply)
                return

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        with Subscriber(endpoint, timeout=5) as sub:
            sub.subscribe("watcher.")
            sub.handshake()
            assert answered[0].startswith(b"\x01" + SYNC_PREFIX.encode())
            assert sub.recv(0) == ("watcher.web.spawn", {"process_pid": 1})
            assert sub.recv(0.1) is None, "the answer itself is swallowed"
    finally:
        thread.join(10)
        pub.close(linger=0)


def test_no_answer_is_a_clear_error_after_the_timeout(tmp_path: Path):
    nobody = f"ipc://{tmp_path}/nobody.sock"
    began = time.monotonic()
    with Subscriber(nobody, timeout=0.3) as sub, \
            pytest.raises(Unreachable, match=rf"no answer .* from {nobody} within 0\.3s"):
        sub.subscribe("watcher.")
        sub.handshake()
    assert time.monotonic() - began < 3

    # A publisher that does not know the handshake (a Circus daemon's).
    silent = f"ipc://{tmp_path}/silent.sock"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(silent)

    async def wait() -> None:
        async with AsyncSubscriber(silent, timeout=0.3) as sub:
            sub.subscribe("watcher.")
            await sub.handshake()

    try:
        with pytest.raises(Unreachable, match="is bigtopd running there"):
            asyncio.run(wait())
    finally:
        pub.close(linger=0)


def test_a_bad_endpoint_or_key_is_unreachable(tmp_path: Path):
    with pytest.raises(Unreachable, match="cannot subscribe to nonsense"):
        Subscriber("nonsense")
    with pytest.raises(Unreachable, match="cannot subscribe to tcp://127.0.0.1:1"):
        Subscriber("tcp://127.0.0.1:1", key=str(tmp_path / "missing.key_secret"))


def test_importing_the_client_loads_no_zeromq():
    code = ("import sys, bigtop.client as c; loaded = 'zmq' in sys.modules; "
            "[getattr(c, name) for name in c.__all__]; print(loaded)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
