"""A client session: the endpoint and key options and one connection to the
daemon, shared by every command of a bigtopctl run or shell, and used the
same way by bigtop-top and bigtop-web."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from .connect import DEFAULT_TIMEOUT
from .endpoints import check_ipc, resolve_endpoint
from .errors import CallError, Unreachable

if TYPE_CHECKING:
    from .calls import Client


class Session:
    def __init__(self, endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 as_json: bool = False, key: str | None = None, server_key: str | None = None,
                 pubsub_endpoint: str | None = None, nodes: str | None = None,
                 node_timeout: float | None = None):
        self.endpoint_option = endpoint
        self.nodes = nodes  # a cluster node selector: the command goes to those nodes
        self.node_timeout = node_timeout
        self.timeout = timeout
        self.json = as_json
        self.key = key or os.environ.get("BIGTOPCTL_KEY") or None
        self.server_key = server_key or os.environ.get("BIGTOPCTL_SERVER_KEY") or None
        self.pubsub_option = pubsub_endpoint
        self._client: Client | None = None
        self._checked = False

    @classmethod
    def from_options(cls, ns: argparse.Namespace) -> Session:
        timeout = getattr(ns, "timeout", None)
        return cls(endpoint=getattr(ns, "endpoint", None),
                   timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                   as_json=bool(getattr(ns, "json", False)), key=getattr(ns, "key", None),
                   server_key=getattr(ns, "server_key", None),
                   pubsub_endpoint=getattr(ns, "pubsub_endpoint", None),
                   nodes=getattr(ns, "nodes", None),
                   node_timeout=getattr(ns, "node_timeout", None))

    def with_overrides(self, ns: argparse.Namespace) -> Session:
        """This session, or a copy with the global options given on a shell
        line (a different endpoint or keys get their own connection)."""
        given = {k: getattr(ns, k) for k in ("endpoint", "timeout", "json", "key",
                                              "server_key", "pubsub_endpoint", "nodes",
                                              "node_timeout") if hasattr(ns, k)}
        if not given:
            return self
        copy = Session(given.get("endpoint", self.endpoint_option),
                       given.get("timeout", self.timeout), given.get("json", self.json),
                       given.get("key", self.key), given.get("server_key", self.server_key),
                       given.get("pubsub_endpoint", self.pubsub_option),
                       given.get("nodes", self.nodes),
                       given.get("node_timeout", self.node_timeout))
        same_wire = all(getattr(copy, a) == getattr(self, a)
                        for a in ("endpoint_option", "key", "server_key"))
        if same_wire:
            copy._client, copy._checked = self._client, self._checked
        return copy

    @property
    def endpoint(self) -> str:
        return resolve_endpoint(self.endpoint_option)

    def client(self) -> Client:
        """The connection (made on first use). Raises Unreachable when an
        ipc:// endpoint has nobody listening, without waiting for a timeout."""
        if self._client is None:
            import zmq  # here: bigtopctl --help loads no ZeroMQ

            from .calls import Client

            endpoint = self.endpoint
            if not self._checked:
                check_ipc(endpoint)
                self._checked = True
            try:
                self._client = Client(endpoint, timeout=self.timeout, key=self.key,
                                      server_key=self.server_key)
            except CallError as err:
                raise Unreachable(f"bigtopctl: {err}") from None
            except zmq.ZMQError as err:
                raise Unreachable(f"bigtopctl: cannot connect to {endpoint!r}: {err}") from None
            except OSError as err:
                raise Unreachable(f"bigtopctl: cannot read a key: {err}") from None
        return self._client

    def call(self, command: str, timeout: float | None = None, **props: Any) -> dict[str, Any]:
        """The daemon's reply (``status: error`` included); Unreachable if
        there is none."""
        client = self.client()
        # The connection may be shared with a shell line's own --timeout.
        client.timeout = self.timeout if timeout is None else timeout
        try:
            return client.call(command, raise_on_error=False, **props)
        except CallError as err:
            if "timed out" in str(err):
                raise Unreachable(timeout_message(self.endpoint, client.timeout)) from None
            raise Unreachable(f"bigtopctl: {self.endpoint}: {err}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def timeout_message(endpoint: str, timeout: float) -> str:
    return (f"bigtopctl: no reply from the daemon at {endpoint} within {timeout:g}s.\n"
            "Is bigtopd running there? Pick another daemon with --endpoint (or "
            "BIGTOPCTL_ENDPOINT),\nor wait longer with --timeout SECONDS.")

