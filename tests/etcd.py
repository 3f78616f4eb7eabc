"""A real 3-member etcd cluster on loopback ports, for the cluster tests.

Debian's ``etcd-server`` (installed by ``make test``); fast election
settings so that a killed leader is replaced within a second (etcd's own
defaults for bench/cluster.py). Each member
has its own data directory under the test's temporary directory; stop()
kills them all.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from .conftest import free_port

ETCD = shutil.which("etcd")


class Member:
    def __init__(self, name: str, base: Path):
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.dir = base / name
        self.log = base / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


class EtcdCluster:
    def __init__(self, base: Path, size: int = 3, fast: bool = True):
        """``fast``: elections within a second (tests); else etcd's defaults."""
        base.mkdir(parents=True, exist_ok=True)
        self.timing = ["--heartbeat-interval", "50", "--election-timeout", "500"] if fast else []
        self.members = [Member(f"e{i}", base) for i in range(size)]
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> str:
        """As ``[cluster] etcd`` takes them."""
        return " ".join(m.endpoint for m in self.members)

    def start_member(self, member: Member, state: str = "new") -> None:
        assert ETCD is not None
        with open(member.log, "ab") as log:
            member.process = subprocess.Popen(
                [ETCD, "--name", member.name, "--data-dir", str(member.dir),
                 "--listen-client-urls", member.client_url,
                 "--advertise-client-urls", member.client_url,
                 "--listen-peer-urls", member.peer_url,
                 "--initial-advertise-peer-urls", member.peer_url,
                 "--initial-cluster", self.initial,
                 "--initial-cluster-state", state,
                 "--initial-cluster-token", "bigtop-tests",
                 *self.timing, "--log-level", "warn"],
                stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> EtcdCluster:
        for member in self.members:
            self.start_member(member)
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until some member answers that the cluster has a leader."""
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for member in self.members:
                if member.process is None or member.process.poll() is not None:
                    continue
                try:
                    with urllib.request.urlopen(member.client_url + "/health", timeout=1) as r:
                        if b'"true"' in r.read():
                            return
                except OSError:
                    pass
            time.sleep(0.1)
        raise AssertionError("etcd did not become healthy:\n" + "\n".join(
            m.log.read_text(errors="replace")[-2000:] for m in self.members if m.log.exists()))

    def leader(self) -> Member:
        import json
        import urllib.request

        for member in self.members:
            if member.process is None or member.process.poll() is not None:
                continue
            try:
                with urllib.request.urlopen(member.client_url + "/v3/maintenance/status",
                                            data=b"{}", timeout=1) as r:
                    status = json.loads(r.read())
            except OSError:
                continue
            if status.get("leader") == status.get("header", {}).get("member_id"):
                return member
        raise AssertionError("no etcd member says it leads")

    def kill(self, member: Member) -> None:
        if member.process is not None and member.process.poll() is None:
            member.process.send_signal(signal.SIGKILL)
            member.process.wait(10)

    def stop(self) -> None:
        for member in self.members:
            self.kill(member)

